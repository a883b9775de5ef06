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
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

import grpc
import numpy as np
from milvus_lite.server_manager import server_manager_instance
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.milvus_client import IndexParams

from assetlens.engine import litefiles
from assetlens.engine.errors import (
    LibraryDamagedError,
    LibraryVersionError,
    ModelMismatchError,
    ReadOnlyLibraryError,
    StoreError,
    StoreLockedError,
    StoreWriteError,
    UsageError,
)

SCHEMA_VERSION = 2
VECTOR_FIELD = "vector"
META_PROPERTY = "assetlens.meta"
GENERATION_PROPERTY = "assetlens.generation"
CACHE_DIR = "assetlens-cache"
MAX_PATH = 4096
DEFAULT_COLLECTION = "assets"
DEFAULT_DB = "assetlens.db"
MAX_TAGS = 64  # per row
MAX_TAG_BYTES = 256  # per tag, in UTF-8
UPGRADE_BATCH = 2000
# No keepalive pings (gRPC's "never", INT_MAX ms): pymilvus has gRPC ping every 10 s, between calls too, and
# Milvus Lite's gRPC server takes at most one ping per 5 minutes without data (gRPC's default; once a minute
# was measured too often): more get GOAWAY too_many_pings, which gRPC prints raw on stderr. Calls have their
# own timeouts, and pymilvus reconnects a dropped connection on the next call.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": 0}


def milvus_client(uri: str, token: str = "", timeout: float | None = None) -> MilvusClient:
    """A pymilvus client with ``GRPC_OPTIONS``: every client AssetLens opens, the benchmarks' included, is made
    here: a client on pymilvus' defaults pings every 10 s, and pymilvus shares one connection per address and
    token, made with the options of the first client."""
    return MilvusClient(uri=uri, token=token, timeout=timeout, grpc_options=GRPC_OPTIONS)


#: The file type of each extension AssetLens indexes (``scan.IMAGE_EXTENSIONS``), as ``--type`` names it.
FILE_TYPES: dict[str, str] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".bmp": "bmp",
    ".gif": "gif",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".heic": "heic",
    ".heif": "heic",
    ".avif": "avif",
    ".svg": "svg",
    ".psd": "psd",
    ".psb": "psb",
}


def file_type(filename: str) -> str:
    """The file type of a file name by its extension, whatever its case ("" for an extension not indexed)."""
    return FILE_TYPES.get(os.path.splitext(filename)[1].lower(), "")


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
    file_type: str = ""  # from the file name's extension when not given (``FILE_TYPES``)
    tags: tuple[str, ...] = ()
    tagged: str = ""  # the fingerprint of the vocabulary the tags came from ("": never tagged)

    def __post_init__(self) -> None:
        if not self.file_type:
            object.__setattr__(self, "file_type", file_type(self.filename))
        if type(self.tags) is not tuple:  # Milvus and JSON give lists
            object.__setattr__(self, "tags", tuple(self.tags))


ROW_FIELDS = tuple(f.name for f in fields(AssetRow))
#: The fields of collections made before file types and tags were stored (schema version 1); reading them
#: works, the first write upgrades them (``MilvusStore.ensure``).
V1_FIELDS = ROW_FIELDS[: ROW_FIELDS.index("origin") + 1]


def record(row: AssetRow) -> dict[str, Any]:
    """A row as Milvus stores it."""
    return {**asdict(row), "tags": list(row.tags)}


def upgrade_names(collection: str) -> tuple[str, str]:
    """The collections an upgrade of ``collection`` writes into, and moves the old one to, while it runs."""
    digest = hashlib.sha1(collection.encode()).hexdigest()[:16]
    return f"_assetlens_upgrade_{digest}", f"_assetlens_old_{digest}"


def _meta_v0_to_v1(old: dict[str, Any]) -> dict[str, Any]:
    """Metadata written before it carried a version: Milvus Lite collections, all FLAT."""
    return {"index_type": "FLAT", **old}


def _meta_v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
    """Version 2 collections also store each row's file type and tags; the metadata itself is unchanged
    (which fields a collection has is read from its schema)."""
    return old


