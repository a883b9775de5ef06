"""Indexing a folder: incremental, idempotent, and never stopped by one bad file.

For each image file the indexer decides, cheapest test first:
- unchanged: same size and mtime as the stored row -> nothing to do;
- touched: size or mtime differ but the content hash is the stored one ->
  metadata updated, vector kept;
- moved or copied: the content hash belongs to another stored row -> that
  row's vector is reused, no encoding;
- new or changed: decoded, encoded and upserted.
Rows are upserted per batch with the path digest as primary key, so an
interrupted run (even kill -9) leaves only complete rows behind, and the
next run finishes the job without duplicates. Decoding runs in a thread
pool (Pillow and hashlib release the GIL) while onnxruntime encodes the
previous batch; at most a few batches of decoded images are held at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from assetlens.engine.encoders import Encoder
from assetlens.engine.errors import ImageDecodeError, UsageError
from assetlens.engine.manifest import ImageFacts
from assetlens.engine.preprocess import DEFAULT_MAX_MEGAPIXELS, decode, model_pixels
from assetlens.engine.scan import iter_images
from assetlens.engine.store import AssetRow, MilvusStore, path_id

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class IndexReport:
    """What one index run did; ``failed`` lists (path, reason) for every skipped file."""

    seen: int = 0
    encoded: int = 0
    unchanged: int = 0
    skipped: int = 0
    touched: int = 0
    reused: int = 0
    removed: int = 0
    missing: int = 0
    left: int = 0  # new or changed files not reached because the run was stopped
    stopped: bool = False
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        parts = [
            f"{self.encoded} indexed",
            f"{self.unchanged} unchanged",
            f"{self.reused} moved or copied (vector reused)",
            f"{self.touched} touched (metadata updated)",
            f"{len(self.failed)} failed",
        ]
        if self.skipped:
            parts.append(f"{self.skipped} hidden/system entries skipped")
        if self.removed:
            parts.append(f"{self.removed} removed")
        elif self.missing:
            parts.append(f"{self.missing} missing from disk (--prune removes them)")
        if self.stopped:
            parts.append(f"stopped with {self.left} file(s) left (index the folder again to finish)")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


def file_digest(data: bytes) -> str:
    """Content identity of a file: equal digests, same image."""
    return hashlib.sha256(data).hexdigest()


# The bytes 0x80-0xFF of a name that is not UTF-8 are stored as the private-use characters U+10FE80-U+10FEFF.
_BYTE_MARK = 0x10FE00
_MARKS = range(_BYTE_MARK + 0x80, _BYTE_MARK + 0x100)
_ESCAPED = range(0xDC80, 0xDD00)  # how os.fsdecode holds such a byte (surrogateescape)


def path_text(path: str | os.PathLike[str]) -> str:
    """The path as stored, which must be valid UTF-8: the path itself when it is, else each undecodable byte
    as a private-use mark. A mark character in a real name is stored as the marks of its UTF-8 bytes, so
    that distinct paths give distinct texts and ``real_path`` gives each path back exactly."""
    text = os.fspath(path)
    if text.isascii() or not any(ord(ch) in _ESCAPED or ord(ch) in _MARKS for ch in text):
        return text
    out = []
    for ch in text:
        if ord(ch) in _ESCAPED:
            out.append(chr(_BYTE_MARK + ord(ch) - 0xDC00))
        elif ord(ch) in _MARKS:
            out.extend(chr(_BYTE_MARK + b) for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def real_path(text: str) -> str:
    """The file system path (``os.fsdecode`` form) of a stored path text: ``path_text`` undone."""
    if text.isascii() or not any(ord(ch) in _MARKS for ch in text):
        return text
    raw = b"".join(bytes([ord(ch) - _BYTE_MARK]) if ord(ch) in _MARKS else ch.encode("utf-8") for ch in text)
    return os.fsdecode(raw)


@dataclass(frozen=True)
class LoadedFile:
    """One image file as the indexer reads it: content hash, model input, full-resolution size."""

    digest: str
    pixels: np.ndarray
    width: int
    height: int


def load_file(path: Path, facts: ImageFacts, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> LoadedFile:
    """Read, hash, decode and preprocess one file: the indexer's whole per-file work.

    Raises ``ImageDecodeError`` for a file that is not a usable image and ``OSError`` for one that cannot be read.
    """
    data = path.read_bytes()
    img = decode(data, min_side=facts.resize_shortest_edge, max_megapixels=max_megapixels, name=os.fspath(path))
    return LoadedFile(file_digest(data), model_pixels(img.image, facts), img.width, img.height)


@dataclass
class _Work:
    path: Path
    text: str
    size: int
    mtime: float
    digest: str = ""
    pixels: np.ndarray | None = None
    width: int = 0
    height: int = 0
    error: str = ""

    @property
    def name(self) -> str:
        """The path as messages give it (``os.fsdecode`` form, not the stored text)."""
        return os.fspath(self.path)

    def row(self, origin: str = "file") -> AssetRow:
        return AssetRow(
            id=path_id(self.text),
            path=self.text,
            folder=os.path.dirname(self.text),
            filename=os.path.basename(self.text),
            size=self.size,
            mtime=self.mtime,
            hash=self.digest,
            width=self.width,
            height=self.height,
            origin=origin,
        )


class Indexer:
    """Brings a collection up to date with a folder, using one encoder and one store."""

    def __init__(
        self,
        store: MilvusStore,
        encoder: Encoder,
        batch_size: int = 32,
        workers: int | None = None,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    ) -> None:
        if batch_size < 1:
            raise UsageError("--batch-size must be at least 1.")
        if not max_megapixels > 0:  # also refuses NaN, which would turn the limit off
            raise UsageError(f"--max-megapixels must be a positive number, not {max_megapixels:g}.")
        self.store = store
        self.encoder = encoder
        self.batch_size = batch_size
        self.workers = workers or min(8, (os.cpu_count() or 2) + 2)
        self.max_megapixels = max_megapixels

    @staticmethod
    def check_folder(folder: Path) -> None:
        if not folder.exists():
            raise UsageError(f"The folder {folder} does not exist.")
        if not folder.is_dir():
            raise UsageError(f"{folder} is a file, not a folder; give the folder that holds your images.")

    def _load(self, work: _Work) -> _Work:
        """Hash and decode one file (runs in the pool; never raises)."""
        try:
            loaded = load_file(work.path, self.encoder.facts.image, self.max_megapixels)
            work.digest, work.pixels = loaded.digest, loaded.pixels
            work.width, work.height = loaded.width, loaded.height
        except ImageDecodeError as exc:
            work.error = str(exc)
        except OSError as exc:
            work.error = f"{work.name} cannot be read ({exc.strerror or exc})."
        except Exception as exc:  # a codec bug in one file must not stop the run
            work.error = f"{work.name} cannot be decoded ({type(exc).__name__}: {exc})."
        return work

    def index(
        self,
        folder: Path,
        *,
        prune: bool = False,
        include_hidden: bool = False,
        origin: str = "file",
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> IndexReport:
        """Index new and changed images under ``folder``; ``prune`` drops rows of vanished files.

        Setting ``stop`` ends the run after the batch in progress: every row written so far is kept,
        sealed and searchable, and the next run picks up the rest.
        """
        self.check_folder(folder)
        root = path_text(Path(os.path.abspath(folder)))
        skipped: list[Path] = []
        report = self._sync(
            iter_images(folder, include_hidden=include_hidden, on_skip=skipped.append),
            root,
            prune,
            origin,
            progress,
            stop,
        )
        report.skipped = len(skipped)
        return report

    def add(self, files: Iterable[Path], *, origin: str = "file", progress: Progress | None = None) -> IndexReport:
        """Index the given image files (e.g. generated images), wherever they are."""
        return self._sync((Path(os.path.abspath(f)) for f in files), None, False, origin, progress, None)

    def _sync(
        self,
        paths: Iterable[Path],
        root: str | None,
        prune: bool,
        origin: str,
        progress: Progress | None,
        stop: threading.Event | None,
    ) -> IndexReport:
        started = time.perf_counter()
        report = IndexReport()
        stored = {r.path: r for r in self.store.rows()}
        by_hash: dict[str, AssetRow] = {}
        for r in stored.values():
            by_hash.setdefault(r.hash, r)
        todo: list[_Work] = []
        seen: set[str] = set()
        for path in paths:
            text = path_text(path)
            report.seen += 1
            try:
                st = path.stat()
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):  # a broken symlink's image is gone: --prune drops its row
                    seen.add(text)
                report.failed.append((os.fspath(path), f"{path} cannot be read ({exc.strerror or exc})."))
                log.warning(report.failed[-1][1])
                continue
            seen.add(text)
            old = stored.get(text)
            if old is not None and old.size == st.st_size and old.mtime == st.st_mtime:
                report.unchanged += 1
                continue
            todo.append(_Work(path, text, st.st_size, st.st_mtime))
        total = len(todo)
        try:
            if progress:
                progress(0, total)
            done = 0
            for batch in self._decoded_batches(todo):
                encode: list[_Work] = []
                reuse: list[tuple[_Work, AssetRow]] = []
                for work in batch:
                    if work.error:
                        report.failed.append((work.name, work.error))
                        log.warning(work.error)
                        continue
                    twin = stored.get(work.text)
                    if twin is None or twin.hash != work.digest:
                        twin = by_hash.get(work.digest)
                    if twin is not None:
                        reuse.append((work, twin))
                    else:
                        encode.append(work)
                self._write(encode, reuse, origin, stored, seen, report)
                for work in batch:
                    row = stored.get(work.text)
                    if row is not None:
                        by_hash.setdefault(row.hash, row)
                done += len(batch)
                if progress:
                    progress(done, total)
                if stop is not None and stop.is_set() and done < total:
                    report.stopped, report.left = True, total - done
                    break
            if root is not None and not report.stopped:
                unlisted = [r for p, r in stored.items() if p not in seen and _under(p, root)]
                gone = known_gone(unlisted, real_path(root))
                if prune:
                    report.removed = self.store.delete(r.id for r in gone)
                else:
                    report.missing = len(gone)
        finally:  # also when an exception stops the run: what was written is sealed and reaches the search copy
            if self.store.dirty:
                self.store.flush()
        report.seconds = time.perf_counter() - started
        return report

    def _write(
        self,
        encode: list[_Work],
        reuse: list[tuple[_Work, AssetRow]],
        origin: str,
        stored: dict[str, AssetRow],
        seen: set[str],
        report: IndexReport,
    ) -> None:
        rows: list[AssetRow] = []
        vectors: list[np.ndarray] = []
        if encode:
            pixels = np.stack([w.pixels for w in encode if w.pixels is not None])
            vectors.extend(self.encoder.encode_pixels(pixels))
            rows.extend(w.row(origin) for w in encode)
            report.encoded += len(encode)
        if reuse:
            found = {row.id: vec for row, vec in self.store.get([t.id for _, t in reuse], with_vectors=True)}
            for work, twin in reuse:
                vec = found.get(twin.id)
                if vec is None:  # the twin vanished meanwhile: encode after all
                    vectors.extend(self.encoder.encode_pixels(work.pixels[None]))  # type: ignore[index]
                    report.encoded += 1
                    rows.append(work.row(origin))
                else:
                    vectors.append(vec)
                    if twin.path == work.text:
                        report.touched += 1
                    else:
                        report.reused += 1
                    rows.append(replace(work.row(origin), tags=twin.tags, tagged=twin.tagged))  # the same vector
        # A moved file's old row goes once its file is gone from disk; before the new row is written,
        # so that a run killed in between leaves a file to index again, not a stale row to prune.
        moved = [
            t for w, t in reuse if t.path not in seen and t.path != w.text and not os.path.exists(real_path(t.path))
        ]
        for twin in moved:
            stored.pop(twin.path, None)
        self.store.delete(t.id for t in moved)
        if not rows:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        fresh = np.array([row.path not in stored for row in rows], dtype=bool)
        self.store.upsert([r for r, f in zip(rows, fresh, strict=True) if f], matrix[fresh], new=True)
        self.store.upsert([r for r, f in zip(rows, fresh, strict=True) if not f], matrix[~fresh])
        for row in rows:
            stored[row.path] = row

    def _decoded_batches(self, todo: list[_Work]) -> Iterator[list[_Work]]:
        """Batches of decoded work, decoding ahead in a pool with a bounded window."""
        window = 3 * self.batch_size
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            pending: list[Future[_Work]] = []
            it: Iterable[_Work] = iter(todo)
            for work in it:
                pending.append(pool.submit(self._load, work))
                if len(pending) >= window:
                    yield [f.result() for f in pending[: self.batch_size]]
                    del pending[: self.batch_size]
            while pending:
                yield [f.result() for f in pending[: self.batch_size]]
                del pending[: self.batch_size]


def _lists_empty(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def known_gone(unlisted: list[AssetRow], root: str) -> list[AssetRow]:
    """The rows, of those the scan did not list, whose files are known to be gone: stat says there is no
    such file. A file in a folder that cannot be read, or on a share that does not answer, is not gone;
    nor is anything under a root that lists as empty, as an unmounted drive's mount point does."""
    gone: list[AssetRow] = []
    unknown = 0
    for row in unlisted:
        try:
            os.stat(real_path(row.path))
        except FileNotFoundError:
            gone.append(row)
        except OSError:
            unknown += 1
    if unknown:
        log.warning(f"{unknown} indexed image(s) under {root} cannot be checked (unreadable folders); they are kept.")
    if gone and _lists_empty(root):
        log.warning(f"{root} is empty (a drive or share not mounted?); its {len(gone)} indexed image(s) are kept.")
        return []
    return gone
