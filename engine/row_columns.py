"""A few rows of a record batch, read straight from its Arrow buffers.

A search builds the rows of a few dozen candidates spread over a saved copy's record batches. pyarrow's
``take`` dispatches a compute kernel per column, about 7 µs each, and about three times that right after a
text encoding has taken the CPU's caches (benchmarks/results/FINDINGS.md); reading the values at their
offsets in the mapped buffers costs a slice per value and no kernel at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from assetlens.engine.store import AssetRow

Reader = Callable[[np.ndarray], list[Any]]


class RowColumns:
    """The ``AssetRow`` columns of one record batch (``search_copy.ROW_SCHEMA``: large strings, 64-bit
    numbers and a large list of strings, none of them null), as views of its buffers."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self._readers = [_reader(column) for column in batch.columns]

    def rows(self, at: np.ndarray) -> list[AssetRow]:
        """The rows at the batch's positions ``at`` (int64), in that order."""
        return [AssetRow(*values) for values in zip(*(read(at) for read in self._readers), strict=True)]


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
