"""Recall@10 and latency of the search copy's HNSW graph against exact search, per build and search breadth.

    python -m assetlens.benchmarks.graph [--rows 1000000] [--ef-construction 80 160] [--ef-search 128 256 512]

The copy is built and searched by ``engine.search_copy.CopyIndex`` itself (its graph over 8-bit codes,
every candidate rescored from the float32 vectors) over the benchmark's clustered unit vectors
(``benchmarks.search.VectorSet``), with each build breadth in turn; each line printed is one JSON
object, so a long run can be followed and cut short.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from assetlens.benchmarks.search import VectorSet, _row, _row_index
from assetlens.engine import search_copy
from assetlens.engine.search_copy import CopyIndex, rows_table

K = 10


def measure(rows: int, ef_constructions: list[int], ef_searches: list[int], queries: int = 200) -> None:
    vectors, query_vectors = VectorSet(rows, queries).data
    exact = np.argsort(-(query_vectors @ vectors.T), axis=1)[:, :K]
    table = rows_table([_row(i) for i in range(rows)])
    for ef_construction in ef_constructions:
        search_copy.GRAPH_EF_CONSTRUCTION = ef_construction
        started = time.perf_counter()
        index = CopyIndex(table, vectors, graph_min_rows=0)
        build = time.perf_counter() - started
        print(json.dumps({"rows": rows, "ef_construction": ef_construction, "build_s": round(build, 1)}), flush=True)
        for ef_search in ef_searches:
            seconds, found = [], []
            for q in query_vectors:
                started = time.perf_counter()
                hits = index.search(q, K, breadth=ef_search)
                seconds.append(time.perf_counter() - started)
                found.append([_row_index(h.row.path) for h in hits])
            recall = float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact, strict=True)]))
            print(
                json.dumps(
                    {
                        "ef_construction": ef_construction,
                        "ef_search": ef_search,
                        "recall@10": round(recall, 4),
                        "p50_ms": round(float(np.median(seconds)) * 1e3, 3),
                    }
                ),
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ef-construction", type=int, nargs="+", default=[80, 160])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[128, 256, 512])
    args = parser.parse_args(argv)
    measure(args.rows, args.ef_construction, args.ef_search)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
