"""``manifest.json``: the one typed, versioned record of an exported model.

The exporter writes it through ``ModelManifest.save`` and the runtime reads
it through ``ModelManifest.load``; nothing else in an export folder says how
to run the model. The file carries ``format: assetlens-model/<version>``.
Older versions are migrated on load, one step at a time; a newer version is
refused, since its meaning is unknown to this code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from assetlens.engine.cpu import CpuInfo
from assetlens.engine.errors import ModelLoadError
from assetlens.engine.registry import ImageSpec, Padding, Resize

MANIFEST_FILE = "manifest.json"
FORMAT_PREFIX = "assetlens-model/"
VERSION = 4
# u8 activations times s8 weights, two products summed in int16 by x86 kernels without VNNI
# (see engine.cpu): weights within this magnitude can never saturate that sum.
SATURATION_SAFE_S8 = 32767 // (2 * 255)


@dataclass(frozen=True)
class ImageFacts:
    """How pixels become the vision tower's input.

    ``resize`` is ``shortest-edge-crop`` (CLIPImageProcessor: shortest side to ``resize_shortest_edge``,
    centre crop to ``crop_size``) or ``squash`` (SiglipImageProcessor: straight to ``crop_size`` square;
    ``resize_shortest_edge`` then equals ``crop_size``, the smallest side decoding may reduce to)."""

    file: str
    input_name: str
    output_name: str
    resize_shortest_edge: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str = "bicubic"
    resize: Resize = "shortest-edge-crop"

    @classmethod
    def of_spec(cls, image: ImageSpec, *, file: str, input_name: str, output_name: str) -> ImageFacts:
        """A registry entry's image rules as the runtime's facts for a graph with these file and IO names."""
        return cls(
            file=file,
            input_name=input_name,
            output_name=output_name,
            resize_shortest_edge=image.size,
            crop_size=image.size,
            mean=image.mean,
            std=image.std,
            resample=image.resample,
            resize=image.resize,
        )


@dataclass(frozen=True)
class TextFacts:
    """How a query becomes the text tower's input."""

    file: str
    input_names: tuple[str, ...]
    output_name: str
    context_length: int
    tokenizer_file: str
    pad_token_id: int
    # ``longest``: pad a batch to its longest text; ``max-length``: every text to exactly context_length.
    padding: Padding = "longest"
    padding_side: Literal["left", "right"] = "right"  # the checkpoint tokenizer's padding_side
    lowercase: bool = False  # lower-case queries before tokenising (when the tokenizer itself does not)
    ids_input: str = "input_ids"  # the graph input taking the token ids (immich's towers call it ``text``)
    token_dtype: Literal["int64", "int32"] = "int64"  # of the ids and mask inputs


@dataclass(frozen=True)
class Int8Recipe:
    """How one tower was quantised: arguments of onnxruntime's ``quantize_dynamic`` (or ``quantize_static``)."""

    weight_type: str  # a QuantType name: "QInt8" (u8 x s8 kernels) or "QUInt8" (u8 x u8)
    per_channel: bool
    static: bool = False  # QDQ with u8 activations whose ranges are calibrated (MinMax) on sample inputs
    reduce_range: bool = False  # 7-bit weights: s8 within [-64, 64]
    # Only the weight MatMuls (attention projections, MLPs, the final projection):
    # they hold almost all of the compute. The patch-embedding Conv stays float
    # (ConvInteger is slow in ORT and the first layer is usually the most
    # sensitive); so does the token-embedding Gather, which costs no time.
    op_types: tuple[str, ...] = ("MatMul", "Gemm")


