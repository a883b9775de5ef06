"""Near-duplicate groups: the same shot resized, recompressed, lightly cropped, colour-graded or watermarked.

As clip-retrieval deduplicates: every pair of images more similar than the threshold (inner products
of unit vectors, so cosines), joined into connected components by union-find. Byte-identical copies
(one content hash) are joined whatever their vectors. Each group keeps one member: the most pixels,
then the oldest file, then the first path.

Small libraries compare every pair exactly (a range search on a flat index, in chunks of queries so
that memory grows with the pairs found). From ``CELLS_MIN_ROWS`` rows that costs minutes (N^2 d: 115 s
at 100k on 2 cores), so the vectors are split into k-means cells and each cell's members are compared,
in one matrix product, with the rows that have that cell among their ``PROBES`` nearest centroids:
about PROBES x N^2 / cells products instead of N^2, with cells = sqrt(PROBES x N). Near-duplicates sit
far closer to each other than to any other image, so a pair above the threshold almost never lands
in cells that neither probes (the benchmark measures the pair recall against the exact search); the
cosines of the pairs found are exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from assetlens.engine.errors import UsageError
from assetlens.engine.indexer import real_path
from assetlens.engine.models import ModelFacts
from assetlens.engine.registry import DUPLICATE_THRESHOLDS, model_family
from assetlens.engine.search import SearchResult
from assetlens.engine.store import AssetRow

QUERY_CHUNK = 4096  # query vectors per range search: bounds the distance block faiss computes at once
CELLS_MIN_ROWS = 10_000  # from here the cell search is the faster one
PROBES = 3  # nearest cells each row is compared with
TRAIN_PER_CELL = 32  # k-means training rows per cell
KMEANS_ITERATIONS = 10
BLOCK = 1 << 24  # cosines computed at once by the cell search (64 MB), however uneven the cells

IDENTICAL = "identical"  # every member has the same bytes
SIMILAR = "similar"  # joined by embedding similarity


@dataclass(frozen=True)
class Member:
    """One image of a group; ``similarity`` is its cosine to the member kept (1.0 for that one)."""

    path: str
    filename: str
    size: int
    width: int
    height: int
    mtime: float
    hash: str
    similarity: float
    keep: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def modified(self) -> str:
        """The file's modification time, ISO 8601 in UTC to the second."""
        return datetime.fromtimestamp(self.mtime, timezone.utc).isoformat(timespec="seconds")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "modified": self.modified}


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are one shot; ``members[0]`` is the one to keep, the rest most similar first."""

    kind: str  # IDENTICAL or SIMILAR
    members: tuple[Member, ...]

    @property
    def keep(self) -> Member:
        return self.members[0]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "members": [m.to_dict() for m in self.members]}


@dataclass(frozen=True)
class DuplicateReport:
    threshold: float
    images: int  # images compared
    groups: tuple[DuplicateGroup, ...]  # largest first

    @property
    def redundant(self) -> int:
        """Images that are not the one kept of their group."""
        return sum(len(g.members) - 1 for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "images": self.images,
            "redundant": self.redundant,
            "groups": [g.to_dict() for g in self.groups],
        }


def threshold_for(facts: ModelFacts) -> float:
    """The default threshold of a model's family (``registry.DUPLICATE_THRESHOLDS``)."""
    return DUPLICATE_THRESHOLDS[model_family(facts.name, facts.image.resize)]


def check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise UsageError(f"--threshold must be a cosine similarity above 0 and at most 1, not {threshold:g}.")


