"""The search copy's float32 vectors by position, in a file where the copy has a folder.

A writer appends each write's vectors to the file instead of holding them: Milvus Lite keeps every
vector in the same process already, and a second copy in memory is what made a million-row write
peak at 3.7x its vectors. Reads map the file, so a process that only searches reads the few rows a
search reranks, not the whole column. The file is only ever appended to at the position after the
last row it holds for the copy; a saved copy records how many rows are its own, so bytes past them
(a write that was killed, or rows written since the save) are never read as part of it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

SPILL_PREFIX = ".vectors-"  # a column's file before the copy is first saved


class VectorColumn:
    """Rows of ``dim`` float32 by position: appended, read by position or in chunks."""

    def __init__(self, dim: int, file: Path | None = None, rows: int = 0) -> None:
        """An empty column in memory (``file`` None), or the first ``rows`` rows of ``file`` (appends go after
        them)."""
        self.dim = dim
        self._n = rows
        self._memory = np.zeros((0, dim), np.float32)  # used while there is no file
        self._file = file
        self._fd: int | None = None
        self._map: np.ndarray | None = None  # the file's first _n rows, mapped read-only
        if file is not None:
            size = file.stat().st_size
            if size < rows * self._row_bytes:
                raise ValueError(f"{file.name} holds {size // self._row_bytes} vectors, not {rows}")

    @classmethod
    def of(cls, vectors: np.ndarray) -> VectorColumn:
        """A column in memory holding ``vectors`` (not copied when already contiguous float32)."""
        column = cls(vectors.shape[1])
        column._memory = np.ascontiguousarray(vectors, dtype=np.float32)
        column._n = len(vectors)
        return column

    @classmethod
    def spill(cls, dim: int, folder: Path) -> VectorColumn:
        """An empty column in a new file in ``folder`` (named ``SPILL_PREFIX...``; ``adopt`` renames it)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{SPILL_PREFIX}{uuid.uuid4().hex[:16]}.f32"
        path.touch(exist_ok=False)
        return cls(dim, path)

    @property
    def _row_bytes(self) -> int:
        return 4 * self.dim

    @property
    def file(self) -> Path | None:
        return self._file

    def __len__(self) -> int:
        return self._n

    def append(self, vectors: np.ndarray) -> None:
        block = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if self._file is None:
            if len(self._memory) < self._n + len(block):  # room for twice the rows: appends cost O(1) a row
                grown = np.empty((2 * (self._n + len(block)), self.dim), np.float32)
                grown[: self._n] = self._memory[: self._n]
                self._memory = grown
            self._memory[self._n : self._n + len(block)] = block
        else:
            if self._fd is None:
                self._fd = os.open(self._file, os.O_RDWR)
            data = block.tobytes()
            offset = self._n * self._row_bytes
            while data:
                written = os.pwrite(self._fd, data, offset)
                data, offset = data[written:], offset + written
            self._map = None
        self._n += len(block)

    def view(self) -> np.ndarray:
        """Every row without copying: the memory block, or a read-only map of the file's first rows (read as
        they are used)."""
        if self._file is None:
            return self._memory[: self._n]
        if self._map is None:
            # a plain view of the map: indexing an np.memmap wraps every result in another memmap
            self._map = (
                np.memmap(self._file, np.float32, mode="r", shape=(self._n, self.dim)).view(np.ndarray)
                if self._n
                else np.zeros((0, self.dim), np.float32)
            )
        return self._map

    def take(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(positions), dim): the rows at ``positions``, in memory."""
        at = np.asarray(positions, dtype=np.int64)
        return self.view()[at]  # fancy indexing copies the rows out of the map

    def chunks(self, lo: int = 0, size: int = 65_536) -> Iterator[np.ndarray]:
        """The rows from ``lo`` on, ``size`` at a time, each in memory."""
        rows = self.view()
        for start in range(lo, self._n, size):
            yield np.array(rows[start : start + size], np.float32)

    def save(self, target: Path) -> None:
        """Make ``target`` hold this column's rows: a link to its file (a copy where links fail), or the rows
        written out."""
        if self._file is None:
            with open(target, "wb") as f:
                self._memory[: self._n].tofile(f)
            return
        try:
            os.link(self._file, target)
        except OSError:
            with open(target, "wb") as f:
                for chunk in self.chunks():
                    chunk.tofile(f)

    def adopt(self, saved: Path) -> None:
        """Carry on in ``saved`` (what ``save`` wrote): later appends go into the saved file, past its rows."""
        if self._file != saved:
            self.discard()
        self.close()
        self._file, self._memory = saved, np.zeros((0, self.dim), np.float32)

    def discard(self) -> None:
        """Let go of the rows (a file not saved yet is deleted; a saved one belongs to its copy)."""
        self.close()
        if self._file is not None and self._file.name.startswith(SPILL_PREFIX):
            self._file.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._map = None

    def __del__(self) -> None:
        self.close()
