"""Query vectors and result shaping: combining text, image and negatives; de-duplication.

A combined query is the weighted sum of unit embeddings (negatives with a
negative weight), renormalised; CLIP puts texts and images in one space, so
"red dress" plus a reference photo minus "people" is a meaningful point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.encoders import normalize
from engine.errors import UsageError
from engine.store import AssetRow, Hit, contains_filter, prefix_filter


@dataclass(frozen=True)
class SearchResult:
    """One hit: 1-based rank, cosine score and the stored metadata of the image."""

    rank: int
    score: float
    path: str
    filename: str
    folder: str
    width: int
    height: int
    size: int
    hash: str
    origin: str
    id: str

    @classmethod
    def from_hit(cls, rank: int, hit: Hit) -> SearchResult:
        r: AssetRow = hit.row
        return cls(rank, hit.score, r.path, r.filename, r.folder, r.width, r.height, r.size, r.hash, r.origin, r.id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def combine(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted sum of unit vectors, renormalised; refuses an empty or null query."""
    if not parts:
        raise UsageError("Give a text query, --image or --like (at least one).")
    total = np.zeros_like(parts[0][0], dtype=np.float32)
    for vector, weight in parts:
        total += np.float32(weight) * vector
    if float(np.linalg.norm(total)) < 1e-6:
        raise UsageError("The query's parts cancel out; change the weights or drop a --minus.")
    return normalize(total[None])[0]


def shape_results(
    hits: list[Hit],
    *,
    k: int,
    offset: int = 0,
    min_score: float | None = None,
    exclude_hashes: frozenset[str] = frozenset(),
    show_duplicates: bool = False,
) -> list[SearchResult]:
    """Drop excluded and duplicate images (same content hash), apply min score and paging."""
    kept: list[Hit] = []
    seen: set[str] = set()
    for hit in hits:
        if hit.row.hash in exclude_hashes:
            continue
        if min_score is not None and hit.score < min_score:
            break
        if not show_duplicates:
            if hit.row.hash in seen:
                continue
            seen.add(hit.row.hash)
        kept.append(hit)
    page = kept[offset : offset + k]
    return [SearchResult.from_hit(offset + i + 1, h) for i, h in enumerate(page)]


@dataclass(frozen=True)
class Filter:
    """Which rows a search may return: under a folder, and/or file name containing a text."""

    folder_prefix: str | None = None
    filename_contains: str | None = None

    def expr(self) -> str:
        """The same filter as a Milvus boolean expression."""
        parts = []
        if self.folder_prefix:
            parts.append(prefix_filter("path", self.folder_prefix))
        if self.filename_contains:
            parts.append(contains_filter("filename", self.filename_contains))
        return " and ".join(parts)


class ExactIndex:
    """Exact cosine search over an in-memory snapshot of a collection.

    Milvus stays the system of record; this is a read cache for long-lived
    processes on Milvus Lite (the app, the benchmarks), where Lite's own search
    costs hundreds of milliseconds at 100k rows and a matrix product costs a
    few. Results equal Milvus' FLAT search. The owner rebuilds it after writes.
    """

    def __init__(self, rows: list[AssetRow], vectors: np.ndarray) -> None:
        self.rows = rows
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.paths = np.array([r.path for r in rows], dtype=str)
        self.filenames = np.array([r.filename for r in rows], dtype=str)

    def __len__(self) -> int:
        return len(self.rows)

    def search(self, query: np.ndarray, limit: int, flt: Filter = Filter()) -> list[Hit]:
        scores = self.vectors @ np.asarray(query, dtype=np.float32)
        candidates = np.arange(len(self.rows))
        if flt.folder_prefix:
            candidates = candidates[np.char.startswith(self.paths[candidates], flt.folder_prefix)]
        if flt.filename_contains:
            candidates = candidates[np.char.find(self.filenames[candidates], flt.filename_contains) >= 0]
        if len(candidates) > limit:
            part = np.argpartition(-scores[candidates], limit - 1)[:limit]
            candidates = candidates[part]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [Hit(self.rows[i], float(scores[i])) for i in order]
