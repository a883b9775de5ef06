"""Model facts and where exported models live.

An exported model is a directory holding ``image.onnx``, ``text.onnx``,
``tokenizer.json`` and ``manifest.json``. The manifest (``engine.manifest``)
is the single source of truth for everything the runtime needs to know (embedding size,
preprocessing, context length); the engine never guesses these.

Models are found by name:
- an existing directory containing ``manifest.json`` is used as is;
- a short name or Hugging Face id of the registry (``engine.registry``) is looked up where that
  entry lives: the package data folder for a shipped model (``demo``, in ``engine/data/demo``),
  else the model cache (``ASSETLENS_CACHE`` or the user's cache directory), under
  ``models/<slug of the HF id>/<precision>``, where ``assetlens export`` puts it;
- any other name (another Hugging Face id, a local checkpoint exported by folder name) is
  looked up in the model cache the same way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from platformdirs import user_cache_dir

from assetlens.engine import onnx_proto
from assetlens.engine.cpu import CpuInfo, this_cpu
from assetlens.engine.errors import ModelLoadError, ModelMismatchError, ModelNotFoundError
from assetlens.engine.manifest import MANIFEST_FILE, ImageFacts, ModelManifest, TextFacts
from assetlens.engine.registry import (
    DEFAULT_MODEL,
    DEMO_MODEL,
    MODELS,
    PRECISIONS,
    ModelSpec,
    canonical_name,
    close_matches,
    find_model,
)
from assetlens.engine.sources import pinned

__all__ = [
    "DEFAULT_MODEL",
    "DEMO_MODEL",
    "MANIFEST_FILE",
    "PRECISIONS",
    "ImageFacts",
    "ModelFacts",
    "ModelManifest",
    "TextFacts",
]

DATA_ROOT = Path(__file__).resolve().parent / "data"
"""Where shipped models live, one folder per registry name."""
DEMO_ROOT = DATA_ROOT / DEMO_MODEL


@dataclass(frozen=True)
class ModelFacts(ModelManifest):
    """A manifest as loaded from its model directory, whose files it names."""

    directory: Path = field(kw_only=True)

    @property
    def model_id(self) -> str:
        """Identity stored in a collection: same id, same embedding space."""
        return f"{self.name}:{self.precision}:{self.files.get(self.image.file, '')[:12]}"

    def path(self, file: str) -> Path:
        return self.directory / file

    @property
    def manifest(self) -> ModelManifest:
        """The persisted part, without the directory."""
        return ModelManifest(**{f.name: getattr(self, f.name) for f in fields(ModelManifest)})


def cache_root() -> Path:
    """Where exported models are cached (``ASSETLENS_CACHE`` overrides)."""
    env = os.environ.get("ASSETLENS_CACHE")
    return Path(env) if env else Path(user_cache_dir("assetlens"))


def slug(name: str) -> str:
    """A filesystem-safe directory name for a model id like ``org/model``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip()).strip("-") or "model"


def export_dir_for(name: str, precision: str) -> Path:
    """The cache directory ``assetlens export`` writes ``name`` at ``precision`` to."""
    return cache_root() / "models" / slug(name) / precision


def model_root(spec: ModelSpec) -> Path:
    """The folder holding a registry model's precisions: the package data for a shipped model, else the cache."""
    return DATA_ROOT / spec.name if spec.shipped else cache_root() / "models" / slug(spec.hf_id or spec.name)


def exported_precisions(spec: ModelSpec) -> dict[str, Path]:
    """The precisions of ``spec`` found here, each with its folder."""
    root = model_root(spec)
    return {p: root / p for p in PRECISIONS if (root / p / MANIFEST_FILE).is_file()}


def default_model_name() -> str:
    return canonical_name(os.environ.get("ASSETLENS_MODEL") or DEFAULT_MODEL)


