"""kill -9 in the middle of an index run, then run it again: the library ends exactly as if the run had
never been interrupted (same rows, same vectors, no duplicates, nothing lost, nothing half-written).

The index runs are real ``assetlens index`` subprocesses, killed with SIGKILL from the test. To kill
them at a chosen point rather than a lucky one, the subprocess wraps one call so that it stops there
and says so; a store-level test kills a writer at arbitrary moments, mid-write included.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_process import Backend, assert_no_traceback, cli_env, run_cli
from helpers import Snapshot, library_snapshot

from assetlens.engine.library import Library

pytestmark = [pytest.mark.e2e, pytest.mark.store, pytest.mark.slow]

MODEL = "demo"
BATCH = 8
DEADLINE_S = 300.0

# ``assetlens ARGV...`` that pauses, once, where the test kills it:
#   "upsert:N"      after writing the first half of the N-th batch of rows;
#   "create_index"  after creating the collection, before creating its vector index;
#   "delete"        before deleting rows (a moved file's old row).
# It touches MARKER when it got there, then waits to be killed.
PAUSING_CLI = """
import sys, threading
from pathlib import Path
from pymilvus import MilvusClient
from assetlens.cli import main
from assetlens.engine.store import MilvusStore

marker, where = Path(sys.argv[1]), sys.argv[2]

def pause():
    marker.touch()
    threading.Event().wait()

if where == "create_index":
    MilvusClient.create_index = lambda self, *args, **kwargs: pause()
elif where == "delete":
    delete = MilvusStore.delete

    def pausing_delete(self, ids):
        ids = list(ids)
        if ids:
            pause()
        return delete(self, ids)

    MilvusStore.delete = pausing_delete
