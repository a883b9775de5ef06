"""The vector store: one code path for Milvus Lite (a local file) and a Milvus server.

``MilvusStore`` is the only place that speaks pymilvus. The collection has
an explicit schema (primary key = a digest of the file path, so re-indexing
a path overwrites it instead of duplicating it) and records, in collection
properties, the schema version and the model whose embeddings it holds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from engine.errors import ModelMismatchError, StoreError, StoreLockedError

SCHEMA_VERSION = 1
VECTOR_FIELD = "vector"
META_PROPERTY = "assetlens.meta"
MAX_PATH = 4096
DEFAULT_COLLECTION = "assets"
DEFAULT_DB = "assetlens.db"


@dataclass(frozen=True)
class AssetRow:
    """One indexed image (everything but its vector)."""

    id: str
    path: str
    folder: str
    filename: str
    size: int
    mtime: float
    hash: str
    width: int
    height: int
    origin: str = "file"  # "file" or "generated"


ROW_FIELDS = tuple(f.name for f in fields(AssetRow))


@dataclass(frozen=True)
class CollectionMeta:
    """What a collection holds: which model's embeddings, of what size, indexed how."""

    model_id: str
    model_name: str
    precision: str
    dim: int
    index_type: str
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True)
class Hit:
    row: AssetRow
    score: float


def path_id(path: str) -> str:
    """Primary key of a path: stable, fixed length, whatever the path's length."""
    return hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()


def default_db() -> str:
    return os.environ.get("ASSETLENS_DB") or DEFAULT_DB


def is_local(uri: str) -> bool:
    return "://" not in uri


def _quote(value: str) -> str:
    return json.dumps(value)


