"""Where each Hub layout keeps an entry's towers, tokenizer and preprocessing, and the check of that
preprocessing against the registry: one adapter per layout (``engine.registry.Source.layout``).

- ``immich`` (immich-app): ``visual/model.onnx``, ``textual/model.onnx``, ``textual/tokenizer.json``,
  open_clip's ``visual/preprocess_cfg.json`` (size, mean, std, interpolation, resize mode) and
  ``config.json`` (open_clip's model config: ``text_cfg.context_length``).
- ``onnx-community`` (and Xenova): ``onnx/vision_model{,_fp16,_quantized}.onnx``,
  ``onnx/text_model{...}.onnx``, ``tokenizer.json`` and Hugging Face's ``preprocessor_config.json``.
- ``fastembed`` (Qdrant): a vision repository and a text repository, each with ``model.onnx``; the
  vision one has ``preprocessor_config.json``, the text one ``tokenizer.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assetlens.engine.errors import ModelVerificationError
from assetlens.engine.registry import ImageSpec, ModelSpec, RepoPin, Resize, Source

# PIL resampling codes as Hugging Face's image processors write them.
HF_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}
OPEN_CLIP_RESIZE: dict[str, Resize] = {"shortest": "shortest-edge-crop", "squash": "squash"}


@dataclass(frozen=True)
class RepoFile:
    """One file of a source: the repository it lives in and its path there."""

    repo: RepoPin
    path: str


@dataclass(frozen=True)
class SourceFiles:
    """The files of one precision of a source, by role; ``config`` is read only to check the context length."""

    image: RepoFile
    text: RepoFile
    tokenizer: RepoFile
    preprocessing: RepoFile
    config: RepoFile | None = None

    @property
    def all(self) -> tuple[RepoFile, ...]:
        files = (self.image, self.text, self.tokenizer, self.preprocessing, self.config)
        return tuple(f for f in files if f is not None)


@dataclass(frozen=True)
class Preprocessing:
    """A repository's own image preprocessing, in the registry's terms."""

    size: int
    resize: Resize
    resample: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


Reader = Callable[[dict[str, Any]], Preprocessing]


@dataclass(frozen=True)
class LayoutAdapter:
    """Paths of one layout (``{suffix}`` is the precision's file-name suffix), and the reader of its
    preprocessing file."""

    image: str
    text: str
    tokenizer: str
    preprocessing: str
    config: str | None
    suffixes: dict[str, str]
    read_preprocessing: Reader

    def files(self, source: Source, precision: str) -> SourceFiles:
        suffix = self.suffixes[precision]
        text_repo = source.text_repo or source.repo
        return SourceFiles(
            image=RepoFile(source.repo, self.image.format(suffix=suffix)),
            text=RepoFile(text_repo, self.text.format(suffix=suffix)),
            tokenizer=RepoFile(text_repo, self.tokenizer),
            preprocessing=RepoFile(source.repo, self.preprocessing),
            config=RepoFile(source.repo, self.config) if self.config else None,
        )


def _open_clip(cfg: dict[str, Any]) -> Preprocessing:
    """open_clip's ``preprocess_cfg.json``: size (one number or [h, w]), mean, std, interpolation, resize_mode."""
    size = cfg["size"]
    side = int(size) if isinstance(size, (int, float)) else int(size[0])
    if not isinstance(size, (int, float)) and int(size[1]) != side:
        raise ValueError(f"a {size[0]} x {size[1]} input, not a square")
    mode = str(cfg.get("resize_mode", "shortest"))
    if mode not in OPEN_CLIP_RESIZE:
        raise ValueError(f"resize mode {mode!r}")
    return Preprocessing(
        side, OPEN_CLIP_RESIZE[mode], str(cfg.get("interpolation", "bicubic")), tuple(cfg["mean"]), tuple(cfg["std"])
    )


def _hf_processor(cfg: dict[str, Any]) -> Preprocessing:
    """Hugging Face's ``preprocessor_config.json``: CLIPImageProcessor (shortest edge, centre crop) or
    SiglipImageProcessor (resize to height x width)."""
    size = cfg.get("size") or {}
    crop = cfg.get("crop_size")
    if isinstance(size, dict) and "shortest_edge" in size and cfg.get("do_center_crop", True):
        crop_side = crop if isinstance(crop, int) else (crop or {}).get("height")
        if crop_side is None or int(crop_side) != int(size["shortest_edge"]):
            raise ValueError(f"resize to {size['shortest_edge']} then crop {crop}")
        side, resize = int(crop_side), "shortest-edge-crop"
    elif isinstance(size, dict) and size.get("height") is not None and size.get("height") == size.get("width"):
        side, resize = int(size["height"]), "squash"
    else:
        raise ValueError(f"size {size}")
    if abs(float(cfg.get("rescale_factor", 1 / 255)) - 1 / 255) > 1e-9:
        raise ValueError(f"rescale factor {cfg.get('rescale_factor')}")
    resize_mode: Resize = "shortest-edge-crop" if resize == "shortest-edge-crop" else "squash"
    return Preprocessing(
        side,
        resize_mode,
        HF_RESAMPLE.get(int(cfg.get("resample", 3)), str(cfg.get("resample"))),
        tuple(cfg.get("image_mean", (0.0, 0.0, 0.0))),
        tuple(cfg.get("image_std", (1.0, 1.0, 1.0))),
    )


LAYOUTS: dict[str, LayoutAdapter] = {
    "immich": LayoutAdapter(
        "visual/model.onnx",
        "textual/model.onnx",
        "textual/tokenizer.json",
        "visual/preprocess_cfg.json",
        "config.json",
        {"fp32": ""},
        _open_clip,
    ),
    "onnx-community": LayoutAdapter(
        "onnx/vision_model{suffix}.onnx",
        "onnx/text_model{suffix}.onnx",
        "tokenizer.json",
        "preprocessor_config.json",
        None,
        # transformers.js names its dynamically quantised int8 graphs ``_quantized``.
        {"fp32": "", "fp16": "_fp16", "int8": "_quantized"},
        _hf_processor,
    ),
    "fastembed": LayoutAdapter(
        "model.onnx", "model.onnx", "tokenizer.json", "preprocessor_config.json", None, {"fp32": ""}, _hf_processor
    ),
}


def source_files(source: Source, precision: str) -> SourceFiles:
    return LAYOUTS[source.layout].files(source, precision)


def pinned(source: Source, precision: str) -> bool:
    """Whether the registry records the commit and the sha256 of every file ``precision`` takes."""
    return all(
        f.repo.revision is not None and f.repo.digest(f.path) is not None for f in source_files(source, precision).all
    )


def check_preprocessing(source: Source, spec: ModelSpec, path: Path) -> None:
    """Refuse, in one sentence, a repository whose own preprocessing file disagrees with the registry's."""
    where = f"{source.repo.repo}'s {LAYOUTS[source.layout].preprocessing}"
    try:
        found = LAYOUTS[source.layout].read_preprocessing(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelVerificationError(
            f"{where} describes preprocessing AssetLens does not implement ({exc}); nothing was installed."
        ) from None
    differences = _differences(found, spec.image)
    if differences:
        raise ModelVerificationError(
            f"{where} disagrees with the registry's preprocessing for {spec.name} ({'; '.join(differences)}); "
            "nothing was installed."
        )


def check_context_length(source: Source, spec: ModelSpec, path: Path | None) -> None:
    """immich's ``config.json`` (open_clip's model config) must give the registry's context length."""
    if path is None:
        return
    try:
        found = json.loads(path.read_text(encoding="utf-8"))["text_cfg"]["context_length"]
    except (ValueError, KeyError, TypeError):
        return  # open_clip's default context length; the text graph's fixed shape is checked after the pull
    if int(found) != spec.text.context_length:
        raise ModelVerificationError(
            f"{source.repo.repo}'s config.json gives a context length of {found}, the registry "
            f"{spec.text.context_length}; nothing was installed."
        )


def _differences(found: Preprocessing, want: ImageSpec) -> list[str]:
    out = []
    if found.size != want.size:
        out.append(f"size {found.size}, registry {want.size}")
    if found.resize != want.resize:
        out.append(f"resize {found.resize}, registry {want.resize}")
    if found.resample != want.resample:
        out.append(f"resampling {found.resample}, registry {want.resample}")
    for label, got, expected in (("mean", found.mean, want.mean), ("std", found.std, want.std)):
        if len(got) != 3 or not all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, expected, strict=True)):
            out.append(f"{label} {list(got)}, registry {list(expected)}")
    return out
