"""What Milvus Lite keeps in its folder, read without opening it.

Milvus Lite 3 (pure Python) keeps one folder per collection::

    collections/NAME/schema.json          fields and collection properties
    collections/NAME/manifest.json        the live segments and the write sequence (+ manifest.json.prev)
    collections/NAME/wal/                 writes not yet flushed into a segment
    collections/NAME/partitions/P/data/*.parquet     segments: _seq, the primary key, every field
    collections/NAME/partitions/P/delta/*.parquet    deletions: the primary key, _seq
    collections/NAME/partitions/P/indexes/*.idx      per-segment vector indexes (FLAT: a .npy array), derived

Opening a damaged folder does not fail safely: a missing ``schema.json`` hides the collection (it reads
as empty), a missing ``manifest.json`` falls back to the previous one and deletes the newer segments as
orphans, with both missing every segment is deleted, a missing segment is silently dropped, a truncated
index file fails every read. So a folder is checked here before Milvus Lite is let near it, and its rows
can be salvaged straight from the segments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

COLLECTIONS = "collections"
SCHEMA = "schema.json"
MANIFEST = "manifest.json"
MANIFEST_PREV = "manifest.json.prev"
SEQ = "_seq"


def collection_dir(db: Path, collection: str) -> Path:
    return db / COLLECTIONS / collection


def _json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _segments(manifest: dict[str, Any], kind: str) -> list[str]:
    """The ``kind`` ("data_files" or "delta_files") of every partition, relative to the collection folder."""
    out: list[str] = []
    for name, part in (manifest.get("partitions") or {}).items():
        out.extend(f"partitions/{name}/{rel}" for rel in (part or {}).get(kind, []))
    return out


def _parquet_readable(path: Path) -> bool:
    try:
        pq.read_metadata(path)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return False
    return True


def _npy_readable(path: Path) -> bool:
    try:
        np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return True


def damage(db: Path) -> list[str]:
    """What is damaged in the Milvus Lite folder ``db``, one phrase each (empty: nothing found)."""
    found: list[str] = []
    for folder in sorted(p for p in (db / COLLECTIONS).glob("*") if p.is_dir()):
        name = folder.name
        has_data = any(folder.glob("partitions/*/data/*.parquet"))
        if not (folder / SCHEMA).exists():
            if has_data or (folder / MANIFEST).exists():
                found.append(f"collection {name}: its schema.json is missing")
            continue
        if _json(folder / SCHEMA) is None:
            found.append(f"collection {name}: its schema.json is unreadable")
        manifest = _json(folder / MANIFEST)
        if manifest is None:
            lost = "is missing" if not (folder / MANIFEST).exists() else "is unreadable"
            if has_data or (folder / MANIFEST_PREV).exists():
                found.append(f"collection {name}: manifest.json {lost}")
            continue
        for rel in _segments(manifest, "data_files") + _segments(manifest, "delta_files"):
            if not (folder / rel).is_file():
                found.append(f"collection {name}: segment {rel} is missing")
            elif not _parquet_readable(folder / rel):
                found.append(f"collection {name}: segment {rel} is truncated or overwritten")
    return found


def broken_indexes(db: Path) -> list[Path]:
    """Vector index files that cannot be read. Each is derived from its segment and written in place (a run
    stopped while writing one leaves it truncated): Milvus Lite fails on reading one, and rebuilds a missing one."""
    return [
        idx for idx in sorted(db.glob(f"{COLLECTIONS}/*/partitions/*/indexes/*.flat.idx")) if not _npy_readable(idx)
    ]


def write_mark(db: Path, collection: str) -> str:
    """A mark that every write to the collection changes: Milvus Lite's write sequence as of its last flush,
    and the write-ahead files holding writes since ("" when the manifest cannot be read).

    Milvus Lite numbers every insert, upsert and delete (``current_seq``) and records the number in
    its manifest at each flush (a client's close flushes too); writes not flushed yet sit in ``wal/``.
    """
    folder = collection_dir(db, collection)
    manifest = _json(folder / MANIFEST)
    if manifest is None or "current_seq" not in manifest:
        return ""
    wal = sorted(f"{p.name}:{p.stat().st_size}" for p in (folder / "wal").glob("*") if p.is_file())
    return ",".join([f"seq {manifest['current_seq']}", *wal])


def has_collection(db: Path, collection: str) -> bool:
    """Milvus Lite's own test of whether a collection exists: its schema.json is there."""
    return (collection_dir(db, collection) / SCHEMA).exists()


def properties(db: Path, collection: str) -> dict[str, Any]:
    """The collection properties recorded in its schema.json (empty when it cannot be read)."""
    props = (_json(collection_dir(db, collection) / SCHEMA) or {}).get("properties")
    return props if isinstance(props, dict) else {}


def described(db: Path, collection: str) -> tuple[list[str], dict[str, str]] | None:
    """The collection's field names and properties as Milvus Lite's ``describe_collection`` gives them, read
    from its schema.json (None when that cannot be read).

    Milvus Lite writes schema.json (a new file swapped in) on creating the collection and on every change
    of its properties, and describes the collection from the same schema; its first
    ``describe_collection`` also opens the collection, which loads every segment (9 s at 1M rows).
    """
    schema = _json(collection_dir(db, collection) / SCHEMA)
    if schema is None or not isinstance(schema.get("fields"), list) or not isinstance(schema.get("properties"), dict):
        return None
    names = [str(f.get("name")) for f in schema["fields"] if isinstance(f, dict)]
    return names, {str(k): str(v) for k, v in schema["properties"].items()}


@dataclass
class Salvage:
    """Rows read straight from a collection's segments: field values by name, the vector included."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # segments that could not be read, relative paths


def salvage(db: Path, collection: str, key: str = "id") -> Salvage:
    """Every row still readable in the collection's segments, each at its latest write, deletions applied.

    Segments are taken from the manifest when it can be read, else every segment file present.
    """
    folder = collection_dir(db, collection)
    manifest = _json(folder / MANIFEST) or _json(folder / MANIFEST_PREV)
    listed = _segments(manifest, "data_files") if manifest else []
    deltas = _segments(manifest, "delta_files") if manifest else []
    if not listed:
        listed = sorted(str(p.relative_to(folder)) for p in folder.glob("partitions/*/data/*.parquet"))
        deltas = sorted(str(p.relative_to(folder)) for p in folder.glob("partitions/*/delta/*.parquet"))
    out = Salvage()

    def readable_rows(rels: list[str]) -> Iterator[dict[str, Any]]:
        for rel in rels:
            try:
                table = pq.read_table(folder / rel)
            except (OSError, ValueError):
                out.unreadable.append(rel)
                continue
            yield from table.to_pylist()

    latest: dict[str, dict[str, Any]] = {}
    for row in readable_rows(listed):
        if row[key] not in latest or latest[row[key]][SEQ] < row[SEQ]:
            latest[row[key]] = row
    for row in readable_rows(deltas):
        kept = latest.get(row[key])
        if kept is not None and kept[SEQ] < row[SEQ]:
            del latest[row[key]]
    out.rows = [{k: v for k, v in row.items() if k != SEQ} for row in latest.values()]
    return out
