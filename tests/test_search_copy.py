"""The in-memory search copy (engine.search_copy): same answers as Milvus, kept in step with writes,
saved beside a Milvus Lite library and never trusted when stale."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pytest
from helpers import DIM, make_rows, rows_and_vectors, run_main, unit_vectors, write_as_another_program
from pymilvus import MilvusClient

from assetlens.engine import search_copy
from assetlens.engine.library import SAVED_COPY, Library
from assetlens.engine.row_columns import RowColumns
from assetlens.engine.search import Filter, shape_results
from assetlens.engine.search_copy import (
    CopyIndex,
    CopyState,
    CopyStatus,
    SearchCopy,
    Version,
    copy_status,
    graph_breadth,
    rows_table,
    table_rows,
)
from assetlens.engine.store import AssetRow, MilvusStore

pytestmark = [pytest.mark.store]


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(4, int(np.sqrt(n))), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.4 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rows_for(vectors: np.ndarray) -> list[AssetRow]:
    return make_rows(len(vectors), "/lib", groups=4, suffix=".png")


def exact_ids(index: CopyIndex, q: np.ndarray, k: int) -> list[str]:
    rows = index.live_rows()
    scores = index.vectors_at(np.flatnonzero(index.alive())) @ q
    return [rows[j].id for j in np.argsort(-scores, kind="stable")[:k]]


def lite(tmp_path: Path) -> MilvusStore:
    store = MilvusStore(str(tmp_path / "lib.db"))
    store.ensure("m", "m", "fp32", DIM)
    return store


def test_copy_answers_as_milvus_flat_with_and_without_filters(tmp_path: Path) -> None:
    rows, vecs = rows_and_vectors(120)
    with lite(tmp_path) as store:
        copy = SearchCopy(store)
        store.upsert(rows, vecs)
        store.flush()
        rng = np.random.default_rng(3)
        flts = [Filter(), Filter("/photos/sub1/"), Filter(None, "_1"), Filter("/photos/sub2/", "img_2")]
        for flt in flts:
            for _ in range(5):
                q = rng.normal(size=DIM).astype(np.float32)
                q /= np.linalg.norm(q)
                ours = copy.index().search(q, 12, flt)
                theirs = store.search(q[None], 12, flt.expr())[0]
                assert [h.row for h in ours] == [h.row for h in theirs]
                np.testing.assert_allclose([h.score for h in ours], [h.score for h in theirs], atol=1e-5)


def test_writes_are_applied_at_flush_as_a_rebuild_would_see_them(tmp_path: Path) -> None:
    vecs = clustered(200, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        copy = SearchCopy(store)
        store.upsert(rows[:150], vecs[:150], new=True)
        store.flush()
        assert len(copy.index()) == 150
        # a second run: new rows, a changed image, a touched file (same vector, new mtime), a deletion
        changed = clustered(1, DIM, seed=9)
        touched = dataclasses.replace(rows[5], mtime=99.0)
        store.upsert(rows[150:], vecs[150:], new=True)
        store.upsert([rows[3], touched], np.stack([changed[0], vecs[5]]))
        store.delete([rows[7].id, rows[8].id])
        store.upsert([rows[8]], vecs[8:9])  # deleted, then written again
        index = copy.index()
        assert len(index) == 150, "changes wait for the flush"
        store.flush()
        index = copy.index()
        rebuilt = CopyIndex(*store.rows_and_vectors())
        assert sorted((r.id, r.mtime) for r in index.live_rows()) == sorted(
            (r.id, r.mtime) for r in rebuilt.live_rows()
        )
        assert len(index) == 199 and rows[7].id not in index.position
        np.testing.assert_array_equal(index.vectors_at([index.position[rows[3].id]])[0], changed[0])
        assert index.rows_at([index.position[rows[5].id]])[0].mtime == 99.0
        for q in clustered(10, DIM, seed=4):
            assert [h.row.id for h in index.search(q, 10)] == [h.row.id for h in rebuilt.search(q, 10)]


def test_graph_search_keeps_recall_and_never_returns_dead_rows() -> None:
    vecs = clustered(3000, 32)
    rows = rows_for(vecs)
    index = CopyIndex(rows, vecs, graph_min_rows=1000)
    assert index.graph is not None and index.vectors_at(range(3000)).shape == (3000, 32)
    queries = clustered(50, 32, seed=1)
    found = [[h.row.id for h in index.search(q, 10)] for q in queries]
    truth = [exact_ids(index, q, 10) for q in queries]
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]) >= 0.98
    # delete every query's current best hit and move another row: the graph keeps the dead positions
    dead = {f[0] for f in found}
    moved = rows[11]
    index.apply({moved.id: (moved, queries[0])}, dead)
    assert index.graph is not None and index.dead == len(dead) + 1
    after = [[h.row.id for h in index.search(q, 10)] for q in queries]
    assert not {i for f in after for i in f} & dead
    truth = [exact_ids(index, q, 10) for q in queries]  # each query's nearest row dead: its walk starts worse
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(after, truth, strict=True)]) >= 0.97
    assert index.search(queries[0], 1)[0].row == moved
    # filtered searches scan exactly
    flt = Filter("/lib/sub2/")
    hits = index.search(queries[3], 10, flt)
    assert all(h.row.folder == "/lib/sub2" for h in hits) and len(hits) == 10


def test_the_graph_walk_leaves_out_what_is_staged_and_what_each_commit_kills() -> None:
    """Searches reuse the walk's parameters (its selector of live positions), which each change must renew."""
    vecs = clustered(3000, 32)
    rows = rows_for(vecs)
    index = CopyIndex(rows[:2000], vecs[:2000], graph_min_rows=1000)
    q = vecs[2500]
    before = [h.row.id for h in index.search(q, 5)]
    index.stage(rows[2000:], vecs[2000:])  # in the graph at once, searched from the commit
    assert index.graph is not None and index.graph.ntotal == 3000
    assert [h.row.id for h in index.search(q, 5)] == before
    index.commit()
    assert index.search(q, 1)[0].row == rows[2500]
    killed: set[str] = set()
    for _ in range(3):
        found = [h.row.id for h in index.search(q, 10)]
        assert not set(found) & killed and len(found) == 10
        killed.add(found[0])
        index.apply({}, {found[0]})
    assert index.dead == 3 and not {h.row.id for h in index.search(q, 10)} & killed


