"""The search copy of a collection, kept in step with Milvus and saved beside a Milvus Lite library.

Milvus Lite answers one query in hundreds of milliseconds at 100k rows (its search runs in Python
over Parquet segments), and reading every vector back out of it takes about 20 s, so processes that
search search a copy: each row's metadata as Arrow columns and its float32 vector in a file
(``engine.vector_column``), searched exactly, or through an HNSW graph once the collection is large
enough that the exact product would cost more than encoding the query. The graph holds 8-bit codes of
the vectors (faiss ``IndexHNSWSQ``: a quarter of their size), and the best candidates of its walk are
rescored exactly from the float32 vectors, so scores are exact and the codes only steer the walk and its shortlist.
A saved graph keeps its entries grouped by k-means cluster (``ORDER_FILE`` maps each entry to its
position): a walk stays among a few clusters, so it reads a few regions of memory, not the whole graph.
Filtered searches and long candidate lists scan exactly.

Milvus stays the system of record. ``SearchCopy`` watches the store's writes (``engine.store.WriteObserver``):
each write's vectors join the index as it happens (so a flush never builds a graph over everything
written), hidden from searches until the store's flush makes them visible; then the copy is saved in the
Milvus Lite folder stamped with the collection's ``Version``: the write generation, which the store
changes before the first write after every flush, and Milvus Lite's write mark, which any write changes,
another program's included. A copy whose stamp disagrees with the collection is never used: it is
rebuilt from Milvus. So a run killed mid-write, or a write by another program, costs one rebuild, never
a wrong answer.

A saved copy is memory-mapped, not read: the row columns (Arrow IPC files, one per range of positions,
so a save writes only the rows added since the last one and links the rest), the vectors' file and the
graph's codes (``IO_FLAG_MMAP_IFC``). A process that only searches touches the pages its searches need,
and a row becomes an ``AssetRow`` only when a search returns it. A writer appends each write's vectors
to the file rather than holding them (Milvus Lite holds them in the same process already). Vectors
written after the graph was saved wait beside it, searched exactly, until there are ``EXTRA_MAX_ROWS``
of them: a watch that flushes every few files does not rewrite the graph each time, and a writer does
not read a mapped graph into memory for a few new rows.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assetlens.engine.relevance import sample_positions
from assetlens.engine.row_columns import BatchRows, RowColumns, RowSnapshot
from assetlens.engine.search import NO_FILTER, Filter
from assetlens.engine.store import AssetRow, Hit, MilvusStore
from assetlens.engine.vector_column import SPILL_PREFIX, VectorColumn

log = logging.getLogger(__name__)

# Row columns in Arrow files, the float32 vectors in a file, an HNSW graph over 8-bit codes whose entries are
# in cluster order (5: in position order, read as an identity order; older copies held the vectors in the
# graph and are rebuilt from Milvus).
FORMAT = 6
READABLE_FORMATS = (5, FORMAT)
GRAPH_MIN_ROWS = 50_000  # below this, the exact matrix product costs a few milliseconds at most
GRAPH_M = 32
# Build breadth: 80 held recall@10 at 1M rows to 0.9855 whatever the search breadth; 160 gives 0.9995 at
# efSearch 128 and 1.000 at 256, for about 1.4x the build time (FINDINGS.md; python -m assetlens.benchmarks.graph).
GRAPH_EF_CONSTRUCTION = 160
# Search breadth, widening with the graph: 64 holds recall@10 at 0.995 at 100k rows (0.645 ms a search vs
# 1.106 ms at 128) and 96 holds it at 0.994 at 1M, for 0.68 ms a walk against 0.81 ms at 128 (recall 0.999;
# benchmarks/results/FINDINGS.md). Each tenfold in rows adds GRAPH_EF_SEARCH_STEP.
GRAPH_EF_SEARCH = 64  # up to GRAPH_EF_SEARCH_ROWS rows
GRAPH_EF_SEARCH_ROWS = 100_000
GRAPH_EF_SEARCH_STEP = 32
# The walk ranks its candidates by their codes' scores, and the true top ``limit`` lie within the first
# RESCORED_PER_HIT * limit of them (at 1M rows, rescoring the first 20 of 96 keeps recall@10 as rescoring all
# of them does): only those are rescored from their float32 vectors.
RESCORED_PER_HIT = 2
GRAPH_MAX_LIMIT = 512  # longer candidate lists scan exactly
GRAPH_TRAIN_ROWS = 65_536  # evenly spaced vectors the codes' range is learnt from
GRAPH_ADD_ROWS = 65_536  # vectors read from the file and added to the graph at a time
# A saved graph's entries are grouped by the nearest of GRAPH_CLUSTERS centroids (k-means over
# GRAPH_TRAIN_ROWS vectors), so that a walk, which stays among a few clusters, reads codes and links from
# a few regions of memory: at 1M rows the walk right after a text encoding took 0.55 ms against 0.79 ms in
# position order, with the same candidates; 1,024 centroids were no faster (benchmarks/results/FINDINGS.md).
GRAPH_CLUSTERS = 256
GRAPH_CLUSTER_ITERATIONS = 8
# Vectors kept beside a saved graph before they join it (and the graph is written again): their exact scan
# costs about a millisecond at 512 dimensions.
EXTRA_MAX_ROWS = 10_000
MAX_DEAD_SHARE = 0.2  # replaced and deleted positions kept before the copy is compacted
# Rows changed in place (tags, a touched file) kept beside the row columns before they are written into them:
# a load builds each of them as an AssetRow.
CHANGED_MAX_ROWS = 10_000

STAMP = "stamp.json"
INDEX_FILE = "graph.faiss"  # the HNSW graph over the first positions' codes (only once there is a graph)
ORDER_FILE = "order.npy"  # the position of each of the graph's entries (int64, with the graph)
VECTORS_FILE = "vectors.f32"  # every position's float32 vector (VectorColumn)
ALIVE_FILE = "alive.npy"
CHANGED_FILE = "changed.arrow"  # rows whose metadata changed in place, with their positions
POSITION = "_position"

_ARROW_TYPES = {
    "str": pa.large_string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "tuple[str, ...]": pa.large_list(pa.large_string()),
}
#: The Arrow columns of a row, one per ``AssetRow`` field.
ROW_SCHEMA = pa.schema([(f.name, _ARROW_TYPES[str(f.type)]) for f in fields(AssetRow)])
_CHANGED = pa.schema([pa.field(POSITION, pa.int64()), *ROW_SCHEMA])


def _faiss() -> Any:
    import faiss  # Milvus Lite imports it too; kept out of the module's import for tools that never search

    return faiss


def rows_table(rows: Sequence[AssetRow]) -> pa.Table:
    """Rows as Arrow columns (``ROW_SCHEMA``)."""
    columns = [pa.array([getattr(r, f.name) for r in rows], f.type) for f in ROW_SCHEMA]
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA)


def table_rows(table: pa.Table) -> list[AssetRow]:
    """Every row of ``ROW_SCHEMA`` columns."""
    return [row for batch in table.to_batches() for row in RowColumns(batch).rows(np.arange(batch.num_rows))]


def graph_breadth(rows: int) -> int:
    """The HNSW search breadth (efSearch) for a graph of ``rows``: recall held at about 0.995 as it grows."""
    tenfolds = math.log10(max(rows, GRAPH_EF_SEARCH_ROWS) / GRAPH_EF_SEARCH_ROWS)
    return GRAPH_EF_SEARCH + round(GRAPH_EF_SEARCH_STEP * tenfolds)


def _read_table(path: Path) -> pa.Table:
    """An Arrow IPC file, memory-mapped (its columns are views of the file)."""
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    if not table.schema.remove_metadata().equals(ROW_SCHEMA if POSITION not in table.schema.names else _CHANGED):
        raise ValueError(f"{path.name} holds other columns than this AssetLens writes")
    return table


def _write_table(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _link(source: Path, target: Path) -> None:
    """``target`` as another name of ``source`` (a copy where the file system has no hard links)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


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
    """Rows (Arrow columns) and unit vectors (a ``VectorColumn``, and an HNSW graph once large) by position.

    Positions only grow: a deleted or replaced row leaves a dead position that no search returns, and
    ``compact`` drops dead positions once they pile up. Writes are staged (``stage``, ``delete``): their
    vectors join the column and the graph at once, at new positions that searches skip until ``commit``.
    Once the graph is saved, new vectors wait beside it instead (the positions after the graph's own,
    scanned exactly and merged with its answers) until there are more than ``EXTRA_MAX_ROWS``; then they
    join it. ``spill`` is a folder for the vectors' file (None: they are held in memory until saved).
    """

    def __init__(
        self,
        rows: Sequence[AssetRow] | pa.Table,
        vectors: np.ndarray,
        graph_min_rows: int = GRAPH_MIN_ROWS,
        spill: Path | None = None,
    ) -> None:
        table = rows if isinstance(rows, pa.Table) else rows_table(rows)
        if spill is None:
            column = VectorColumn.of(vectors)
        else:
            column = VectorColumn.spill(vectors.shape[1], spill)
            column.append(vectors)
        self._fill(table, column, graph_min_rows, spill)

    def _fill(self, table: pa.Table, vectors: VectorColumn, graph_min_rows: int, spill: Path | None) -> None:
        graph = _build_graph(vectors) if len(table) >= graph_min_rows else None
        self._setup([table], [None], vectors, graph, np.ones(len(table), bool), {}, graph_min_rows, spill)

    def _setup(
        self,
        parts: list[pa.Table],
        part_files: list[str | None],
        vectors: VectorColumn,
        graph: Any,
        alive: np.ndarray,
        changed: dict[int, AssetRow],
        graph_min_rows: int,
        spill: Path | None,
        mapped: Path | None = None,
        order: np.ndarray | None = None,
    ) -> None:
        self.graph_min_rows = graph_min_rows
        self._spill = spill
        self._parts = parts
        self._part_files = part_files  # each part's file in the saved copy (None: not saved yet)
        self._table: pa.Table | None = None  # the parts as one table, until they change
        self._batches: BatchRows | None = None  # and as record batches
        self._vectors = vectors
        self._graph = graph
        self._order = order  # the position of each graph entry (None: entry i is position i)
        self._mapped = mapped  # the saved graph file the graph maps (it cannot grow before it is read in)
        self._mapped_inode = mapped.stat().st_ino if mapped is not None else None
        self._graph_saved = mapped is not None
        self._n = len(vectors)
        self._alive = np.zeros(max(16, 2 * self._n), bool)  # room to grow (positions past _n are False)
        self._alive[: self._n] = alive
        self._live = int(alive.sum())
        self._changed = changed  # positions whose row changed in place (same vector)
        self._committed = self._n  # positions from here on are staged writes, not searched yet
        self._position: dict[str, int] | None = None  # id -> latest position, built when a write needs it
        self._staged_changes: dict[int, AssetRow] = {}
        self._retire: set[int] = set()  # committed positions that the staged writes replace or delete
        self._killed: set[int] = set()  # staged positions written again or deleted before the commit
        self._bits: np.ndarray | None = None  # the live positions packed for the graph's selector
        self._walks: dict[tuple[int, bool], Any] = {}  # the graph's search parameters by breadth and selector

    @property
    def dim(self) -> int:
        return self._vectors.dim

    @property
    def graph(self) -> Any:
        """The HNSW graph (faiss) over the first positions, or None while the copy is searched exactly."""
        return self._graph

    def _graph_rows(self) -> int:
        return int(self._graph.ntotal) if self._graph is not None else 0

    def vectors_at(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(positions), dim) float32: the vectors at ``positions``."""
        return self._vectors.take(positions)

    def __len__(self) -> int:
        return self._live

    @property
    def dead(self) -> int:
        """Committed positions that hold no row."""
        return self._committed - self._live

    def alive(self) -> np.ndarray:
        """Which positions hold a searchable row (bool per position; staged ones do not yet)."""
        return self._alive[: self._n]

    @property
    def table(self) -> pa.Table:
        """Every position's row as stored at it (a row changed in place is in ``_changed``)."""
        if self._table is None:
            self._table = pa.concat_tables(self._parts) if len(self._parts) != 1 else self._parts[0]
        return self._table

    def _record_batches(self) -> BatchRows:
        """The parts' record batches, read as rows."""
        if self._batches is None:
            self._batches = BatchRows([b for part in self._parts for b in part.to_batches()])
        return self._batches

    @property
    def position(self) -> dict[str, int]:
        """Each row id's latest position (built from the id column on first use: writes need it, searches not)."""
        if self._position is None:
            ids = self.table.column("id").to_pylist()
            self._position = {ids[p]: p for p in np.flatnonzero(self.alive()).tolist()}
        return self._position

    def rows_at(self, positions: Sequence[int] | np.ndarray) -> list[AssetRow]:
        """The rows at ``positions``, built from the columns (only these)."""
        return RowSnapshot(self._record_batches(), self._changed).rows_at(positions)

    def get(self, ids: Sequence[str]) -> list[tuple[AssetRow, np.ndarray]]:
        """The searchable rows with these ids and their vectors (a scan of the id column: no id map needed)."""
        if not ids:
            return []
        wanted = pc.is_in(self.table["id"], value_set=pa.array(list(ids), pa.large_string())).to_numpy()
        positions = np.flatnonzero(wanted & self.alive())
        return list(zip(self.rows_at(positions), self.vectors_at(positions), strict=True))

    def untagged(self, fingerprint: str) -> np.ndarray:
        """Positions of the searchable rows not tagged with the vocabulary ``fingerprint`` (from the column)."""
        keep = pc.not_equal(self.table["tagged"], fingerprint).to_numpy(zero_copy_only=False) & self.alive()
        for pos, row in self._changed.items():
            keep[pos] = bool(self._alive[pos]) and row.tagged != fingerprint
        return np.flatnonzero(keep)

    def live_rows(self) -> list[AssetRow]:
        """Every searchable row, by position."""
        return self.rows_at(np.flatnonzero(self.alive()))

    # -- changes ----------------------------------------------------------------------

    def stage(self, rows: Sequence[AssetRow], vectors: np.ndarray) -> None:
        """Take rows written (upserted) since the last commit; they are searched from the next ``commit`` on."""
        position = self.position
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(rows), self.dim)
        # The committed vectors these rows may keep, read at once; each row's position is looked up in the loop,
        # after the writes before it in this call (an id written twice must see the position it just took).
        at = sorted({pos for row in rows if (pos := position.get(row.id)) is not None and pos < self._committed})
        stored = dict(zip(at, self.vectors_at(at), strict=True))
        new_rows: list[AssetRow] = []
        new_vectors: list[np.ndarray] = []
        for row, vec in zip(rows, vectors, strict=True):
            pos = position.get(row.id)
            if pos is not None and pos < self._committed and np.array_equal(stored[pos], vec):
                self._staged_changes[pos] = row  # metadata only (touched, renamed): in place
                continue
            if pos is not None:
                self._forget(pos)
            position[row.id] = self._n + len(new_rows)
            new_rows.append(row)
            new_vectors.append(vec)
        if new_rows:
            self._append(new_rows, np.stack(new_vectors))

    def delete(self, ids: Iterable[str]) -> None:
        """Take rows deleted since the last commit."""
        position = self.position
        for row_id in ids:
            pos = position.pop(row_id, None)
            if pos is not None:
                self._forget(pos)

    def apply(self, upserts: dict[str, tuple[AssetRow, np.ndarray]], deletes: set[str]) -> None:
        """Deletes, then upserts, then commit (an id in both was deleted and then written again)."""
        self.delete(deletes)
        if upserts:
            rows = [row for row, _ in upserts.values()]
            self.stage(rows, np.stack([vec for _, vec in upserts.values()]))
        self.commit()

    def _forget(self, pos: int) -> None:
        self._staged_changes.pop(pos, None)
        (self._killed if pos >= self._committed else self._retire).add(pos)

    def _append(self, rows: list[AssetRow], vectors: np.ndarray) -> None:
        self._parts.append(rows_table(rows))
        self._part_files.append(None)
        self._merge_parts()
        if len(self._alive) < self._n + len(rows):
            grown = np.zeros(2 * (self._n + len(rows)), bool)
            grown[: self._n] = self.alive()
            self._alive = grown
        self._n += len(rows)
        self._vectors.append(vectors)
        if self._graph is None:
            if self._n >= self.graph_min_rows:
                # every position so far goes into the graph, dead ones too: positions never move while writes
                # are staged
                self._graph = _build_graph(self._vectors)
            return
        if self._graph_saved and self._n - self._graph_rows() <= EXTRA_MAX_ROWS:
            return  # beside the saved graph, which stays as it is
        if self._mapped is not None:
            self._own()
        grown_from = self._graph_rows()
        _grow(self._graph, self._vectors)
        if self._order is not None:  # the new entries are the positions after the graph's
            self._order = np.concatenate([self._order, np.arange(grown_from, self._graph_rows(), dtype=np.int64)])
        self._graph_saved = False
        self._walks.clear()

    def _merge_parts(self) -> None:
        """Join the last parts while the one before is not much larger than the last: few parts, and each row
        copied O(log n) times however many small writes came (a search takes rows across parts)."""
        self._table = self._batches = None
        parts, files = self._parts, self._part_files
        while len(parts) >= 2 and parts[-2].num_rows <= 2 * parts[-1].num_rows:
            merged = pa.concat_tables(parts[-2:]).combine_chunks()
            parts[-2:], files[-2:] = [merged], [None]

    def _own(self) -> None:
        """Read the mapped graph into memory, so that it can grow (faiss aborts on growing a mapped one)."""
        assert self._mapped is not None
        path, faiss = self._mapped, _faiss()
        try:
            same = path.stat().st_ino == self._mapped_inode
        except OSError:
            same = False
        if same:
            self._graph = faiss.read_index(str(path))
        else:  # the file was replaced: copy what is mapped
            self._graph = faiss.deserialize_index(faiss.serialize_index(self._graph))
        self._mapped = self._mapped_inode = None

    def commit(self) -> None:
        """Make the staged writes searchable (the store's flush sealed them in Milvus)."""
        alive = self._alive
        alive[self._committed : self._n] = True
        for pos in self._retire | self._killed:
            alive[pos] = False
            self._changed.pop(pos, None)
        self._changed.update(self._staged_changes)
        if len(self._changed) > CHANGED_MAX_ROWS:
            self._fold_changed()
        self._staged_changes.clear()
        self._retire.clear()
        self._killed.clear()
        self._committed = self._n
        self._live = int(np.count_nonzero(self.alive()))
        self._bits = None
        self._walks.clear()
        grows_graph = self.graph is None and self._live >= self.graph_min_rows
        if grows_graph or self.dead > MAX_DEAD_SHARE * max(1, self._n):
            self.compact()

    def _fold_changed(self) -> None:
        """Write the rows changed in place into the row columns (one new part, saved whole at the next save)."""
        at = np.fromiter(self._changed, np.int64, len(self._changed))
        order = np.arange(self._n, dtype=np.int64)
        order[at] = self._n + np.arange(len(at))
        combined = pa.concat_tables([self.table, rows_table(list(self._changed.values()))])
        self._parts, self._part_files = [combined.take(pa.array(order)).combine_chunks()], [None]
        self._changed = {}
        self._table = self._batches = None

    def compact(self) -> None:
        """Drop dead positions; (re)build the graph when the collection is large enough for one."""
        keep = np.flatnonzero(self.alive())
        table = self.table.take(pa.array(keep))
        if self._changed:
            table = rows_table(self.rows_at(keep))
        vectors = VectorColumn(self.dim) if self._spill is None else VectorColumn.spill(self.dim, self._spill)
        for lo in range(0, len(keep), GRAPH_ADD_ROWS):
            vectors.append(self.vectors_at(keep[lo : lo + GRAPH_ADD_ROWS]))
        self._vectors.discard()
        self._fill(table, vectors, self.graph_min_rows, self._spill)

    # -- search ---------------------------------------------------------------------

    @staticmethod
    def _scores(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Inner products on this thread with faiss's SIMD kernel. Not BLAS: a BLAS product leaves its worker
        threads spinning on both cores after it returns, which doubled the next text encoding in
        onnxruntime (16 ms vs 5.6 ms end to end at 10k rows, benchmarks/results/FINDINGS.md); numpy's
        ``einsum`` takes twice as long (1.0 vs 0.47 ms for 10k rows of 512)."""
        faiss = _faiss()
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        unit = np.ascontiguousarray(q, dtype=np.float32)
        scores = np.empty(len(rows), np.float32)
        if len(rows):
            faiss.fvec_inner_products_ny(
                faiss.swig_ptr(scores), faiss.swig_ptr(unit), faiss.swig_ptr(rows), len(unit), len(rows)
            )
        return scores

    def matching(self, flt: Filter) -> np.ndarray:
        """Positions of the searchable rows that ``flt`` keeps."""
        keep = flt.mask(self.table) & self.alive()
        for pos, row in self._changed.items():
            keep[pos] = bool(self._alive[pos]) and flt.matches(row)
        return np.flatnonzero(keep)

    def search(self, query: np.ndarray, limit: int, flt: Filter = NO_FILTER, breadth: int | None = None) -> list[Hit]:
        """The ``limit`` best rows by cosine (unit vectors: inner product), best first; ``breadth`` overrides
        the graph's search breadth (``graph_breadth``), for measuring it."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if flt.active:
            candidates = self.matching(flt)
            return self._ranked(candidates, self._scores(self.vectors_at(candidates), q), limit)
        if self._graph is not None and limit <= GRAPH_MAX_LIMIT:
            return self._graph_search(q, limit, breadth)
        scores = self._scores(self._vectors.view(), q)
        if self._live < self._n:
            candidates = np.flatnonzero(self.alive())
            return self._ranked(candidates, scores[candidates], limit)
        return self._ranked(np.arange(len(scores)), scores, limit)

    def _hits(self, positions: np.ndarray, scores: np.ndarray) -> list[Hit]:
        """Hits that build their rows when asked, from the rows as they are now (``RowSnapshot``)."""
        at, changed = positions.tolist(), self._changed
        now = RowSnapshot(self._record_batches(), {p: changed[p] for p in at if p in changed})
        return [Hit.later(s, h, now, p) for p, s, h in zip(at, scores.tolist(), now.hashes_at(positions), strict=True)]

    def _ranked(self, positions: np.ndarray, scores: np.ndarray, limit: int) -> list[Hit]:
        if len(scores) > 4 * limit:  # a scan: sort only the best
            top = np.argpartition(-scores, limit - 1)[:limit]
            positions, scores = positions[top], scores[top]
        order = np.argsort(-scores, kind="stable")[:limit]
        return self._hits(positions[order], scores[order])

    def _walk(self, breadth: int) -> Any:
        """The graph's search parameters for a walk of ``breadth`` (efSearch), kept until the live positions
        change: making them through faiss's wrappers costs about as much as rescoring a walk's candidates."""
        key = (breadth, self._live < self._n)  # dead or staged positions: a selector leaves them out
        params = self._walks.get(key)
        if params is None:
            faiss = _faiss()
            params = self._walks[key] = faiss.SearchParametersHNSW()
            params.efSearch = breadth
            if key[1]:
                if self._bits is None:  # by graph entry
                    alive = self.alive()
                    entries = alive[: self._graph_rows()] if self._order is None else alive[self._order]
                    self._bits = np.packbits(entries, bitorder="little")
                params.sel = faiss.IDSelectorBitmap(len(self._bits), faiss.swig_ptr(self._bits))
        return params

    def _graph_search(self, q: np.ndarray, limit: int, breadth: int | None) -> list[Hit]:
        graph_rows = self._graph_rows()
        walked = max(breadth or graph_breadth(graph_rows), limit)
        # The best candidates by the codes' scores (approximate) are rescored from their float32 vectors.
        _, entries = self._graph.search(q[None], min(walked, RESCORED_PER_HIT * limit), params=self._walk(walked))
        candidates = entries[0][entries[0] >= 0]
        if self._order is not None:
            candidates = self._order[candidates]
        if graph_rows < self._n:
            candidates = np.concatenate([candidates, graph_rows + np.flatnonzero(self.alive()[graph_rows:])])
        return self._ranked(candidates, self._scores(self.vectors_at(candidates), q), limit)

    def _graph_order(self) -> np.ndarray:
        """The position of each graph entry."""
        if self._order is None:
            return np.arange(self._graph_rows(), dtype=np.int64)
        return np.asarray(self._order)

    def _cluster_order(self) -> None:
        """Group the graph's entries (in memory) by their nearest of ``GRAPH_CLUSTERS`` centroids. The entries
        are read back from the graph's own codes, a chunk at a time, not from the vectors' file: a writer would
        otherwise map every vector once more."""
        faiss, graph = _faiss(), self._graph
        rows = self._graph_rows()
        sample = graph.reconstruct_batch(sample_positions(rows, GRAPH_TRAIN_ROWS).astype(np.int64))
        clusters = min(GRAPH_CLUSTERS, max(1, rows // 64))
        kmeans = faiss.Kmeans(self.dim, clusters, niter=GRAPH_CLUSTER_ITERATIONS, seed=1, spherical=True)
        kmeans.train(sample)
        nearest = np.empty(rows, np.int64)
        for lo in range(0, rows, GRAPH_ADD_ROWS):
            chunk = graph.reconstruct_n(lo, min(GRAPH_ADD_ROWS, rows - lo))
            nearest[lo : lo + len(chunk)] = kmeans.index.search(chunk, 1)[1][:, 0]
        perm = np.argsort(nearest, kind="stable")  # entry i becomes the old entry perm[i]
        order = self._graph_order()
        graph.permute_entries(perm)
        self._order = order[perm]
        self._bits = None
        self._walks.clear()

    # -- persistence ------------------------------------------------------------------

    def save(self, folder: Path, version: Version) -> None:
        """Write the copy into ``folder`` atomically (a new folder swapped in), stamped with the collection's
        ``version``; parts, vectors and a graph saved before are linked, not written again. A failed save (a
        full disk) leaves the copy saved before, whose stamp no longer matches."""
        assert self._committed == self._n, "staged writes are not saved"
        folder.parent.mkdir(parents=True, exist_ok=True)
        for leftover in folder.parent.glob(f".{folder.name}-*"):  # from a save that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        if self._spill is not None:  # files left by a writer that was killed (one writer at a time)
            for spilled in self._spill.glob(f"{SPILL_PREFIX}*"):
                if spilled != self._vectors.file:
                    spilled.unlink(missing_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            names: list[str] = []
            for part, name in zip(self._parts, self._part_files, strict=True):
                if name is not None and (folder / name).is_file():
                    _link(folder / name, tmp / name)
                else:
                    name = f"rows-{uuid.uuid4().hex[:16]}.arrow"
                    _write_table(part, tmp / name)
                names.append(name)
            if self._graph is not None:
                if self._graph_saved and (folder / INDEX_FILE).is_file():
                    _link(folder / INDEX_FILE, tmp / INDEX_FILE)
                else:
                    if self._mapped is not None:  # its file is gone: only a graph in memory can be reordered
                        self._own()
                    self._cluster_order()
                    _faiss().write_index(self._graph, str(tmp / INDEX_FILE))
                if self._graph_saved and (folder / ORDER_FILE).is_file():  # it changes with the graph only
                    _link(folder / ORDER_FILE, tmp / ORDER_FILE)
                else:
                    np.save(tmp / ORDER_FILE, self._graph_order())
            self._vectors.save(tmp / VECTORS_FILE)
            np.save(tmp / ALIVE_FILE, self.alive())
            if self._changed:
                changed = rows_table(list(self._changed.values()))
                changed = changed.add_column(0, POSITION, pa.array(list(self._changed), pa.int64()))
                _write_table(changed, tmp / CHANGED_FILE)
            stamp = {
                "format": FORMAT,
                "generation": version.generation,
                "mark": version.mark,
                "rows": len(self),
                "positions": self._n,
                "dim": self.dim,
                "graph_rows": self._graph_rows(),
                "graph": self._graph is not None,
                "ordered": self._graph is not None,
                "parts": names,
            }
            (tmp / STAMP).write_text(json.dumps(stamp))
            old = folder.with_name(f".{folder.name}-old")
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        saved: list[str | None] = list(names)
        self._part_files = saved
        self._vectors.adopt(folder / VECTORS_FILE)
        self._graph_saved = True

    @classmethod
    def load(
        cls, folder: Path, version: Version, dim: int, graph_min_rows: int = GRAPH_MIN_ROWS, spill: Path | None = None
    ) -> tuple[CopyIndex, int] | None:
        """The copy saved in ``folder``, memory-mapped, and its recorded row count, if it was saved at ``version``
        (``spill``: where a compaction writes its vectors' file)."""
        if not (folder / STAMP).is_file():
            return None
        try:
            stamp = json.loads((folder / STAMP).read_text())
            if stamp.get("format") not in READABLE_FORMATS or (Version.of_stamp(stamp), stamp.get("dim")) != (
                version,
                dim,
            ):
                return None
            names = [str(name) for name in stamp["parts"]]
            parts = [_read_table(folder / name) for name in names]
            n, graph_rows = int(stamp["positions"]), int(stamp["graph_rows"])
            faiss = _faiss()
            graph = faiss.read_index(str(folder / INDEX_FILE), faiss.IO_FLAG_MMAP_IFC) if stamp["graph"] else None
            order = None
            if stamp.get("ordered"):  # a plain view of the map: indexing an np.memmap wraps every result
                order = np.load(folder / ORDER_FILE, mmap_mode="r", allow_pickle=False).view(np.ndarray)
            vectors = VectorColumn(dim, folder / VECTORS_FILE, n)
            alive = np.load(folder / ALIVE_FILE, allow_pickle=False)
            changed: dict[int, AssetRow] = {}
            if (folder / CHANGED_FILE).is_file():
                table = _read_table(folder / CHANGED_FILE)
                positions = table.column(POSITION).to_pylist()
                changed = dict(zip(positions, table_rows(table.drop_columns([POSITION])), strict=True))
            if (
                sum(p.num_rows for p in parts) != n
                or (graph is not None and (graph.d != dim or graph.ntotal != graph_rows or graph_rows > n))
                or (order is not None and not _is_order(order, graph_rows))
                or alive.shape != (n,)
                or alive.dtype != bool
                or any(not 0 <= p < n for p in changed)
                or int(np.count_nonzero(alive)) != stamp["rows"]
            ):
                return None
            copy = cls.__new__(cls)
            mapped = folder / INDEX_FILE if graph is not None else None
            copy._setup(parts, list(names), vectors, graph, alive, changed, graph_min_rows, spill, mapped, order)
            return copy, int(stamp["rows"])
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            log.warning("The saved search copy in %s is unreadable (%s); it will be rebuilt from Milvus.", folder, exc)
            return None


def _is_order(order: np.ndarray, rows: int) -> bool:
    """Whether ``order`` names each of ``rows`` positions once."""
    if order.shape != (rows,) or order.dtype != np.int64:
        return False
    return rows == 0 or (int(order.min()) >= 0 and int(order.max()) < rows and bool(np.all(np.bincount(order) == 1)))


def spill_folder(folder: Path) -> Path:
    """Where a writer's vectors wait for the copy saved in ``folder`` to be saved (one per collection)."""
    return folder.parent / f".spill-{folder.name}"


def _build_graph(vectors: VectorColumn) -> Any:
    """An HNSW graph by inner product over 8-bit codes of every row of ``vectors`` (the codes' range learnt
    from ``GRAPH_TRAIN_ROWS`` of them; a later vector outside it is clipped, which only its rescoring sees)."""
    faiss = _faiss()
    graph = faiss.IndexHNSWSQ(vectors.dim, faiss.ScalarQuantizer.QT_8bit, GRAPH_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = GRAPH_EF_CONSTRUCTION
    graph.train(vectors.take(sample_positions(len(vectors), GRAPH_TRAIN_ROWS)))
    _grow(graph, vectors)
    return graph


def _grow(graph: Any, vectors: VectorColumn) -> None:
    """Add the rows of ``vectors`` past the graph's own, a bounded number at a time."""
    for chunk in vectors.chunks(int(graph.ntotal), GRAPH_ADD_ROWS):
        graph.add(chunk)


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
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return CopyStatus(CopyState.NOT_SAVED)
    rows, graph = stamp.get("rows"), bool(stamp.get("graph"))
    readable = stamp.get("format") in READABLE_FORMATS
    if not readable or Version.of_stamp(stamp) != Version.of_store(store) or rows != count:
        return CopyStatus(CopyState.STALE, rows, graph)
    return CopyStatus(CopyState.CURRENT, rows, graph)


class SearchCopy:
    """Keeps a ``CopyIndex`` in step with one store (an ``engine.store.WriteObserver``).

    The copy is loaded from its saved snapshot or built from Milvus when a search first needs it;
    writes are staged into it as they happen and made searchable at the store's flush, then the copy is
    saved (Milvus Lite only). Writes that start with no trustworthy copy at hand (a saved one that is
    stale, a non-empty collection never copied) are not tracked: the next search rebuilds instead.
    Searches and writes take turns (the app searches while it indexes). The copy is only as fresh as
    this process's writes: Milvus Lite's file lock makes this process the only writer; on a server,
    other writers are not seen (``Library`` keeps no copy there by default).
    """

    def __init__(self, store: MilvusStore, graph_min_rows: int = GRAPH_MIN_ROWS) -> None:
        self.store = store
        self.graph_min_rows = graph_min_rows
        self.folder = store.cache_folder()
        self._spill = spill_folder(self.folder) if self.folder is not None else None
        self._index: CopyIndex | None = None
        self._tracking = False
        self._lock = threading.RLock()
        store.observer = self

    def index(self) -> CopyIndex:
        """The copy, up to date with Milvus as of the last flush (loaded or built on first use)."""
        with self._lock:
            if self._index is None:
                self._index = self._load() or self._build()
            return self._index

    def saved(self) -> bool:
        """Whether the copy is at hand without reading Milvus: in memory, or saved at the collection's
        present version (then it is mapped now)."""
        with self._lock:
            if self._index is None:
                self._index = self._load()
            return self._index is not None

    def search(self, query: np.ndarray, limit: int, flt: Filter = NO_FILTER) -> list[Hit]:
        with self._lock:
            return self.index().search(query, limit, flt)

    def snapshot(self) -> tuple[list[AssetRow], np.ndarray]:
        """Every live row and its vector, taken in one turn (a flush cannot change them halfway)."""
        with self._lock:
            index = self.index()
            alive = np.flatnonzero(index.alive())
            return index.rows_at(alive), index.vectors_at(alive)

    def untagged(self, fingerprint: str) -> np.ndarray:
        """``CopyIndex.untagged``: positions for ``at``, which hold until the next flush."""
        with self._lock:
            return self.index().untagged(fingerprint)

    def at(self, positions: np.ndarray) -> tuple[list[AssetRow], np.ndarray]:
        """The rows at ``positions`` (as of the last flush) and their vectors."""
        with self._lock:
            index = self.index()
            return index.rows_at(positions), index.vectors_at(positions)

    def get(self, ids: Sequence[str]) -> list[tuple[AssetRow, np.ndarray]]:
        """``MilvusStore.get(ids, with_vectors=True)`` as of the last flush, from the copy."""
        with self._lock:
            return self.index().get(ids)

    def sample(self, n: int) -> np.ndarray:
        """``n`` live vectors at evenly spaced positions (all when there are fewer), for a score baseline."""
        with self._lock:
            index = self.index()
            alive = np.flatnonzero(index.alive())
            picked: np.ndarray = index.vectors_at(alive[sample_positions(len(alive), n)])
            return picked

    def _dim(self) -> int:
        meta = self.store.meta()
        return meta.dim if meta else 0

    def _load(self) -> CopyIndex | None:
        if self.folder is None:
            return None
        version = Version.of_store(self.store)
        loaded = CopyIndex.load(self.folder, version, self._dim(), self.graph_min_rows, self._spill)
        if loaded is None:
            return None
        index, rows = loaded
        # A library from before write generations is also checked by its row count (a generation is
        # changed by every AssetLens writer, the write mark by every other one).
        if rows != len(index) or (not version.generation and rows != self.store.count()):
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
                    self._index = CopyIndex([], empty, graph_min_rows=self.graph_min_rows, spill=self._spill)
            self._tracking = self._index is not None

    def upserted(self, rows: Sequence[AssetRow], vectors: np.ndarray) -> None:
        with self._lock:
            if self._tracking and self._index is not None:
                self._index.stage(rows, vectors)

    def deleted(self, ids: Sequence[str]) -> None:
        with self._lock:
            if self._tracking and self._index is not None:
                self._index.delete(ids)

    def flushed(self) -> None:
        with self._lock:
            if not self._tracking or self._index is None:
                self._index = None
                return
            self._index.commit()
            self._tracking = False
            self._save(self._index)
