"""Faults in the library's own files: a full disk, damaged Milvus Lite files, a read-only library,
a write by another program, and collection metadata of another version.

Full disks are real: small tmpfs mounts (the tests run as root; they skip, saying why, where mounting
is not allowed). Read-only libraries are real too: file modes that the ``assetlens`` subprocess is held
to (``cli_process.DROP_DAC``), or a read-only bind mount.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_process import assert_no_traceback, assert_one_sentence, needs_permissions, run_cli, warnings_in
from helpers import DIM, rows_and_vectors, write_as_another_program
from pymilvus import MilvusClient

from assetlens.engine.errors import LibraryDamagedError, LibraryVersionError, ReadOnlyLibraryError
from assetlens.engine.library import Library
from assetlens.engine.search_copy import CopyState, CopyStatus, SearchCopy, copy_status
from assetlens.engine.store import CACHE_DIR, META_PROPERTY, SCHEMA_VERSION, CollectionMeta, MilvusStore

pytestmark = [pytest.mark.store]

COLLECTION = "assets"
PARTITION = Path("collections") / COLLECTION / "partitions" / "_default"


@contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` for the block."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"a small tmpfs cannot be mounted here ({done.stderr.decode(errors='replace').strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path) -> None:
    """Use up every free byte of the filesystem holding ``disk``."""
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def two_segment_store(db: Path) -> tuple[list, np.ndarray]:
    """A Milvus Lite collection of 20 rows in two flushed segments."""
    rows, vecs = rows_and_vectors(20)
    with MilvusStore(str(db), collection=COLLECTION) as store:
        store.ensure("m:fp32:abc", "demo", "fp32", DIM)
        for part in (slice(0, 10), slice(10, 20)):
            store.upsert(rows[part], vecs[part], new=True)
            store.flush()
    return rows, vecs


def files(db: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(db)), p.stat().st_size) for p in db.rglob("*") if p.is_file())


# -- collection metadata ------------------------------------------------------------------


def set_meta(db: Path, fields: dict[str, object]) -> None:
    client = MilvusClient(str(db))
    client.alter_collection_properties(COLLECTION, properties={META_PROPERTY: json.dumps(fields)})
    client.close()


META = {"model_id": "m:fp32:abc", "model_name": "demo", "precision": "fp32", "dim": DIM, "index_type": "FLAT"}


@pytest.mark.slow
@pytest.mark.e2e
def test_metadata_of_a_newer_version_is_refused_in_one_sentence(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    two_segment_store(db)
    set_meta(db, {**META, "schema_version": 99})
    newer = rf"newer AssetLens \(metadata version 99, this one reads up to {SCHEMA_VERSION}\)"
    with MilvusStore(str(db), collection=COLLECTION) as store, pytest.raises(LibraryVersionError, match=newer):
        store.meta()
    assert_one_sentence(run_cli("stats", "--db", db), 1, "was written by a newer AssetLens")


def test_metadata_keys_this_version_does_not_know_are_ignored(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    two_segment_store(db)
    set_meta(db, {**META, "schema_version": SCHEMA_VERSION, "colour_space": "srgb", "tags": [1, 2]})
    with MilvusStore(str(db), collection=COLLECTION) as store:
        assert store.meta() == CollectionMeta("m:fp32:abc", "demo", "fp32", DIM, "FLAT", SCHEMA_VERSION)
        assert store.count() == 20


@pytest.mark.unit
def test_metadata_without_a_version_is_migrated_and_incomplete_metadata_is_named() -> None:
    old = {k: v for k, v in META.items() if k != "index_type"}
    migrated = CollectionMeta.from_property(json.dumps(old), "collection c")
    assert migrated == CollectionMeta("m:fp32:abc", "demo", "fp32", DIM, "FLAT", SCHEMA_VERSION)
    assert CollectionMeta.from_property(migrated.to_property(), "collection c") == migrated
    with pytest.raises(LibraryDamagedError, match="lacks dim, index_type, model_id"):
        CollectionMeta.from_property(json.dumps({"model_name": "demo", "precision": "fp32", "schema_version": 1}), "c")


# -- damaged files --------------------------------------------------------------------------


def truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(100)


def remove_manifests(collection: Path) -> None:
    os.remove(collection / "manifest.json")
    os.remove(collection / "manifest.json.prev")


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated segment": (
        lambda c: truncate(c / "partitions/_default/data/data_000001_000010.parquet"),
        "segment partitions/_default/data/data_000001_000010.parquet is truncated or overwritten",
    ),
    "deleted segment": (
        lambda c: os.remove(c / "partitions/_default/data/data_000011_000020.parquet"),
        "segment partitions/_default/data/data_000011_000020.parquet is missing",
    ),
    "deleted schema.json": (lambda c: os.remove(c / "schema.json"), "its schema.json is missing"),
    "deleted manifest.json": (lambda c: os.remove(c / "manifest.json"), "manifest.json is missing"),
    "deleted manifests": (remove_manifests, "manifest.json is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_library_is_named_and_left_as_it_is(tmp_path: Path, damage: str) -> None:
    """Milvus Lite opens each of these damages without a word (reading the collection as empty or
    smaller, deleting segments it no longer finds in its manifest) or fails with a traceback."""
    db = tmp_path / "lib.db"
    two_segment_store(db)
    make, phrase = DAMAGE[damage]
    make(db / "collections" / COLLECTION)
    before = files(db)
    with pytest.raises(LibraryDamagedError, match=f"The library {db} is damaged .*{phrase}.*--rebuild"):
        MilvusStore(str(db), collection=COLLECTION, create=False)
    checkup = Library.check(db, collection=COLLECTION)
    assert checkup.damaged and any(phrase in f.text for f in checkup.findings)
    assert files(db) == before, "nothing was changed"


def test_an_unreadable_vector_index_is_rebuilt_from_its_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Index files are derived and written in place: a run stopped while writing one leaves it truncated."""
    db = tmp_path / "lib.db"
    rows, vecs = two_segment_store(db)
    idx = db / PARTITION / "indexes/data_000011_000020.vector.flat.idx"
    truncate(idx)
    checkup = Library.check(db, collection=COLLECTION)
    assert checkup.damaged and checkup.findings[-1].text == (
        f"The vector index {idx.relative_to(db)} is unreadable; the next command rebuilds it."
    )
    with MilvusStore(str(db), collection=COLLECTION, create=False) as store:
        hits = store.search(vecs[[4, 15]], 1)
        assert [h[0].row for h in hits] == [rows[4], rows[15]]
    assert np.load(idx).shape == (10, DIM), "rebuilt and saved again"
    assert [r.getMessage() for r in caplog.records if "vector index" in r.getMessage()] == [
        f"The vector index {idx.name} was unreadable; it is rebuilt from its segment."
    ]
    assert not Library.check(db, collection=COLLECTION).damaged


