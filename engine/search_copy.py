"""The in-memory search copy of a collection, kept in step with Milvus and saved beside a Milvus Lite library.

Milvus Lite answers one query in hundreds of milliseconds at 100k rows (its search runs in Python
over Parquet segments), and reading every vector back out of it takes about 20 s, so processes that
search search a copy: each row's metadata and its vector, searched exactly with one matrix product,
plus an HNSW graph (faiss, which Milvus Lite itself depends on) once the collection is large enough
that the product would cost more than encoding the query. Filtered searches and long candidate
lists always scan exactly.

Milvus stays the system of record. ``SearchCopy`` watches the store's writes (``engine.store.WriteObserver``)
and applies them to the copy at each flush, then saves the copy in the Milvus Lite folder stamped with
the collection's ``Version``: the write generation, which the store changes before the first write after
every flush, and Milvus Lite's write mark, which any write changes, another program's included. A copy
whose stamp or row count disagrees with the collection is never used: it is rebuilt from Milvus. So a
run killed mid-write, or a write by another program, costs one rebuild, never a wrong answer.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.engine.relevance import sample_positions
from assetlens.engine.search import Filter
from assetlens.engine.store import AssetRow, Hit, MilvusStore

log = logging.getLogger(__name__)

FORMAT = 2  # rows carry file types and tags
GRAPH_MIN_ROWS = 50_000  # below this, the exact matrix product costs a few milliseconds at most
GRAPH_M = 32
GRAPH_EF_CONSTRUCTION = 80
# Search breadth, wider from GRAPH_LARGE_ROWS on, where 128 loses recall (the measured figures are in
# benchmarks/results/FINDINGS.md).
GRAPH_EF_SEARCH = 128
GRAPH_EF_SEARCH_LARGE = 256
GRAPH_LARGE_ROWS = 500_000
GRAPH_MAX_LIMIT = 512  # longer candidate lists scan exactly
MAX_DEAD_SHARE = 0.2  # replaced and deleted positions kept before the copy is compacted
NO_FILTER = Filter()


def _faiss() -> Any:
    import faiss  # imported on demand: small libraries never need it

    return faiss


@dataclass(frozen=True)
class Version:
    """What a saved copy is stamped with and must match to be used: the generation that this process's
    store changes before its first write after each flush, and Milvus Lite's write mark, which every
    write changes, another program's included (``MilvusStore.write_mark``)."""

    generation: str
    mark: str

    @classmethod
    def of_store(cls, store: MilvusStore) -> Version:
        return cls(store.generation(), store.write_mark())

    @classmethod
    def of_stamp(cls, stamp: dict[str, Any]) -> Version:
        return cls(str(stamp.get("generation")), str(stamp.get("mark")))


