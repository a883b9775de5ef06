"""Query vectors and result shaping: combining text, image and negatives; de-duplication.

A combined query is the weighted sum of unit embeddings (negatives with a
negative weight), renormalised; CLIP puts texts and images in one space, so
"red dress" plus a reference photo minus "people" is a meaningful point.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assetlens.engine.errors import UsageError
from assetlens.engine.indexer import real_path
from assetlens.engine.store import (
    FILE_TYPES,
    AssetRow,
    Hit,
    compare_filter,
    contains_filter,
    has_tag_filter,
    in_filter,
    prefix_filter,
)


@dataclass(frozen=True)
class SearchResult:
    """One hit: 1-based rank, cosine score and the stored metadata of the image.

    ``path`` is the real path (``os.fsdecode`` form: a name that is not UTF-8 holds surrogates), which opens.
    """

    rank: int
    score: float
    path: str
    filename: str
    folder: str
    width: int
    height: int
    size: int
    hash: str
    origin: str
    id: str
    #: Standard deviations above the library's average score for the query (``engine.relevance``); set
    #: when the search bounded relevance.
    relevance: float | None = None
    mtime: float = 0.0
    file_type: str = ""
    tags: tuple[str, ...] = ()

    @classmethod
    def from_hit(cls, rank: int, hit: Hit) -> SearchResult:
        """The result for a stored row: its path, file name and folder as the file system names them."""
        r: AssetRow = hit.row
        path, filename, folder = real_path(r.path), real_path(r.filename), real_path(r.folder)
        return cls(
            rank,
            hit.score,
            path,
            filename,
            folder,
            r.width,
            r.height,
            r.size,
            r.hash,
            r.origin,
            r.id,
            mtime=r.mtime,
            file_type=r.file_type,
            tags=r.tags,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_amount(option: str, value: float) -> None:
    """Refuse a weight or score that is NaN, infinite or negative (a NaN weight makes every score NaN)."""
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{option} must be a finite number of at least 0, not {value:g}.")


def check_text(what: str, text: str) -> None:
    """Refuse text that is not valid UTF-8 (undecodable bytes in argv arrive as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8; check the terminal's character encoding.") from None


def combine(parts: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Weighted sum of unit vectors, renormalised; refuses an empty or null query."""
    if not parts:
        raise UsageError("Give a text query, --image or --like (at least one).")
    total = np.float32(parts[0][1]) * np.asarray(parts[0][0], np.float32)
    for vector, weight in parts[1:]:
        total += np.float32(weight) * vector
    norm = math.sqrt(float(total @ total))
    if norm < 1e-6:
        raise UsageError("The query's parts cancel out; change the weights or drop a --minus.")
    unit: np.ndarray = total / np.float32(norm)
    return unit


def shape_results(
    hits: list[Hit],
    *,
    k: int,
    offset: int = 0,
    min_score: float | None = None,
    exclude_hashes: frozenset[str] = frozenset(),
    show_duplicates: bool = False,
) -> list[SearchResult]:
    """Drop excluded and duplicate images (same content hash), apply min score and paging."""
    kept: list[Hit] = []
    seen: set[str] = set()
    for hit in hits:
        if hit.hash in exclude_hashes:
            continue
        if min_score is not None and hit.score < min_score:
            break
        if not show_duplicates:
            if hit.hash in seen:
                continue
            seen.add(hit.hash)
        kept.append(hit)
    page = kept[offset : offset + k]
    Hit.load_rows(page)
    return [SearchResult.from_hit(offset + i + 1, h) for i, h in enumerate(page)]


ORIENTATIONS = ("landscape", "portrait", "square")
#: How each orientation compares width with height.
_ORIENTATION_OPS = {"landscape": ">", "portrait": "<", "square": "=="}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    ">=": operator.ge,
}
_ARROW_COMPARE = {">": "greater", "<": "less", "==": "equal", ">=": "greater_equal"}
FILE_TYPE_NAMES = frozenset(FILE_TYPES.values())
#: Other names people give the file types.
FILE_TYPE_ALIASES = {"jpg": "jpeg", "tif": "tiff", "heif": "heic"}
_MAX_INT32 = 2**31 - 1


def parse_file_types(value: str | Iterable[str]) -> frozenset[str]:
    """File types from ``"jpeg,png"`` or a list of names (case, a leading dot and aliases such as jpg allowed)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    found: set[str] = set()
    for item in items:
        name = str(item).strip().lower().lstrip(".")
        name = FILE_TYPE_ALIASES.get(name, name)
        if not name:
            continue
        if name not in FILE_TYPE_NAMES:
            raise UsageError(
                f"--type {str(item).strip()!r} is not a file type AssetLens indexes; "
                f"choose from {', '.join(sorted(FILE_TYPE_NAMES))}."
            )
        found.add(name)
    if not found:
        raise UsageError(f"--type names no file type; choose from {', '.join(sorted(FILE_TYPE_NAMES))}.")
    return frozenset(found)


def parse_time(option: str, value: str | date | datetime | float) -> float:
    """Seconds since the epoch for a date or time; a date or a time without a zone is local time."""
    if isinstance(value, bool):
        raise UsageError(f"{option} must be a date such as 2026-01-01, not {value!r}.")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise UsageError(f"{option} must be a date such as 2026-01-01, not {value!r}.")
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise UsageError(
                f"{option} {value!r} is not a date; give one as YYYY-MM-DD (e.g. 2026-01-01) or YYYY-MM-DDTHH:MM."
            ) from None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value.timestamp()


@dataclass(frozen=True)
class Filter:
    """Which rows a search may return; every condition given must hold.

    ``since``/``before`` bound the modification time in seconds since the epoch (``since`` included,
    ``before`` not). ``Filter.of`` builds one from what a user typed.
    """

    folder_prefix: str | None = None
    filename_contains: str | None = None
    orientation: str | None = None
    min_width: int | None = None
    min_height: int | None = None
    file_types: frozenset[str] = frozenset()
    since: float | None = None
    before: float | None = None
    tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.orientation is not None and self.orientation not in ORIENTATIONS:
            raise UsageError(f"--orientation must be one of {', '.join(ORIENTATIONS)}, not {self.orientation!r}.")
        for option, side in (("--min-width", self.min_width), ("--min-height", self.min_height)):
            if side is not None and (type(side) is not int or not 1 <= side <= _MAX_INT32):
                raise UsageError(f"{option} must be a whole number of pixels from 1 to {_MAX_INT32}, not {side!r}.")
        unknown = set(self.file_types) - FILE_TYPE_NAMES
        if unknown:
            raise UsageError(f"--type {sorted(unknown)[0]!r} is not a file type AssetLens indexes.")
        for option, when in (("--since", self.since), ("--before", self.before)):
            if when is not None and (isinstance(when, bool) or not math.isfinite(when)):
                raise UsageError(f"{option} must be a finite time, not {when!r}.")
        if self.since is not None and self.before is not None and self.since >= self.before:
            raise UsageError("--since must be earlier than --before; no image can be in that range.")
        for tag in self.tags:
            if not isinstance(tag, str) or not tag.strip():
                raise UsageError("A --tag is empty; give the tag to look for.")
            check_text("A --tag", tag)

    @classmethod
    def of(
        cls,
        *,
        folder_prefix: str | None = None,
        filename_contains: str | None = None,
        orientation: str | None = None,
        min_width: int | None = None,
        min_height: int | None = None,
        file_types: str | Iterable[str] | None = None,
        since: str | date | datetime | float | None = None,
        before: str | date | datetime | float | None = None,
        tags: Iterable[str] = (),
    ) -> Filter:
        """A filter from what a user gave: file types as names (``"jpeg,png"``), times as dates or ISO text."""
        return cls(
            folder_prefix,
            filename_contains,
            orientation.strip().lower() if isinstance(orientation, str) else orientation,
            min_width,
            min_height,
            parse_file_types(file_types) if file_types is not None else frozenset(),
            parse_time("--since", since) if since is not None else None,
            parse_time("--before", before) if before is not None else None,
            frozenset(tags),
        )

    @property
    def active(self) -> bool:
        """Whether the filter leaves any row out."""
        return self != NO_FILTER

    def needs(self) -> frozenset[str]:
        """The row fields the filter reads."""
        used = {
            "path": self.folder_prefix,
            "filename": self.filename_contains,
            "width": self.orientation or self.min_width,
            "height": self.orientation or self.min_height,
            "file_type": self.file_types,
            "mtime": self.since is not None or self.before is not None,
            "tags": self.tags,
        }
        return frozenset(name for name, given in used.items() if given)

    def expr(self) -> str:
        """The same filter as a Milvus boolean expression."""
        parts = []
        if self.folder_prefix:
            parts.append(prefix_filter("path", self.folder_prefix))
        if self.filename_contains:
            parts.append(contains_filter("filename", self.filename_contains))
        if self.orientation:
            parts.append(compare_filter("width", _ORIENTATION_OPS[self.orientation], "height"))
        if self.min_width is not None:
            parts.append(compare_filter("width", ">=", self.min_width))
        if self.min_height is not None:
            parts.append(compare_filter("height", ">=", self.min_height))
        if self.file_types:
            parts.append(in_filter("file_type", self.file_types))
        if self.since is not None:
            parts.append(compare_filter("mtime", ">=", self.since))
        if self.before is not None:
            parts.append(compare_filter("mtime", "<", self.before))
        parts.extend(has_tag_filter("tags", tag) for tag in sorted(self.tags))
        return " and ".join(parts)

    def matches(self, row: AssetRow) -> bool:
        """The same filter in Python (Milvus compares strings by code point, as ``str`` does)."""
        return (
            (not self.folder_prefix or row.path.startswith(self.folder_prefix))
            and (not self.filename_contains or self.filename_contains in row.filename)
            and (not self.orientation or _COMPARE[_ORIENTATION_OPS[self.orientation]](row.width, row.height))
            and (self.min_width is None or row.width >= self.min_width)
            and (self.min_height is None or row.height >= self.min_height)
            and (not self.file_types or row.file_type in self.file_types)
            and (self.since is None or row.mtime >= self.since)
            and (self.before is None or row.mtime < self.before)
            and self.tags.issubset(row.tags)
        )

    def mask(self, table: pa.Table) -> np.ndarray:
        """``matches`` for every row of a table of row columns at once (the search copy's), a bool per row."""
        keep = np.ones(table.num_rows, bool)

        def both(condition: pa.ChunkedArray) -> None:
            keep[:] &= condition.to_numpy()

        def compare(field: str, op: str, value: Any) -> None:
            both(pc.call_function(_ARROW_COMPARE[op], [table[field], value]))

        if self.folder_prefix:
            both(pc.starts_with(table["path"], pattern=self.folder_prefix))
        if self.filename_contains:
            both(pc.match_substring(table["filename"], pattern=self.filename_contains))
        if self.orientation:
            compare("width", _ORIENTATION_OPS[self.orientation], table["height"])
        if self.min_width is not None:
            compare("width", ">=", self.min_width)
        if self.min_height is not None:
            compare("height", ">=", self.min_height)
        if self.file_types:
            both(pc.is_in(table["file_type"], value_set=pa.array(sorted(self.file_types), pa.large_string())))
        if self.since is not None:
            compare("mtime", ">=", self.since)
        if self.before is not None:
            compare("mtime", "<", self.before)
        for tag in self.tags:
            start = 0
            for chunk in table["tags"].chunks:
                holds = pc.equal(pc.list_flatten(chunk), tag).to_numpy(zero_copy_only=False)
                rows = np.zeros(len(chunk), bool)
                rows[pc.list_parent_indices(chunk).to_numpy()[holds]] = True
                keep[start : start + len(chunk)] &= rows
                start += len(chunk)
        return keep


NO_FILTER = Filter()  # keeps every row
