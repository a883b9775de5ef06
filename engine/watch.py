"""Keeping a collection in step with a folder while it changes (``Library.watch``).

watchdog reports what changes under the folder; each changed path waits until two looks, one debounce
apart, find it the same (a file still being written is not read half-done), then a batch of settled
paths is written through the normal indexing path (``Library.add`` and ``Library.remove``), with its
crash-safety: new and changed files are encoded, a moved file's row moves with its vector (the content
hash finds it), and the rows of deleted files and folders go.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from assetlens.engine.errors import AssetLensError, UsageError
from assetlens.engine.indexer import IndexReport, known_gone, path_text, real_path
from assetlens.engine.preprocess import DEFAULT_MAX_MEGAPIXELS
from assetlens.engine.scan import IMAGE_EXTENSIONS, JUNK_DIRS, is_junk, iter_images
from assetlens.engine.store import AssetRow, path_id, prefix_filter

if TYPE_CHECKING:
    from assetlens.engine.library import Library

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_S = 0.5

#: The events that can change what is indexed; opening, reading and a folder's own mtime cannot.
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


@dataclass(frozen=True)
class WatchBatch:
    """What one applied batch changed, by path; ``encoded`` counts the images run through the model."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()  # (from, to)
    removed: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()  # (path, reason)
    encoded: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.moved or self.removed or self.failed)


def watched(path: Path, root: Path, *, folder: bool, include_hidden: bool = False) -> bool:
    """Whether a changed path under ``root`` is one the scan would index (a file) or look into (a folder)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    if not parts:
        return folder
    *above, name = parts
    if any(d in JUNK_DIRS or is_junk(d, include_hidden) for d in above) or is_junk(name, include_hidden):
        return False
    return name not in JUNK_DIRS if folder else os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


Signature = tuple[bool, int, int]  # is a folder, size, mtime in ns; (False, -1, -1) when gone


def _signature(path: Path) -> Signature:
    try:
        st = path.stat()
    except OSError:
        return (False, -1, -1)
    return (path.is_dir(), st.st_size, st.st_mtime_ns)


class Changes:
    """Changed paths (``True``: a folder, whose whole tree changed) until each has settled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[Path, bool] = {}
        self._looks: dict[Path, Signature] = {}

    def note(self, path: Path, folder: bool) -> None:
        with self._lock:
            self._paths[path] = self._paths.get(path, False) or folder
            self._looks.pop(path, None)  # changed again: the next look is its first

    def settled(self) -> dict[Path, bool]:
        """Take the paths that look as they did at the last call (present or gone); look at the others."""
        with self._lock:
            done: dict[Path, bool] = {}
            for path, folder in self._paths.items():
                now = _signature(path)
                if self._looks.get(path) == now:
                    done[path] = folder
                else:
                    self._looks[path] = now
            for path in done:
                del self._paths[path], self._looks[path]
            return done


class _Noter(FileSystemEventHandler):
    def __init__(self, changes: Changes) -> None:
        self.changes = changes

    def on_any_event(self, event: FileSystemEvent) -> None:
        for where in (event.src_path, event.dest_path):
            if where:
                self.changes.note(Path(os.fsdecode(where)), event.is_directory)


