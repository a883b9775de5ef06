"""ONNX CLIP and SigLIP encoders behind a small API: images and texts in, unit vectors out.

Preprocessing, tokenisation and the text graph's inputs (SigLIP's takes no attention mask) come
from the model's manifest.

Sessions are created lazily (a text-only search never loads the vision
tower) with full graph optimisation. Device selection never asks
onnxruntime for CUDA unless a CUDA driver and device really exist, because
onnxruntime-gpu prints a red error on CPU-only machines when asked; after a
CUDA session is created its providers are checked, so a silent fallback to
CPU is reported instead of hidden. Likewise an int8 model whose arithmetic
saturates on this CPU (``engine.cpu``) is reported when it is loaded.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

from assetlens.engine import tokens
from assetlens.engine.cpu import CpuInfo, this_cpu
from assetlens.engine.errors import DeviceUnavailableError, ModelLoadError
from assetlens.engine.models import ModelFacts, load_facts, resolve_model_dir
from assetlens.engine.preprocess import model_batch

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
_warned_precision: set[Path] = set()


def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports (0 without a driver), asked via libcuda."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1" if os.name != "nt" else "nvcuda.dll")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if libcuda.cuInit(0) != 0 or libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def cuda_available() -> bool:
    """True when onnxruntime has a CUDA provider and the machine has a CUDA device."""
    return CUDA_PROVIDER in ort.get_available_providers() and cuda_device_count() > 0


def pick_providers(device: str) -> list[str]:
    """Providers for ``device`` (auto, cpu, cuda); raises if CUDA is demanded but absent."""
    if device not in DEVICES:
        raise DeviceUnavailableError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    if device == "cpu":
        return [CPU_PROVIDER]
    if cuda_available():
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if device == "cuda":
        raise DeviceUnavailableError(
            "--device cuda was asked for, but no CUDA device is usable here "
            "(needs an NVIDIA driver and onnxruntime-gpu); use --device cpu or auto."
        )
    return [CPU_PROVIDER]


def create_session(path: Path, device: str = "auto", threads: int | None = None) -> ort.InferenceSession:
    """An optimised InferenceSession on the best available provider for ``device``."""
    providers = pick_providers(device)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}.") from None
    if providers[0] == CUDA_PROVIDER and session.get_providers()[0] != CUDA_PROVIDER:
        if device == "cuda":
            raise DeviceUnavailableError(
                "onnxruntime could not start its CUDA provider (check the CUDA and cuDNN libraries); use --device cpu."
            )
        log.warning("CUDA is present but onnxruntime fell back to the CPU for %s.", path.name)
    return session


def warn_if_degraded(facts: ModelFacts, cpu: CpuInfo | None = None) -> bool:
    """Warn (once per model folder) when the model's int8 arithmetic is known to lose quality on ``cpu``
    (default: this machine's)."""
    if facts.precision != "int8" or facts.parity.int8_saturation_safe:
        return False
    if not (cpu or this_cpu()).u8s8_saturates:
        return False
    folder = facts.directory.resolve()
    if folder in _warned_precision:
        return False
    _warned_precision.add(folder)
    log.warning(
        "The int8 model %r was quantised with weights whose integer sums saturate on x86 CPUs without VNNI "
        "such as this one, so its results are worse here; re-export it with assetlens export --precision int8, "
        "or use --precision fp32.",
        facts.name,
    )
    return True


class Encoder:
    """A CLIP-family model (CLIP or SigLIP) exported by AssetLens: ``encode_images`` and ``encode_texts``."""

    def __init__(
        self, facts: ModelFacts, device: str = "auto", threads: int | None = None, cpu: CpuInfo | None = None
    ) -> None:
        self.facts = facts
        self.device = device
        self.threads = threads
        pick_providers(device)  # fail fast on an impossible device, before any session is built
        warn_if_degraded(facts, cpu)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | None = None,
        precision: str = "fp32",
        device: str = "auto",
        threads: int | None = None,
    ) -> Encoder:
        """Load by name (``demo``, a HF id exported before) or by directory."""
        return cls(load_facts(resolve_model_dir(model, precision)), device=device, threads=threads)

    @property
    def dim(self) -> int:
        return self.facts.embedding_dim

    @cached_property
    def image_session(self) -> ort.InferenceSession:
        return create_session(self.facts.path(self.facts.image.file), self.device, self.threads)

    @cached_property
    def text_session(self) -> ort.InferenceSession:
        return create_session(self.facts.path(self.facts.text.file), self.device, self.threads)

    @property
    def provider(self) -> str:
        """The provider the image session actually runs on."""
        return str(self.image_session.get_providers()[0])

    @cached_property
    def tokenizer(self) -> Tokenizer:
        return tokens.load_tokenizer(self.facts.path(self.facts.text.tokenizer_file), self.facts.text.context_length)

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded as the manifest says: to the longest text in the batch,
        or to exactly the context length, on the tokenizer's side."""
        text = self.facts.text
        length = text.context_length if text.padding == "max-length" else None
        return tokens.tokenize(
            self.tokenizer, texts, text.pad_token_id, length=length, side=text.padding_side, lowercase=text.lowercase
        )

    def text_feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The text graph's inputs for ``texts``: the ids, and the attention mask where the graph takes one, under
        the graph's names and in its integer type."""
        text = self.facts.text
        ids, mask = self.tokenize(texts)
        feeds = {text.ids_input: ids, "attention_mask": mask}
        return {name: feeds[name].astype(text.token_dtype, copy=False) for name in text.input_names}

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed (N, 3, H, W) float32 pixels -> (N, dim) unit vectors."""
        (out,) = self.image_session.run([self.facts.image.output_name], {self.facts.image.input_name: pixels})
        return normalize(out)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """RGB PIL images -> (N, dim) float32 unit vectors."""
        out = [
            self.encode_pixels(model_batch(list(images[i : i + batch_size]), self.facts.image))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Texts -> (N, dim) float32 unit vectors; long texts are truncated, never rejected."""
        out = []
        for i in range(0, len(texts), batch_size):
            (emb,) = self.text_session.run([self.facts.text.output_name], self.text_feeds(texts[i : i + batch_size]))
            out.append(normalize(emb))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]
    unit: np.ndarray = x / np.maximum(norms, np.float32(1e-12))
    return unit
