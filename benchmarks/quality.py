"""Retrieval quality of the shipped demo model per precision, on the catalogue's held-out benchmark.

The same benchmark as tests/test_demo_model.py (``assetlens.catalogue.HeldOut``):
queries name (colour, object) pairs the demo model never saw in training;
the gallery holds one picture of each plus distractors of training pairs.
Text -> image recall@1/5/10 (exact item, and colour+object whatever the
background) through the runtime encoder at each precision the demo ships,
and how far each precision's embeddings are from fp32's. Then auto-tags: each shipped demo model, at
each precision, indexes and tags the catalogue ``assetlens demo`` writes (``Library.index`` and
``Library.tag``, the default vocabulary), scored by how often the first tag is the object kind and the
first colour tag the colour (the measure of tests/test_tags.py).
"""

from __future__ import annotations

import numpy as np

from assetlens.benchmarks.context import Context, Task
from assetlens.catalogue import DEMO_IMAGES, DEMO_SEED, HeldOut, tag_accuracy, write_catalogue
from assetlens.engine.encoders import Encoder
from assetlens.engine.errors import AssetLensError
from assetlens.engine.library import Library
from assetlens.engine.models import DEMO_MODEL, PRECISIONS
from assetlens.engine.registry import MODELS
from assetlens.engine.tags import Vocabulary

KS = (1, 5, 10)


def tasks(ctx: Context) -> list[Task]:
    res = ctx.section("quality")

    def run() -> None:
        held = HeldOut.build()
        res.update(
            model=DEMO_MODEL,
            queries=len(held.queries),
            colour_object_queries=len(held.pairs),
            gallery=len(held.gallery),
            precisions={},
        )
        reference: tuple[np.ndarray, np.ndarray] | None = None
        for precision in PRECISIONS:
            if precision == "fp16" and not ctx.cuda:
                continue
            try:
                enc = Encoder.load(DEMO_MODEL, precision, "cuda" if precision == "fp16" else "cpu", ctx.threads)
                image_emb = enc.encode_images(held.images)
                text_emb, short_emb = enc.encode_texts(held.texts), enc.encode_texts(held.short_texts)
            except AssetLensError as exc:
                ctx.note(f"quality: demo model {precision} not measured ({exc})")
                continue
            row = {f"recall@{k}": v for k, v in held.recall(image_emb, text_emb, KS).items()}
            row.update({f"colour_object_recall@{k}": v for k, v in held.pair_recall(image_emb, short_emb, KS).items()})
            if precision == "fp32":
                reference = (image_emb, text_emb)
            elif reference is not None:
                row["image_min_cosine_vs_fp32"] = float(np.min(np.sum(image_emb * reference[0], axis=1)))
                row["text_min_cosine_vs_fp32"] = float(np.min(np.sum(text_emb * reference[1], axis=1)))
            res["precisions"][precision] = row

    def tags() -> None:
        written = write_catalogue(ctx.work / "tag-catalogue", n=DEMO_IMAGES, seed=DEMO_SEED)
        truth = {str(path): item for path, item in written}
        colours = Vocabulary.default().category("colour")
        res["tags"] = {"images": len(written), "models": {}}
        for spec in (s for s in MODELS if s.shipped):
            model = spec.name
            by_precision: dict[str, dict[str, float]] = {}
            for precision in spec.precisions:
                db = ctx.work / f"tags-{model}-{precision}" / "lib.db"
                db.parent.mkdir(parents=True, exist_ok=True)
                with Library(db, model=model, precision=precision, device="cpu", threads=ctx.threads) as lib:
                    lib.index(written[0][0].parent.parent)
                    lib.tag()
                    found = {row.path: row.tags for row in lib.store.rows()}
                objects, right = tag_accuracy(found, truth, colours)
                by_precision[precision] = {"object_right": objects, "colour_right": right}
            res["tags"]["models"][model] = {"prompt": spec.prompt, "precisions": by_precision}

    return [("quality: demo model recall", run), ("quality: demo models' auto-tags", tags)]
