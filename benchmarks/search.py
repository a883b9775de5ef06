"""Vector search: Milvus Lite per index type, a Milvus server, exact numpy/faiss, and ``Library.search``.

Vectors are clustered and normalised like CLIP embeddings (sqrt(n) Gaussian
clusters around random unit centres, cosine to their centre about 0.6-0.85);
queries are fresh draws from the same mixture. Ground truth is exact
top-10 by inner product in numpy. Each store is timed after it is reopened
and loaded, as a fresh ``assetlens search`` process sees it: single queries
(p50/p99) and batches (QPS), with recall@10 against the truth.

``Library.search`` runs on a real AssetLens collection (the engine's schema
and index, rows upserted through ``MilvusStore`` as the indexer writes them,
so the engine's in-memory copy follows the writes and is saved at the flush):
tokenise + encode + search + result shaping, the interactive path, in the
process that wrote the rows (as the app after indexing) and in a fresh process
that loads the saved copy (as the app's next start), there once with the fp32
text tower and once with the int8 one (``Library(query_precision=...)``) on the
same fp32 library. Its recall is the engine's answer (``Library.search(vector=...)``)
against exact search.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.benchmarks.context import QUERIES, Context, Task
from assetlens.benchmarks.milvus_server import MilvusServer
from assetlens.benchmarks.timing import PeakRss, measure, measure_alternating, rss_bytes, stats
from assetlens.engine.errors import AssetLensError
from assetlens.engine.library import MAX_CANDIDATES, Library
from assetlens.engine.models import MANIFEST_FILE, int8_text_facts, load_facts
from assetlens.engine.search_copy import GRAPH_MIN_ROWS, INDEX_FILE, VECTORS_FILE, CopyIndex
from assetlens.engine.store import AssetRow, milvus_client, path_id

K = 10
DIM = 512
INSERT_CHUNK = 10_000
REBUILD_MAX_ROWS = 100_000  # the copy's rebuild from Milvus is timed up to here (Milvus Lite reads 3k rows/s)
TRUTH_SLICE = 100_000
INDEX_PARAMS: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "IVF_FLAT": {"nlist": 128},
    "IVF_SQ8": {"nlist": 128},
    "HNSW": {"M": 16, "efConstruction": 200},
    "HNSW_SQ": {"M": 16, "efConstruction": 200},
}
SEARCH_PARAMS = {"ef": 64, "nprobe": 16}
SERVER_INDEX_TYPES = ("FLAT", "IVF_FLAT", "HNSW")  # those the profile asks for, at the same sizes as Milvus Lite


@dataclass
class VectorSet:
    n: int
    queries: int
    seed: int = 0

    @cached_property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        clusters = max(8, int(np.sqrt(self.n)))
        centres = rng.standard_normal((clusters, DIM), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        spread = rng.uniform(0.6, 1.3, clusters).astype(np.float32)

        def draw(m: int) -> np.ndarray:
            which = rng.integers(0, clusters, m)
            out = np.empty((m, DIM), np.float32)
            for lo in range(0, m, 100_000):
                w = which[lo : lo + 100_000]
                noise = rng.standard_normal((len(w), DIM), dtype=np.float32) / np.float32(np.sqrt(DIM))
                out[lo : lo + len(w)] = centres[w] + spread[w, None] * noise
            out /= np.linalg.norm(out, axis=1, keepdims=True)
            return out

        return draw(self.n), draw(self.queries)

    @property
    def vectors(self) -> np.ndarray:
        return self.data[0]

    @property
    def query_vectors(self) -> np.ndarray:
        return self.data[1]

    @cached_property
    def truth(self) -> np.ndarray:
        """Exact top-10 in float64, so float32 near-ties do not count against any store; computed over
        slices of the vectors, so that 1M of them never exist in float64 at once."""
        q = self.query_vectors.astype(np.float64)
        best = np.zeros((len(q), 0), np.int64)
        for lo in range(0, self.n, TRUTH_SLICE):
            part = lo + numpy_topk(self.vectors[lo : lo + TRUTH_SLICE].astype(np.float64), q, K)
            best = np.concatenate([best, part], axis=1)
            scores = np.einsum("qkd,qd->qk", self.vectors[best].astype(np.float64), q)
            best = np.take_along_axis(best, np.argsort(-scores, axis=1, kind="stable")[:, :K], axis=1)
        return best

    def save(self, path: Path) -> VectorFile:
        """The vectors written raw to ``path``, for a process that reads them a chunk at a time."""
        self.vectors.tofile(path)
        return VectorFile(path, self.n)


@dataclass(frozen=True)
class VectorFile:
    """A ``VectorSet``'s vectors on disk; slicing ``vectors`` reads only those rows (a writer's memory is then
    its own, not its input's)."""

    path: Path
    n: int

    @property
    def vectors(self) -> VectorFile:
        return self

    def __getitem__(self, rows: slice) -> np.ndarray:
        lo, hi, _ = rows.indices(self.n)
        count = max(0, hi - lo) * DIM
        return np.fromfile(self.path, np.float32, count=count, offset=lo * DIM * 4).reshape(-1, DIM)


