"""Model facts and where exported models live.

An exported model is a directory holding ``image.onnx``, ``text.onnx``,
``tokenizer.json`` and ``manifest.json``. The manifest is the single source
of truth for everything the runtime needs to know (embedding size,
preprocessing, context length); the engine never guesses these.

Models are found by name:
- an existing directory containing ``manifest.json`` is used as is;
- ``demo`` is the small CLIP shipped inside the package (``engine/data/demo``);
- anything else (a Hugging Face id such as ``openai/clip-vit-base-patch32``)
  is looked up in the model cache (``ASSETLENS_CACHE`` or the user's cache
  directory), under ``models/<slug>/<precision>``, where ``assetlens export``
  puts it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from assetlens.engine.errors import ModelLoadError, ModelNotFoundError

MANIFEST_FORMAT = "assetlens-model/1"
MANIFEST_FILE = "manifest.json"
DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEMO_MODEL = "demo"
PRECISIONS = ("fp32", "fp16", "int8")
DEMO_ROOT = Path(__file__).resolve().parent / "data" / "demo"


@dataclass(frozen=True)
class ImageFacts:
    """How pixels become the vision tower's input (CLIPImageProcessor's recipe)."""

    file: str
    input_name: str
    output_name: str
    resize_shortest_edge: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str = "bicubic"


@dataclass(frozen=True)
class TextFacts:
    """How a query becomes the text tower's input."""

    file: str
    input_names: tuple[str, ...]
    output_name: str
    context_length: int
    tokenizer_file: str
    pad_token_id: int


@dataclass(frozen=True)
class ModelFacts:
    """Everything the runtime knows about one exported model."""

    directory: Path
    name: str
    source: str
    precision: str
    embedding_dim: int
    image: ImageFacts
    text: TextFacts
    files: dict[str, str]
    opset: int
    parity: dict[str, Any]
    versions: dict[str, str]

    @property
    def model_id(self) -> str:
        """Identity stored in a collection: same id, same embedding space."""
        return f"{self.name}:{self.precision}:{self.files.get(self.image.file, '')[:12]}"

    def path(self, file: str) -> Path:
        return self.directory / file


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


def default_model_name() -> str:
    return os.environ.get("ASSETLENS_MODEL") or DEFAULT_MODEL


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
    if name == DEMO_MODEL:
        directory = DEMO_ROOT / precision
        if not (directory / MANIFEST_FILE).is_file():
            shipped = sorted(p.name for p in DEMO_ROOT.glob("*") if (p / MANIFEST_FILE).is_file())
            raise ModelNotFoundError(
                f"The demo model ships in {', '.join(shipped) or 'no'} precision(s), not {precision}."
            )
        return directory
    directory = export_dir_for(name, precision)
    if (directory / MANIFEST_FILE).is_file():
        return directory
    raise ModelNotFoundError(
        f"Model {name} ({precision}) has not been exported yet; run: "
        f"assetlens export --model {name} --precision {precision} (or use --model demo for the shipped demo model)."
    )


def load_facts(directory: str | os.PathLike[str]) -> ModelFacts:
    """Read and validate ``manifest.json`` of an exported model directory."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{directory} has no {MANIFEST_FILE}; re-export the model.") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {manifest_path}: {exc}.") from None
    if raw.get("format") != MANIFEST_FORMAT:
        raise ModelLoadError(
            f"{manifest_path} has format {raw.get('format')!r}, expected {MANIFEST_FORMAT!r}; re-export the model."
        )
    try:
        img, txt = raw["image"], raw["text"]
        facts = ModelFacts(
            directory=directory,
            name=raw["name"],
            source=raw["source"],
            precision=raw["precision"],
            embedding_dim=int(raw["embedding_dim"]),
            image=ImageFacts(
                file=img["file"],
                input_name=img["input_name"],
                output_name=img["output_name"],
                resize_shortest_edge=int(img["resize_shortest_edge"]),
                crop_size=int(img["crop_size"]),
                mean=tuple(float(v) for v in img["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in img["std"]),  # type: ignore[arg-type]
                resample=img.get("resample", "bicubic"),
            ),
            text=TextFacts(
                file=txt["file"],
                input_names=tuple(txt["input_names"]),
                output_name=txt["output_name"],
                context_length=int(txt["context_length"]),
                tokenizer_file=txt["tokenizer_file"],
                pad_token_id=int(txt["pad_token_id"]),
            ),
            files=dict(raw.get("files", {})),
            opset=int(raw.get("opset", 0)),
            parity=dict(raw.get("parity", {})),
            versions=dict(raw.get("versions", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{manifest_path} is incomplete ({exc}); re-export the model.") from None
    for file in (facts.image.file, facts.text.file, facts.text.tokenizer_file):
        if not (directory / file).is_file():
            raise ModelLoadError(f"{directory} is missing {file}; re-export the model.")
    return facts


def manifest_dict(facts_fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON written by the exporter, stamped with the format version."""
    return {"format": MANIFEST_FORMAT, **facts_fields}
