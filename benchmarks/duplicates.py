"""Near-duplicate grouping at library scale: the engine's pair search and union-find on synthetic vectors.

The vectors are the search section's clustered CLIP-like set (``VectorSet``) with a tenth of the rows
replaced by planted near-copies of another row, in groups of 2 to 8, each copy at a cosine of about
0.97-0.995 to its original. Timed: ``similar_pairs`` (the cell search from ``CELLS_MIN_ROWS`` rows) and
``components``; up to the profile's ``duplicate_exact_max``, the exact all-pairs search too, and the
cell search's pair recall against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from assetlens.benchmarks.context import Context, Task
from assetlens.benchmarks.search import DIM, VectorSet
from assetlens.benchmarks.timing import PeakRss
from assetlens.engine.duplicates import CELLS_MIN_ROWS, components, exact_pairs, similar_pairs
from assetlens.engine.registry import DUPLICATE_THRESHOLDS

THRESHOLD = DUPLICATE_THRESHOLDS["clip"]  # the benchmarks' model is CLIP-shaped (ViT-B/32)

PLANTED_SHARE = 0.1


def planted(n: int, seed: int = 1) -> tuple[np.ndarray, int]:
    """``VectorSet(n)``'s vectors with planted near-duplicate groups; the number of groups planted."""
    vectors = VectorSet(n, 1, seed).vectors.copy()
    r = np.random.default_rng(seed)
    order = r.permutation(n)
    sizes = r.integers(2, 9, max(1, int(n * PLANTED_SHARE) // 5))
    at = 0
    for size in sizes:
        group = order[at : at + size]
        at += size
        noise = r.standard_normal((size - 1, DIM), dtype=np.float32) * r.uniform(0.1, 0.25, (size - 1, 1)).astype(
            np.float32
        )
        copies = vectors[group[0]] + noise / np.float32(np.sqrt(DIM))
        vectors[group[1:]] = copies / np.linalg.norm(copies, axis=1, keepdims=True)
    return vectors, len(sizes)


def _pairs_set(pairs: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, pairs.tolist()))


def group(n: int, exact: bool) -> dict[str, Any]:
    vectors, groups_planted = planted(n)
    with PeakRss() as rss:
        t0 = time.perf_counter()
        pairs = similar_pairs(vectors, THRESHOLD)
        t1 = time.perf_counter()
        groups = components(n, pairs)
        t2 = time.perf_counter()
    row: dict[str, Any] = {
        "method": "cells (k-means)" if n >= CELLS_MIN_ROWS else "exact",
        "threshold": THRESHOLD,
        "groups_planted": groups_planted,
        "pairs": len(pairs),
        "groups": len(groups),
        "pairs_s": t1 - t0,
        "components_s": t2 - t1,
        "seconds": t2 - t0,
        "raw_vector_mib": vectors.nbytes / 2**20,
        **rss.to_dict(),
    }
    if exact:
        t0 = time.perf_counter()
        truth = exact_pairs(vectors, THRESHOLD)
        row["exact_s"] = time.perf_counter() - t0
        found, want = _pairs_set(pairs), _pairs_set(truth)
        row["exact_pairs"] = len(want)
        row["pair_recall_vs_exact"] = len(found & want) / max(1, len(want))
        row["pairs_not_in_exact"] = len(found - want)
        row["same_groups_as_exact"] = sorted(map(sorted, groups)) == sorted(map(sorted, components(n, truth)))
    return row


def tasks(ctx: Context) -> list[Task]:
    res = ctx.section("duplicates")
    p = ctx.profile

    def run(n: int) -> Callable[[], None]:
        return lambda: res.setdefault("sizes", {}).__setitem__(str(n), group(n, n <= p.duplicate_exact_max))

    return [(f"duplicates: group {n:,} vectors", run(n)) for n in p.duplicate_sizes]
