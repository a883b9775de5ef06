"""What every benchmark task shares: the profile, the models, the inputs and the results being filled in."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.benchmarks.images import make_folders
from assetlens.benchmarks.models import BenchModel, export
from assetlens.benchmarks.profiles import Profile
from assetlens.benchmarks.timing import Clock
from assetlens.engine.encoders import Encoder
from assetlens.engine.models import load_facts
from assetlens.engine.preprocess import decode, model_batch

#: A named step of the run: the progress bar shows the name while the function measures.
Task = tuple[str, Callable[[], object]]

#: Short queries as people type them (a few tokens each).
QUERIES = (
    "a red mug",
    "golden watch",
    "sunset over the beach",
    "a dog on a sofa",
    "blue handbag on a white background",
    "green sunglasses",
    "a yellow lamp",
    "black leather shoe",
    "mountain lake",
    "a cat",
    "kids playing football",
    "wedding cake",
    "a silver bottle",
    "red t-shirt",
    "old wooden chair",
    "city at night",
)


@dataclass
class Context:
    profile: Profile
    model: BenchModel
    device: str  # "cpu" or "cuda": where the extra (CUDA) variants run; CPU variants always run
    threads: int
    cache: Path
    work: Path
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)
    _encoders: dict[tuple[str, str], Encoder] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def section(self, name: str) -> dict[str, Any]:
        return self.results.setdefault(name, {})

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def precisions(self) -> tuple[str, ...]:
        """ONNX precisions exported: fp16 only where CUDA runs it."""
        return ("fp32", "int8", "fp16") if self.cuda else ("fp32", "int8")

    def export_dir(self, precision: str) -> Path:
        return export(self.model, precision)

    def encoder(self, precision: str, device: str = "cpu") -> Encoder:
        """An encoder per (precision, device); ``int8-static`` is the static QDQ int8 image tower on int8's text
        tower."""
        key = (precision, device)
        if key not in self._encoders:
            if precision == "int8-static":
                facts = load_facts(self.export_dir("int8"))
                image = dataclasses.replace(facts.image, file=str(self.model.static_int8_path))
                self._encoders[key] = Encoder(dataclasses.replace(facts, image=image), device, self.threads)
            else:
                self._encoders[key] = Encoder.load(self.export_dir(precision), precision, device, self.threads)
        return self._encoders[key]

    def release_encoders(self) -> None:
        self._encoders.clear()

    @cached_property
    def folders(self) -> dict[str, Path]:
        p = self.profile
        return make_folders(self.cache / "bench", p.jpegs, p.jpeg_megapixels, p.pngs, p.png_side)

    @cached_property
    def pixels(self) -> np.ndarray:
        """A batch of real preprocessed photos, as large as the largest batch measured (repeated if needed)."""
        facts = load_facts(self.export_dir("fp32")).image
        files = sorted(self.folders["jpeg"].iterdir()) + sorted(self.folders["png"].iterdir())
        want = max(self.profile.image_batches)
        images = [decode(f, min_side=facts.resize_shortest_edge).image for f in files[:want]]
        batch = model_batch(images, facts)
        return np.resize(batch, (want, *batch.shape[1:])).astype(np.float32)

    def queries(self, n: int) -> list[str]:
        return [QUERIES[i % len(QUERIES)] for i in range(n)]

    @cached_property
    def torch_model(self) -> Any:
        """The same weights in PyTorch eager (transformers ``CLIPModel``), on the ONNX runs' thread count."""
        return self.model.torch_model(self.threads)
