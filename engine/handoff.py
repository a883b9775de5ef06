"""Handing hits on: their files copied into a folder, or packed into a zip, as ``RANK-NAME`` with a manifest.

Both ways name each file ``003-watch.jpg`` (rank, then the original name), never replace a file of the
same name (``003-watch-1.jpg`` instead), and list what they hold in ``manifest.csv``: rank, score, the
file's name there, its source path and its size in bytes. A hit whose file is gone or unreadable is
skipped with a warning naming it, and counted.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from assetlens.engine.errors import AssetLensError, UsageError
from assetlens.engine.search import SearchResult

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("rank", "score", "file", "source", "size", "tags")
TAG_SEPARATOR = "; "
MAX_SUFFIX = 10_000


@dataclass(frozen=True)
class Pick:
    """One image to hand on: its rank, its score when it came from a search, its path and its tags."""

    rank: int
    path: str
    score: float | None = None
    tags: tuple[str, ...] = ()

    @classmethod
    def of_result(cls, result: SearchResult) -> Pick:
        return cls(result.rank, result.path, result.score, result.tags)


@dataclass(frozen=True)
class Handed:
    """A file handed on: under ``name`` in the folder or zip, ``size`` bytes copied."""

    pick: Pick
    name: str
    size: int


@dataclass(frozen=True)
class CopyReport:
    folder: Path
    copied: tuple[Handed, ...]
    missing: tuple[str, ...] = field(default=())  # source paths skipped: gone or unreadable
    manifest: Path | None = None

    def summary(self) -> str:
        skipped = f"; {len(self.missing)} missing or unreadable file(s) skipped" if self.missing else ""
        return f"copied {len(self.copied)} file(s) to {self.folder}, listed in {self.manifest}{skipped}"


@dataclass(frozen=True)
class ZipReport:
    data: bytes
    packed: tuple[Handed, ...]
    missing: tuple[str, ...] = ()


def base_name(pick: Pick) -> str:
    """``RANK-NAME``: the rank in three digits (more when needed), then the file's own name."""
    return f"{pick.rank:03d}-{Path(pick.path).name}"


def candidates(name: str) -> Iterator[str]:
    """``name``, then ``stem-1.ext``, ``stem-2.ext``, … : the names to try until one is free."""
    yield name
    stem, ext = os.path.splitext(name)
    for n in range(1, MAX_SUFFIX):
        yield f"{stem}-{n}{ext}"


def manifest_text(handed: Sequence[Handed]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MANIFEST_COLUMNS)
    for h in handed:
        score = "" if h.pick.score is None else f"{h.pick.score:.6f}"
        writer.writerow((h.pick.rank, score, h.name, h.pick.path, h.size, TAG_SEPARATOR.join(h.pick.tags)))
    return out.getvalue()


def _encoded(text: str) -> bytes:
    """The bytes of a text holding file names: an undecodable byte of a name (``os.fsdecode``) written as it was."""
    return text.encode("utf-8", "surrogateescape")


def _open_source(pick: Pick) -> BinaryIO | None:
    try:
        return open(pick.path, "rb")
    except OSError as exc:
        log.warning("%s is missing or unreadable (%s); skipped.", pick.path, exc.strerror or exc)
        return None


def _create(folder: Path, name: str) -> tuple[str, BinaryIO]:
    """The first free name from ``name`` in ``folder``, created exclusively (an existing file is never replaced)."""
    for candidate in candidates(name):
        try:
            return candidate, open(folder / candidate, "xb")
        except FileExistsError:
            continue
    raise UsageError(f"{folder} already holds {MAX_SUFFIX} files named like {name}; choose another folder.")


def _writable_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder; give a folder to copy the hits into.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"The folder {folder} cannot be created ({exc.strerror or exc}).") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"The folder {folder} cannot be written: permission denied.")


def _each_source(picks: Sequence[Pick], missing: list[str], hand: Callable[[Pick, BinaryIO], Handed]) -> list[Handed]:
    handed: list[Handed] = []
    for pick in picks:
        source = _open_source(pick)
        if source is None:
            missing.append(pick.path)
            continue
        with source:
            handed.append(hand(pick, source))
    return handed


def copy_picks(picks: Sequence[Pick], folder: Path) -> CopyReport:
    """Copy each pick's file into ``folder`` (created if needed) and write the manifest there."""
    _writable_folder(folder)
    missing: list[str] = []

    def copy(pick: Pick, source: BinaryIO) -> Handed:
        name, target = _create(folder, base_name(pick))
        try:
            with target:
                shutil.copyfileobj(source, target)
            shutil.copystat(pick.path, folder / name)
        except OSError as exc:
            (folder / name).unlink(missing_ok=True)
            raise AssetLensError(
                f"Copying {pick.path} into {folder} failed ({exc.strerror or exc}); the files before it are there."
            ) from None
        return Handed(pick, name, (folder / name).stat().st_size)

    copied = _each_source(picks, missing, copy)
    name, out = _create(folder, MANIFEST)
    with out:
        out.write(_encoded(manifest_text(copied)))
    return CopyReport(folder, tuple(copied), tuple(missing), folder / name)


def zip_picks(picks: Sequence[Pick]) -> ZipReport:
    """The picks' files and the manifest in one zip, built in memory, named as ``copy_picks`` names them."""
    missing: list[str] = []
    buffer = io.BytesIO()
    taken: set[str] = {MANIFEST}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:

        def pack(pick: Pick, source: BinaryIO) -> Handed:
            # A zip names its entries in UTF-8: an undecodable byte of a file name becomes U+FFFD there.
            wanted = _encoded(base_name(pick)).decode("utf-8", "replace")
            name = next(n for n in candidates(wanted) if n not in taken)
            taken.add(name)
            data = source.read()
            archive.writestr(name, data)
            return Handed(pick, name, len(data))

        packed = _each_source(picks, missing, pack)
        archive.writestr(MANIFEST, _encoded(manifest_text(packed)))
    return ZipReport(buffer.getvalue(), tuple(packed), tuple(missing))