else:
    stop, upsert, calls = int(where.split(":")[1]), MilvusStore.upsert, []

    def pausing_upsert(self, rows, vectors, new=False):
        if rows:
            calls.append(len(rows))
        if rows and len(calls) == stop:
            upsert(self, rows[: len(rows) // 2], vectors[: len(rows) // 2], new=new)
            pause()
            new = False  # the first half is stored now: the rest of this batch overwrites it
        upsert(self, rows, vectors, new=new)

    MilvusStore.upsert = pausing_upsert
sys.exit(main(sys.argv[3:]))
"""


def assert_part_of(snap: Snapshot, reference: Snapshot) -> None:
    """Each row in ``snap`` is the reference's row for that path, whole: metadata and vector."""
    assert set(snap) <= set(reference)
    for path, (row, vec) in snap.items():
        assert row == reference[path][0]
        np.testing.assert_allclose(vec, reference[path][1], atol=1e-5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, catalogue_dir: Path) -> Snapshot:
    """The catalogue indexed by one uninterrupted run."""
    db = str(tmp_path_factory.mktemp("reference") / "lib.db")
    with Library(db, model=MODEL, device="cpu") as lib:
        report = lib.index(catalogue_dir, batch_size=BATCH)
    assert report.encoded == 60 and not report.failed
    return library_snapshot(db)


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """``python -c CODE ARGS`` started in the background, its output piped back as text."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when_paused(argv: list[str], where: str, marker: Path) -> None:
    """Run the pausing CLI, SIGKILL it once it has paused at ``where``."""
    proc = python(PAUSING_CLI, str(marker), where, *argv)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the index run never reached {where}: {proc.poll()=}"
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert "Traceback" not in err, err


def test_kill_mid_batch_then_rerun(backend: Backend, catalogue_dir: Path, reference: Snapshot, tmp_path: Path) -> None:
    argv = ["index", str(catalogue_dir), *backend.args, "--model", MODEL, "--device", "cpu", "--batch-size", str(BATCH)]
    kill_when_paused(argv, "upsert:3", tmp_path / "paused")

    # What survived the kill: two whole batches and half of the third, every row whole.
    partial = library_snapshot(backend.uri)
    assert len(partial) == 2 * BATCH + BATCH // 2
    assert_part_of(partial, reference)

    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    done = len(partial)
    assert (
        f"{60 - done} indexed, {done} unchanged, 0 moved or copied (vector reused), "
        "0 touched (metadata updated), 0 failed" in result.stdout
    )
    final = library_snapshot(backend.uri)
    assert set(final) == set(reference)
    assert_part_of(final, reference)


def test_kill_between_creating_the_collection_and_its_index(
    backend: Backend, catalogue_dir: Path, reference: Snapshot, tmp_path: Path
) -> None:
    argv = ["index", str(catalogue_dir), *backend.args, "--model", MODEL, "--device", "cpu"]
    kill_when_paused(argv, "create_index", tmp_path / "paused")

    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    assert "60 indexed" in result.stdout
    final = library_snapshot(backend.uri)
    assert set(final) == set(reference)
    assert_part_of(final, reference)
    hit = run_cli("search", "a red mug", *backend.args, "--device", "cpu", "-k", "1", "--json")
    assert hit.returncode == 0, hit.stderr
    assert json.loads(hit.stdout)[0]["path"] in reference


def test_kill_while_a_moved_file_is_recorded(backend: Backend, catalogue_dir: Path, tmp_path: Path) -> None:
    """A moved file's row moves to its new path (old row deleted, new one written): killed in between,
    the rerun still ends as an uninterrupted run would, with no stale row left for --prune."""
    photos = tmp_path / "photos"
    shutil.copytree(catalogue_dir, photos)
    argv = ["index", str(photos), *backend.args, "--model", MODEL, "--device", "cpu"]
    assert run_cli(*argv).returncode == 0
    moved = sorted(photos.rglob("*.jpg"))[0]
    moved.rename(moved.with_name("moved-" + moved.name))
    kill_when_paused(argv, "delete", tmp_path / "paused")

    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stdout and "missing" not in result.stdout
    uninterrupted = str(tmp_path / "uninterrupted.db")
    with Library(uninterrupted, model=MODEL, device="cpu") as lib:
        lib.index(photos)
    expected = library_snapshot(uninterrupted)
    final = library_snapshot(backend.uri)
    assert set(final) == set(expected)
    assert_part_of(final, expected)


# A writer that upserts batches of rows forever; a row's vector is a function of its path and version
# (its mtime), so a row can be checked to be whole. After each upsert returns it prints
# "VERSION KEY KEY ...": what is acknowledged, and so must survive a kill.
WRITER = """
import sys
import numpy as np
from assetlens.engine.store import MilvusStore
sys.path.insert(0, sys.argv[3])
from helpers import asset_row
from test_crash_safety import DIM, KEYS, row_vector

uri, first = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(first)
with MilvusStore(uri) as store:
    store.ensure("crash-test", "crash-test", "fp32", DIM)
    for version in range(first, first + 100000):
        keys = sorted({int(k) for k in rng.integers(0, KEYS, 40)})
        rows = [asset_row(f"/p/{k}.jpg", size=k, mtime=float(version)) for k in keys]
        store.upsert(rows, np.stack([row_vector(k, version) for k in keys]))
        print(version, *keys, flush=True)
"""
DIM = 32
KEYS = 400


def row_vector(key: int, version: int) -> np.ndarray:
    vec = np.random.default_rng([key, version]).normal(size=DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def test_writer_killed_at_arbitrary_moments_leaves_only_whole_acknowledged_rows(tmp_path: Path) -> None:
    """Milvus Lite writes in this process: a kill can land mid-write. Acknowledged rows survive, whole."""
    db = str(tmp_path / "lib.db")
    moments = random.Random(7)
    acknowledged: dict[int, int] = {}  # key -> latest acknowledged version
    for run in range(5):
        proc = python(WRITER, db, str(run * 100000), str(Path(__file__).parent))
        assert proc.stdout is not None
        first = proc.stdout.readline()  # one batch is in
        time.sleep(moments.uniform(0.0, 0.5))
        proc.kill()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        for line in (first + out).splitlines(keepends=True):
            if line.endswith("\n"):  # a line cut by the kill acknowledges nothing
                version, *keys = map(int, line.split())
                acknowledged.update(dict.fromkeys(keys, version))

        found = {row.size: (row, vec) for row, vec in library_snapshot(db).values()}
        for key, (row, vec) in found.items():  # every row whole, acknowledged or not
            np.testing.assert_allclose(vec, row_vector(key, int(row.mtime)), atol=1e-6)
        for key, version in acknowledged.items():  # a later, unacknowledged write may have landed too
            assert found[key][0].mtime >= version
