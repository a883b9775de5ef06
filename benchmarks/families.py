"""What each model family costs here: the real architectures with random weights, ONNX fp32/int8 vs PyTorch eager.

Speed depends on a model's shape, not on its weights' values, so each family is built from its published
configuration (``benchmarks.models``: ViT-B/32-224 CLIP, SigLIP B/16-224, SigLIP 2 B/32-256) with seeded
random weights and exported through the project's exporter at fp32 and int8, as users' models are (cached
under the bench cache, keyed by ``EXPORT_REVISION``). Measured per family: image embeddings per second at
batch 1 and 8 (preprocessed pixels in), text queries per second one query at a time (tokenised ids in, as
long as the query is for CLIP and padded to the context for SigLIP, as the runtime runs them), the exported
files' size, and each ONNX variant's min cosine against PyTorch on the same inputs. An int8 export the
exporter refuses (its cosine floor) is reported with the exporter's sentence and left out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from assetlens.benchmarks.context import Context, Task
from assetlens.benchmarks.encoders import Backend, OnnxBackend, TorchBackend, min_cosine
from assetlens.benchmarks.models import FAMILIES, BenchModel, bench_model, export
from assetlens.benchmarks.timing import measure
from assetlens.engine.encoders import Encoder

IMAGE_BATCHES = (1, 8)
PRECISIONS = ("fp32", "int8")


def _size_mib(folder: Any) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in (".onnx", ".data")) / 2**20


def tasks(ctx: Context) -> list[Task]:
    res = ctx.section("families")
    p = ctx.profile
    out: list[Task] = []
    for name in p.families:
        model = bench_model(FAMILIES[name], ctx.cache / "bench")
        out += _family_tasks(ctx, name, model, res.setdefault(name, {}))
    return out


def _family_tasks(ctx: Context, name: str, model: BenchModel, row: dict[str, Any]) -> list[Task]:
    p = ctx.profile
    backends: dict[str, Backend] = {}
    rng = np.random.default_rng(0)
    side = model.config["vision_config"]["image_size"]
    pixels = rng.standard_normal((max(IMAGE_BATCHES), 3, side, side), dtype=np.float32)

    def exports() -> None:
        row.update(family=model.family, image_size=side, image_gflops=model.image_gflops, exports={})
        for precision in PRECISIONS:
            try:
                folder = export(model, precision)
            except Exception as exc:  # the exporter refuses an int8 below its floor in one sentence
                row["exports"][precision] = {"refused": str(exc).splitlines()[0]}
                continue
            row["exports"][precision] = {"mib": _size_mib(folder)}
            backends[f"onnx-{precision}"] = OnnxBackend(Encoder.load(folder, precision, "cpu", ctx.threads))
        backends["pytorch"] = TorchBackend(model.torch_model(ctx.threads))

    def tokens() -> tuple[np.ndarray, np.ndarray]:
        """One query's ids as the runtime makes them; SigLIP attends to its padding (the export takes no mask)."""
        fp32 = backends.get("onnx-fp32")
        if not isinstance(fp32, OnnxBackend):
            raise RuntimeError(f"{name} has no fp32 export to tokenise with")
        ids, mask = fp32.enc.tokenize(ctx.queries(1))
        return ids, (mask if model.family == "clip" else np.ones_like(mask))

    def image(batch: int) -> Callable[[], None]:
        def run() -> None:
            for backend, b in backends.items():
                row.setdefault("image", {}).setdefault(backend, {})[str(batch)] = measure(
                    functools.partial(b.image, pixels[:batch]), items=batch, budget_s=p.budget_s, max_reps=p.max_reps
                )

        return run

    def text() -> None:
        ids, mask = tokens()
        for backend, b in backends.items():
            row.setdefault("text", {})[backend] = {
                **measure(functools.partial(b.text, ids, mask), budget_s=p.budget_s / 2, max_reps=p.max_reps),
                "tokens": int(ids.shape[1]),
            }

    def parity() -> None:
        ids, mask = tokens()
        ref_image, ref_text = backends["pytorch"].image(pixels), backends["pytorch"].text(ids, mask)
        for backend, b in backends.items():
            if backend != "pytorch":
                row.setdefault("parity", {})[backend] = {
                    "image_min_cosine_vs_pytorch": min_cosine(b.image(pixels), ref_image),
                    "text_min_cosine_vs_pytorch": min_cosine(b.text(ids, mask), ref_text),
                }
        backends.clear()  # the next family's models take their place in memory

    return [
        (f"families: {name} export", exports),
        *((f"families: {name} image batch {b}", image(b)) for b in IMAGE_BATCHES),
        (f"families: {name} text query", text),
        (f"families: {name} parity", parity),
    ]