@dataclass(frozen=True)
class Parity:
    """How closely the graphs reproduce the reference, and where that was measured."""

    image_min_cosine: float
    text_min_cosine: float
    images: int
    texts: int
    reference: str  # "pytorch fp32", or "onnx fp32" for a graph quantised from an fp32 export
    cpu: CpuInfo | None = None  # None: not recorded
    # True when no integer MatMul in the graphs can saturate on any CPU (checked on the written
    # graphs: s8 weights within SATURATION_SAFE_S8, or u8 weights). Float graphs have none.
    int8_saturation_safe: bool = False
    int8_recipes: dict[str, Int8Recipe] = field(default_factory=dict)  # per tower, int8 only


@dataclass(frozen=True)
class ModelManifest:
    """Everything the runtime needs to know about one exported model."""

    name: str
    source: str
    precision: str
    embedding_dim: int
    image: ImageFacts
    text: TextFacts
    files: dict[str, str]  # file name -> sha256
    opset: int
    parity: Parity
    versions: dict[str, str]
    created: str

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``manifest.json`` into ``directory`` at the current ``VERSION``."""
        path = Path(directory) / MANIFEST_FILE
        body = {"format": f"{FORMAT_PREFIX}{VERSION}", **_ADAPTER.dump_python(self, mode="json")}
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ModelManifest:
        """Read, migrate and validate ``manifest.json``; every failure is a one-sentence ``ModelLoadError``."""
        directory = Path(directory)
        path = directory / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"{directory} has no {MANIFEST_FILE}; re-export the model.") from None
        except OSError as exc:
            raise ModelLoadError(f"Cannot read {path} ({exc.strerror or exc}); re-export the model.") from None
        except ValueError:  # a JSON or UTF-8 decoding error
            raise ModelLoadError(f"{path} is not valid JSON; re-export the model.") from None
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{path} is not an AssetLens model manifest; re-export the model.")
        body = _migrate(raw, path)
        try:
            return _ADAPTER.validate_python(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the top level"
            raise ModelLoadError(f"{path} is damaged ({where}: {first['msg']}); re-export the model.") from None


_ADAPTER = TypeAdapter(ModelManifest)


def manifest_version(raw: dict[str, Any], path: Path) -> int:
    """The version a manifest's ``format`` declares; refuses anything that is not ``assetlens-model/<n>``."""
    found = re.fullmatch(re.escape(FORMAT_PREFIX) + r"([1-9][0-9]*)", str(raw.get("format", "")))
    if not found:
        raise ModelLoadError(
            f"{path} has format {raw.get('format')!r}, not {FORMAT_PREFIX}<version>; re-export the model."
        )
    return int(found.group(1))


def _from_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 has no CPU record and no saturation check: its int8 is not known to be safe."""
    parity = dict(raw.get("parity") or {})
    parity.setdefault("int8_saturation_safe", raw.get("precision") != "int8")
    return {**raw, "parity": parity, "created": raw.get("created", "")}


def _from_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 has no family rules (resize mode, padding): every version-2 model is CLIP-shaped, which
    is what those fields default to. The version changed so that an older AssetLens refuses a SigLIP
    manifest rather than running it with CLIP's crop and padding."""
    return raw


def _from_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 3 has no token input name or dtype: every version-3 text graph takes int64 ``input_ids``,
    which is what those fields default to. The version changed so that an older AssetLens refuses a
    model pulled from the Hub whose text graph takes other tokens (immich's int32 ``text``)."""
    return raw


# MIGRATIONS[n] turns a version-n body into a version n+1 body.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _from_v1, 2: _from_v2, 3: _from_v3}


def _migrate(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    version = manifest_version(raw, path)
    if version > VERSION:
        raise ModelLoadError(
            f"{path} was written by a newer AssetLens (model format {version}; this one reads up to {VERSION}); "
            "upgrade AssetLens or re-export the model with this version."
        )
    body = {k: v for k, v in raw.items() if k != "format"}
    for step in range(version, VERSION):
        body = MIGRATIONS[step](body)
    return body


def file_sha256(path: Path) -> str:
    """The digest a manifest records for each of its files (``ModelManifest.files``), read 1 MB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
