"""Model facts and where exported models live.

An exported model is a directory holding ``image.onnx``, ``text.onnx``,
``tokenizer.json`` and ``manifest.json``. The manifest (``engine.manifest``)
is the single source of truth for everything the runtime needs to know (embedding size,
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

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from platformdirs import user_cache_dir

from assetlens.engine.errors import ModelLoadError, ModelNotFoundError
from assetlens.engine.manifest import MANIFEST_FILE, ImageFacts, ModelManifest, TextFacts

__all__ = ["MANIFEST_FILE", "ImageFacts", "ModelFacts", "ModelManifest", "TextFacts"]

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEMO_MODEL = "demo"
PRECISIONS = ("fp32", "fp16", "int8")
DEMO_ROOT = Path(__file__).resolve().parent / "data" / "demo"


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
    """Read ``manifest.json`` of an exported model directory and check the files it names are there."""
    directory = Path(directory)
    manifest = ModelManifest.load(directory)
    for file in (manifest.image.file, manifest.text.file, manifest.text.tokenizer_file):
        if not (directory / file).is_file():
            raise ModelLoadError(f"{directory} is missing {file}; re-export the model.")
    return ModelFacts(directory=directory, **{f.name: getattr(manifest, f.name) for f in fields(ModelManifest)})
