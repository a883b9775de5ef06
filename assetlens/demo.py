"""``assetlens demo``: generate a catalogue, index it with a shipped model, search, draw the hits.

Runs offline on a demo model that ships in the package (the CLIP ``demo``, or ``demo-siglip``, which also
understands Indonesian); no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assetlens.catalogue import DEMO_IMAGES, DEMO_SEED, LANGUAGES, Item, write_catalogue
from assetlens.engine.grid import contact_sheet
from assetlens.engine.indexer import IndexReport, Progress
from assetlens.engine.library import Library
from assetlens.engine.registry import DEMO_MODEL, DEMO_SIGLIP_MODEL
from assetlens.engine.search import SearchResult

FIXED_QUERIES: dict[str, tuple[str, ...]] = {
    "en": ("a gold watch", "green sunglasses"),
    "id": ("jam tangan emas", "kacamata hitam hijau"),
}
#: The shipped demo models and the languages (keys of ``assetlens.catalogue.LANGUAGES``) they were trained on.
DEMO_MODELS: dict[str, tuple[str, ...]] = {DEMO_MODEL: ("en",), DEMO_SIGLIP_MODEL: ("en", "id")}


def demo_queries(items: list[Item], n: int = 3, languages: tuple[str, ...] = ("en",)) -> list[str]:
    """Fixed queries in each language, then captions of products the catalogue really holds (distinct
    kinds): ``n`` in the first language and one more in each further language."""
    picked: dict[str, Item] = {}
    for item in items:
        picked.setdefault(item.object, item)
    products = list(picked.values())
    captions = [LANGUAGES[languages[0]][0](item) for item in products[:n]]
    captions += [LANGUAGES[lang][0](item) for lang, item in zip(languages[1:], products[n:], strict=False)]
    return [*(q for lang in languages for q in FIXED_QUERIES[lang]), *captions]


def run_demo(
    out: Path,
    *,
    count: int = DEMO_IMAGES,
    model: str = DEMO_MODEL,
    precision: str = "fp32",
    device: str = "auto",
    k: int = 5,
    progress: Progress | None = None,
    index_progress: Callable[[str], tuple[Progress, Callable[[], None]]] | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[IndexReport, list[tuple[str, list[SearchResult]]], Path]:
    """Index a generated catalogue with the shipped ``model`` (a key of ``DEMO_MODELS``) into a collection
    named after it and search it; returns the index report, each query's results, and the contact sheet's path."""
    out = Path(out)
    images = out / "images"
    written = write_catalogue(images, n=count, seed=DEMO_SEED, progress=progress)
    echo(f"wrote {len(written)} catalogue images to {images}")
    collection = model.replace("-", "_")  # a collection name takes letters, digits and underscores
    with Library(out / "assetlens.db", collection=collection, model=model, precision=precision, device=device) as lib:
        run = lib.runtime()
        echo(f"model {model} ({run.precision}, {run.dim}-d) on {run.provider}")
        update, close = index_progress("indexing") if index_progress else (None, lambda: None)
        try:
            report = lib.index(images, progress=update)
        finally:
            close()
        echo(report.summary())
        runs: list[tuple[str, list[SearchResult]]] = []
        for query in demo_queries([item for _, item in written], languages=DEMO_MODELS[model]):
            results = lib.search(query, k=k)
            runs.append((query, results))
            echo(f'\n"{query}"')
            for r in results:
                echo(f"  {r.rank}  {r.score:.3f}  {Path(r.path).relative_to(out.resolve())}")
        like = written[0][0]
        similar = lib.similar(like, k=k)
        runs.append((f"more like {like.name}", similar))
        echo(f"\nmore like {like.name}")
        for r in similar:
            echo(f"  {r.rank}  {r.score:.3f}  {Path(r.path).relative_to(out.resolve())}")
    sheet = contact_sheet(runs, out / "results.png")
    echo(f"\nlibrary:       {out / 'assetlens.db'}")
    echo(f"contact sheet: {sheet}")
    query = "a silver watch" if len(DEMO_MODELS[model]) == 1 else "jam tangan perak"
    echo(f"try: assetlens search '{query}' --db {out / 'assetlens.db'} --collection {collection} --grid hits.png")
    return report, runs, sheet