def resolve_model_dir(name: str | os.PathLike[str] | None, precision: str = "fp32") -> Path:
    """Find the exported model directory for a name, a path or the default."""
    if precision not in PRECISIONS:
        raise ModelNotFoundError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    name = str(name) if name is not None else default_model_name()
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        if (as_path / MANIFEST_FILE).is_file():
            return as_path
        if (as_path / precision / MANIFEST_FILE).is_file():
            return as_path / precision
        exported = export_dir_for(as_path.resolve().name, precision)  # a local HF checkpoint exported by name
        if (exported / MANIFEST_FILE).is_file():
            return exported
        raise ModelNotFoundError(
            f"{as_path} is a folder but not an exported AssetLens model (no {MANIFEST_FILE}); "
            f"export it first with: assetlens export --model {as_path} --precision {precision}"
        )
    if as_path.is_absolute() or name.startswith((".", "~")):
        raise ModelNotFoundError(f"The model folder {as_path} does not exist.")
    spec = find_model(name)
    directory = model_root(spec) / precision if spec is not None else export_dir_for(name, precision)
    if (directory / MANIFEST_FILE).is_file():
        return directory
    if spec is not None and spec.shipped:
        shipped = ", ".join(exported_precisions(spec)) or "no"
        raise ModelNotFoundError(f"The {spec.name} model ships in {shipped} precision(s), not {precision}.")
    if spec is None and "/" not in name:
        matches = close_matches(name)
        hint = f"close matches: {', '.join(matches)}; " if matches else ""
        raise ModelNotFoundError(
            f"Unknown model {name!r} (not a folder, not exported, not a known name); {hint}"
            "run assetlens models to list the known models."
        )
    if spec is not None and any(precision in source.precisions for source in spec.sources):
        raise ModelNotFoundError(
            f"Model {name} ({precision}) is not here yet; download it with: assetlens models pull {name} "
            f"--precision {precision} (or export it with: assetlens export --model {name} --precision {precision})."
        )
    raise ModelNotFoundError(
        f"Model {name} ({precision}) has not been exported yet; run: "
        f"assetlens export --model {name} --precision {precision} (or use --model demo for the shipped demo model)."
    )


@dataclass(frozen=True)
class ModelRow:
    """One registry entry as found here: ``exported`` maps each precision present to its size on disk in bytes."""

    spec: ModelSpec
    folder: Path
    exported: dict[str, int]

    @property
    def size_bytes(self) -> int:
        return sum(self.exported.values())

    def to_dict(self) -> dict[str, object]:
        spec, quality = self.spec, self.spec.quality
        return {
            "name": spec.name,
            "hf_id": spec.hf_id,
            "family": spec.family,
            "default": spec.default,
            "shipped": spec.shipped,
            "dim": spec.dim,
            "image_size": spec.image.size,
            "licence": spec.licence,
            "imagenet_top1": quality.imagenet_top1 if quality else None,
            "coco_text_to_image_r1": quality.coco_text_to_image_r1 if quality else None,
            "quality_source": quality.source if quality else None,
            "folder": str(self.folder),
            "exported": self.exported,
            "size_bytes": self.size_bytes,
            "sources": [
                {
                    "layout": source.layout,
                    "repos": [pin.repo for pin in source.repos],
                    "precisions": list(source.precisions),
                    "pinned": {precision: pinned(source, precision) for precision in source.precisions},
                    "reference": source.reference is not None,
                }
                for source in spec.sources
            ],
        }


def model_rows() -> list[ModelRow]:
    """Every registry entry with the precisions exported (or shipped) here and their sizes on disk."""
    return [
        ModelRow(
            spec,
            model_root(spec),
            {p: _bytes_under(folder) for p, folder in exported_precisions(spec).items()},
        )
        for spec in MODELS
    ]


