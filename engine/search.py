"""Query vectors and result shaping: combining text, image and negatives; de-duplication.

A combined query is the weighted sum of unit embeddings (negatives with a
negative weight), renormalised; CLIP puts texts and images in one space, so
"red dress" plus a reference photo minus "people" is a meaningful point.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from assetlens.engine.encoders import normalize
from assetlens.engine.errors import UsageError
from assetlens.engine.indexer import real_path
from assetlens.engine.store import AssetRow, Hit, contains_filter, prefix_filter


@dataclass(frozen=True)
class SearchResult:
    """One hit: 1-based rank, cosine score and the stored metadata of the image.

    ``path`` is the real path (``os.fsdecode`` form: a name that is not UTF-8 holds surrogates), which opens.
    """

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
    #: Standard deviations above the library's average score for the query (``engine.relevance``); set
    #: when the search bounded relevance.
    relevance: float | None = None

    @classmethod
    def from_hit(cls, rank: int, hit: Hit) -> SearchResult:
        """The result for a stored row: its path, file name and folder as the file system names them."""
        r: AssetRow = hit.row
        path, filename, folder = real_path(r.path), real_path(r.filename), real_path(r.folder)
        return cls(rank, hit.score, path, filename, folder, r.width, r.height, r.size, r.hash, r.origin, r.id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_amount(option: str, value: float) -> None:
    """Refuse a weight or score that is NaN, infinite or negative (a NaN weight makes every score NaN)."""
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{option} must be a finite number of at least 0, not {value:g}.")


def check_text(what: str, text: str) -> None:
    """Refuse text that is not valid UTF-8 (undecodable bytes in argv arrive as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8; check the terminal's character encoding.") from None


def combine(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted sum of unit vectors, renormalised; refuses an empty or null query."""
    if not parts:
        raise UsageError("Give a text query, --image or --like (at least one).")
    total = np.zeros_like(parts[0][0], dtype=np.float32)
    for vector, weight in parts:
        total += np.float32(weight) * vector
    if float(np.linalg.norm(total)) < 1e-6:
        raise UsageError("The query's parts cancel out; change the weights or drop a --minus.")
    unit: np.ndarray = normalize(total[None])[0]
    return unit


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

    def matches(self, row: AssetRow) -> bool:
        """The same filter in Python (Milvus compares strings by code point, as ``str`` does)."""
        return (not self.folder_prefix or row.path.startswith(self.folder_prefix)) and (
            not self.filename_contains or self.filename_contains in row.filename
        )