def similar_pairs(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Every pair ``(i, j)``, ``i < j``, of unit vectors whose inner product exceeds ``threshold``, as (pairs, 2):
    exact below ``CELLS_MIN_ROWS`` rows, by cells from there."""
    if len(vectors) < CELLS_MIN_ROWS:
        return exact_pairs(vectors, threshold)
    return cell_pairs(vectors, threshold)


def exact_pairs(vectors: np.ndarray, threshold: float, chunk: int = QUERY_CHUNK) -> np.ndarray:
    """``similar_pairs`` by comparing every pair (a flat range search, ``chunk`` queries at a time)."""
    import faiss  # as in engine.search_copy: loaded only when needed

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    found = [np.zeros((0, 2), np.int64)]
    for start in range(0, len(vectors), chunk):
        lims, _, neighbours = index.range_search(vectors[start : start + chunk], float(threshold))
        queries = start + np.repeat(np.arange(len(lims) - 1), np.diff(lims).astype(np.int64))
        upper = neighbours > queries  # each pair once, and no image with itself
        found.append(np.stack([queries[upper], neighbours[upper]], axis=1))
    return np.concatenate(found)


def cell_pairs(vectors: np.ndarray, threshold: float, probes: int = PROBES, seed: int = 0) -> np.ndarray:
    """``similar_pairs`` by k-means cells: each row is compared with the members of its ``probes`` nearest cells."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    cells = max(1, min(int(math.sqrt(probes * n)), n // TRAIN_PER_CELL))
    probes = min(probes, cells)
    sample = np.random.default_rng(seed).choice(n, min(n, cells * TRAIN_PER_CELL), replace=False)
    kmeans = faiss.Kmeans(
        dim, cells, niter=KMEANS_ITERATIONS, spherical=True, seed=seed + 1, min_points_per_centroid=TRAIN_PER_CELL
    )
    kmeans.train(vectors[np.sort(sample)])
    _, nearest = kmeans.index.search(vectors, probes)  # (n, probes) cells, nearest first
    members = _by_cell(nearest[:, 0], cells)
    askers = _by_cell(nearest.ravel(), cells)
    found = [np.zeros((0, 2), np.int64)]
    for cell in range(cells):
        home, asking = members[cell], askers[cell] // probes
        step = max(1, BLOCK // max(1, len(home)))
        for lo in range(0, len(asking) if len(home) else 0, step):
            rows = asking[lo : lo + step]
            q, m = np.nonzero(vectors[rows] @ vectors[home].T > threshold)
            a, b = rows[q], home[m]
            found.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[a != b])
    return np.unique(np.concatenate(found), axis=0)  # a pair of two cells can be found from both


def _by_cell(cell_of: np.ndarray, cells: int) -> list[np.ndarray]:
    """For each cell, the indices into ``cell_of`` that name it, ascending."""
    order = np.argsort(cell_of, kind="stable")
    return np.split(order, np.searchsorted(cell_of[order], np.arange(1, cells)))


def components(n: int, pairs: np.ndarray) -> list[list[int]]:
    """The connected components of more than one of ``n`` nodes joined by ``pairs`` (union-find)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    for i, j in pairs.tolist():
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in np.unique(pairs).tolist():
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _same_bytes(rows: Sequence[AssetRow]) -> np.ndarray:
    """Pairs joining each row to the first row of its content hash."""
    first: dict[str, int] = {}
    pairs = []
    for i, row in enumerate(rows):
        j = first.setdefault(row.hash, i)
        if j != i:
            pairs.append((j, i))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _group(rows: Sequence[AssetRow], vectors: np.ndarray, positions: list[int]) -> DuplicateGroup:
    keeper = min(positions, key=lambda p: (-rows[p].width * rows[p].height, rows[p].mtime, rows[p].path))
    cosines = vectors[positions] @ vectors[keeper]
    similarity = {p: 1.0 if p == keeper else min(1.0, float(c)) for p, c in zip(positions, cosines, strict=True)}
    order = sorted(positions, key=lambda p: (p != keeper, -similarity[p], rows[p].path))
    members = tuple(
        Member(
            path=real_path(rows[p].path),
            filename=real_path(rows[p].filename),
            size=rows[p].size,
            width=rows[p].width,
            height=rows[p].height,
            mtime=rows[p].mtime,
            hash=rows[p].hash,
            similarity=round(similarity[p], 6),
            keep=p == keeper,
        )
        for p in order
    )
    kind = IDENTICAL if len({m.hash for m in members}) == 1 else SIMILAR
    return DuplicateGroup(kind, members)


def find_duplicates(rows: Sequence[AssetRow], vectors: np.ndarray, threshold: float) -> DuplicateReport:
    """The near-duplicate groups among ``rows`` (their unit ``vectors`` row by row), largest group first."""
    check_threshold(threshold)
    pairs = np.concatenate([similar_pairs(vectors, threshold), _same_bytes(rows)])
    groups = [_group(rows, vectors, g) for g in components(len(rows), pairs)]
    groups.sort(key=lambda g: (-len(g.members), g.keep.path))
    return DuplicateReport(threshold, len(rows), tuple(groups))


@dataclass(frozen=True)
class Collapsed:
    """A search hit standing for the near-identical hits ranked below it (``similar``, best first)."""

    hit: SearchResult
    similar: tuple[SearchResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.hit.to_dict(), "similar": [r.to_dict() for r in self.similar]}


def collapse(results: Sequence[SearchResult], vectors: np.ndarray, threshold: float) -> list[Collapsed]:
    """One entry per near-duplicate group of ``results`` (best first, their unit ``vectors`` row by row): each
    result joins the best-ranked hit kept so far that it is more similar to than ``threshold``, or is kept."""
    check_threshold(threshold)
    kept: list[int] = []
    similar: dict[int, list[SearchResult]] = {}
    for i, result in enumerate(results):
        near = np.flatnonzero(vectors[kept] @ vectors[i] > threshold)
        if near.size:
            similar[kept[near[0]]].append(result)
        else:
            kept.append(i)
            similar[i] = []
    return [Collapsed(results[i], tuple(similar[i])) for i in kept]
