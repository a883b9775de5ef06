"""Retrieval quality of the shipped demo model per precision, on ``engine.catalogue``'s held-out benchmark.

The same benchmark as tests/test_demo_model.py (``engine.catalogue.benchmark``):
queries name (colour, object) pairs the demo model never saw in training;
the gallery holds one picture of each plus distractors of training pairs.
Text -> image recall@1/5/10 (exact item, and colour+object whatever the
background) through the runtime encoder at each precision the demo ships,
and how far each precision's embeddings are from fp32's.
"""

from __future__ import annotations

import numpy as np

from assetlens.benchmarks.context import Context, Task
from assetlens.engine.catalogue import benchmark, recall_at_k, render
from assetlens.engine.encoders import ClipEncoder
from assetlens.engine.errors import AssetLensError
from assetlens.engine.models import DEMO_MODEL, PRECISIONS

KS = (1, 5, 10)
RENDER_SIZE = 256


def tasks(ctx: Context) -> list[Task]:
    res = ctx.section("quality")

    def run() -> None:
        queries, gallery = benchmark()
        images = [render(item, RENDER_SIZE, seed) for item, seed in gallery]
        relevant = np.array([[item == q for item, _ in gallery] for q in queries])
        texts = [q.caption() for q in queries]
        pairs = sorted({q.pair for q in queries})
        short = [next(q for q in queries if q.pair == p).short_caption() for p in pairs]
        relevant_pair = np.array([[item.pair == p for item, _ in gallery] for p in pairs])
        res.update(
            model=DEMO_MODEL,
            queries=len(queries),
            colour_object_queries=len(pairs),
            gallery=len(gallery),
            precisions={},
        )
        reference: tuple[np.ndarray, np.ndarray] | None = None
        for precision in PRECISIONS:
            if precision == "fp16" and not ctx.cuda:
                continue
            try:
                enc = ClipEncoder.load(DEMO_MODEL, precision, "cuda" if precision == "fp16" else "cpu", ctx.threads)
                image_emb = enc.encode_images(images)
                text_emb, short_emb = enc.encode_texts(texts), enc.encode_texts(short)
            except AssetLensError as exc:
                ctx.note(f"quality: demo model {precision} not measured ({exc})")
                continue
            row = {f"recall@{k}": v for k, v in recall_at_k(text_emb @ image_emb.T, relevant, KS).items()}
            row.update(
                {
                    f"colour_object_recall@{k}": v
                    for k, v in recall_at_k(short_emb @ image_emb.T, relevant_pair, KS).items()
                }
            )
            if precision == "fp32":
                reference = (image_emb, text_emb)
            elif reference is not None:
                row["image_min_cosine_vs_fp32"] = float(np.min(np.sum(image_emb * reference[0], axis=1)))
                row["text_min_cosine_vs_fp32"] = float(np.min(np.sum(text_emb * reference[1], axis=1)))
            res["precisions"][precision] = row

    return [("quality: demo model recall", run)]
