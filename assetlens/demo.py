"""``assetlens demo``: generate a catalogue, index it with the shipped model, search, draw the hits.

Runs offline on the demo CLIP that ships in the package; no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assetlens.catalogue import Item, write_catalogue
from assetlens.engine.grid import contact_sheet
from assetlens.engine.indexer import IndexReport, Progress
from assetlens.engine.library import Library
from assetlens.engine.search import SearchResult

FIXED_QUERIES = ("a gold watch", "green sunglasses")


def demo_queries(items: list[Item], n: int = 3) -> list[str]:
    """A few fixed queries plus captions of products the catalogue really holds (distinct kinds)."""
    picked: dict[str, str] = {}
    for item in items:
        picked.setdefault(item.object, item.caption())
    return [*FIXED_QUERIES, *list(picked.values())[:n]]


def run_demo(
    out: Path,
    *,
    count: int = 200,
    precision: str = "fp32",
    device: str = "auto",
    k: int = 5,
    progress: Progress | None = None,
    index_progress: Callable[[str], tuple[Progress, Callable[[], None]]] | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[IndexReport, list[tuple[str, list[SearchResult]]], Path]:
    """Returns the index report, each query's results, and the contact sheet's path."""
    out = Path(out)
    images = out / "images"
    written = write_catalogue(images, n=count, seed=0, progress=progress)
    echo(f"wrote {len(written)} catalogue images to {images}")
    with Library(out / "assetlens.db", collection="demo", model="demo", precision=precision, device=device) as lib:
        run = lib.runtime()
        echo(f"model demo ({run.precision}, {run.dim}-d) on {run.provider}")
        update, close = index_progress("indexing") if index_progress else (None, lambda: None)
        try:
            report = lib.index(images, progress=update)
        finally:
            close()
        echo(report.summary())
        runs: list[tuple[str, list[SearchResult]]] = []
        for query in demo_queries([item for _, item in written]):
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
    echo(f"try: assetlens search 'a silver watch' --db {out / 'assetlens.db'} --collection demo --grid hits.png")
    return report, runs, sheet