@dataclass(frozen=True)
class CollectionMeta:
    """What a collection holds: which model's embeddings, of what size, indexed how.

    Stored as one JSON collection property that carries its ``schema_version``: older versions are
    migrated on reading (``MIGRATIONS``), newer ones refused, keys this version does not know ignored.
    """

    model_id: str
    model_name: str
    precision: str
    dim: int
    index_type: str
    schema_version: int = SCHEMA_VERSION

    MIGRATIONS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {0: _meta_v0_to_v1, 1: _meta_v1_to_v2}

    def to_property(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_property(cls, raw: str, where: str) -> CollectionMeta:
        """The metadata in a collection property; ``where`` names the collection in messages."""
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise LibraryDamagedError(
                f"The AssetLens metadata of {where} is not readable JSON; "
                "rebuild it with: assetlens index FOLDER --rebuild."
            )
        version = data.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise LibraryVersionError(
                f"{where} was written by a newer AssetLens (metadata version {version}, this one reads up to "
                f"{SCHEMA_VERSION}); upgrade AssetLens to use it."
            )
        while version < SCHEMA_VERSION:
            data = cls.MIGRATIONS[version](data)
            version += 1
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known} | {"schema_version": SCHEMA_VERSION})
        except TypeError:
            missing = sorted(known - data.keys())
            raise LibraryDamagedError(
                f"The AssetLens metadata of {where} lacks {', '.join(missing)}; "
                "rebuild it with: assetlens index FOLDER --rebuild."
            ) from None


class RowSource(Protocol):
    """Where the rows of hits that do not hold theirs yet are built from, by position."""

    def rows_at(self, positions: Sequence[int]) -> list[AssetRow]: ...


class Hit:
    """A search hit: its score, content hash and row.

    A search copy's hits hold where their row is instead of the row (``Hit.later``): a search returns
    about three times the candidates a result keeps (``Library.search`` asks for 2k + 8, for duplicates
    and left-out images), and ``Hit.load_rows`` builds only the kept ones' rows, in one read."""

    __slots__ = ("_position", "_row", "_source", "hash", "score")

    def __init__(self, row: AssetRow, score: float) -> None:
        self.score = score
        self.hash = row.hash
        self._row: AssetRow | None = row
        self._source: RowSource | None = None
        self._position = -1

    @classmethod
    def later(cls, score: float, hash: str, source: RowSource, position: int) -> Hit:
        """A hit whose row ``source`` builds when it is asked for."""
        hit = cls.__new__(cls)
        hit.score, hit.hash, hit._row, hit._source, hit._position = score, hash, None, source, position
        return hit

    @property
    def row(self) -> AssetRow:
        if self._row is None:
            Hit.load_rows([self])
        assert self._row is not None
        return self._row

    @staticmethod
    def load_rows(hits: Iterable[Hit]) -> None:
        """Build the rows of ``hits`` that are not built yet, one read per source."""
        waiting: dict[int, tuple[RowSource, list[Hit]]] = {}
        for hit in hits:
            if hit._row is None and hit._source is not None:
                waiting.setdefault(id(hit._source), (hit._source, []))[1].append(hit)
        for source, group in waiting.values():
            for hit, row in zip(group, source.rows_at([h._position for h in group]), strict=True):
                hit._row, hit._source = row, None

    def __repr__(self) -> str:
        return f"Hit(score={self.score!r}, hash={self.hash!r}, row={self._row!r})"


class WriteObserver(Protocol):
    """Told about every write through a store (``engine.search_copy.SearchCopy`` keeps its search copy with it)."""

    def before_write(self) -> None:
        """The first write since the last flush is about to happen (the generation is still the old one)."""

    def upserted(self, rows: Sequence[AssetRow], vectors: np.ndarray) -> None: ...

    def deleted(self, ids: Sequence[str]) -> None: ...

    def flushed(self) -> None:
        """Every write so far is sealed in Milvus, under the current generation."""


def path_id(path: str) -> str:
    """Primary key of a path: stable, fixed length, whatever the path's length."""
    return hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()