def numpy_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows of ``x`` by inner product for each row of ``q`` (best first)."""
    scores = q @ x.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K]) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


def time_store(search: Callable[[np.ndarray], list[list[int]]], vs: VectorSet, ctx: Context) -> dict[str, Any]:
    """Single-query latency, batch QPS and recall@10 of a ``search(queries) -> ids`` function."""
    p = ctx.profile
    q = vs.query_vectors
    t0 = time.perf_counter()
    search(q[:1])
    first_ms = (time.perf_counter() - t0) * 1e3
    found: list[list[int]] = []
    samples: list[float] = []
    for i in range(len(q)):
        t0 = time.perf_counter()
        found += search(q[i : i + 1])
        samples.append(time.perf_counter() - t0)
    batch = q[: p.query_batch]
    batched = measure(lambda: search(batch), items=len(batch), warmup=0, min_reps=2, max_reps=10, budget_s=p.budget_s)
    return {
        "first_query_ms": first_ms,
        "single": stats(samples),
        "batch": {**batched, "batch": len(batch), "qps": batched["per_s"]},
        "recall_at_10": recall(found, vs.truth),
    }


# ----------------------------------------------------------------------------- Milvus (raw collections)


def _client(uri: str) -> Any:
    return milvus_client(uri, timeout=600)


def create_and_insert(uri: str, name: str, vs: VectorSet) -> dict[str, Any]:
    """A collection of (int64 id, vector) with a FLAT index, filled with the vectors."""
    from pymilvus import DataType, MilvusClient

    client = _client(uri)
    try:
        if client.has_collection(name):
            client.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection(name, schema=schema, index_params=index)
        t0 = time.perf_counter()
        x = vs.vectors
        for lo in range(0, vs.n, INSERT_CHUNK):
            client.insert(name, [{"id": i, "vector": x[i]} for i in range(lo, min(lo + INSERT_CHUNK, vs.n))])
        client.flush(name)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
    return {"insert_s": seconds, "rows_per_s": vs.n / seconds}


def reindex(uri: str, name: str, index_type: str) -> float:
    """Swap the collection's vector index (drop + create + load); returns the seconds it took."""
    client = _client(uri)
    try:
        t0 = time.perf_counter()
        client.release_collection(name)
        client.drop_index(name, "vector")
        index = client.prepare_index_params()
        index.add_index("vector", index_type=index_type, metric_type="COSINE", params=INDEX_PARAMS[index_type])
        client.create_index(name, index)
        client.load_collection(name)
        return time.perf_counter() - t0
    finally:
        client.close()