def test_dead_positions_are_compacted(tmp_path: Path) -> None:
    vecs = clustered(100, DIM)
    rows = rows_for(vecs)
    index = CopyIndex(rows, vecs)
    index.apply({}, {r.id for r in rows[:30]})
    assert index.dead == 0 and len(index.alive()) == 70, "30% dead is over the limit: compacted"
    assert index.search(vecs[50], 3)[0].row == rows[50]


def test_saved_copy_is_reused_by_the_next_process_and_stale_copies_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vecs = clustered(60, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        SearchCopy(store)
        store.upsert(rows[:50], vecs[:50], new=True)
        store.flush()
        folder = store.cache_folder()
    assert folder is not None and (folder / "stamp.json").is_file()

    def rebuilt_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
        calls: list[int] = []
        original = MilvusStore.rows_and_vectors

        def counting(self: MilvusStore) -> tuple[list[AssetRow], np.ndarray]:
            calls.append(1)
            return original(self)

        monkeypatch.setattr(MilvusStore, "rows_and_vectors", counting)
        return calls

    calls = rebuilt_copies(monkeypatch)
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        index = SearchCopy(store).index()
        assert len(index) == 50 and not calls, "the saved copy is loaded, not rebuilt"
        assert index.search(vecs[4], 1)[0].row == rows[4]

    # written without a copy being kept (a one-shot command): the generation moved on
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        store.upsert(rows[50:55], vecs[50:55], new=True)
        store.flush()
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        assert len(SearchCopy(store).index()) == 55 and len(calls) == 1

    # killed mid-run: rows written, never flushed by us (Milvus Lite persists them on close)
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        SearchCopy(store)
        store.upsert(rows[55:58], vecs[55:58], new=True)
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        assert len(SearchCopy(store).index()) == 58 and len(calls) == 2

    # written by another program (no generation change): the row count gives it away
    write_as_another_program(tmp_path / "lib.db", rows[58:], vecs[58:])
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        assert len(SearchCopy(store).index()) == 60 and len(calls) == 3
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        assert len(SearchCopy(store).index()) == 60 and len(calls) == 3, "the rebuilt copy was saved"


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: truncate(next(folder.glob("rows-*.arrow"))),
        lambda folder: truncate(folder / "vectors.f32"),
        lambda folder: (folder / "alive.npy").unlink(),
        lambda folder: (folder / "alive.npy").write_bytes(b"\x93NUMPY"),
    ],
    ids=["rows", "vectors", "alive-missing", "alive-truncated"],
)
def test_damaged_copy_is_rebuilt_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    vecs = clustered(30, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        SearchCopy(store)
        store.upsert(rows, vecs, new=True)
        store.flush()
        folder = store.cache_folder()
    assert folder is not None
    damage(folder)
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        index = SearchCopy(store).index()
        assert len(index) == 30 and index.search(vecs[9], 1)[0].row == rows[9]
    assert "unreadable" in caplog.text


def test_library_keeps_its_copy_through_index_and_remove(catalogue_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        report = lib.index(catalogue_dir)
        assert report.encoded == 60
        first = lib.search("a red mug", k=5)
    with Library(db, device="cpu", create=False) as lib, Library(db, device="cpu", search_copy=False) as milvus:
        assert lib.stats().search_copy == CopyStatus(CopyState.CURRENT, 60, graph=False)
        for query in ("a red mug", "a golden watch", "a blue chair on a wooden table"):
            ours = lib.search(query, k=8)
            assert [(r.path, round(r.score, 4)) for r in ours] == [
                (r.path, round(r.score, 4)) for r in milvus.search(query, k=8)
            ]
        assert [r.path for r in lib.search("a red mug", k=5)] == [r.path for r in first]
        gone = first[0].path
        assert lib.remove([gone]) == 1
        assert gone not in [r.path for r in lib.search("a red mug", k=10)]
        q = lib.query_vector("a red mug")[0]
        by_vector = lib.search(vector=q * 3.0, k=5)  # any length: normalised
        assert [r.path for r in by_vector] == [r.path for r in lib.search("a red mug", k=5)]
        assert lib.stats().search_copy == CopyStatus(CopyState.CURRENT, 59, graph=False)
    with Library(db, device="cpu", create=False) as lib:
        assert lib.stats().search_copy == CopyStatus(CopyState.CURRENT, 59, graph=False)
        assert len(lib.search("a red mug", k=100)) == 59


def test_library_from_before_generations_gets_its_copy_saved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vecs = clustered(40, DIM)
    rows = rows_for(vecs)
    lite(tmp_path).close()
    write_as_another_program(tmp_path / "lib.db", rows, vecs)  # as an AssetLens that kept no generation wrote them
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        assert store.count() == 40 and store.generation() == ""
    builds: list[int] = []
    original = MilvusStore.rows_and_vectors
    monkeypatch.setattr(MilvusStore, "rows_and_vectors", lambda self: builds.append(1) or original(self))
    for _ in range(2):
        with MilvusStore(str(tmp_path / "lib.db")) as store:
            assert SearchCopy(store).search(vecs[17], 1)[0].row == rows[17]
    assert builds == [1], "built once, then loaded"


def test_stats_tell_whether_the_saved_copy_is_current(tmp_path: Path) -> None:
    vecs = clustered(30, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        assert copy_status(store, store.count()) == CopyStatus(CopyState.NOT_SAVED)
        SearchCopy(store)
        store.upsert(rows[:20], vecs[:20], new=True)
        store.flush()
        assert copy_status(store, store.count()) == CopyStatus(CopyState.CURRENT, 20, graph=False)
    with MilvusStore(str(tmp_path / "lib.db")) as store:  # no copy kept by this writer
        store.upsert(rows[20:], vecs[20:], new=True)
        store.flush()
        assert copy_status(store, store.count()) == CopyStatus(CopyState.STALE, 20, graph=False)
        index = SearchCopy(store, graph_min_rows=25).index()
        assert index.graph is not None
        assert copy_status(store, store.count()) == CopyStatus(CopyState.CURRENT, 30, graph=True)


@pytest.mark.parametrize("graph_min_rows", [10_000, 500], ids=["exact", "graph"])
def test_a_saved_copy_reopens_mapped_with_the_same_rows_and_hits(tmp_path: Path, graph_min_rows: int) -> None:
    vecs = clustered(1200, DIM)
    rows = rows_for(vecs)
    index = CopyIndex(rows, vecs, graph_min_rows=graph_min_rows)
    touched = dataclasses.replace(rows[3], mtime=7.0, tags=("red",))
    index.apply({touched.id: (touched, vecs[3])}, {rows[4].id})  # a row changed in place, a dead position
    version = Version("generation", "seq 1")
    index.save(tmp_path / "copy", version)
    assert CopyIndex.load(tmp_path / "copy", Version("generation", "seq 2"), DIM, graph_min_rows) is None
    loaded = CopyIndex.load(tmp_path / "copy", version, DIM, graph_min_rows)
    assert loaded is not None
    mapped, count = loaded
    assert count == len(mapped) == 1199 and (mapped.graph is not None) == (graph_min_rows == 500)
    assert mapped.live_rows() == index.live_rows() == [*rows[:3], touched, *rows[5:]]
    for q in clustered(20, DIM, seed=5):
        for flt in (Filter(), Filter("/lib/sub3/"), Filter(tags=frozenset({"red"}))):
            ours = [(h.row, h.score) for h in mapped.search(q, 10, flt)]
            assert ours == [(h.row, h.score) for h in index.search(q, 10, flt)]
    assert [h.row for h in mapped.search(vecs[3], 5, Filter(tags=frozenset({"red"})))] == [touched]
    # the mapped index is read into memory before it grows (faiss cannot grow a mapped one)
    new = dataclasses.replace(rows[4], id="new", path="/lib/new.png")
    mapped.apply({new.id: (new, vecs[4])}, set())
    assert mapped.search(vecs[4], 1)[0].row == new and len(mapped) == 1200


def test_writes_join_the_graph_as_they_come_and_are_searched_from_the_flush(tmp_path: Path) -> None:
    vecs = clustered(1500, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        copy = SearchCopy(store, graph_min_rows=1000)
        for lo in range(0, 1500, 100):
            store.upsert(rows[lo : lo + 100], vecs[lo : lo + 100], new=True)
        index = copy.index()
        assert index.graph is not None and index.graph.ntotal == 1500, "the graph grew with the writes"
        assert len(index) == 0 and index.search(vecs[7], 5) == [], "nothing is searched before the flush"
        store.upsert([rows[7]], clustered(1, DIM, seed=3))  # written twice before the flush: the last write counts
        store.flush()
        assert len(index) == 1500 and index.search(vecs[1200], 1)[0].row == rows[1200]
        assert rows[7] not in [h.row for h in index.search(vecs[7], 3) if h.score > 0.999]


def test_a_writer_keeps_its_vectors_in_a_file_not_in_memory(tmp_path: Path) -> None:
    vecs = clustered(1200, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        folder = store.cache_folder()
        assert folder is not None
        spill = search_copy.spill_folder(folder)
        spill.mkdir(parents=True)
        (spill / ".vectors-killed.f32").write_bytes(b"\0" * 64)  # left by a writer that was killed
        copy = SearchCopy(store, graph_min_rows=1000)
        for lo in range(0, 1200, 200):
            store.upsert(rows[lo : lo + 200], vecs[lo : lo + 200], new=True)
        spilled = sorted(spill.glob(".vectors-*"))
        assert len(spilled) == 2, "the writer's vectors are in a file of their own before the first save"
        mine = next(p for p in spilled if p.name != ".vectors-killed.f32")
        np.testing.assert_array_equal(np.fromfile(mine, np.float32).reshape(-1, DIM), vecs)
        store.flush()
        assert list(spill.iterdir()) == [], "the save took the file and removed the leftover"
        np.testing.assert_array_equal(np.fromfile(folder / "vectors.f32", np.float32).reshape(-1, DIM), vecs)
        index = copy.index()
        assert index.graph is not None and index.graph.ntotal == 1200
        for q in clustered(10, DIM, seed=4):
            hits = index.search(q, 10)
            assert [h.row.id for h in hits] == exact_ids(index, q, 10)
            positions = [index.position[h.row.id] for h in hits]
            # rescored from the float32 vectors, not the graph's 8-bit codes
            np.testing.assert_allclose([h.score for h in hits], vecs[positions] @ q, rtol=0, atol=1e-6)


def test_a_save_writes_only_what_changed(tmp_path: Path) -> None:
    vecs = clustered(300, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        SearchCopy(store)
        store.upsert(rows[:200], vecs[:200], new=True)
        store.flush()
        folder = store.cache_folder()
        assert folder is not None

        def files() -> dict[str, int]:
            return {p.name: p.stat().st_ino for p in folder.iterdir()}

        first = files()
        store.upsert(rows[200:220], vecs[200:220], new=True)
        store.flush()
        second = files()
        assert second["vectors.f32"] == first["vectors.f32"], "new vectors are appended to the saved file"
        assert (folder / "vectors.f32").stat().st_size == 220 * DIM * 4
        old_parts = {k: v for k, v in first.items() if k.startswith("rows-")}
        assert old_parts.items() <= second.items(), "the rows saved before are linked, not written again"
        assert len([k for k in second if k.startswith("rows-")]) == len(old_parts) + 1
        store.delete([rows[0].id])
        store.flush()
        assert files()["vectors.f32"] == second["vectors.f32"], "a deletion leaves the vectors as saved"
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        index = SearchCopy(store).index()
        assert len(index) == 219 and rows[0] not in index.live_rows()


@pytest.mark.parametrize("graph_min_rows", [10_000, 500], ids=["exact", "graph"])
def test_writes_after_a_save_wait_beside_the_saved_index_until_there_are_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph_min_rows: int
) -> None:
    monkeypatch.setattr(search_copy, "EXTRA_MAX_ROWS", 150)
    vecs = clustered(1300, DIM)
    rows = rows_for(vecs)
    with lite(tmp_path) as store:
        SearchCopy(store, graph_min_rows=graph_min_rows)
        store.upsert(rows[:1000], vecs[:1000], new=True)
        store.flush()
        folder = store.cache_folder()
        assert folder is not None
        graph, order = folder / search_copy.INDEX_FILE, folder / search_copy.ORDER_FILE
        assert graph.is_file() == order.is_file() == (graph_min_rows == 500)
        saved = graph.stat().st_ino if graph.is_file() else None
        saved_order = order.stat().st_ino if order.is_file() else None
    moved = dataclasses.replace(rows[5], mtime=9.0)  # the same row written again with another vector

    def stamp() -> tuple[int, int]:
        saved_stamp = json.loads((folder / "stamp.json").read_text())
        return saved_stamp["positions"], saved_stamp["graph_rows"]

    def check(index: CopyIndex, count: int) -> None:
        assert len(index) == count and (index.graph is not None) == (graph_min_rows == 500)
        for q in clustered(20, DIM, seed=5):  # a walk as broad as the graph is exact: what is beside it is merged
            assert [h.row.id for h in index.search(q, 10, breadth=count)] == exact_ids(index, q, 10)
        assert index.search(vecs[1250], 1)[0].row == moved
        assert [h.row for h in index.search(vecs[5], 3) if h.score > 0.999] == []

    with MilvusStore(str(tmp_path / "lib.db")) as store:  # another process: the saved index is mapped
        copy = SearchCopy(store, graph_min_rows=graph_min_rows)
        store.upsert([*rows[1000:1100], moved], np.concatenate([vecs[1000:1100], vecs[1250:1251]]), new=True)
        store.flush()
        if saved is not None:
            assert graph.stat().st_ino == saved, "the saved graph is linked, not rewritten"
            assert order.stat().st_ino == saved_order, "and so is its order"
        assert stamp() == (1101, 1000 if saved else 0), "the new vectors wait beside the graph"
        check(copy.index(), 1100)
    with MilvusStore(str(tmp_path / "lib.db")) as store:  # read back with the vectors beside the index
        copy = SearchCopy(store, graph_min_rows=graph_min_rows)
        index = copy.index()
        check(index, 1100)
        store.upsert(rows[1100:1200], vecs[1100:1200], new=True)  # 201 beside it: folded into the index
        store.flush()
        if saved is not None:
            assert graph.stat().st_ino != saved and order.stat().st_ino != saved_order
            assert sorted(np.load(order).tolist()) == list(range(1201))
        assert stamp() == (1201, 1201 if saved else 0)
        check(index, 1200)
    with MilvusStore(str(tmp_path / "lib.db")) as store:
        check(SearchCopy(store, graph_min_rows=graph_min_rows).index(), 1200)


@pytest.mark.parametrize("same_vector_last", [False, True], ids=["two-new-vectors", "back-to-the-stored-vector"])
def test_one_id_twice_in_one_write_leaves_one_live_row_with_the_last_write(same_vector_last: bool) -> None:
    rows, vecs = make_rows(10), unit_vectors(10)
    index = CopyIndex(rows, vecs)
    first, last = dataclasses.replace(rows[3], mtime=7.0), dataclasses.replace(rows[3], mtime=9.0)
    new = unit_vectors(2, seed=5)
    second = vecs[3] if same_vector_last else new[1]
    index.stage([first, last], np.stack([new[0], second]))
    index.commit()
    assert len(index) == 10 and [r.id for r in index.live_rows()].count(rows[3].id) == 1
    ((row, vec),) = index.get([rows[3].id])
    assert row == last
    np.testing.assert_array_equal(vec, second)


def test_rows_changed_in_place_are_written_into_the_columns_once_they_are_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_copy, "CHANGED_MAX_ROWS", 10)
    vecs = clustered(60, DIM)
    rows = rows_for(vecs)
    index = CopyIndex(rows, vecs)
    tagged = [dataclasses.replace(row, tags=("red",), tagged="v1") for row in rows[:25]]
    index.apply({row.id: (row, vecs[i]) for i, row in enumerate(tagged[:5])}, set())  # five: kept beside
    index.apply({row.id: (row, vecs[i]) for i, row in enumerate(tagged)}, {rows[40].id})  # 25: written in
    want = [*tagged, *rows[25:40], *rows[41:]]
    assert index.live_rows() == want
    version = Version("generation", "seq 1")
    index.save(tmp_path / "copy", version)
    assert not (tmp_path / "copy" / "changed.arrow").exists()
    loaded = CopyIndex.load(tmp_path / "copy", version, DIM)
    assert loaded is not None and loaded[0].live_rows() == want
    assert {h.row.id for h in loaded[0].search(vecs[0], 60, Filter(tags=frozenset({"red"})))} == {
        row.id for row in tagged
    }
    assert list(index.untagged("v1")) == [*range(25, 40), *range(41, 60)]


def test_a_copy_saved_in_an_older_format_is_stale_and_rebuilt(tmp_path: Path) -> None:
    rows, vecs = make_rows(20), unit_vectors(20)
    with lite(tmp_path) as store:
        store.upsert(rows, vecs, new=True)
        store.flush()
        folder = store.cache_folder()
        assert folder is not None
        CopyIndex(rows, vecs).save(folder, Version.of_store(store))
        assert copy_status(store, 20) == CopyStatus(CopyState.CURRENT, 20, graph=False)
        stamp = json.loads((folder / "stamp.json").read_text())
        (folder / "stamp.json").write_text(json.dumps({**stamp, "format": 4}))  # vectors inside its faiss index
        assert CopyIndex.load(folder, Version.of_store(store), DIM) is None
        assert copy_status(store, 20) == CopyStatus(CopyState.STALE, 20, graph=False)
        copy = SearchCopy(store)
        assert copy.search(vecs[11], 1)[0].row == rows[11]
        assert json.loads((folder / "stamp.json").read_text())["format"] == search_copy.FORMAT, "saved again"


def test_a_saved_graph_keeps_its_entries_in_cluster_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vecs = clustered(3000, 32)  # the clusters' rows spread over every position
    rows = rows_for(vecs)
    index = CopyIndex(rows[:2500], vecs[:2500], graph_min_rows=500)
    queries = clustered(30, 32, seed=1)
    before = [[(h.row.id, h.score) for h in index.search(q, 10)] for q in queries]
    version = Version("generation", "seq 1")
    index.save(tmp_path / "copy", version)
    loaded = CopyIndex.load(tmp_path / "copy", version, 32, 500)
    assert loaded is not None
    mapped = loaded[0]
    order = np.load(tmp_path / "copy" / "order.npy")
    assert sorted(order.tolist()) == list(range(2500)) and order.tolist() != list(range(2500))

    def next_cosine(v: np.ndarray) -> float:  # of each entry with the next one
        return float(np.mean(np.sum(v[:-1] * v[1:], axis=1)))

    assert next_cosine(vecs[order]) > next_cosine(vecs[:2500]) + 0.3, "an entry's neighbours in memory are alike"
    assert [[(h.row.id, h.score) for h in mapped.search(q, 10)] for q in queries] == before
    # dead rows and rows that grow the reordered graph
    monkeypatch.setattr(search_copy, "EXTRA_MAX_ROWS", 100)
    dead = {b[0][0] for b in before}
    mapped.apply({r.id: (r, v) for r, v in zip(rows[2500:], vecs[2500:], strict=True)}, dead)
    assert mapped.graph.ntotal == 3000
    found = [[h.row.id for h in mapped.search(q, 10)] for q in queries]
    assert not {i for f in found for i in f} & dead
    truth = [exact_ids(mapped, q, 10) for q in queries]
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]) >= 0.97
    assert all(mapped.search(vecs[i], 1)[0].row == rows[i] for i in range(2500, 3000, 50))
    np.save(tmp_path / "copy" / "order.npy", np.zeros(2500, np.int64))  # not an order: the copy is rebuilt
    assert CopyIndex.load(tmp_path / "copy", version, 32, 500) is None


def test_a_graph_saved_in_position_order_is_read_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vecs = clustered(1500, DIM)
    rows = rows_for(vecs)
    index = CopyIndex(rows, vecs, graph_min_rows=500)
    queries = clustered(20, DIM, seed=3)
    before = [[(h.row.id, h.score) for h in index.search(q, 10)] for q in queries]
    version = Version("generation", "seq 1")
    with monkeypatch.context() as m:  # as format 5 saved it: entry i is position i
        m.setattr(CopyIndex, "_cluster_order", lambda self: None)
        index.save(tmp_path / "copy", version)
    stamp = json.loads((tmp_path / "copy" / "stamp.json").read_text())
    del stamp["ordered"]
    (tmp_path / "copy" / "stamp.json").write_text(json.dumps({**stamp, "format": 5}))
    (tmp_path / "copy" / "order.npy").unlink()
    loaded = CopyIndex.load(tmp_path / "copy", version, DIM, 500)
    assert loaded is not None
    assert [[(h.row.id, h.score) for h in loaded[0].search(q, 10)] for q in queries] == before


def test_rows_are_read_back_from_their_columns_as_written() -> None:
    rows = make_rows(40, "/lib")
    rows[3] = dataclasses.replace(rows[3], tags=("rood", "jam tangan emas"), tagged="f1", origin="generated")
    rows[7] = dataclasses.replace(rows[7], path="/lib/ünï/😀 x.png", filename="😀 x.png", folder="/lib/ünï", tags=("",))
    rows[9] = dataclasses.replace(rows[9], tags=("a",), mtime=-1.25, size=0)
    table = rows_table(rows)
    assert table_rows(table) == rows
    batch = table.to_batches()[0].slice(5, 30)  # offsets into buffers that start before the batch
    picked = np.array([29, 0, 2, 4, 2, 25], np.int64)
    assert RowColumns(batch).rows(picked) == [rows[5 + i] for i in picked.tolist()]
    assert RowColumns(batch).rows(np.array([], np.int64)) == []
    with_null = table.set_column(1, "path", pa.array([None] * 40, pa.large_string()))
    with pytest.raises(ValueError, match="empty values"):
        RowColumns(with_null.to_batches()[0])


def test_the_graph_widens_its_search_with_its_rows() -> None:
    assert [graph_breadth(n) for n in (1_000, 50_000, 100_000, 316_228, 1_000_000, 10_000_000)] == [
        64,
        64,
        64,
        80,
        96,
        128,
    ]
    vecs = clustered(3000, 32)
    index = CopyIndex(rows_for(vecs), vecs, graph_min_rows=1000)
    queries = clustered(50, 32, seed=1)
    truth = [exact_ids(index, q, 10) for q in queries]

    def recall(breadth: int | None) -> float:
        found = [[h.row.id for h in index.search(q, 10, breadth=breadth)] for q in queries]
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))

    assert recall(None) == recall(graph_breadth(3000)) >= 0.98
    assert recall(1) < recall(None)  # at least the limit: a breadth of one keeps ten candidates