class Watcher:
    """Applies settled changes under one folder to a library, batch by batch."""

    def __init__(
        self,
        library: Library,
        folder: Path,
        *,
        include_hidden: bool = False,
        batch_size: int = 32,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    ) -> None:
        self.library = library
        self.root = Path(os.path.abspath(folder))
        self.include_hidden = include_hidden
        self.batch_size = batch_size
        self.max_megapixels = max_megapixels
        self.changes = Changes()

    def run(
        self,
        first_pass: Callable[[], IndexReport],
        stop: threading.Event,
        on_batch: Callable[[WatchBatch], None],
        on_ready: Callable[[IndexReport], None] | None,
        debounce_s: float,
    ) -> None:
        """Watch (from before the first pass, so that nothing changed during it is missed) until ``stop``."""
        if not debounce_s > 0:  # also refuses NaN; zero would turn the wait into a busy loop
            raise UsageError(f"The watch's debounce must be a positive number of seconds, not {debounce_s:g}.")
        observer = Observer()
        observer.schedule(_Noter(self.changes), os.fspath(self.root), recursive=True, event_filter=EVENTS)
        try:
            observer.start()
        except OSError as exc:
            raise AssetLensError(f"{self.root} cannot be watched ({exc.strerror or exc}).") from None
        try:
            report = first_pass()
            if on_ready is not None:
                on_ready(report)
            while not stop.wait(debounce_s):
                batch = self.apply(self.changes.settled())
                if batch:
                    on_batch(batch)
        finally:
            observer.stop()
            observer.join()

    def apply(self, changed: dict[Path, bool]) -> WatchBatch:
        """Write one batch of settled paths: index the image files there are, drop the rows of those gone."""
        files: dict[Path, None] = {}
        trees: list[str] = []
        singles: list[str] = []
        for path, folder in sorted(changed.items()):
            is_folder = path.is_dir() and not path.is_symlink()
            if not watched(path, self.root, folder=folder or is_folder, include_hidden=self.include_hidden):
                continue
            if is_folder or folder:
                trees.append(path_text(path))
                if is_folder:
                    files.update(dict.fromkeys(iter_images(path, include_hidden=self.include_hidden)))
            else:
                singles.append(path_text(path))
                if os.path.lexists(path):
                    files[path] = None
        if not files and not trees and not singles:
            return WatchBatch()
        texts = [path_text(f) for f in files]
        before = self._rows([*singles, *texts], trees)
        sources = self._moved_from([f for f, text in zip(files, texts, strict=True) if text not in before], before)
        report = IndexReport()
        if files:
            report = self.library.add(list(files), batch_size=self.batch_size, max_megapixels=self.max_megapixels)
        after = self._rows([*before, *sources, *texts], [])
        if self.root.is_dir():
            stale = known_gone([row for path, row in after.items() if path in before], os.fspath(self.root))
            self.library.remove([real_path(row.path) for row in stale])
            for row in stale:
                after.pop(row.path, None)
        else:
            log.warning(f"{self.root} is gone (a drive or share not mounted?); its indexed images are kept.")
        return _describe({**sources, **before}, after, texts, report)

    def _moved_from(self, arrivals: list[Path], known: dict[str, AssetRow]) -> dict[str, AssetRow]:
        """Rows the files new to the library may have been moved from, wherever their events are: a move keeps
        a file's size, so the rows of the same sizes whose files are gone."""
        sizes = set()
        for path in arrivals:
            try:
                sizes.add(path.stat().st_size)
            except OSError:
                continue
        if not sizes:
            return {}
        rows = self.library.store.rows(f"size in {sorted(sizes)}")
        return {r.path: r for r in rows if r.path not in known and not os.path.exists(real_path(r.path))}

    def _rows(self, paths: Iterable[str], trees: Iterable[str]) -> dict[str, AssetRow]:
        """The stored rows at ``paths`` and under the folders ``trees``."""
        store = self.library.store
        rows = {row.path: row for row, _ in store.get(list(dict.fromkeys(path_id(p) for p in paths)))}
        for tree in trees:
            rows.update((row.path, row) for row in store.rows(prefix_filter("path", tree.rstrip(os.sep) + os.sep)))
        return rows


def _describe(
    before: dict[str, AssetRow], after: dict[str, AssetRow], files: Iterable[str], report: IndexReport
) -> WatchBatch:
    """What a batch did, from the rows before and after it: a new row whose content was at a path that
    lost its row is a move; a row that changed is an update."""
    vanished: dict[str, list[str]] = {}
    for path, gone in before.items():
        if path not in after:
            vanished.setdefault(gone.hash, []).append(path)
    added: list[str] = []
    updated: list[str] = []
    moved: list[tuple[str, str]] = []
    for path in dict.fromkeys(files):
        row, old = after.get(path), before.get(path)
        if row is None:
            continue
        if old is not None:
            if (old.size, old.mtime, old.hash) != (row.size, row.mtime, row.hash):
                updated.append(real_path(path))
        elif vanished.get(row.hash):
            twins = vanished[row.hash]  # copies of one image: the one of the same name moved here
            twin = min(twins, key=lambda p: os.path.basename(p) != os.path.basename(path))
            twins.remove(twin)
            moved.append((real_path(twin), real_path(path)))
        else:
            added.append(real_path(path))
    return WatchBatch(
        added=tuple(added),
        updated=tuple(updated),
        moved=tuple(moved),
        removed=tuple(real_path(p) for paths in vanished.values() for p in paths),
        failed=tuple(report.failed),
        encoded=report.encoded,
    )