def release_lite(db: str | Path) -> None:
    """Stop this process's Milvus Lite server for ``db``: closing a client keeps it running, with the file lock."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(Path(db).resolve()))


def time_milvus(uri: str, name: str, vs: VectorSet, ctx: Context) -> dict[str, Any]:
    """Reopen (a Milvus Lite file from scratch), load, and time the collection."""
    if "://" not in uri:
        release_lite(uri)
    t0 = time.perf_counter()
    client = _client(uri)
    client.load_collection(name)
    open_s = time.perf_counter() - t0

    def search(q: np.ndarray) -> list[list[int]]:
        res = client.search(
            name,
            data=q.tolist(),
            limit=K,
            output_fields=["id"],
            search_params={"metric_type": "COSINE", "params": SEARCH_PARAMS},
        )
        return [[int(h["id"]) for h in hits] for hits in res]

    try:
        return {"open_load_s": open_s, **time_store(search, vs, ctx)}
    finally:
        client.close()


# ----------------------------------------------------------------------------- AssetLens collection


def fill_library(lib: Library, vs: VectorSet | VectorFile) -> dict[str, Any]:
    """Make ``lib`` an AssetLens collection of ``vs`` with the store calls the indexer makes for new files
    (rows with fake file metadata): upserts of new rows, then a flush, at which the library's in-memory
    copy takes the new rows (building its HNSW graph when large enough) and is saved."""
    lib.prepare_writes()
    t0 = time.perf_counter()
    x = vs.vectors
    for lo in range(0, vs.n, INSERT_CHUNK):
        hi = min(lo + INSERT_CHUNK, vs.n)
        lib.write([_row(i) for i in range(lo, hi)], x[lo:hi], new=True)
    t1 = time.perf_counter()
    lib.flush()
    t2 = time.perf_counter()
    return {
        "upsert_s": t2 - t0,
        "rows_per_s": vs.n / (t2 - t0),
        "flush_and_copy_s": t2 - t1,
        "copy": "HNSW graph over 8-bit codes, rescored (faiss)" if vs.n >= GRAPH_MIN_ROWS else "exact matrix",
    }


WATCH_BATCH = 100  # rows of one small write, as a watch that flushes every few files makes


def small_write(db: str, n: int, threads: int) -> dict[str, Any]:
    """One small write (``WATCH_BATCH`` new rows, then a flush) into the library at ``db`` of ``n`` rows, in the
    process that opened it: seconds to write and flush, and whether the saved copy's graph or vectors file was
    written again (the new vectors are appended to the one and wait beside the other until there are many)."""

    def inodes(folder: Path | None) -> list[int | None]:
        files = [folder / name for name in (INDEX_FILE, VECTORS_FILE)] if folder is not None else []
        return [path.stat().st_ino if path.is_file() else None for path in files]

    with Library(db, device="cpu", threads=threads, create=False) as lib:
        folder = lib.store.cache_folder()
        before = inodes(folder)
        rng = np.random.default_rng(n)
        x = rng.normal(size=(WATCH_BATCH, lib.encoder.dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        lib.prepare_writes()
        t0 = time.perf_counter()
        lib.write([_row(n + i) for i in range(WATCH_BATCH)], x, new=True)
        t1 = time.perf_counter()
        lib.flush()
        t2 = time.perf_counter()
        after = inodes(folder)
    return {
        "rows": WATCH_BATCH,
        "write_s": t1 - t0,
        "flush_and_save_s": t2 - t1,
        "index_file_rewritten": not before or before != after,
    }


def rebuild_copy_s(lib: Library) -> float:
    """Seconds to rebuild the in-memory copy from Milvus: what the first search pays when the saved copy is stale."""
    t0 = time.perf_counter()
    CopyIndex(*lib.store.rows_and_vectors())
    return time.perf_counter() - t0


def _row(i: int) -> AssetRow:
    path = f"/bench/photos/{i // 1000:04d}/IMG_{i:07d}.jpg"
    return AssetRow(
        path_id(path),
        path,
        path.rsplit("/", 1)[0],
        path.rsplit("/", 1)[1],
        2_000_000 + i,
        1.7e9,
        f"{i:064x}",
        2048,
        1536,
    )


def _row_index(path: str) -> int:
    return int(path.rsplit("_", 1)[1].split(".")[0])


def time_library(
    db: str, precision: str, threads: int, budget_s: float, reps: int, query_precision: str
) -> dict[str, Any]:
    """Open the library at ``db`` and time ``Library.search`` with the ``query_precision`` text tower (run in a
    fresh process, as the CLI does)."""
    t0 = time.perf_counter()
    with (
        PeakRss() as rss,
        Library(
            db, precision=precision, device="cpu", threads=threads, create=False, query_precision=query_precision
        ) as lib,
    ):
        row = time_search(lib, budget_s, reps, t0)
        # Before MilvusStore.search below: asking Milvus Lite loads its whole collection into this process.
        row["search_only_rss_peak_mib"] = max(rss.peak, rss_bytes()) / 2**20
        row["store_search"] = time_store_search(lib, budget_s, reps)
    return {**row, **rss.to_dict()}


def time_search(lib: Library, budget_s: float, reps: int, t0: float | None = None) -> dict[str, Any]:
    """``Library.search`` end to end on an open library and the text encoder of its queries (``text_tower``
    says which), timed in turn (``measure_alternating``); the library answers from its in-memory copy, which
    a fresh process's first query loads (``cold_first_query_s``)."""
    t0 = t0 or time.perf_counter()
    lib.search(QUERIES[0], k=K)
    cold_s = time.perf_counter() - t0
    state = {"i": 0}

    def encode() -> None:
        state["i"] += 1
        lib.text_encoder.encode_texts([QUERIES[state["i"] % len(QUERIES)]])

    def search() -> None:  # the query just encoded, end to end
        lib.search(QUERIES[state["i"] % len(QUERIES)], k=K)

    # no warm-up: the first query above warmed every part
    timed = measure_alternating({"encode_text": encode, "end_to_end": search}, budget_s=budget_s, max_reps=reps)
    return {"cold_first_query_s": cold_s, "text_tower": lib.text_encoder.facts.precision, **timed}


