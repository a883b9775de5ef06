"""Retrieval quality of the shipped demo model per precision, on ``engine.catalogue``'s held-out benchmark.

Queries name (colour, object) pairs the demo model never saw in training;
the gallery holds one picture of each plus distractors of training pairs
(``engine.catalogue.benchmark``). Text -> image recall@1/5/10 through the
runtime encoder at each precision the demo ships, and how far each
precision's embeddings are from fp32's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.context import Context
from engine.catalogue import benchmark, recall_at_k, render
from engine.encoders import ClipEncoder
from engine.errors import AssetLensError
from engine.models import DEMO_MODEL, PRECISIONS

KS = (1, 5, 10)
RENDER_SIZE = 256


def tasks(ctx: Context) -> list[tuple[str, Callable[[], None]]]:
    res = ctx.section("quality")

    def run() -> None:
        queries, gallery = benchmark()
        images = [render(item, RENDER_SIZE, seed) for item, seed in gallery]
        relevant = np.array([[item == q for item, _ in gallery] for q in queries])
        texts = [q.caption() for q in queries]
        res.update(model=DEMO_MODEL, queries=len(queries), gallery=len(gallery), precisions={})
        reference: tuple[np.ndarray, np.ndarray] | None = None
        for precision in PRECISIONS:
            if precision == "fp16" and not ctx.cuda:
                continue
            try:
                enc = ClipEncoder.load(DEMO_MODEL, precision, "cuda" if precision == "fp16" else "cpu", ctx.threads)
                image_emb, text_emb = enc.encode_images(images), enc.encode_texts(texts)
            except AssetLensError as exc:
                ctx.note(f"quality: demo model {precision} not measured ({exc})")
                continue
            row: dict[str, float] = {f"recall@{k}": v for k, v in recall_at_k(text_emb @ image_emb.T, relevant,
                                                                                 KS).items()}
            if precision == "fp32":
                reference = (image_emb, text_emb)
            elif reference is not None:
                row["image_min_cosine_vs_fp32"] = float(np.min(np.sum(image_emb * reference[0], axis=1)))
                row["text_min_cosine_vs_fp32"] = float(np.min(np.sum(text_emb * reference[1], axis=1)))
            res["precisions"][precision] = row

    return [("quality: demo model recall", run)]
