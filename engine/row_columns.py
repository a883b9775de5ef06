"""Rows of record batches, read straight from their Arrow buffers.

A search builds the rows of a few dozen candidates spread over a saved copy's record batches. pyarrow's
``take`` dispatches a compute kernel per column, about 7 µs each, and about three times that right after a
text encoding has taken the CPU's caches (benchmarks/results/FINDINGS.md); reading the values at their
offsets in the mapped buffers costs a slice per value and no kernel at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from assetlens.engine.store import AssetRow

Reader = Callable[[np.ndarray], list[Any]]
T = TypeVar("T")


class RowColumns:
    """The ``AssetRow`` columns of one record batch (``search_copy.ROW_SCHEMA``: large strings, 64-bit
    numbers and a large list of strings, none of them null), as views of its buffers."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self._readers = [_reader(column) for column in batch.columns]
        self._hashes = self._readers[batch.schema.get_field_index("hash")]

    def rows(self, at: np.ndarray) -> list[AssetRow]:
        """The rows at the batch's positions ``at`` (int64), in that order."""
        return [AssetRow(*values) for values in zip(*(read(at) for read in self._readers), strict=True)]

    def hashes(self, at: np.ndarray) -> list[str]:
        """The content hashes of the rows at ``at``: all a search reads of the candidates a result drops."""
        hashes: list[str] = self._hashes(at)
        return hashes


class BatchRows:
    """Rows by position over record batches in order (position 0 is the first batch's first row)."""

    def __init__(self, batches: Sequence[pa.RecordBatch]) -> None:
        self._columns = [RowColumns(b) for b in batches]
        self._starts = np.cumsum([0] + [b.num_rows for b in batches[:-1]], dtype=np.int64)

    def rows(self, at: np.ndarray) -> list[AssetRow]:
        return self._read(at, RowColumns.rows)

    def hashes(self, at: np.ndarray) -> list[str]:
        return self._read(at, RowColumns.hashes)

    def _read(self, at: np.ndarray, read: Callable[[RowColumns, np.ndarray], list[T]]) -> list[T]:
        """``read`` once per batch that holds some of the positions ``at``, the values put back in order."""
        which = np.searchsorted(self._starts, at, side="right") - 1
        if len(at) and which.min() == which.max():
            return read(self._columns[int(which[0])], at - self._starts[which[0]])
        found: list[Any] = [None] * len(at)
        for b in np.unique(which).tolist():
            picked = np.flatnonzero(which == b)
            for i, value in zip(picked.tolist(), read(self._columns[b], at[picked] - self._starts[b]), strict=True):
                found[i] = value
        return found


class RowSnapshot:
    """A copy's rows by position as they were when it was made: its record batches (which never change)
    and the rows changed in place since (``changed``, which the copy may go on changing unless given a
    copy). A search's hits build their rows from one after the copy's lock is let go."""

    def __init__(self, batches: BatchRows, changed: dict[int, AssetRow]) -> None:
        self._batches = batches
        self._changed = changed

    def rows_at(self, positions: Sequence[int] | np.ndarray) -> list[AssetRow]:
        at = np.asarray(positions, dtype=np.int64)
        rows = self._batches.rows(at)
        if not self._changed:
            return rows
        return [self._changed.get(p, row) for p, row in zip(at.tolist(), rows, strict=True)]

    def hashes_at(self, positions: np.ndarray) -> list[str]:
        hashes = self._batches.hashes(positions)
        if not self._changed:
            return hashes
        changed = self._changed
        return [changed[p].hash if p in changed else h for p, h in zip(positions.tolist(), hashes, strict=True)]


def _reader(column: pa.Array) -> Reader:
    if column.null_count:
        raise ValueError(f"a {column.type} column holds empty values")
    if pa.types.is_large_string(column.type):
        return _strings(column)
    if pa.types.is_large_list(column.type):
        return _string_lists(column)
    values = column.to_numpy()  # a view: numbers without nulls are not copied
    return lambda at: values[at].tolist()


def _offsets(column: pa.Array) -> np.ndarray:
    """Where each value starts in the column's data (one more than its length), as a view."""
    offsets = np.frombuffer(column.buffers()[1], np.int64)
    return offsets[column.offset : column.offset + len(column) + 1]


def _strings(column: pa.Array) -> Reader:
    offsets = _offsets(column)
    data = column.buffers()[2]
    text = memoryview(data if data is not None else b"")

    def read(at: np.ndarray) -> list[Any]:
        return [str(text[a:b], "utf-8") for a, b in zip(offsets[at].tolist(), offsets[at + 1].tolist(), strict=True)]

    return read


def _string_lists(column: pa.Array) -> Reader:
    offsets = _offsets(column)
    items = _strings(column.values)

    def read(at: np.ndarray) -> list[Any]:
        return [
            tuple(items(np.arange(a, b))) if b > a else ()
            for a, b in zip(offsets[at].tolist(), offsets[at + 1].tolist(), strict=True)
        ]

    return read