def time_store_search(lib: Library, budget_s: float, reps: int) -> dict[str, Any]:
    """``MilvusStore.search`` as ``Library.search`` would call it (limit 28 for k=10): Milvus' own search."""
    limit = min(MAX_CANDIDATES, 2 * K + 8)
    vec = lib.encoder.encode_texts([QUERIES[1]])
    return measure(lambda: lib.store.search(vec, limit), budget_s=budget_s, max_reps=reps)


def library_recall(lib: Library, vs: VectorSet, queries: int) -> float:
    """recall@10 of the engine's answer (``Library.search`` by vector) against exact search."""
    found = [[_row_index(r.path) for r in lib.search(vector=q, k=K)] for q in vs.query_vectors[:queries]]
    return recall(found, vs.truth[:queries])


def write_library(
    db: str, model: str, precision: str, vectors: str, n: int, threads: int, budget_s: float, reps: int
) -> dict[str, Any]:
    """Write the ``n`` vectors of the file ``vectors`` (``VectorSet.save``) into a new library at ``db``
    (``fill_library``), then time ``Library.search`` in the process that wrote them (as the app after
    indexing). Run in a fresh process, so that its peak RSS is the writer's own: the vectors are read a chunk
    at a time, as an indexer produces them."""
    with (
        PeakRss() as rss,
        Library(db, model=Path(model), precision=precision, device="cpu", threads=threads) as lib,
    ):
        row = fill_library(lib, VectorFile(Path(vectors), n))
        row["write_rss"] = rss.to_dict()
        timed = time_search(lib, budget_s, reps)
        row["same_process"] = {**timed, "store_search": time_store_search(lib, budget_s, reps), **rss.to_dict()}
    return row