def default_db() -> str:
    return os.environ.get("ASSETLENS_DB") or DEFAULT_DB


_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def check_collection_name(name: str) -> None:
    """Milvus' rule for collection names, checked before any connection is made."""
    if not _COLLECTION_NAME.fullmatch(name):
        given = repr(name) if len(name) <= 64 else f"{name[:64]!r}... ({len(name)} characters)"
        raise UsageError(
            f"{given} is not a valid collection name: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 255 characters."
        )


def is_local(uri: str) -> bool:
    return "://" not in uri


def damaged_sentence(uri: str, found: Sequence[str]) -> str:
    """What is damaged in a Milvus Lite library and what to do, in one sentence."""
    return (
        f"The library {uri} is damaged ({'; '.join(found)}); nothing was changed: "
        f"see assetlens doctor --db {uri}, and rebuild it with assetlens index FOLDER --db {uri} --rebuild."
    )


def _quote(value: str) -> str:
    # Non-ASCII stays literal: Milvus Lite rejects \u escapes, and servers reject surrogate pairs.
    return json.dumps(value, ensure_ascii=False)


def lock_held(db_path: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on ``db_path``."""
    lock = db_path / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)  # flock needs no write access: a read-only library can be asked too
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


class _DropUnimplemented(logging.Filter):
    """Milvus Lite's in-process gRPC server lacks a few RPCs (AllocTimestamp) that pymilvus
    tries first and then works around; its server thread logs a traceback for each."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], NotImplementedError))


logging.getLogger("grpc._server").addFilter(_DropUnimplemented())


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
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


log = logging.getLogger(__name__)
_read_only_said = False  # the warning that a library is read-only, given once per process

# Open stores per Milvus Lite folder in this process. Milvus Lite keeps a folder open, and locked
# against other processes, until the process exits, unless it is released when its last store closes.
_lite_users: Counter[str] = Counter()


class MilvusStore:
    """A collection of image embeddings in Milvus Lite (a path) or a Milvus server (a URI)."""

    def __init__(
        self,
        uri: str | None = None,
        token: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        create: bool = True,
        check: bool = True,
    ) -> None:
        """``check=False`` skips the check of a Milvus Lite folder's files (``engine.litefiles``) before opening it."""
        check_collection_name(collection)
        self.uri = uri or default_db()
        self.collection = collection
        self.local = is_local(self.uri)
        self.read_only = False
        self._snapshot: Path | None = None  # a read-only library's private copy, which Milvus Lite opens
        self._folder = Path(self.uri).expanduser().resolve() if self.local else None
        if self._folder is not None and not create and not self._folder.exists():
            raise StoreError(
                f"There is no library at {self.uri}; create one with: assetlens index FOLDER --db {self.uri}"
            )
        # A folder locked by its writer is not checked: a flush or compaction there would read as damage.
        self._checked = False  # the files were checked, so broken index files can be dropped
        if self._folder is not None and check and self._folder.is_dir() and not lock_held(self._folder):
            self._checked = True
            found = litefiles.damage(self._folder)
            if found:
                raise LibraryDamagedError(damaged_sentence(self.uri, found))
        self._client = self._connect(token)
        self._lite_path = str(self._snapshot or self._folder) if self._folder is not None else None
        if self._lite_path is not None:
            _lite_users[self._lite_path] += 1
        self._meta: CollectionMeta | None = None
        self._fields = ROW_FIELDS
        self._loaded = False
        self.observer: WriteObserver | None = None
        self.dirty = False  # written since the last flush

    def _open_read_only(self, path: Path) -> Path:
        """A private copy of a library this process cannot write (Milvus Lite writes its lock and
        write-ahead files even to read): searched and counted like the library, never saved back."""
        self.read_only = True
        self._snapshot = Path(tempfile.mkdtemp(prefix="assetlens-readonly-")) / path.name
        try:
            shutil.copytree(path, self._snapshot, ignore=shutil.ignore_patterns("LOCK", CACHE_DIR))
            for folder, _, files in os.walk(self._snapshot):  # the copy keeps the modes: make it this process's
                os.chmod(folder, 0o700)
                for name in files:
                    os.chmod(os.path.join(folder, name), 0o600)
        except OSError as exc:
            shutil.rmtree(self._snapshot.parent, ignore_errors=True)
            raise StoreError(f"Cannot read the read-only library {path}: {exc.strerror or exc}.") from None
        return self._snapshot

    def _drop_broken_indexes(self, where: Path) -> None:
        """Remove unreadable vector index files, which Milvus Lite then rebuilds from their segments."""
        for idx in litefiles.broken_indexes(where):
            try:
                idx.unlink()
            except OSError as exc:
                raise LibraryDamagedError(
                    damaged_sentence(self.uri, [f"the vector index {idx} is unreadable and cannot be removed ({exc})"])
                ) from None
            log.warning("The vector index %s was unreadable; it is rebuilt from its segment.", idx.name)

    def _reading(self) -> None:
        """Say once per process, when a read-only library is first read, what that means."""
        global _read_only_said
        if self.read_only and not _read_only_said:
            log.warning(
                "The library %s is read-only: searching it without a lock and saving no search copy.", self._folder
            )
            _read_only_said = True

    def _connect(self, token: str | None) -> MilvusClient:
        where = self.uri
        if self._folder is not None:
            path = self._folder
            where = str(path)
            if path.exists() and not path.is_dir():
                raise StoreError(f"{path} exists but is not a Milvus Lite library (it is a file).")
            lock = path / "LOCK"
            if path.exists() and (not os.access(path, os.W_OK) or (lock.exists() and not os.access(lock, os.W_OK))):
                where = str(self._open_read_only(path))
            elif not path.exists() and not os.access(path.parent, os.W_OK):
                raise StoreError(f"Cannot write the library {path}: its folder is not writable.")
            if self._checked:
                self._drop_broken_indexes(Path(where))
        try:
            with _quiet("milvus_lite", "pymilvus"):
                return milvus_client(where, token or "", timeout=10)
        except MilvusException as exc:
            self._drop_snapshot()
            if self.local:
                if lock_held(Path(where)):
                    raise StoreLockedError(
                        f"The library {self.uri} is in use by another AssetLens process; "
                        "stop it or use a Milvus server with --uri."
                    ) from None
                raise StoreError(f"Cannot open the library {self._folder}: {exc.message}.") from None
            cause = exc.__cause__
            if isinstance(cause, grpc.Call) and cause.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise StoreError(
                    f"The Milvus server at {self.uri} refused the login ({cause.details()}); "
                    "give its user:password with --token or $ASSETLENS_MILVUS_TOKEN."
                ) from None
            raise StoreError(f"No Milvus server answers at {self.uri} ({exc.message}).") from None
        except ValueError as exc:  # urllib's reading of a malformed URI, e.g. a port that is not a number
            raise StoreError(f"{self.uri} is not a valid Milvus URI ({exc}); e.g. http://localhost:19530.") from None

    def close(self) -> None:
        self._client.close()
        if self._lite_path is not None:  # the last store on a Milvus Lite folder lets other processes open it
            _lite_users[self._lite_path] -= 1
            if not _lite_users[self._lite_path]:
                server_manager_instance.release_server(self._lite_path)
            self._lite_path = None
        self._drop_snapshot()

    def _drop_snapshot(self) -> None:
        if self._snapshot is not None:
            shutil.rmtree(self._snapshot.parent, ignore_errors=True)
            self._snapshot = None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write: refused on a read-only library; a failure becomes one sentence, without Milvus' log noise."""
        if self.read_only:
            raise ReadOnlyLibraryError(
                f"The library {self.uri} is read-only; searching and stats work, indexing needs write access."
            )
        try:
            with _quiet("milvus_lite", "pymilvus", "grpc._server"):
                yield
        except MilvusException as exc:
            if "No space left on device" in exc.message:
                raise StoreWriteError(
                    f"The disk holding the library {self.uri} is full; everything written before is kept: "
                    "free some space and run the command again."
                ) from None
            raise StoreWriteError(f"Milvus could not write to {self.uri}: {exc.message}.") from None

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collection and its metadata ------------------------------------------------

    def exists(self) -> bool:
        # pymilvus asks has_collection with a describe_collection, which makes Milvus Lite load the whole
        # collection (8 s at 1M rows); Milvus Lite's own answer is whether its schema.json is there.
        if self._lite_path is not None:
            found = litefiles.has_collection(Path(self._lite_path), self.collection)
        else:
            found = bool(self._client.has_collection(self.collection))
        return found or self._finish_upgrade()

    def meta(self) -> CollectionMeta | None:
        """The collection's recorded model and index, or None when it does not exist."""
        if self._meta is None and self.exists():
            names, props = self._described()
            self._fields = tuple(f for f in ROW_FIELDS if f in names)
            raw = props.get(META_PROPERTY)
            if raw is None:
                raise StoreError(
                    f"Collection {self.collection} in {self.uri} was not created by AssetLens; "
                    "choose another --collection."
                )
            self._meta = CollectionMeta.from_property(str(raw), f"collection {self.collection} in {self.uri}")
        return self._meta

    def fields(self) -> tuple[str, ...]:
        """The row fields the collection stores (all of ``ROW_FIELDS`` unless it predates some)."""
        self.meta()
        return self._fields

    def _row(self, found: dict[str, Any]) -> AssetRow:
        return AssetRow(**{k: found[k] for k in self._fields})

    def others(self) -> list[tuple[str, CollectionMeta, int]]:
        """The other AssetLens collections in this database: name, what they hold, row count."""
        self._reading()
        found = []
        for name in sorted(self._client.list_collections()):
            if name == self.collection:
                continue
            raw = self._client.describe_collection(name).get("properties", {}).get(META_PROPERTY)
            if raw is None:
                continue
            meta = CollectionMeta.from_property(str(raw), f"collection {name} in {self.uri}")
            found.append((name, meta, int(self._client.get_collection_stats(name)["row_count"])))
        return found

    def index_type(self) -> str:
        """Vector index per backend: Milvus Lite searches FLAT exactly; a server builds HNSW."""
        return "FLAT" if self.local else "HNSW"

    def generation(self) -> str:
        """The collection's write generation: changed before the first write after each flush
        ("" for a collection never written since AssetLens began keeping one)."""
        if not self.exists():
            return ""
        return str(self._described()[1].get(GENERATION_PROPERTY, ""))

    def _described(self) -> tuple[list[str], dict[str, Any]]:
        """The collection's field names and properties: on Milvus Lite from its files (``litefiles.described``),
        which spares a search from its first ``describe_collection``, which loads the whole collection."""
        if self._lite_path is not None:
            found = litefiles.described(Path(self._lite_path), self.collection)
            if found is not None:
                return found
        described = self._client.describe_collection(self.collection)
        return [f["name"] for f in described.get("fields", [])], described.get("properties", {})

    def cache_folder(self) -> Path | None:
        """Where copies derived from this collection are saved: inside the Milvus Lite folder; none on a server."""
        return self._folder / CACHE_DIR / self.collection if self._folder is not None else None

    def write_mark(self) -> str:
        """A mark every write to the collection changes, by this process or any other (Milvus Lite: its write
        sequence, ``engine.litefiles.write_mark``); "" on a server, which exposes none."""
        if self._lite_path is None:
            return ""
        self._reading()  # what a search from the saved copy reads of the library
        return litefiles.write_mark(Path(self._lite_path), self.collection)

    def _before_write(self) -> None:
        if self.dirty:
            return
        if self.observer is not None:
            self.observer.before_write()
        with self._writing():
            if self.local:  # only Milvus Lite libraries have saved copies to invalidate
                self._client.alter_collection_properties(
                    self.collection, properties={GENERATION_PROPERTY: os.urandom(8).hex()}
                )
        self.dirty = True

    def ensure(self, model_id: str, model_name: str, precision: str, dim: int) -> CollectionMeta:
        """Create the collection for a model, or check that it already holds that model's vectors."""
        if self.read_only:
            with self._writing():  # refuses, before any image is read
                pass
        existing = self.meta()
        if existing is not None:
            if existing.model_id != model_id or existing.dim != dim:
                raise ModelMismatchError(
                    f"Collection {self.collection} holds {existing.dim}-d embeddings of {existing.model_name} "
                    f"({existing.precision}), not {model_name} ({precision}, {dim}-d); "
                    "index with the same model or use another --collection."
                )
            if not self._client.list_indexes(self.collection):  # a run stopped between creating it and its index
                with self._writing():
                    self._client.create_index(self.collection, self._index_params(existing.index_type))
            if self._fields != ROW_FIELDS:
                self._upgrade(existing)
            elif self._client.has_collection(upgrade_names(self.collection)[1]):  # killed before its last step
                with self._writing():
                    self._client.drop_collection(upgrade_names(self.collection)[1])
            return existing
        meta = CollectionMeta(model_id, model_name, precision, dim, self.index_type())
        with self._writing():
            self._create(self.collection, meta, {})
        self._meta = meta
        self._fields = ROW_FIELDS
        self._loaded = True
        return meta

    def _create(self, name: str, meta: CollectionMeta, properties: dict[str, str]) -> None:
        """Create collection ``name`` with today's schema and the vector index for ``meta``."""
        dim = meta.dim
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
        schema.add_field("file_type", DataType.VARCHAR, max_length=16)
        schema.add_field(
            "tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_TAGS, max_length=MAX_TAG_BYTES
        )
        schema.add_field("tagged", DataType.VARCHAR, max_length=64)
        # The meta is a creation property (never a separate call that a crash could skip); Strong
        # consistency makes every read see the writes before it (a server's default, Bounded, does not).
        self._client.create_collection(
            name,
            schema=schema,
            index_params=self._index_params(meta.index_type),
            consistency_level="Strong",
            properties={META_PROPERTY: meta.to_property(), **properties},
        )

    def _upgrade(self, meta: CollectionMeta) -> None:
        """Bring a collection made before file types and tags were stored to today's schema.

        Milvus adds no field to a collection (not Milvus Lite, not a 2.3 server): every row and vector is
        copied into a new collection, which takes the old one's name only once it holds them all; the old one
        is dropped last. A run killed before the swap leaves the old collection as it was (the partial copy is
        dropped by the next upgrade); one killed during the swap is completed by ``_finish_upgrade``.
        """
        new, old = upgrade_names(self.collection)
        rows, vectors = self.rows_and_vectors()
        log.warning(
            "Collection %s in %s was made by an older AssetLens: copying its %d rows into today's layout, "
            "which stores file types and tags (once; about a minute per 100,000 rows on Milvus Lite).",
            self.collection,
            self.uri,
            len(rows),
        )
        with self._writing():
            if self._client.has_collection(new):
                self._client.drop_collection(new)
            self._create(new, meta, {GENERATION_PROPERTY: os.urandom(8).hex()})
            for start in range(0, len(rows), UPGRADE_BATCH):
                batch = rows[start : start + UPGRADE_BATCH]
                block = vectors[start : start + UPGRADE_BATCH].tolist()
                self._client.insert(new, [{**record(r), VECTOR_FIELD: v} for r, v in zip(batch, block, strict=True)])
            self._client.flush(new)
            copied = self._client.query(new, filter="", output_fields=["count(*)"])[0]["count(*)"]
            if copied != len(rows):
                raise StoreWriteError(
                    f"Upgrading collection {self.collection} in {self.uri} copied {copied} of {len(rows)} rows; "
                    "nothing was changed: run the command again."
                )
            if self._client.has_collection(old):
                self._client.drop_collection(old)
            self._client.rename_collection(self.collection, old)
            self._client.rename_collection(new, self.collection)
            self._client.drop_collection(old)
        self._meta = None
        self._fields = ROW_FIELDS
        self._loaded = False

    def _finish_upgrade(self) -> bool:
        """Complete an upgrade stopped between moving the old collection aside and renaming the new one
        (the new one is complete by then); whether the collection exists now."""
        new, old = upgrade_names(self.collection)
        if not (self._client.has_collection(old) and self._client.has_collection(new)):
            return False
        with _quiet("milvus_lite", "pymilvus", "grpc._server"):
            self._client.rename_collection(new, self.collection)
            self._client.drop_collection(old)
        return True

    def _index_params(self, index_type: str) -> IndexParams:
        index = self._client.prepare_index_params()
        params = {} if index_type == "FLAT" else {"M": 16, "efConstruction": 200}
        index.add_index(VECTOR_FIELD, index_type=index_type, metric_type="COSINE", params=params)
        return index

    def _load(self) -> None:
        """A reopened Milvus Lite collection may be released: load it before reading."""
        self._reading()
        if not self._loaded:
            self.meta()  # completes an upgrade stopped halfway (``_finish_upgrade``)
            self._client.load_collection(self.collection)
            self._loaded = True

    # -- rows ---------------------------------------------------------------------------

    def upsert(self, rows: Sequence[AssetRow], vectors: np.ndarray, new: bool = False) -> None:
        """Insert or overwrite rows (by path id) with their vectors, in one call.

        ``new=True`` promises the ids are not stored yet. On Milvus Lite (one writer,
        held by its file lock) that allows a plain insert, which skips upsert's
        per-key lookup across all segments; a server may have other writers, so it
        always upserts.
        """
        if not rows:
            return
        self._before_write()
        data = [{**record(r), VECTOR_FIELD: v} for r, v in zip(rows, vectors.astype(np.float32).tolist(), strict=True)]
        with self._writing():
            if new and self.local:
                self._client.insert(self.collection, data)
            else:
                self._client.upsert(self.collection, data)
        if self.observer is not None:
            self.observer.upserted(rows, vectors)

    def flush(self) -> None:
        """Seal written rows into a segment: Milvus Lite scans unsealed rows in Python on every read."""
        with self._writing():
            self._client.flush(self.collection)
        self.dirty = False
        if self.observer is not None:
            self.observer.flushed()

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        self._before_write()
        with self._writing():
            self._client.delete(self.collection, ids=ids)
        if self.observer is not None:
            self.observer.deleted(ids)
        return len(ids)

    def count(self) -> int:
        self._reading()
        if not self.exists():
            return 0
        if self.local:  # exact on Milvus Lite (deletes and unflushed rows included) without loading its vector index
            return int(self._client.get_collection_stats(self.collection)["row_count"])
        self._load()  # a server's statistics lag behind deletes: count the rows themselves
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def _scan(self, fields: list[str], filter: str = "") -> Iterator[list[dict[str, Any]]]:
        """Every matching row's ``fields``, in batches.

        Milvus Lite answers one unbounded query in seconds but its query iterator
        re-scans per batch (minutes at 100k rows); a server caps a query at 16,384
        rows and iterates efficiently. Hence one path per backend.
        """
        if not self.exists():
            return
        self._load()
        if self.local:
            total = self.count()
            if total:
                yield self._client.query(self.collection, filter=filter, output_fields=fields, limit=total)
            return
        with _quiet("pymilvus"):
            it = self._client.query_iterator(self.collection, batch_size=10_000, filter=filter, output_fields=fields)
            try:
                while batch := it.next():
                    yield batch
            finally:
                it.close()

    def rows(self, filter: str = "") -> Iterator[AssetRow]:
        """Every row's metadata (no vectors)."""
        for batch in self._scan(list(self.fields()), filter):
            yield from (self._row(r) for r in batch)

    def rows_and_vectors(self) -> tuple[list[AssetRow], np.ndarray]:
        """All rows with their vectors as one (N, dim) float32 matrix, for an in-memory index."""
        meta = self.meta()
        dim = meta.dim if meta else 0
        rows: list[AssetRow] = []
        chunks: list[np.ndarray] = []
        for batch in self._scan([*self.fields(), VECTOR_FIELD]):
            rows.extend(self._row(r) for r in batch)
            flat = np.fromiter((x for r in batch for x in r[VECTOR_FIELD]), np.float32, count=len(batch) * dim)
            chunks.append(flat.reshape(len(batch), dim))
        return rows, (np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32))

    def sample_vectors(self, n: int) -> np.ndarray:
        """Up to ``n`` stored vectors as an (n, dim) float32 matrix: a cheap sample of the collection."""
        meta = self.meta()
        if meta is None:
            return np.zeros((0, 0), np.float32)
        self._load()
        res = self._client.query(self.collection, filter="", output_fields=[VECTOR_FIELD], limit=n)
        return np.asarray([r[VECTOR_FIELD] for r in res], dtype=np.float32).reshape(len(res), meta.dim)

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[tuple[AssetRow, np.ndarray | None]]:
        if not ids:
            return []
        self._load()
        out_fields = list(self.fields()) + ([VECTOR_FIELD] if with_vectors else [])
        res = self._client.get(self.collection, ids=list(ids), output_fields=out_fields)
        return [
            (
                self._row(r),
                np.asarray(r[VECTOR_FIELD], dtype=np.float32) if with_vectors else None,
            )
            for r in res
        ]

    def search(self, vectors: np.ndarray, k: int, filter: str = "") -> list[list[Hit]]:
        """Top-``k`` rows by cosine similarity for each query vector."""
        self._load()
        try:
            with _quiet("pymilvus"):
                res = self._client.search(
                    self.collection,
                    data=np.asarray(vectors, dtype=np.float32).tolist(),
                    limit=k,
                    filter=filter,
                    output_fields=list(self.fields()),
                    search_params={"metric_type": "COSINE", "params": {"ef": max(64, k)}},
                )
        except MilvusException as exc:
            if "only prefix pattern match" in exc.message:  # servers before 2.4 have no infix "like"
                raise StoreError(
                    f"The Milvus server at {self.uri} cannot match text inside file names (--filename); "
                    "that needs Milvus 2.4 or newer."
                ) from None
            raise StoreError(f"Milvus could not run the search in {self.uri}: {exc.message}.") from None
        return [[Hit(self._row(h["entity"]), float(h["distance"])) for h in hits] for hits in res]


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prefix_filter(field: str, prefix: str) -> str:
    """A Milvus filter expression matching values that start with ``prefix``.

    A range, not ``like``: Milvus 2.3 servers read no escapes in ``like`` patterns (a ``_`` or ``%``
    in a folder name would match nothing), and no backend escapes a backslash the same way.
    Strings compare as UTF-8 bytes, i.e. by code point, so the values starting with ``prefix`` are
    exactly those from ``prefix`` up to (not including) ``prefix`` with its last character incremented.
    """
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"{field} >= {_quote(prefix)} and {field} < {_quote(upper)}"