def test_the_graph_rescores_only_the_best_candidates_of_its_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    vecs = clustered(3000, 32)
    index = CopyIndex(rows_for(vecs), vecs, graph_min_rows=1000)
    queries = clustered(50, 32, seed=1)
    truth = [exact_ids(index, q, 10) for q in queries]
    ids = [r.id for r in index.live_rows()]
    breadth = graph_breadth(3000)
    params = faiss.SearchParametersHNSW()
    params.efSearch = breadth
    walked = index.graph.search(queries, breadth, params=params)[1]  # the whole walk, each candidate rescored
    best = [w[np.argsort(-(vecs[w] @ q), kind="stable")[:10]] for w, q in zip(walked, queries, strict=True)]
    whole = [[ids[j] for j in b] for b in best]
    rescored: list[int] = []
    take = CopyIndex.vectors_at
    monkeypatch.setattr(CopyIndex, "vectors_at", lambda self, at: rescored.append(len(at)) or take(self, at))
    found = [[h.row.id for h in index.search(q, 10)] for q in queries]
    assert rescored == [20] * 50, f"twice the limit of the walk's {breadth} candidates"

    def recall(answers: list[list[str]]) -> float:
        return float(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(answers, truth, strict=True)]))

    assert recall(found) == recall(whole) >= 0.98


