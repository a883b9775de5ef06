"""Checking a library (``assetlens doctor``) and salvaging a damaged collection for a rebuild
(``assetlens index FOLDER --rebuild``; ``Library.check`` and ``Library.rebuild`` call these)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus.exceptions import MilvusException

from assetlens.engine import litefiles
from assetlens.engine.errors import AssetLensError, StoreError, StoreLockedError
from assetlens.engine.indexer import IndexReport
from assetlens.engine.search_copy import CopyState, copy_status
from assetlens.engine.store import (
    META_PROPERTY,
    ROW_FIELDS,
    V1_FIELDS,
    VECTOR_FIELD,
    AssetRow,
    CollectionMeta,
    MilvusStore,
    is_local,
    lock_held,
)

RESTORE_BATCH = 2000


@dataclass(frozen=True)
class Finding:
    """One thing checked: whether it is sound, and one sentence on it."""

    ok: bool
    text: str


@dataclass(frozen=True)
class Checkup:
    uri: str
    collection: str
    findings: tuple[Finding, ...]

    @property
    def damaged(self) -> bool:
        return any(not f.ok for f in self.findings)


def check(uri: str, token: str | None, collection: str) -> Checkup:
    """Check a library: its files (Milvus Lite), its collection's metadata and rows, counts, the saved search copy."""
    findings: list[Finding] = []

    def done() -> Checkup:
        return Checkup(uri, collection, tuple(findings))

    folder = Path(uri).expanduser().resolve() if is_local(uri) else None
    if folder is not None and not lock_held(folder):  # a locked one: opening it below says who holds it
        if not folder.is_dir():
            findings.append(Finding(False, f"There is no library at {uri}."))
            return done()
        damage = litefiles.damage(folder)
        findings.extend(Finding(False, f"{what[0].upper()}{what[1:]}.") for what in damage)
        if damage:
            findings.append(
                Finding(False, f"Rebuild it from the images with: assetlens index FOLDER --db {uri} --rebuild.")
            )
        broken = litefiles.broken_indexes(folder)
        findings.extend(
            Finding(False, f"The vector index {idx.relative_to(folder)} is unreadable; the next command rebuilds it.")
            for idx in broken
        )
        if damage or broken:
            return done()
        findings.append(Finding(True, "Every file Milvus Lite keeps in the library is present and readable."))
    try:
        store = MilvusStore(uri, token, collection, create=False, check=False)
    except StoreError as exc:
        findings.append(Finding(False, str(exc)))
        return done()
    with store:
        try:
            findings.extend(_check_collection(store))
        except AssetLensError as exc:
            findings.append(Finding(False, str(exc)))
        except MilvusException as exc:
            findings.append(Finding(False, f"Milvus cannot read collection {collection}: {exc.message}."))
    return done()


def _check_collection(store: MilvusStore) -> list[Finding]:
    meta = store.meta()
    if meta is None:
        return [Finding(True, f"Collection {store.collection} does not exist yet (nothing indexed into it).")]
    out = [Finding(True, f"Collection {store.collection} holds {meta.dim}-d embeddings of {meta.model_name}.")]
    count = store.count()
    readable = sum(1 for _ in store.rows())
    if readable != count:
        out.append(Finding(False, f"Milvus counts {count} rows but {readable} can be read."))
    else:
        out.append(Finding(True, f"All {count} rows can be read."))
    if count:
        store.search(np.ones((1, meta.dim), np.float32), 1)
        out.append(Finding(True, "Its vector index answers a search."))
    copy = copy_status(store, count)
    if copy.state is CopyState.STALE:
        out.append(Finding(True, "The saved search copy is stale: the next search rebuilds it from Milvus."))
    elif copy.state is CopyState.CURRENT:
        out.append(Finding(True, f"The saved search copy is current ({copy.rows} rows)."))
    return out


@dataclass(frozen=True)
class Salvaged:
    """A collection's readable rows, taken out of a library, and where its old files were moved."""

    meta: CollectionMeta | None
    rows: list[dict[str, Any]]
    unreadable: list[str]
    aside: Path | None


def set_aside(folder: Path, collection: str) -> Salvaged:
    """Read every row still readable in a Milvus Lite collection's files, then move its folder out of the
    library (beside it, in ``LIBRARY.damaged/TIME-XXXX/NAME``) so that Milvus Lite opens the library without it."""
    if lock_held(folder):
        raise StoreLockedError(f"The library {folder} is in use by another AssetLens process; stop it first.")
    source = litefiles.collection_dir(folder, collection)
    if not source.exists():
        return Salvaged(None, [], [], None)
    raw = litefiles.properties(folder, collection).get(META_PROPERTY)
    try:
        meta = CollectionMeta.from_property(str(raw), f"collection {collection}") if raw is not None else None
    except StoreError:
        meta = None
    found = litefiles.salvage(folder, collection)
    kept = folder.with_name(f"{folder.name}.damaged")
    try:
        kept.mkdir(exist_ok=True)
        aside = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%dT%H%M%S')}-", dir=kept)) / collection
        shutil.move(source, aside)
    except OSError as exc:
        raise StoreError(f"Cannot move the damaged collection out of {folder}: {exc.strerror or exc}.") from None
    return Salvaged(meta, found.rows, found.unreadable, aside)


def restore(store: MilvusStore, rows: Sequence[dict[str, Any]], dim: int) -> int:
    """Write salvaged rows into ``store``'s (new) collection; how many were written."""
    usable = [r for r in rows if len(r.get(VECTOR_FIELD) or ()) == dim and all(k in r for k in V1_FIELDS)]
    for start in range(0, len(usable), RESTORE_BATCH):
        batch = usable[start : start + RESTORE_BATCH]
        vectors = np.asarray([r[VECTOR_FIELD] for r in batch], dtype=np.float32)
        found = [AssetRow(**{k: r[k] for k in ROW_FIELDS if k in r}) for r in batch]  # older rows lack some fields
        store.upsert(found, vectors, new=True)
    if usable:
        store.flush()
    return len(usable)


@dataclass(frozen=True)
class RebuildReport:
    """What ``Library.rebuild`` did: rows restored from the old files, what could not be read, where the old
    files are, whether the old vectors could be reused, and the index run over the folder that followed."""

    restored: int
    unreadable: list[str]
    aside: Path | None
    vectors_reused: bool
    index: IndexReport
