"""``Library.watch`` and ``assetlens index --watch``: a real watcher on a real folder, driven by real file
operations; every wait polls the library (or the command's output) against a deadline."""

from __future__ import annotations

import io
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from app_driver import finish_indexing, literal, start
from cli_process import ROOT, cli_env

from assetlens.catalogue import Item, render
from assetlens.engine.errors import UsageError
from assetlens.engine.indexer import IndexReport, file_digest
from assetlens.engine.library import Library
from assetlens.engine.store import AssetRow
from assetlens.engine.watch import Changes, WatchBatch, Watcher, watched

pytestmark = [pytest.mark.store, pytest.mark.slow]

DEADLINE_S = 120.0
DEBOUNCE_S = 0.1


def picture(path: Path, color: str, seed: int = 0) -> bytes:
    """Write a product shot to ``path`` (made by the caller's hand, not the watcher's); its bytes."""
    buf = io.BytesIO()
    render(Item("mug", color, "wooden table"), size=96, seed=seed).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def wait_for(check: Callable[[], bool], what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert alive(), f"the watcher ended before: {what}"
        assert time.monotonic() < deadline, f"the watcher never got to: {what}"
        time.sleep(0.05)


@dataclass
class Watching:
    """A library watching ``folder`` in a thread; ``batches`` are the reports it has given."""

    lib: Library
    folder: Path
    thread: threading.Thread
    stop: threading.Event
    ready: list[IndexReport] = field(default_factory=list)
    batches: list[WatchBatch] = field(default_factory=list)

    def rows(self) -> dict[str, AssetRow]:
        return {row.path: row for row in self.lib.store.rows()}

    def vector(self, path: Path) -> np.ndarray:
        row = self.rows()[str(path)]
        ((_, vec),) = self.lib.store.get([row.id], with_vectors=True)
        assert vec is not None
        return vec

    def until(self, check: Callable[[dict[str, AssetRow]], bool], what: str) -> dict[str, AssetRow]:
        """The rows as read when ``check`` first held (a later read may already show the next batch)."""
        read: list[dict[str, AssetRow]] = []

        def holds() -> bool:
            read[:] = [self.rows()]
            return check(read[0])

        wait_for(holds, what, self.thread.is_alive)
        return read[0]

    def batch_with(self, check: Callable[[WatchBatch], bool], what: str) -> WatchBatch:
        wait_for(lambda: any(check(b) for b in list(self.batches)), what, self.thread.is_alive)
        return next(b for b in list(self.batches) if check(b))


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[Watching]:
    """``photos/`` with red.png and blue.png, indexed and then watched; the watcher is stopped after the test
    and must have ended."""
    folder = tmp_path / "photos"
    folder.mkdir()
    picture(folder / "red.png", "red")
    picture(folder / "blue.png", "blue")
    lib = Library(tmp_path / "lib.db", model="demo", device="cpu")
    stop = threading.Event()
    w = Watching(lib, folder, threading.Thread(target=lambda: None), stop)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            lib.watch(folder, stop=stop, on_batch=w.batches.append, on_ready=w.ready.append, debounce_s=DEBOUNCE_S)
        except BaseException as exc:
            errors.append(exc)

    w.thread = threading.Thread(target=run, name="watch")
    w.thread.start()
    try:
        wait_for(lambda: bool(w.ready) or not w.thread.is_alive(), "the end of the first pass")
        assert w.ready and w.ready[0].encoded == 2, (w.ready, errors)
        yield w
    finally:
        stop.set()
        w.thread.join(timeout=DEADLINE_S)
        lib.close()
    assert not w.thread.is_alive(), "stop did not end the watch"
    assert errors == []


def test_files_created_changed_moved_deleted_and_hidden(watching: Watching) -> None:
    folder = watching.folder
    red, blue, green = folder / "red.png", folder / "blue.png", folder / "green.png"
    red_vector = watching.vector(red)

    green_bytes = picture(green, "green")
    rows = watching.until(lambda r: str(green) in r, "a new file")
    assert rows[str(green)].hash == file_digest(green_bytes)
    assert watching.batch_with(lambda b: str(green) in b.added, "the new file's report").encoded == 1

    changed = picture(green, "yellow", seed=5)
    watching.until(lambda r: r[str(green)].hash == file_digest(changed), "a changed file")
    assert watching.batch_with(lambda b: str(green) in b.updated, "the change's report").encoded == 1

    moved_to = folder / "kept" / "red-renamed.png"
    moved_to.parent.mkdir()
    red.rename(moved_to)
    rows = watching.until(lambda r: str(moved_to) in r and str(red) not in r, "a moved file")
    move = watching.batch_with(lambda b: (str(red), str(moved_to)) in b.moved, "the move's report")
    assert move.encoded == 0 and move.added == () and move.removed == ()
    assert np.array_equal(watching.vector(moved_to), red_vector)

    (folder / ".hidden.png").write_bytes(green_bytes)
    (folder / "._resource.png").write_bytes(green_bytes)
    blue.unlink()
    rows = watching.until(lambda r: str(blue) not in r, "a deleted file")
    assert watching.batch_with(lambda b: str(blue) in b.removed, "the deletion's report").encoded == 0
    assert sorted(rows) == sorted([str(green), str(moved_to)])
    assert watching.lib.stats().count == 2


def test_folders_created_moved_and_deleted(watching: Watching) -> None:
    folder = watching.folder
    shoots = folder / "shoots" / "day1"
    shoots.mkdir(parents=True)
    picture(shoots / "a.png", "green", seed=1)
    picture(shoots / "b.png", "black", seed=2)
    (shoots / "notes.txt").write_text("not an image")
    rows = watching.until(lambda r: len(r) == 4, "a new sub-folder's images")
    assert sorted(rows) == sorted(
        str(p) for p in (folder / "red.png", folder / "blue.png", shoots / "a.png", shoots / "b.png")
    )
    vectors = {name: watching.vector(shoots / name) for name in ("a.png", "b.png")}

    archive = folder / "archive"
    (folder / "shoots").rename(archive)
    moved = archive / "day1"
    rows = watching.until(lambda r: str(moved / "a.png") in r and str(shoots / "a.png") not in r, "a moved folder")
    assert sorted(p for p in rows if p.startswith(str(archive))) == [str(moved / "a.png"), str(moved / "b.png")]
    assert not [p for p in rows if p.startswith(str(folder / "shoots"))]
    for name, vec in vectors.items():
        assert np.array_equal(watching.vector(moved / name), vec)
    assert sum(b.encoded for b in watching.batches) == 2  # the two new images; the move encoded nothing

    junk = folder / ".cache"
    junk.mkdir()
    picture(junk / "thumb.png", "white")
    shutil.rmtree(archive)
    rows = watching.until(lambda r: len(r) == 2, "a deleted folder's rows going")
    assert sorted(rows) == [str(folder / "blue.png"), str(folder / "red.png")]


def test_a_half_written_file_is_indexed_once_finished(watching: Watching) -> None:
    """A file the watcher reads while it is half-written fails to decode and is reported; finished, it is
    indexed with the whole file's content."""
    target = watching.folder / "download.png"
    whole = picture(watching.folder.parent / "whole.png", "purple", seed=3)
    with target.open("wb") as out:
        out.write(whole[: len(whole) // 2])
        out.flush()
        failed = watching.batch_with(lambda b: str(target) in dict(b.failed), "the half file reported as failed")
        assert failed.encoded == 0
        assert str(target) not in watching.rows()
        out.write(whole[len(whole) // 2 :])
    rows = watching.until(lambda r: str(target) in r, "the finished file")
    assert rows[str(target)].hash == file_digest(whole)
    assert watching.batch_with(lambda b: str(target) in b.added, "the finished file's report").encoded == 1


def test_a_move_is_reported_from_the_folder_event_alone(tmp_path: Path) -> None:
    """watchdog may deliver a new folder's event before the move of a file into it: the folder's batch
    then holds the moved file, not the path it left, and still reports a move that encoded nothing."""
    folder = tmp_path / "photos"
    folder.mkdir()
    picture(folder / "red.png", "red")
    picture(folder / "copy.png", "blue")
    with Library(tmp_path / "lib.db", model="demo", device="cpu") as lib:
        lib.index(folder)
        red, kept = folder / "red.png", folder / "kept" / "red.png"
        kept.parent.mkdir()
        red.rename(kept)
        assert Watcher(lib, folder).apply({kept.parent: True}) == WatchBatch(moved=((str(red), str(kept)),))
        assert sorted(r.path for r in lib.store.rows()) == [str(folder / "copy.png"), str(kept)]
        assert Watcher(lib, folder).apply({red: False, kept: False}) == WatchBatch()  # the move's own event


@pytest.mark.parametrize("debounce_s", [0.0, -1.0, float("nan")])
def test_a_debounce_that_is_not_positive_is_refused(tmp_path: Path, debounce_s: float) -> None:
    stop = threading.Event()
    stop.set()  # were the debounce let through, the watch would end at once, not raise
    with Library(tmp_path / "lib.db", model="demo", device="cpu") as lib, pytest.raises(UsageError, match="debounce"):
        lib.watch(tmp_path, stop=stop, on_batch=lambda _: None, debounce_s=debounce_s)


def test_changes_settle_when_two_looks_agree(tmp_path: Path) -> None:
    changes = Changes()
    growing, gone, tree = tmp_path / "growing.png", tmp_path / "gone.png", tmp_path / "tree"
    growing.write_bytes(b"12")
    changes.note(growing, False)
    changes.note(gone, False)
    changes.note(tree, True)
    assert changes.settled() == {}  # the first look
    with growing.open("ab") as out:
        out.write(b"345")
    assert changes.settled() == {gone: False, tree: True}
    assert changes.settled() == {growing: False}
    assert changes.settled() == {}
    changes.note(growing, False)
    changes.settled()
    changes.note(growing, False)  # changed again: the look before does not count
    assert changes.settled() == {}
    assert changes.settled() == {growing: False}


@pytest.mark.parametrize(
    ("relative", "folder", "expected"),
    [
        ("a.png", False, True),
        ("sub/deeper/a.JPG", False, True),
        ("notes.txt", False, False),
        (".hidden.png", False, False),
        ("._a.png", False, False),
        (".cache/a.png", False, False),
        ("__MACOSX/a.png", False, False),
        ("sub", True, True),
        ("__MACOSX", True, False),
        ("sub/.git", True, False),
    ],
)
def test_watched_follows_the_scan_rules(tmp_path: Path, relative: str, folder: bool, expected: bool) -> None:
    assert watched(tmp_path / relative, tmp_path, folder=folder) is expected
    assert not watched(tmp_path.parent / "elsewhere.png", tmp_path, folder=False)


def test_the_app_watches_the_folder_it_indexed(app_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    picture(folder / "red.png", "red")
    at = start(app_env, tmp_path / "lib.db", tmp_path / "gen")

    def images() -> str:
        return str({m.label: m.value for m in at.metric}["Images"])

    def shows(text: str) -> bool:
        at.run()
        return text in literal(" ".join(c.value for c in at.caption))

    at.text_input(key="index_folder").input(str(folder)).run()
    at.checkbox(key="watch").check().run()
    at.button(key="index_go").click().run()
    wait_for(lambda: shows("batch(es) of changes indexed so far"), "the app watching the folder")
    assert images() == "1" and at.button(key="index_go").disabled
    picture(folder / "blue.png", "blue")
    picture(folder / "green.png", "green")
    wait_for(lambda: shows("Watching") and images() == "3", "the app's count growing")
    at.button(key="index_stop").click().run()
    finish_indexing()
    at.run()
    assert not at.exception
    assert literal(at.success[0].value).startswith(f"{folder}: 1 indexed, 0 unchanged")
    assert images() == "3" and not at.button(key="index_go").disabled
    st.cache_resource.clear()
    with Library(tmp_path / "lib.db", create=False) as lib:
        assert sorted(row.filename for row in lib.store.rows()) == ["blue.png", "green.png", "red.png"]


@pytest.mark.e2e
def test_index_watch_prints_batches_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    picture(folder / "red.png", "red")
    db = tmp_path / "lib.db"
    options = ["--db", str(db), "--model", "demo", "--device", "cpu", "--watch"]
    argv = [sys.executable, "-m", "assetlens", "index", str(folder), *options]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, lines = proc.stdout, queue.Queue[str]()

    def read() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()

    def next_line(what: str) -> str:
        try:
            return lines.get(timeout=DEADLINE_S).rstrip("\n")
        except queue.Empty:
            pytest.fail(f"the command never printed {what}")

    try:
        assert next_line("the first pass").startswith("1 indexed, 0 unchanged")
        assert next_line("the library line").endswith(": 1 images")
        odd = folder / "new\x1b[2J.png"
        picture(odd, "blue")
        assert next_line("the batch") == "added 1: new\\x1b[2J.png (1 encoded)"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=DEADLINE_S)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "stopped watching; everything indexed so far is kept."
    with Library(db, create=False) as lib:
        assert sorted(row.path for row in lib.store.rows()) == [str(odd), str(folder / "red.png")]