@pytest.mark.slow
@pytest.mark.e2e
def test_doctor_and_stats_on_a_damaged_library(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    two_segment_store(db)
    healthy = run_cli("doctor", "--db", db)
    assert healthy.returncode == 0 and "All 20 rows can be read." in healthy.stdout, healthy.stdout
    assert healthy.stdout.strip().endswith("healthy")
    DAMAGE["deleted schema.json"][0](db / "collections" / COLLECTION)
    assert_one_sentence(run_cli("stats", "--db", db), 1, "collection assets: its schema.json is missing")
    sick = run_cli("doctor", "--db", db)
    assert_no_traceback(sick)
    assert sick.returncode == 1 and "DAMAGED: Collection assets: its schema.json is missing." in sick.stdout


def vectors_by_path(lib: Library) -> dict[str, np.ndarray]:
    rows = list(lib.store.rows())
    return {r.path: np.asarray(v) for r, v in lib.store.get([r.id for r in rows], with_vectors=True)}


def test_rebuild_reuses_every_readable_vector_and_encodes_the_rest(tmp_path: Path, catalogue_dir: Path) -> None:
    db = tmp_path / "lib.db"
    with Library(db, model="demo") as lib:
        lib.index(catalogue_dir / "watch")  # the first segment
        lib.index(catalogue_dir)
        before = vectors_by_path(lib)
    first = sorted((db / PARTITION / "data").glob("*.parquet"))[0]
    lost = pq.read_metadata(first).num_rows
    assert 0 < lost < len(before) == 60
    truncate(first)

    rebuilt = Library.rebuild(catalogue_dir, db=db)

    assert rebuilt.vectors_reused and rebuilt.restored == 60 - lost
    assert rebuilt.index.encoded == lost and rebuilt.unreadable == [str(first.relative_to(db / "collections/assets"))]
    assert rebuilt.aside is not None and (rebuilt.aside / "partitions/_default/data" / first.name).is_file()
    with Library(db) as lib:
        after = vectors_by_path(lib)
        assert lib.stats().count == 60 and after.keys() == before.keys()
        for path, vec in before.items():
            np.testing.assert_allclose(after[path], vec, atol=1e-5)
        assert Library.check(db).damaged is False


def test_rebuild_without_the_schema_encodes_everything_again(tmp_path: Path, catalogue_dir: Path) -> None:
    """The lost schema.json held the model of the old vectors: they are not reused under a guess."""
    db = tmp_path / "lib.db"
    with Library(db, model="demo") as lib:
        lib.index(catalogue_dir)
    os.remove(db / "collections" / COLLECTION / "schema.json")
    rebuilt = Library.rebuild(catalogue_dir, db=db, model="demo")
    assert not rebuilt.vectors_reused and rebuilt.restored == 0 and rebuilt.index.encoded == 60
    with Library(db) as lib:
        assert lib.stats().count == 60 and lib.search("a watch", k=1)[0].path.startswith(str(catalogue_dir))


# -- a full disk ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
def test_a_full_disk_ends_the_run_in_one_sentence_and_keeps_what_was_written(
    tmp_path: Path, catalogue_dir: Path
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        db = disk / "lib.db"
        first = run_cli("index", catalogue_dir / "watch", "--db", db, "--model", "demo")
        assert first.returncode == 0, first.stderr
        kept = len(list((catalogue_dir / "watch").iterdir()))
        fill(disk)

        full = run_cli("index", catalogue_dir, "--db", db)

        assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
        lines = [line for line in full.stderr.splitlines() if not line.startswith("model ")]
        assert len(lines) == 1 and lines[0].startswith("error: The disk holding the library"), full.stderr
        assert "is full; everything written before is kept" in lines[0]
        found = run_cli("search", "a watch", "--db", db, "--json", "-k", "100")
        assert found.returncode == 0, found.stderr
        assert sorted(Path(r["path"]).parent.name for r in json.loads(found.stdout)) == ["watch"] * kept


def test_a_search_copy_that_cannot_be_saved_is_a_warning(
    tmp_path: Path, catalogue_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The Milvus Lite folder has room; the folder of its search copy is a full filesystem of its own."""
    db = tmp_path / "lib.db"
    with Library(db, model="demo") as lib:
        lib.index(catalogue_dir / "watch")
    shutil.rmtree(db / CACHE_DIR)
    with small_disk(db / CACHE_DIR, "64k") as disk:
        fill(disk)
        with Library(db) as lib:
            report = lib.index(catalogue_dir)
            assert report.encoded == 60 - len(list((catalogue_dir / "watch").iterdir()))
            assert lib.search("a watch", k=100)[59].rank == 60  # the copy in memory holds every row
            assert lib.stats().search_copy == CopyStatus(CopyState.NOT_SAVED)
    saved = [r.getMessage() for r in caplog.records if "Could not save the search copy" in r.getMessage()]
    assert len(saved) == 1 and "No space left on device" in saved[0]
    with Library(db) as lib:  # rebuilt, then saved, where there is room
        assert len(lib.search("a watch", k=100)) == 60
        assert lib.stats().search_copy == CopyStatus(CopyState.CURRENT, 60, graph=False)


# -- a read-only library ----------------------------------------------------------------------


def chmod_read_only(db: Path) -> Callable[[], None]:
    """``chmod -R a-w``; returns how to undo it."""
    modes = {p: p.stat().st_mode for p in [db, *db.rglob("*")]}
    for p in sorted(modes, reverse=True):  # children first: a read-only folder cannot be changed inside
        os.chmod(p, modes[p] & ~0o222)

    def undo() -> None:
        for p, mode in modes.items():
            os.chmod(p, mode)

    return undo


def bind_read_only(db: Path) -> Callable[[], None]:
    """A read-only bind mount of the folder over itself; returns how to undo it."""
    done = subprocess.run(["mount", "--bind", str(db), str(db)], capture_output=True)
    if done.returncode:
        pytest.skip(f"a bind mount is not allowed here ({done.stderr.decode(errors='replace').strip()})")
    subprocess.run(["mount", "-o", "remount,ro,bind", str(db)], check=True)

    def undo() -> None:
        subprocess.run(["umount", "-l", str(db)], check=True)

    return undo


@needs_permissions
@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("make_read_only", [chmod_read_only, bind_read_only], ids=["chmod", "bind-mount"])
def test_a_read_only_library_can_be_searched_and_counted(
    tmp_path: Path, catalogue_dir: Path, make_read_only: Callable[[Path], Callable[[], None]]
) -> None:
    db = tmp_path / "lib.db"
    with Library(db, model="demo") as lib:
        lib.index(catalogue_dir)
    before = files(db)
    undo = make_read_only(db)
    try:
        found = run_cli("search", "a red watch", "--db", db, "--json", "-k", "3")
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout)) == 3
        assert warnings_in(found.stderr) == [
            f"warning: The library {db} is read-only: searching it without a lock and saving no search copy."
        ]
        stats = run_cli("stats", "--db", db, "--json")
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["count"] == 60 and json.loads(stats.stdout)["read_only"] is True
        assert json.loads(stats.stdout)["search_copy"] == {"state": "current", "rows": 60, "graph": False}
        assert_one_sentence(run_cli("index", catalogue_dir, "--db", db), 1, "is read-only; searching and stats work")
        assert files(db) == before, "no lock, no search copy, nothing written"
    finally:
        undo()


def test_writes_to_a_read_only_store_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    rows, _ = two_segment_store(db)
    undo = bind_read_only(db)
    try:
        with MilvusStore(str(db), collection=COLLECTION) as store:
            assert store.read_only and store.count() == 20
            with pytest.raises(ReadOnlyLibraryError, match="is read-only"):
                store.delete([rows[0].id])
            assert store.count() == 20
    finally:
        undo()


# -- a write by another program ---------------------------------------------------------------


def test_a_write_by_another_program_that_keeps_the_count_makes_the_copy_stale(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    rows, vecs = rows_and_vectors(20)
    with MilvusStore(str(db), collection=COLLECTION) as store:
        SearchCopy(store)
        store.ensure("m:fp32:abc", "demo", "fp32", DIM)
        store.upsert(rows, vecs, new=True)
        store.flush()
        assert copy_status(store, 20) == CopyStatus(CopyState.CURRENT, 20, graph=False)
    changed = -vecs[3]
    write_as_another_program(db, rows[3:4], changed[None], COLLECTION)
    with MilvusStore(str(db), collection=COLLECTION) as store:
        assert store.count() == 20
        assert copy_status(store, 20) == CopyStatus(CopyState.STALE, 20, graph=False)
        hit = SearchCopy(store).search(changed, 1)[0]
        assert hit.row.id == rows[3].id and hit.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
@pytest.mark.e2e
def test_a_library_in_use_is_reported_as_in_use_not_as_damaged(tmp_path: Path) -> None:
    """A writer's files change under it (a flush lists a segment before the old ones go): they are not
    checked while it holds the lock."""
    db = tmp_path / "lib.db"
    two_segment_store(db)
    with MilvusStore(str(db), collection=COLLECTION) as store:
        assert store.count() == 20
        os.rename(db / PARTITION / "data/data_000011_000020.parquet", tmp_path / "moved.parquet")
        try:
            assert_one_sentence(run_cli("stats", "--db", db), 1, "is in use by another AssetLens process")
            checked = run_cli("doctor", "--db", db)
            assert checked.returncode == 1 and "in use by another AssetLens process" in checked.stdout
            assert "missing" not in checked.stdout, checked.stdout
        finally:
            os.rename(tmp_path / "moved.parquet", db / PARTITION / "data/data_000011_000020.parquet")


@pytest.mark.server
@pytest.mark.slow
def test_doctor_on_a_server_collection(server_uri: str) -> None:
    rows, vecs = rows_and_vectors(12)
    with MilvusStore(server_uri, collection=COLLECTION) as store:
        store.ensure("m:fp32:abc", "demo", "fp32", DIM)
        store.upsert(rows, vecs)
    checkup = Library.check(uri=server_uri, collection=COLLECTION)
    assert not checkup.damaged, checkup.findings
    assert [f.text for f in checkup.findings] == [
        f"Collection {COLLECTION} holds {DIM}-d embeddings of demo.",
        "All 12 rows can be read.",
        "Its vector index answers a search.",
    ]