def contains_filter(field: str, fragment: str) -> str:
    """A Milvus filter expression matching values that contain ``fragment``."""
    return f"{field} like {_quote('%' + _escape_like(fragment) + '%')}"


def equals_filter(field: str, value: Any) -> str:
    return f"{field} == {_quote(value) if isinstance(value, str) else value}"


def in_filter(field: str, values: Iterable[str]) -> str:
    """A Milvus filter expression matching values equal to one of ``values``."""
    return f"{field} in [{', '.join(_quote(v) for v in sorted(values))}]"


def has_tag_filter(field: str, tag: str) -> str:
    """A Milvus filter expression matching rows whose array ``field`` holds ``tag``."""
    return f"array_contains({field}, {_quote(tag)})"


_COMPARISONS = frozenset({"<", "<=", "==", ">=", ">"})


def compare_filter(field: str, op: str, value: float | str) -> str:
    """``field OP value``: ``value`` a finite number, or another field's name (a checked identifier)."""
    if op not in _COMPARISONS:
        raise ValueError(f"Unknown comparison {op!r}.")
    if isinstance(value, str):
        if value not in ROW_FIELDS:
            raise ValueError(f"{value!r} is not a row field.")
        return f"{field} {op} {value}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number.")
    return f"{field} {op} {float(value)!r}" if isinstance(value, float) else f"{field} {op} {int(value)}"