def _bytes_under(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def load_facts(directory: str | os.PathLike[str]) -> ModelFacts:
    """Read ``manifest.json`` of an exported model directory and check the files it names are there."""
    directory = Path(directory)
    manifest = ModelManifest.load(directory)
    for file in (manifest.image.file, manifest.text.file, manifest.text.tokenizer_file):
        if not (directory / file).is_file():
            raise ModelLoadError(f"{directory} is missing {file}; re-export the model.")
    return ModelFacts(directory=directory, **{f.name: getattr(manifest, f.name) for f in fields(ModelManifest)})


QUERY_PRECISIONS = ("auto", "fp32", "int8")
"""``Library(query_precision=...)``: the text tower of an fp32 library's text queries (``int8_text_facts``)."""
INT8_QUERY_MIN_COSINE = 0.999
"""The least text min cosine against fp32 an int8 export must record for its text tower to answer fp32 queries."""
FP32_REFERENCES = ("onnx fp32", "pytorch fp32")  # ``Parity.reference`` of cosines measured against fp32


def int8_text_facts(fp32: ModelFacts, cpu: CpuInfo | None = None) -> ModelFacts:
    """The same model's int8 export, whose text tower may encode the text queries of a library indexed with
    ``fp32``: in the ``int8`` folder beside ``fp32``'s, with the same text facts, quantised from the same
    fp32 text graph (``quantised_from``), recording a text min cosine of at least ``INT8_QUERY_MIN_COSINE``
    and exact on ``cpu`` (default: this machine's). Else a one-sentence ``ModelNotFoundError`` (no int8
    export) or ``ModelMismatchError`` (one that does not answer as fp32 does)."""
    folder = fp32.directory.parent / "int8"
    if fp32.precision != "fp32" or fp32.directory.name != "fp32" or not (folder / MANIFEST_FILE).is_file():
        raise ModelNotFoundError(
            f"The {fp32.name} model ({fp32.precision}, {fp32.directory}) has no int8 export beside it for text "
            "queries; use --query-precision auto or fp32."
        )
    int8 = load_facts(folder)
    why = _int8_refusal(fp32, int8, cpu or this_cpu())
    if why is not None:
        raise ModelMismatchError(
            f"The int8 export {folder} {why}, so it cannot answer text queries for {fp32.name} (fp32); "
            "use --query-precision auto or fp32."
        )
    return int8


def _int8_refusal(fp32: ModelFacts, int8: ModelFacts, cpu: CpuInfo) -> str | None:
    """Why ``int8``'s text tower may not stand in for ``fp32``'s (None: it may), the cheap checks first."""
    if int8.precision != "int8":
        return "is not an int8 export"
    if (int8.embedding_dim, int8.text) != (fp32.embedding_dim, fp32.text):
        return "tokenises or embeds text differently"
    if int8.parity.reference not in FP32_REFERENCES:
        return f"records its text cosine against {int8.parity.reference}, not fp32"
    if not int8.parity.text_min_cosine >= INT8_QUERY_MIN_COSINE:
        return (
            f"records a text min cosine of {int8.parity.text_min_cosine:.6f} against fp32, "
            f"below the {INT8_QUERY_MIN_COSINE} its queries need"
        )
    if not int8.parity.int8_saturation_safe and cpu.u8s8_saturates:
        return "has int8 sums that saturate on this CPU"
    if not quantised_from(fp32.path(fp32.text.file), int8.path(int8.text.file)):
        return "was not quantised from this fp32 text graph"
    return None


def quantised_from(fp32_graph: Path, int8_graph: Path) -> bool:
    """Whether ``int8_graph`` was quantised from the weights of ``fp32_graph``. Quantisation replaces only the
    weights of MatMuls, so the tensors the two graphs share by name (the embeddings, norms and biases) are
    the same; another checkpoint's graph differs in them, or shares none. A file that is not a readable
    graph, or keeps its tensors in another file, was not.

    The shared tensors are compared byte for byte, the smallest first, up to the first difference: this runs
    whenever an fp32 library opens, and a real text tower shares its token embedding (100 MB in CLIP B/32)."""
    try:
        ours = onnx_proto.initializers(onnx_proto.mapped(fp32_graph))
        theirs = onnx_proto.initializers(onnx_proto.mapped(int8_graph))
    except (OSError, ValueError):
        return False
    shared = sorted(ours.keys() & theirs.keys(), key=lambda name: _size(ours[name]))
    return bool(shared) and all(_same_tensor(ours[name], theirs[name]) for name in shared)


def _size(tensor: onnx_proto.Tensor) -> int:
    return sum(len(value) for _, value in tensor if isinstance(value, memoryview))


def _same_tensor(ours: onnx_proto.Tensor, theirs: onnx_proto.Tensor) -> bool:
    return [number for number, _ in ours] == [number for number, _ in theirs] and all(
        _same_bytes(a, b) if isinstance(a, memoryview) and isinstance(b, memoryview) else a == b
        for (_, a), (_, b) in zip(ours, theirs, strict=True)
    )


_COMPARED_AT_ONCE = 1 << 20  # bytes: numpy's call overhead vanishes, and a difference stops the compare soon


def _same_bytes(ours: memoryview, theirs: memoryview) -> bool:
    """Byte equality, a block at a time: numpy compares 100 MB in ~25 ms where ``memoryview ==`` takes ~400 ms
    (it compares item by item), and blocks need no temporary the size of the tensor."""
    if len(ours) != len(theirs):
        return False
    a, b = np.frombuffer(ours, np.uint8), np.frombuffer(theirs, np.uint8)
    step = _COMPARED_AT_ONCE
    return all(np.array_equal(a[at : at + step], b[at : at + step]) for at in range(0, len(a), step))