def _lock_held(db_path: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on ``db_path``."""
    lock = db_path / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence libraries that log tracebacks for errors we report in one sentence."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class MilvusStore:
    """A collection of image embeddings in Milvus Lite (a path) or a Milvus server (a URI)."""

    def __init__(self, uri: str | None = None, token: str | None = None, collection: str = DEFAULT_COLLECTION):
        self.uri = uri or default_db()
        self.collection = collection
        self.local = is_local(self.uri)
        self._client = self._connect(token)
        self._meta: CollectionMeta | None = None
        self._loaded = False

    def _connect(self, token: str | None) -> MilvusClient:
        where = self.uri
        if self.local:
            path = Path(self.uri).expanduser().resolve()
            where = str(path)
            if path.exists() and not path.is_dir():
                raise StoreError(f"{path} exists but is not a Milvus Lite library (it is a file).")
            if _lock_held(path):
                raise StoreLockedError(
                    f"The library {self.uri} is in use by another AssetLens process; "
                    "stop it or use a Milvus server with --uri."
                )
            if not os.access(path if path.exists() else path.parent, os.W_OK):
                raise StoreError(f"Cannot write the library {path}: its folder is not writable.")
        try:
            with _quiet("milvus_lite", "pymilvus"):
                return MilvusClient(uri=where, token=token or "", timeout=10)
        except MilvusException as exc:
            if self.local:
                if _lock_held(Path(where)):
                    raise StoreLockedError(
                        f"The library {self.uri} is in use by another AssetLens process; "
                        "stop it or use a Milvus server with --uri."
                    ) from None
                raise StoreError(f"Cannot open the library {where}: {exc.message}.") from None
            raise StoreError(f"No Milvus server answers at {self.uri} ({exc.message}).") from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collection and its metadata ------------------------------------------------

    def exists(self) -> bool:
        return bool(self._client.has_collection(self.collection))

    def meta(self) -> CollectionMeta | None:
        """The collection's recorded model and index, or None when it does not exist."""
        if self._meta is None and self.exists():
            props = self._client.describe_collection(self.collection).get("properties", {})
            raw = props.get(META_PROPERTY)
            if raw is None:
                raise StoreError(
                    f"Collection {self.collection} in {self.uri} was not created by AssetLens; "
                    "choose another --collection."
                )
            self._meta = CollectionMeta(**json.loads(raw))
        return self._meta

    def index_type(self) -> str:
        """Vector index per backend: Milvus Lite searches FLAT exactly; a server builds HNSW."""
        return "FLAT" if self.local else "HNSW"

    def ensure(self, model_id: str, model_name: str, precision: str, dim: int) -> CollectionMeta:
        """Create the collection for a model, or check that it already holds that model's vectors."""
        existing = self.meta()
        if existing is not None:
            if existing.model_id != model_id or existing.dim != dim:
                raise ModelMismatchError(
                    f"Collection {self.collection} holds {existing.dim}-d embeddings of {existing.model_name} "
                    f"({existing.precision}), not {model_name} ({precision}, {dim}-d); "
                    "index with the same model or use another --collection."
                )
            return existing
        meta = CollectionMeta(model_id, model_name, precision, dim, self.index_type())
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=40)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("folder", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("filename", DataType.VARCHAR, max_length=1024)
        schema.add_field("size", DataType.INT64)
        schema.add_field("mtime", DataType.DOUBLE)
        schema.add_field("hash", DataType.VARCHAR, max_length=64)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        schema.add_field("origin", DataType.VARCHAR, max_length=16)
        index = self._client.prepare_index_params()
        params = {} if meta.index_type == "FLAT" else {"M": 16, "efConstruction": 200}
        index.add_index(VECTOR_FIELD, index_type=meta.index_type, metric_type="COSINE", params=params)
        self._client.create_collection(self.collection, schema=schema, index_params=index)
        self._client.alter_collection_properties(
            self.collection, properties={META_PROPERTY: json.dumps(asdict(meta))}
        )
        self._meta = meta
        self._loaded = True
        return meta

    def _load(self) -> None:
        """A reopened Milvus Lite collection may be released: load it before reading."""
        if not self._loaded:
            self._client.load_collection(self.collection)
            self._loaded = True

    # -- rows ---------------------------------------------------------------------------

    def upsert(self, rows: Sequence[AssetRow], vectors: np.ndarray) -> None:
        """Insert or overwrite rows (by path id) with their vectors, in one call."""
        if not rows:
            return
        data = [{**asdict(r), VECTOR_FIELD: v} for r, v in zip(rows, vectors.astype(np.float32).tolist())]
        self._client.upsert(self.collection, data)

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        self._client.delete(self.collection, ids=ids)
        return len(ids)

    def count(self) -> int:
        if not self.exists():
            return 0
        self._load()
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def rows(self, filter: str = "", batch_size: int = 2000) -> Iterator[AssetRow]:
        """Every row's metadata (no vectors), streamed in batches."""
        if not self.exists():
            return
        self._load()
        with _quiet("pymilvus"):
            it = self._client.query_iterator(
                self.collection, batch_size=batch_size, filter=filter, output_fields=list(ROW_FIELDS)
            )
            try:
                while batch := it.next():
                    yield from (AssetRow(**{k: r[k] for k in ROW_FIELDS}) for r in batch)
            finally:
                it.close()

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[tuple[AssetRow, np.ndarray | None]]:
        if not ids:
            return []
        self._load()
        out_fields = list(ROW_FIELDS) + ([VECTOR_FIELD] if with_vectors else [])
        res = self._client.get(self.collection, ids=list(ids), output_fields=out_fields)
        return [
            (
                AssetRow(**{k: r[k] for k in ROW_FIELDS}),
                np.asarray(r[VECTOR_FIELD], dtype=np.float32) if with_vectors else None,
            )
            for r in res
        ]

    def search(self, vectors: np.ndarray, k: int, filter: str = "") -> list[list[Hit]]:
        """Top-``k`` rows by cosine similarity for each query vector."""
        self._load()
        res = self._client.search(
            self.collection,
            data=np.asarray(vectors, dtype=np.float32).tolist(),
            limit=k,
            filter=filter,
            output_fields=list(ROW_FIELDS),
            search_params={"metric_type": "COSINE", "params": {"ef": max(64, k)}},
        )
        return [
            [Hit(AssetRow(**{f: h["entity"][f] for f in ROW_FIELDS}), float(h["distance"])) for h in hits]
            for hits in res
        ]


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prefix_filter(field: str, prefix: str) -> str:
    """A Milvus filter expression matching values that start with ``prefix``."""
    return f"{field} like {_quote(_escape_like(prefix) + '%')}"


def contains_filter(field: str, fragment: str) -> str:
    """A Milvus filter expression matching values that contain ``fragment``."""
    return f"{field} like {_quote('%' + _escape_like(fragment) + '%')}"


def equals_filter(field: str, value: Any) -> str:
    return f"{field} == {_quote(value) if isinstance(value, str) else value}"