class CopyIndex:
    """Rows and unit vectors by position, an optional HNSW graph over the same positions.

    A deleted or replaced row leaves a dead position (``rows[i] is None``) that no search returns,
    so appending never renumbers the graph; ``compact`` drops dead positions once they pile up.
    """

    def __init__(
        self,
        rows: Sequence[AssetRow | None],
        vectors: np.ndarray,
        graph: Any = None,
        graph_min_rows: int = GRAPH_MIN_ROWS,
    ) -> None:
        self.rows = list(rows)
        self.graph = graph
        self.graph_min_rows = graph_min_rows
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.position = {r.id: i for i, r in enumerate(self.rows) if r is not None}
        self._alive: np.ndarray | None = None  # per position, computed when a search first needs it
        if self.graph is None and len(self.position) >= graph_min_rows:
            self.compact()

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    @property
    def vectors(self) -> np.ndarray:
        """(positions, dim) float32; with a graph, a view of the graph's own copy (no second copy in memory)."""
        if self.graph is None:
            return self._vectors
        faiss = _faiss()
        n, d = self.graph.ntotal, self.graph.d
        storage = faiss.downcast_index(self.graph.storage)
        return faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d) if n else np.zeros((0, d), np.float32)

    def __len__(self) -> int:
        return len(self.position)

    @property
    def dead(self) -> int:
        return len(self.rows) - len(self.position)

    def alive(self) -> np.ndarray:
        """Which positions hold a row (bool per position), kept until the next change."""
        if self._alive is None:
            self._alive = np.fromiter((r is not None for r in self.rows), dtype=bool, count=len(self.rows))
        return self._alive

    # -- changes ----------------------------------------------------------------------

    def apply(self, upserts: dict[str, tuple[AssetRow, np.ndarray]], deletes: set[str]) -> None:
        """Bring the copy up to date with rows upserted and ids deleted (``SearchCopy`` keeps only each id's
        last write, so an id in both was deleted and then written again)."""
        self._alive = None
        for row_id in deletes - upserts.keys():
            pos = self.position.pop(row_id, None)
            if pos is not None:
                self.rows[pos] = None
        vecs = self.vectors
        appended: list[AssetRow] = []
        new_vectors: list[np.ndarray] = []
        for row_id, (row, vec) in upserts.items():
            pos = self.position.get(row_id)
            if pos is not None and np.array_equal(vecs[pos], vec):  # metadata only (touched, renamed): in place
                self.rows[pos] = row
                continue
            if pos is not None:
                self.rows[pos] = None
            self.position[row_id] = len(self.rows) + len(appended)
            appended.append(row)
            new_vectors.append(vec)
        if appended:
            block = np.asarray(new_vectors, dtype=np.float32).reshape(len(appended), self.dim)
            if self.graph is not None:
                self.graph.add(block)
            else:
                self._vectors = np.concatenate([self._vectors, block])
            self.rows.extend(appended)
        grows_graph = self.graph is None and len(self.position) >= self.graph_min_rows
        if grows_graph or self.dead > MAX_DEAD_SHARE * max(1, len(self.rows)):
            self.compact()

    def compact(self) -> None:
        """Drop dead positions; (re)build the graph when the collection is large enough for one."""
        keep = [i for i, r in enumerate(self.rows) if r is not None]
        vectors = np.ascontiguousarray(self.vectors[keep])
        self.rows = [self.rows[i] for i in keep]
        self.position = {r.id: i for i, r in enumerate(self.rows) if r is not None}
        self.graph = None
        self._vectors = vectors
        self._alive = None
        if len(self.rows) >= self.graph_min_rows:
            faiss = _faiss()
            graph = faiss.IndexHNSWFlat(vectors.shape[1], GRAPH_M, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = GRAPH_EF_CONSTRUCTION
            graph.add(vectors)
            self.graph = graph
            self._vectors = np.zeros((0, vectors.shape[1]), np.float32)

    # -- search ---------------------------------------------------------------------

    @staticmethod
    def _scores(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Inner products on one thread, without BLAS: a BLAS product leaves its worker threads
        spinning on both cores after it returns, which doubled the next text encoding in
        onnxruntime (16 ms vs 5.6 ms end to end at 10k rows, benchmarks/results/FINDINGS.md)."""
        scores: np.ndarray = np.einsum("ij,j->i", vectors, q)
        return scores

    def search(self, query: np.ndarray, limit: int, flt: Filter = NO_FILTER) -> list[Hit]:
        """The ``limit`` best rows by cosine (unit vectors: inner product), best first."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if flt.active:
            candidates = np.fromiter(
                (i for i, r in enumerate(self.rows) if r is not None and flt.matches(r)), dtype=np.int64
            )
            return self._ranked(candidates, self._scores(self.vectors[candidates], q), limit)
        if self.graph is not None and limit <= GRAPH_MAX_LIMIT:
            return self._graph_search(q, limit)
        scores = self._scores(self.vectors, q)
        if self.dead:
            candidates = np.flatnonzero(self.alive())
            return self._ranked(candidates, scores[candidates], limit)
        return self._ranked(np.arange(len(scores)), scores, limit)

    def _ranked(self, positions: np.ndarray, scores: np.ndarray, limit: int) -> list[Hit]:
        if len(scores) > limit:
            top = np.argpartition(-scores, limit - 1)[:limit]
            positions, scores = positions[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [Hit(self.rows[p], float(s)) for p, s in zip(positions[order], scores[order], strict=True)]

    def _graph_search(self, q: np.ndarray, limit: int) -> list[Hit]:
        faiss = _faiss()
        params = faiss.SearchParametersHNSW()
        breadth = GRAPH_EF_SEARCH if self.graph.ntotal < GRAPH_LARGE_ROWS else GRAPH_EF_SEARCH_LARGE
        params.efSearch = max(breadth, limit)
        if self.dead:
            bits = np.packbits(self.alive(), bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(self.rows), faiss.swig_ptr(bits))
        scores, positions = self.graph.search(q[None], limit, params=params)
        return [Hit(self.rows[p], float(s)) for p, s in zip(positions[0], scores[0], strict=True) if p >= 0]

    # -- persistence ------------------------------------------------------------------

    def save(self, folder: Path, version: Version) -> None:
        """Write the copy into ``folder`` atomically (a new folder swapped in), stamped with the collection's
        ``version``. A failed save (a full disk) leaves the copy saved before, whose stamp no longer matches."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        for leftover in folder.parent.glob(f".{folder.name}-*"):  # from a save that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            with open(tmp / "rows.json", "w", encoding="utf-8") as f:
                json.dump([None if r is None else astuple(r) for r in self.rows], f, ensure_ascii=False)
            if self.graph is not None:
                _faiss().write_index(self.graph, str(tmp / "graph.faiss"))
            else:
                np.save(tmp / "vectors.npy", self._vectors)
            stamp = {
                "format": FORMAT,
                "generation": version.generation,
                "mark": version.mark,
                "rows": len(self),
                "dim": self.dim,
                "graph": self.graph is not None,
            }
            (tmp / "stamp.json").write_text(json.dumps(stamp))
            old = folder.with_name(f".{folder.name}-old")
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(
        cls, folder: Path, version: Version, dim: int, graph_min_rows: int = GRAPH_MIN_ROWS
    ) -> tuple[CopyIndex, int] | None:
        """The copy saved in ``folder`` and its recorded row count, if it was saved at ``version``."""
        if not (folder / "stamp.json").is_file():
            return None
        try:
            stamp = json.loads((folder / "stamp.json").read_text())
            if (stamp.get("format"), Version.of_stamp(stamp), stamp.get("dim")) != (FORMAT, version, dim):
                return None
            raw = json.loads((folder / "rows.json").read_text(encoding="utf-8"))
            rows = [None if r is None else AssetRow(*r) for r in raw]
            graph = None
            if (folder / "graph.faiss").exists():
                graph = _faiss().read_index(str(folder / "graph.faiss"))
                vectors = np.zeros((0, dim), np.float32)
                if graph.ntotal != len(rows) or graph.d != dim:
                    return None
            else:
                vectors = np.load(folder / "vectors.npy")
                if vectors.shape != (len(rows), dim):
                    return None
            return cls(rows, vectors, graph, graph_min_rows), int(stamp["rows"])
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            log.warning("The saved search copy in %s is unreadable (%s); it will be rebuilt from Milvus.", folder, exc)
            return None


class CopyState(str, Enum):
    CURRENT = "current"  # saved at the collection's present version and row count
    STALE = "stale"  # the collection was written since (the next search rebuilds it from Milvus)
    NOT_SAVED = "not saved"  # none saved yet (the first search builds one)
    NONE = "none"  # on a server, where Milvus searches and no copy is saved


@dataclass(frozen=True)
class CopyStatus:
    """The saved search copy of a collection, as read from its stamp (nothing loaded)."""

    state: CopyState
    rows: int | None = None  # as saved
    graph: bool | None = None  # an HNSW graph (else exact)

    def __str__(self) -> str:
        if self.state is CopyState.CURRENT:
            return f"current ({self.rows:,} rows, {'HNSW graph' if self.graph else 'exact'})"
        return {
            CopyState.STALE: "stale (the library was written since it was saved; the next search rebuilds it)",
            CopyState.NOT_SAVED: "not saved yet (the first search builds it)",
            CopyState.NONE: "none (on a server, Milvus searches)",
        }[self.state]


def copy_status(store: MilvusStore, count: int) -> CopyStatus:
    """The search copy saved for ``store``'s collection of ``count`` rows."""
    folder = store.cache_folder()
    if folder is None:
        return CopyStatus(CopyState.NONE)
    try:
        stamp = json.loads((folder / "stamp.json").read_text())
    except (OSError, ValueError):
        return CopyStatus(CopyState.NOT_SAVED)
    rows, graph = stamp.get("rows"), bool(stamp.get("graph"))
    if Version.of_stamp(stamp) != Version.of_store(store) or rows != count:
        return CopyStatus(CopyState.STALE, rows, graph)
    return CopyStatus(CopyState.CURRENT, rows, graph)


class SearchCopy:
    """Keeps a ``CopyIndex`` in step with one store (an ``engine.store.WriteObserver``).

    The copy is loaded from its saved snapshot or built from Milvus when a search first needs it;
    writes are collected as they happen and applied at the store's flush, then the copy is saved
    (Milvus Lite only). Writes that start with no trustworthy copy at hand (a saved one that is stale,
    a non-empty collection never copied) are not tracked: the next search rebuilds instead.
    Searches and the update at a flush take turns (the app searches while it indexes). The copy is
    only as fresh as this process's writes: Milvus Lite's file lock makes this process the only writer;
    on a server, other writers are not seen (``Library`` keeps no copy there by default).
    """

    def __init__(self, store: MilvusStore, graph_min_rows: int = GRAPH_MIN_ROWS) -> None:
        self.store = store
        self.graph_min_rows = graph_min_rows
        self.folder = store.cache_folder()
        self._index: CopyIndex | None = None
        self._tracking = False
        self._upserts: dict[str, tuple[AssetRow, np.ndarray]] = {}
        self._deletes: set[str] = set()
        self._lock = threading.RLock()
        store.observer = self

    def index(self) -> CopyIndex:
        """The copy, up to date with Milvus as of the last flush (loaded or built on first use)."""
        with self._lock:
            if self._index is None:
                self._index = self._load() or self._build()
            return self._index

    def search(self, query: np.ndarray, limit: int, flt: Filter = NO_FILTER) -> list[Hit]:
        with self._lock:
            return self.index().search(query, limit, flt)

    def snapshot(self) -> tuple[list[AssetRow], np.ndarray]:
        """Every live row and its vector, taken in one turn (a flush cannot change them halfway)."""
        with self._lock:
            index = self.index()
            alive = np.flatnonzero(index.alive())
            rows = [index.rows[p] for p in alive]
            return [r for r in rows if r is not None], index.vectors[alive]

    def sample(self, n: int) -> np.ndarray:
        """``n`` live vectors at evenly spaced positions (all when there are fewer), for a score baseline."""
        with self._lock:
            index = self.index()
            alive = np.flatnonzero(index.alive())
            return index.vectors[alive[sample_positions(len(alive), n)]]

    def _dim(self) -> int:
        meta = self.store.meta()
        return meta.dim if meta else 0

    def _load(self) -> CopyIndex | None:
        if self.folder is None:
            return None
        loaded = CopyIndex.load(self.folder, Version.of_store(self.store), self._dim(), self.graph_min_rows)
        if loaded is None:
            return None
        index, rows = loaded
        if rows != len(index) or rows != self.store.count():  # a write by another program, or a bug: rebuild
            return None
        return index

    def _build(self) -> CopyIndex:
        rows, vectors = self.store.rows_and_vectors()
        index = CopyIndex(rows, vectors, graph_min_rows=self.graph_min_rows)
        self._save(index)
        return index

    def _save(self, index: CopyIndex) -> None:
        """Save the copy if it can be: it is optional, so a failure is a warning and the next process rebuilds it."""
        # While writes are unflushed, the generation already names the state after them: do not stamp it.
        if self.folder is None or self.store.dirty or self.store.read_only:
            return
        try:
            index.save(self.folder, Version.of_store(self.store))
        except OSError as exc:
            log.warning(
                "Could not save the search copy in %s (%s); searches work, and the next one rebuilds it from Milvus.",
                self.folder,
                exc.strerror or exc,
            )

    # -- WriteObserver ----------------------------------------------------------------

    def before_write(self) -> None:
        with self._lock:
            if self._index is None:
                self._index = self._load()
                if self._index is None and self.store.count() == 0:
                    empty = np.zeros((0, self._dim()), np.float32)
                    self._index = CopyIndex([], empty, graph_min_rows=self.graph_min_rows)
            self._tracking = self._index is not None
            self._upserts.clear()
            self._deletes.clear()

    def upserted(self, rows: Sequence[AssetRow], vectors: np.ndarray) -> None:
        if self._tracking:
            for row, vec in zip(rows, np.asarray(vectors, dtype=np.float32), strict=True):
                self._upserts[row.id] = (row, vec)

    def deleted(self, ids: Sequence[str]) -> None:
        if self._tracking:
            for row_id in ids:
                self._upserts.pop(row_id, None)
                self._deletes.add(row_id)

    def flushed(self) -> None:
        with self._lock:
            if not self._tracking or self._index is None:
                self._index = None
                return
            self._index.apply(self._upserts, self._deletes)
            self._upserts.clear()
            self._deletes.clear()
            self._tracking = False
            self._save(self._index)