def test_the_vectorised_filter_keeps_what_matches_keeps() -> None:
    rng = np.random.default_rng(7)
    rows = [
        dataclasses.replace(
            row,
            width=int(rng.integers(1, 5)),
            height=int(rng.integers(1, 5)),
            mtime=float(rng.integers(0, 10)),
            tags=tuple(rng.choice(["red", "mug", "blue", "ünï"], size=int(rng.integers(0, 3)), replace=False)),
        )
        for row in make_rows(400, "/lib/fö_ld%er", groups=5, suffix=".JPG")
    ]
    rows[5:9] = [dataclasses.replace(r, filename=r.filename[:-4] + ".png", file_type="") for r in rows[5:9]]
    table = rows_table(rows[:150]).combine_chunks()
    table = table.__class__.from_batches([*table.to_batches(), *rows_table(rows[150:]).to_batches()])
    filters = [
        Filter(),
        Filter("/lib/fö_ld%er/sub2/"),
        Filter(None, "img_1"),
        Filter(orientation="landscape"),
        Filter(orientation="portrait", min_width=2),
        Filter(orientation="square", min_height=3),
        Filter(file_types=frozenset({"png"})),
        Filter(file_types=frozenset({"jpeg", "png"}), since=3.0, before=7.0),
        Filter(tags=frozenset({"red"})),
        Filter(tags=frozenset({"red", "mug"}), folder_prefix="/lib/fö_ld%er/sub1/"),
        Filter(tags=frozenset({"ünï"})),
    ]
    given = {f.name for flt in filters for f in dataclasses.fields(Filter) if getattr(flt, f.name) != f.default}
    assert given == {f.name for f in dataclasses.fields(Filter)}, "every condition a Filter has is tried"
    for flt in filters:
        expected = [flt.matches(r) for r in rows]
        assert flt.mask(table).tolist() == expected, flt
    assert 0 < sum(Filter(tags=frozenset({"red"})).mask(table)) < len(rows)