def model_folder(ctx: Context) -> Path:
    """The benchmark model's fp32 and int8 exports linked into one model folder (``FOLDER/<precision>``), as a
    registry model's are, so that an fp32 library finds the int8 text tower beside its model."""
    folder = ctx.work / "model"
    folder.mkdir(exist_ok=True)
    for precision in ("fp32", "int8"):
        link = folder / precision
        if not (link / MANIFEST_FILE).is_file():
            link.symlink_to(ctx.export_dir(precision).resolve(), target_is_directory=True)
    return folder


def int8_refusal(model: Path) -> str | None:
    """Why the int8 text tower may not answer the fp32 library's queries (None: it may)."""
    try:
        int8_text_facts(load_facts(model / "fp32"))
    except AssetLensError as exc:
        return str(exc)
    return None


def fresh_process(function: str, *args: Any) -> dict[str, Any]:
    """``function`` of this module called with ``args`` (paths as strings) in a new Python process, as each
    ``assetlens search`` invocation meets the library; its JSON answer."""
    code = (
        "import json, sys; from assetlens.benchmarks import search; a = json.loads(sys.argv[1]); "
        "print(json.dumps(getattr(search, a[0])(*a[1:])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps([function, *(str(a) if isinstance(a, Path) else a for a in args)])],
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {function} process failed: {out.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def cli_search(db: Path, threads: int, runs: int = 3) -> dict[str, Any]:
    """``assetlens search QUERY --json`` as a one-shot command: wall seconds per run, the process start and
    imports included, and which copy answered."""
    seconds = []
    args = ["-k", str(K), "--device", "cpu", "--threads", str(threads)]
    for i in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "assetlens", "search", QUERIES[i % len(QUERIES)], "--db", str(db), "--json", *args],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        seconds.append(time.perf_counter() - t0)
        if out.returncode != 0:
            raise RuntimeError(f"assetlens search failed: {out.stderr.strip().splitlines()[-1:]}")
    return {"runs": runs, "seconds": seconds, "median_s": float(np.median(seconds))}


# ----------------------------------------------------------------------------- reference: numpy and faiss


def time_numpy(vs: VectorSet, ctx: Context) -> dict[str, Any]:
    x = vs.vectors
    return time_store(lambda q: numpy_topk(x, q, K).tolist(), vs, ctx)


def time_faiss(vs: VectorSet, ctx: Context) -> dict[str, Any] | None:
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexFlatIP(DIM)
    index.add(vs.vectors)
    return time_store(lambda q: index.search(np.ascontiguousarray(q), K)[1].tolist(), vs, ctx)


# ----------------------------------------------------------------------------- the Milvus server


@contextlib.contextmanager
def milvus_server(ctx: Context) -> Iterator[str | None]:
    """A running Milvus server's URI (the test harness's ``MilvusServer``), or None with a note."""
    if importlib.util.find_spec("milvus") is None:
        ctx.note("Milvus server not measured: needs the `milvus` package (milvus-server).")
        yield None
        return
    t0 = time.perf_counter()
    try:
        server = MilvusServer.start(ctx.work / "milvus-server")
    except Exception as exc:  # the server is optional: report and go on
        ctx.note(f"Milvus server not measured: it did not start ({str(exc).splitlines()[0]}).")
        yield None
        return
    ctx.section("search")["server_startup_s"] = time.perf_counter() - t0
    try:
        yield server.uri
    finally:
        server.stop()


# ----------------------------------------------------------------------------- tasks


def tasks(ctx: Context) -> list[Task]:
    res = ctx.section("search")
    p = ctx.profile
    sets = {n: VectorSet(n, p.queries) for n in p.search_sizes}
    res["k"] = K
    res["dim"] = DIM
    res["index_params"] = INDEX_PARAMS
    res["search_params"] = SEARCH_PARAMS
    res["queries"] = p.queries

    def index_types(n: int) -> tuple[str, ...]:
        return p.index_types + (p.small_only_index_types if n <= 10_000 else ())

    def put(store: str, n: int, row: dict[str, Any] | None) -> None:
        if row is not None:
            res.setdefault("stores", {}).setdefault(store, {})[str(n)] = row

    def reference(n: int) -> Callable[[], None]:
        def run() -> None:
            vs = sets[n]
            put("numpy exact", n, time_numpy(vs, ctx))
            put("faiss exact (IndexFlatIP)", n, time_faiss(vs, ctx))

        return run

    def lite_insert(n: int) -> Callable[[], None]:
        def run() -> None:
            res.setdefault("milvus_lite_insert", {})[str(n)] = create_and_insert(
                str(ctx.work / f"lite-{n}.db"), "vectors", sets[n]
            )

        return run

    def lite(n: int, index_type: str) -> Callable[[], None]:
        def run() -> None:
            uri = str(ctx.work / f"lite-{n}.db")
            build_s = reindex(uri, "vectors", index_type) if index_type != "FLAT" else 0.0
            put(f"Milvus Lite {index_type}", n, {"index_build_s": build_s, **time_milvus(uri, "vectors", sets[n], ctx)})

        return run

    timing = (p.budget_s, p.queries)

    def library(n: int) -> Callable[[], None]:
        def run() -> None:
            vectors = sets[n].save(ctx.work / f"vectors-{n}.f32")
            db, model = ctx.work / f"library-{n}.db", model_folder(ctx)
            row = fresh_process("write_library", db, model, "fp32", vectors.path, n, ctx.threads, *timing)
            row["raw_vector_mib"] = n * DIM * 4 / 2**20
            with Library(db, precision="fp32", device="cpu", threads=ctx.threads, create=False) as lib:
                row["recall_at_10"] = library_recall(lib, sets[n], p.queries)
                if n <= REBUILD_MAX_ROWS:
                    row["rebuild_from_milvus_s"] = rebuild_copy_s(lib)
            row["fresh_process"] = fresh_process("time_library", db, "fp32", ctx.threads, *timing, "fp32")
            row["cli_search"] = cli_search(db, ctx.threads)
            if n <= p.int8_library_max:  # the same library's queries on the int8 text tower
                refused = int8_refusal(model)
                row["fresh_process_int8"] = (
                    {"refused": refused}
                    if refused
                    else fresh_process("time_library", db, "fp32", ctx.threads, *timing, "int8")
                )
            row["small_write"] = fresh_process("small_write", db, n, ctx.threads)  # last: it adds rows
            vectors.path.unlink()
            res.setdefault("library", {})[str(n)] = row

        return run

    def server() -> None:
        with milvus_server(ctx) as uri:
            if uri is None:
                return
            for n in (n for n in p.search_sizes if n <= p.raw_store_max):
                res.setdefault("milvus_server_insert", {})[str(n)] = create_and_insert(uri, f"vectors_{n}", sets[n])
                for index_type in (t for t in index_types(n) if t in SERVER_INDEX_TYPES):
                    build_s = reindex(uri, f"vectors_{n}", index_type) if index_type != "FLAT" else 0.0
                    row = time_milvus(uri, f"vectors_{n}", sets[n], ctx)
                    put(f"Milvus server {index_type}", n, {"index_build_s": build_s, **row})
                _client(uri).drop_collection(f"vectors_{n}")

    out: list[Task] = []
    for n in p.search_sizes:
        types = index_types(n)
        out.append((f"search: exact numpy/faiss {n:,}", reference(n)))
        if n <= p.raw_store_max:
            out.append((f"search: Milvus Lite insert {n:,}", lite_insert(n)))
            out += [(f"search: Milvus Lite {t} {n:,}", lite(n, t)) for t in types]
        out.append((f"search: Library.search {n:,}", library(n)))
    if p.server:
        out.append(("search: Milvus server", server))
    return out