def test_a_one_shot_search_answers_from_a_current_copy_without_opening_the_collection(
    catalogue_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        lib.index(catalogue_dir)
    with Library(db, device="cpu", search_copy=False) as milvus:
        expected = [(r.path, round(r.score, 4)) for r in milvus.search("a red mug", k=5)]
        assert milvus.searched_by == "Milvus"
        like = [r.path for r in milvus.search(like=expected[0][0], k=5)]
        collapsed = [(e.hit.path, len(e.similar)) for e in milvus.search_collapsed("a red mug", k=3)]

    def milvus_asked(*args: object, **kwargs: object) -> None:
        raise AssertionError("Milvus was asked")

    with monkeypatch.context() as patched:
        # Milvus Lite opens (loads) a collection on its first describe (pymilvus' has_collection is one), count
        # or search
        asked = ("has_collection", "describe_collection", "get_collection_stats", "search", "query", "get")
        for name in (*asked, "load_collection"):
            patched.setattr(MilvusClient, name, milvus_asked)
        with Library(db, device="cpu", search_copy=SAVED_COPY) as lib:
            assert [(r.path, round(r.score, 4)) for r in lib.search("a red mug", k=5)] == expected
            assert lib.searched_by == "search copy"
            assert [r.path for r in lib.search(like=expected[0][0], k=5)] == like  # its vector from the copy too
            assert [(e.hit.path, len(e.similar)) for e in lib.search_collapsed("a red mug", k=3)] == collapsed
        code, out, err = run_main(capsys, "search", "a red mug", "--db", str(db), "--json", "-k", "5")
        assert code == 0, err
        assert [r["path"] for r in json.loads(out)] == [path for path, _ in expected]
    vecs = clustered(2, 64, seed=2)
    write_as_another_program(db, make_rows(2, "/elsewhere"), vecs)
    with Library(db, device="cpu", search_copy=SAVED_COPY) as lib:
        assert len(lib.search("a red mug", k=100)) == 62
        assert lib.searched_by == "Milvus", "a stale copy is not rebuilt for one query"
        assert lib.stats().search_copy.state is CopyState.STALE


def test_a_search_builds_the_rows_of_only_the_hits_a_result_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    vecs = clustered(300, DIM)
    rows = rows_for(vecs)
    for i in range(0, 300, 3):  # every third row a copy of the one after it: duplicates the result drops
        rows[i] = dataclasses.replace(rows[i], hash=rows[i + 1].hash)
    index = CopyIndex(rows[:200], vecs[:200])
    index.apply({r.id: (r, v) for r, v in zip(rows[200:], vecs[200:], strict=True)}, set())  # a second part
    built: list[int] = []
    read = RowColumns.rows
    monkeypatch.setattr(RowColumns, "rows", lambda self, at: built.extend(at.tolist()) or read(self, at))
    q = vecs[5] + 0.9 * vecs[250]
    q /= np.linalg.norm(q)
    hits = index.search(q, 28)
    assert len(hits) == 28 and built == [], "no row built for the candidates"
    results = shape_results(hits, k=10)
    assert len(built) == 10
    top = np.argsort(-(vecs.astype(np.float64) @ q), kind="stable").tolist()
    unique = [i for n, i in enumerate(top) if rows[i].hash not in {rows[j].hash for j in top[:n]}]
    assert [(r.path, r.hash, r.id) for r in results] == [(rows[i].path, rows[i].hash, rows[i].id) for i in unique[:10]]
    assert min(unique[:10]) < 200 <= max(unique[:10]), "hits from both parts"


def test_hits_keep_the_rows_of_their_search_through_later_writes() -> None:
    vecs = clustered(100, DIM)
    rows = rows_for(vecs)
    index = CopyIndex(rows, vecs)
    renamed = [dataclasses.replace(r, filename="renamed.png", hash=f"new{i}") for i, r in enumerate(rows[40:50])]
    index.apply({r.id: (r, vecs[40 + i]) for i, r in enumerate(renamed)}, set())  # same vectors: changed in place
    now = {r.hash: r for r in [*rows[:40], *renamed, *rows[50:]]}
    hits = index.search(vecs[40], 10)
    assert hits[0].hash == "new0" and all(h.hash in now for h in hits)
    index.apply({}, {r.id for r in rows[:35]})  # a third deleted: compacted, every position moves
    assert index.dead == 0 and len(index) == 65
    assert [h.row for h in hits] == [now[h.hash] for h in hits], "the rows as they were when searched"
    assert index.search(vecs[40], 1)[0].row == renamed[0]


def test_scores_are_the_inner_products() -> None:
    vecs = clustered(1000, DIM)
    mapped = vecs.copy()
    mapped.setflags(write=False)
    q = clustered(1, DIM, seed=3)[0]
    np.testing.assert_allclose(CopyIndex._scores(mapped, q), vecs.astype(np.float64) @ q, atol=1e-5)
    np.testing.assert_allclose(CopyIndex._scores(vecs[::2], q[None][0]), vecs[::2] @ q, atol=1e-5)
    assert CopyIndex._scores(vecs[:0], q).shape == (0,)
