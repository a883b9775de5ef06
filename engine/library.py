"""``Library``: the one Python API that the CLI, the Streamlit app and the benchmarks call.

lib = Library(db="assetlens.db", model="demo")
report = lib.index("photos/")
for hit in lib.search(text="a golden watch", k=5):
    print(hit.rank, hit.score, hit.path)
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from PIL import Image

from assetlens.engine import doctor
from assetlens.engine.duplicates import (
    Collapsed,
    DuplicateReport,
    check_threshold,
    collapse,
    find_duplicates,
    threshold_for,
)
from assetlens.engine.encoders import CPU_PROVIDER, Encoder, normalize, pick_providers
from assetlens.engine.errors import ModelLoadError, ModelMismatchError, ModelNotFoundError, StoreError, UsageError
from assetlens.engine.handoff import CopyReport, Pick, copy_picks
from assetlens.engine.hub import ensure_model
from assetlens.engine.indexer import Indexer, IndexReport, Progress, file_digest, path_text
from assetlens.engine.models import (
    QUERY_PRECISIONS,
    default_model_name,
    int8_text_facts,
    load_facts,
    resolve_model_dir,
)
from assetlens.engine.preprocess import DEFAULT_MAX_MEGAPIXELS, decode
from assetlens.engine.registry import canonical_name, find_model
from assetlens.engine.relevance import SAMPLE_ROWS, Baseline, check_margin, check_relevance
from assetlens.engine.search import Filter, SearchResult, check_amount, check_text, combine, shape_results
from assetlens.engine.search_copy import CopyStatus, SearchCopy, copy_status
from assetlens.engine.store import (
    DEFAULT_COLLECTION,
    AssetRow,
    CollectionMeta,
    Hit,
    MilvusStore,
    default_db,
    is_local,
    path_id,
)
from assetlens.engine.tags import Tagger, TagReport, Vocabulary, check_tagging
from assetlens.engine.watch import DEFAULT_DEBOUNCE_S, WatchBatch, Watcher

MINUS_WEIGHT = 0.5
WRITE_BATCH = 1000
#: ``Library(search_copy=SAVED_COPY)``: search the saved copy when it is current, else ask Milvus.
SAVED_COPY: Final = "saved"
MAX_CANDIDATES = 16384  # Milvus' top-k ceiling
TAG_BATCH = 1000


@dataclass(frozen=True)
class LibraryStats:
    count: int
    model: str | None
    precision: str | None
    dim: int | None
    index_type: str | None
    uri: str
    collection: str
    search_copy: CopyStatus
    read_only: bool = False

    def lines(self) -> list[str]:
        return [
            f"images:      {self.count}",
            f"model:       {self.model or '-'}",
            f"precision:   {self.precision or '-'}",
            f"dimension:   {self.dim or '-'}",
            f"index:       {self.index_type or '-'} (cosine)",
            f"library:     {self.uri}{' (read-only)' if self.read_only else ''}",
            f"collection:  {self.collection}",
            f"search copy: {self.search_copy}",
        ]


@dataclass(frozen=True)
class Runtime:
    """The model a library runs: its name, precision and embedding size, onnxruntime's provider, and the
    precision of the text tower that encodes text queries (``Library.text_encoder``)."""

    model: str
    precision: str
    dim: int
    provider: str
    query_precision: str


@dataclass(frozen=True)
class OtherCollection:
    """A collection beside this one in the same database, holding another model's vectors."""

    name: str
    model: str
    precision: str
    count: int


def model_ref(model: str | os.PathLike[str]) -> str:
    """How a model is recorded: local directories by absolute path, registry names by their HF id, others as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else canonical_name(str(model))


class Library:
    """An image library: a Milvus collection plus the CLIP model its vectors came from."""

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        uri: str | None = None,
        token: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        model: str | os.PathLike[str] | None = None,
        precision: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        create: bool = True,
        search_copy: bool | Literal["saved"] | None = None,
        store: MilvusStore | None = None,
        encoder: Encoder | None = None,
        download: bool = False,
        download_progress: Progress | None = None,
        query_precision: str = "auto",
    ) -> None:
        """``create=False`` refuses to create a new Milvus Lite file (for search and stats).

        ``search_copy``: search an in-memory copy of the collection, kept in step with every write
        and saved inside the Milvus Lite folder (``engine.search_copy``); by default on for Milvus Lite,
        where it turns hundreds of milliseconds per query into about one. Off, searches ask Milvus
        (a server's own HNSW is fast). ``SAVED_COPY`` (a one-shot search): the copy when one is saved at the
        collection's present version (it is mapped, not read: cheaper than Milvus Lite's first search at
        any size), else Milvus, without building a copy for one query. ``searched_by`` says which answered.

        ``store`` and ``encoder`` hand the library an open store and a loaded model instead of
        opening them from ``db``/``uri`` and ``model``/``precision``/``device`` (the library then
        owns the store and closes it). An injected encoder must be the collection's model.

        ``download``: a registry model that is not here yet is pulled from its Hugging Face Hub source
        when first needed (``engine.hub``; not in Hugging Face's offline mode), reporting its bytes to
        ``download_progress``.

        ``query_precision``: the text tower of text queries (``text_encoder``); ``auto``, the collection's
        own precision, or ``int8`` for an fp32 collection.
        """
        if store is not None and (db is not None or uri is not None):
            raise UsageError("Give a Library either a store or a db/uri to open, not both.")
        if encoder is not None and (model is not None or precision is not None):
            raise UsageError("Give a Library either an encoder or a model/precision to load, not both.")
        if query_precision not in QUERY_PRECISIONS:
            raise UsageError(
                f"Unknown query precision {query_precision!r}; choose one of {', '.join(QUERY_PRECISIONS)}."
            )
        self.store = store or MilvusStore(uri or (os.fspath(db) if db is not None else None), token, collection, create)
        keep_copy = self.store.local if search_copy is None else bool(search_copy)
        self._copy = SearchCopy(self.store) if keep_copy else None
        self._copy_if_saved = search_copy == SAVED_COPY
        self.searched_by: str | None = None  # "search copy" or "Milvus": what answered the last search
        self._model = model
        self._precision = precision
        self._encoder = encoder
        self._encoder_given = encoder is not None
        self._encoder_checked = False
        self.query_precision = query_precision
        self._text_encoder: Encoder | None = None
        self.device = device
        self.threads = threads
        self._tag_counts: tuple[tuple[str, str] | None, dict[str, int]] = (None, {})
        self._download = download
        self._download_progress = download_progress

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def model_choice(self) -> tuple[str, str]:
        """(model reference, precision): the collection's, else the requested or default one."""
        meta = self.store.meta()
        if self._encoder_given:
            return self._given_model_choice(meta)
        asked = (
            model_ref(self._model) if self._model is not None else None,
            self._precision,
        )
        if meta is None:
            return asked[0] or default_model_name(), asked[1] or "fp32"
        if (asked[0] or meta.model_name, asked[1] or meta.precision) != (meta.model_name, meta.precision):
            raise ModelMismatchError(
                f"Collection {self.store.collection} was indexed with {meta.model_name} ({meta.precision}), "
                f"not {asked[0] or meta.model_name} ({asked[1] or meta.precision}); "
                "use that model or another --collection."
            )
        return meta.model_name, meta.precision

    def _given_model_choice(self, meta: CollectionMeta | None) -> tuple[str, str]:
        """An injected encoder is checked by its identity (name, precision, weights), not by how it was named."""
        assert self._encoder is not None
        facts = self._encoder.facts
        if meta is None:  # recorded so that a later Library without an encoder finds the same model
            known = find_model(facts.name) is not None
            return (canonical_name(facts.name) if known else str(facts.directory)), facts.precision
        if meta.model_id != facts.model_id:
            raise ModelMismatchError(
                f"Collection {self.store.collection} was indexed with {meta.model_name} ({meta.precision}), "
                f"not with the given encoder's {facts.name} ({facts.precision}); use another collection."
            )
        return meta.model_name, meta.precision

    @property
    def encoder(self) -> Encoder:
        """The collection's model, loaded on first use (an injected one is checked against the collection)."""
        if self._encoder_given and not self._encoder_checked:
            self.model_choice()
            self._encoder_checked = True
        if self._encoder is None:
            name, precision = self.model_choice()
            pull = partial(ensure_model, progress=self._download_progress) if self._download else None
            facts = load_facts((pull or resolve_model_dir)(name, precision))
            self._encoder = Encoder(facts, device=self.device, threads=self.threads)
        return self._encoder

    @property
    def text_encoder(self) -> Encoder:
        """The encoder of text queries, chosen on first use by ``query_precision``. An fp32 collection's are
        encoded by the same model's int8 text tower (faster on a CPU) where ``engine.models.int8_text_facts``
        finds one that answers as fp32 does: always with ``int8`` (else its refusal), on the CPU with ``auto``.
        Images are encoded by ``encoder`` either way, so the stored vectors never change."""
        if self._text_encoder is None:
            self._text_encoder = self._pick_text_encoder()
        return self._text_encoder

    def _pick_text_encoder(self) -> Encoder:
        enc, asked = self.encoder, self.query_precision
        own = enc.facts.precision
        if asked == own or (asked == "auto" and own != "fp32"):
            return enc
        if own != "fp32":
            raise UsageError(
                f"Collection {self.store.collection} was indexed at {own} and answers text queries with its own "
                f"text tower; --query-precision {asked} is for fp32 libraries."
            )
        if asked == "auto" and pick_providers(self.device)[0] != CPU_PROVIDER:
            return enc  # int8 MatMuls run on the CPU: on CUDA the fp32 tower is the fast one
        try:
            facts = int8_text_facts(enc.facts)
        except (ModelNotFoundError, ModelLoadError, ModelMismatchError):
            if asked == "int8":
                raise
            return enc
        return Encoder(facts, device=self.device, threads=self.threads)

    def exists(self) -> bool:
        """Whether the collection exists yet (the first write creates it)."""
        return self.store.meta() is not None

    def other_models(self) -> list[OtherCollection]:
        """The collections of this database whose vectors come from another model (or precision) than this
        library's: a collection is bound to its model, so nothing of theirs is reused here (loads the model)."""
        own = self.encoder.facts.model_id
        return [
            OtherCollection(name, meta.model_name, meta.precision, count)
            for name, meta, count in self.store.others()
            if meta.model_id != own
        ]

    def runtime(self) -> Runtime:
        """Which model runs, and where (loads it)."""
        enc = self.encoder
        return Runtime(enc.facts.name, enc.facts.precision, enc.dim, enc.provider, self.text_encoder.facts.precision)

    # -- indexing -------------------------------------------------------------------

    def _writer(self) -> Encoder:
        """The encoder to write with; creates the collection for it if needed."""
        name, precision = self.model_choice()
        enc = self.encoder
        self.store.ensure(enc.facts.model_id, name, precision, enc.dim)
        return enc

    def prepare_writes(self) -> Runtime:
        """Load the model and create the collection for it if needed: what the first write would do."""
        self._writer()
        return self.runtime()

    def write(self, rows: Sequence[AssetRow], vectors: np.ndarray, *, new: bool = False) -> None:
        """Write rows with vectors made elsewhere (bulk loads, benchmarks); ``flush`` seals them.

        ``new=True`` promises none of the rows' ids is stored yet (see ``MilvusStore.upsert``).
        Vectors must have the model's dimension; they are stored as given, ``WRITE_BATCH`` rows per call
        to Milvus (the client holds each call's vectors as Python floats, about 16 kB a row).
        """
        dim = self._writer().dim
        if vectors.shape != (len(rows), dim):
            raise UsageError(f"{len(rows)} rows need a ({len(rows)}, {dim}) array of vectors, not {vectors.shape}.")
        for lo in range(0, len(rows), WRITE_BATCH):
            self.store.upsert(rows[lo : lo + WRITE_BATCH], vectors[lo : lo + WRITE_BATCH], new=new)

    def flush(self) -> None:
        """Seal every write so far (and bring the saved search copy up to date)."""
        self.store.flush()

    def index(
        self,
        folder: str | os.PathLike[str],
        *,
        batch_size: int = 32,
        prune: bool = False,
        include_hidden: bool = False,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
        origin: str = "file",
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> IndexReport:
        """Bring the collection up to date with ``folder`` (see ``engine.indexer``); setting ``stop`` ends
        the run after the batch in progress, keeping every row written."""
        Indexer.check_folder(Path(folder))
        indexer = Indexer(self.store, self._writer(), batch_size=batch_size, max_megapixels=max_megapixels)
        return indexer.index(
            Path(folder), prune=prune, include_hidden=include_hidden, origin=origin, progress=progress, stop=stop
        )

    def add(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        batch_size: int = 32,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
        origin: str = "file",
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index specific image files (``origin="generated"`` tags generated images)."""
        indexer = Indexer(self.store, self._writer(), batch_size=batch_size, max_megapixels=max_megapixels)
        return indexer.add([Path(p) for p in paths], origin=origin, progress=progress)

    def watch(
        self,
        folder: str | os.PathLike[str],
        *,
        stop: threading.Event,
        on_batch: Callable[[WatchBatch], None],
        on_ready: Callable[[IndexReport], None] | None = None,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        batch_size: int = 32,
        prune: bool = False,
        include_hidden: bool = False,
        max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
        progress: Progress | None = None,
    ) -> None:
        """Index ``folder``, tell ``on_ready`` how that went, then keep the collection in step with the folder,
        telling ``on_batch`` of each change written, until ``stop`` is set (``engine.watch``)."""
        Indexer.check_folder(Path(folder))
        watcher = Watcher(
            self, Path(folder), include_hidden=include_hidden, batch_size=batch_size, max_megapixels=max_megapixels
        )
        first = partial(
            self.index,
            folder,
            batch_size=batch_size,
            prune=prune,
            include_hidden=include_hidden,
            max_megapixels=max_megapixels,
            progress=progress,
            stop=stop,
        )
        watcher.run(first, stop, on_batch, on_ready, debounce_s)

    def remove(self, paths: Sequence[str | os.PathLike[str]]) -> int:
        """Remove images from the collection by path (the files are not touched)."""
        if self.store.meta() is None:  # no collection: nothing to remove
            return 0
        ids = list(dict.fromkeys(path_id(path_text(Path(os.path.abspath(p)))) for p in paths))
        removed = self.store.delete(row.id for row, _ in self.store.get(ids))  # only the rows there were
        if removed:
            self.store.flush()
        return removed

    # -- search ---------------------------------------------------------------------

    def _indexed_vector(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
        text = path_text(Path(os.path.abspath(path)))
        found = self._vectors_of([path_id(text)])
        if not found:
            raise UsageError(f"{path} is not in the library; index it first or use --image.")
        row, vec = found[0]
        return vec, row.hash

    def _vectors_of(self, ids: Sequence[str]) -> list[tuple[AssetRow, np.ndarray]]:
        """The stored rows with these ids and their vectors: from the search copy when reads answer from one
        (a one-shot search then never opens the collection), from Milvus for ids written since its last flush."""
        copy = self._search_copy()
        found = copy.get(ids) if copy is not None else []
        missing = set(ids) - {row.id for row, _ in found}
        if missing:
            found += [(row, vec) for row, vec in self.store.get(sorted(missing), with_vectors=True) if vec is not None]
        return found

    def query_vector(
        self,
        text: str | None = None,
        image: str | os.PathLike[str] | Image.Image | None = None,
        like: str | os.PathLike[str] | None = None,
        minus: Sequence[str] = (),
        text_weight: float = 1.0,
        image_weight: float = 1.0,
        minus_weight: float = MINUS_WEIGHT,
        vector: np.ndarray | None = None,
    ) -> tuple[np.ndarray, frozenset[str]]:
        """The combined query vector, and content hashes of query images (left out of results)."""
        if text is not None and not text.strip():
            raise UsageError("The query text is empty; type what to look for.")
        if any(not m.strip() for m in minus):
            raise UsageError("A --minus text is empty.")
        for what, said in [("The query text", text), *(("A --minus text", m) for m in minus)]:
            if said is not None:
                check_text(what, said)
        for option, weight in (("--text-weight", text_weight), ("--image-weight", image_weight)):
            check_amount(option, weight)
        check_amount("--minus-weight", minus_weight)
        enc = self.encoder
        parts: list[tuple[np.ndarray, float]] = []
        exclude: set[str] = set()
        texts = ([text] if text else []) + list(minus)
        if texts:
            vecs = self.text_encoder.encode_texts(texts)
            if text:
                parts.append((vecs[0], text_weight))
            parts.extend((v, -minus_weight) for v in vecs[1 if text else 0 :])
        if image is not None:
            if isinstance(image, Image.Image):
                img = image.convert("RGB")
            else:
                if Path(image).is_dir():
                    raise UsageError(f"The query image {image} is a folder, not a file.")
                if not Path(image).is_file():
                    raise UsageError(f"The query image {image} does not exist.")
                img = decode(Path(image)).image
                exclude.add(file_digest(Path(image).read_bytes()))
            parts.append((enc.encode_images([img])[0], image_weight))
        if like is not None:
            vec, digest = self._indexed_vector(like)
            parts.append((vec, image_weight))
            exclude.add(digest)
        if vector is not None:
            given = np.asarray(vector, dtype=np.float32).reshape(-1)
            if given.shape != (enc.dim,) or not np.all(np.isfinite(given)):
                raise UsageError(f"A query vector must be {enc.dim} finite numbers, the model's embedding size.")
            parts.append((normalize(given[None])[0], image_weight))
        if not text and not minus and image is None and like is None and vector is None:
            raise UsageError("Give a text query, --image or --like (at least one).")
        if not parts or all(w < 0 for _, w in parts):
            raise UsageError("A --minus needs a positive query to subtract from.")
        return combine(parts), frozenset(exclude)

    def search(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | Image.Image | None = None,
        like: str | os.PathLike[str] | None = None,
        minus: Sequence[str] = (),
        k: int = 10,
        offset: int = 0,
        min_score: float | None = None,
        min_relevance: float | None = None,
        within: float | None = None,
        folder: str | os.PathLike[str] | None = None,
        filename: str | None = None,
        orientation: str | None = None,
        min_width: int | None = None,
        min_height: int | None = None,
        file_types: str | Sequence[str] | None = None,
        since: str | date | datetime | float | None = None,
        before: str | date | datetime | float | None = None,
        tags: Sequence[str] = (),
        show_duplicates: bool = False,
        text_weight: float = 1.0,
        image_weight: float = 1.0,
        minus_weight: float = MINUS_WEIGHT,
        vector: np.ndarray | None = None,
    ) -> list[SearchResult]:
        """Search by text, example image, indexed image (``like``), an embedding (``vector``), or a weighted mix.

        ``min_score`` bounds the cosine score, whose range differs per model; ``min_relevance`` and
        ``within`` bound the score in standard deviations above the library's average for this query
        (``engine.relevance``), which mean the same on every model: ``min_relevance`` keeps hits at least
        that far above average, ``within`` keeps hits at most that far below the best hit. Either one
        gives each result its ``relevance``.

        Filters (all that are given must hold): ``orientation`` (landscape, portrait, square), ``min_width`` and
        ``min_height`` in pixels, ``file_types`` (``"jpeg,png"`` or a list), the modification time from ``since``
        (included) to ``before`` (not included) as dates, ISO times (local unless zoned) or epoch seconds, and
        ``tags`` that each hit must carry (``tag``)."""
        if k < 1:
            raise UsageError("-k must be at least 1.")
        if offset < 0:
            raise UsageError("--offset cannot be negative.")
        if min_score is not None:
            check_amount("--min-score", min_score)
        if min_relevance is not None:
            check_relevance("--min-relevance", min_relevance)
        if within is not None:
            check_margin("--within", within)
        flt = Filter.of(
            folder_prefix=(
                path_text(Path(os.path.abspath(folder))).rstrip(os.sep) + os.sep if folder is not None else None
            ),
            filename_contains=path_text(filename) if filename else None,
            orientation=orientation,
            min_width=min_width,
            min_height=min_height,
            file_types=file_types,
            since=since,
            before=before,
            tags=tags,
        )
        if self.store.meta() is None:
            raise self._empty()
        self._check_fields(flt)
        query, exclude = self.query_vector(text, image, like, minus, text_weight, image_weight, minus_weight, vector)
        baseline = self._baseline(query) if min_relevance is not None or within is not None else None
        floor = min_score
        if baseline is not None and min_relevance is not None:
            floor = max(baseline.score_at(min_relevance), floor or -1.0)
        want = offset + k
        limit = min(MAX_CANDIDATES, 2 * want + len(exclude) + 8)
        while True:
            hits = self._search_vectors(query, limit, flt)
            if not hits and not flt.expr() and self.store.count() == 0:  # counted only when nothing came back
                raise self._empty()
            cutoff = floor
            if baseline is not None and within is not None:
                best = next((h.score for h in hits if h.hash not in exclude), None)
                if best is not None:
                    cutoff = max(best - within * baseline.spread, cutoff if cutoff is not None else -1.0)
            results = shape_results(
                hits,
                k=k,
                offset=offset,
                min_score=cutoff,
                exclude_hashes=exclude,
                show_duplicates=show_duplicates,
            )
            if baseline is not None:
                results = [replace(r, relevance=baseline.relevance(r.score)) for r in results]
            if len(results) == k or len(hits) < limit or limit >= MAX_CANDIDATES:
                return results
            if cutoff is not None and hits and hits[-1].score < cutoff:
                return results
            limit = min(MAX_CANDIDATES, limit * 4)

    def _baseline(self, query: np.ndarray) -> Baseline | None:
        """The library's score distribution for ``query``, from a fixed sample of its vectors (None when the
        library is too small for one; relevance bounds then keep every hit)."""
        copy = self._search_copy()
        sample = self.store.sample_vectors(SAMPLE_ROWS) if copy is None else copy.sample(SAMPLE_ROWS)
        return Baseline.measure(sample, query)

    def _check_fields(self, flt: Filter) -> None:
        """Refuse, in a sentence, a filter on fields that a collection made by an older AssetLens lacks."""
        missing = sorted(flt.needs() - set(self.store.fields()))
        if missing:
            what = {"file_type": "file types", "tags": "tags"}
            where = f"--db {self.store.uri}" if self.store.local else f"--uri {self.store.uri}"
            raise StoreError(
                f"Collection {self.store.collection} in {self.store.uri} was made by an older AssetLens and stores "
                f"no {' or '.join(what[m] for m in missing)} yet; tagging upgrades it: "
                f"assetlens tag {where} --collection {self.store.collection}"
            )

    def _empty(self) -> UsageError:
        return UsageError(
            f"The library {self.store.uri} (collection {self.store.collection}) has no images yet; "
            "run: assetlens index FOLDER."
        )

    def _search_vectors(self, query: np.ndarray, limit: int, flt: Filter) -> list[Hit]:
        copy = self._search_copy()
        self.searched_by = "Milvus" if copy is None else "search copy"
        if copy is None:
            return self.store.search(query[None], limit, flt.expr())[0]
        return copy.search(query, limit, flt)

    def _search_copy(self) -> SearchCopy | None:
        """The copy that reads answer from, if any (``SAVED_COPY``: only one saved at the present version)."""
        if self._copy is not None and self._copy_if_saved:
            self._copy_if_saved = False
            if not self._copy.saved():
                self.store.observer = None
                self._copy = None
        return self._copy

    def similar(self, path: str | os.PathLike[str], k: int = 10, **kwargs: object) -> list[SearchResult]:
        """Images like an indexed one ("more like this"), the image itself left out."""
        return self.search(like=path, k=k, **kwargs)  # type: ignore[arg-type]

    # -- asset-bank features --------------------------------------------------------

    def tag(
        self,
        labels: str | os.PathLike[str] | Vocabulary | None = None,
        *,
        top: int = 1,
        min_score: float | None = None,
        batch_size: int = TAG_BATCH,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> TagReport:
        """Tag every image with the best ``top`` labels of each category of the default vocabulary plus
        ``labels`` (a file, one label a line, or a ``Vocabulary``) whose score reaches ``min_score``
        (``engine.tags``). Only rows not yet tagged with this vocabulary are written; setting ``stop`` ends
        the run after the batch in progress, keeping what was tagged."""
        vocabulary = Vocabulary.default()
        if labels is not None:
            vocabulary = vocabulary.plus(labels if isinstance(labels, Vocabulary) else Vocabulary.read(labels))
        check_tagging(top, min_score, vocabulary)
        if self.store.meta() is None:
            raise self._empty()
        started = time.perf_counter()
        tagger = Tagger(self._writer(), vocabulary, top, min_score)
        total, todo, batches = self._untagged(tagger.fingerprint, batch_size)
        done, stopped = 0, False
        if progress:
            progress(0, todo)
        try:
            for rows, block in batches:
                tagged = [
                    replace(row, tags=tags, tagged=tagger.fingerprint)
                    for row, tags in zip(rows, tagger.tags(block), strict=True)
                ]
                self.store.upsert(tagged, block)
                done += len(rows)
                if progress:
                    progress(done, todo)
                if stop is not None and stop.is_set() and done < todo:
                    stopped = True
                    break
        finally:
            if self.store.dirty:
                self.store.flush()
        return TagReport(
            tagged=done,
            unchanged=total - todo,
            labels=len(vocabulary.labels),
            categories=len(vocabulary.categories),
            fingerprint=tagger.fingerprint,
            seconds=time.perf_counter() - started,
            stopped=stopped,
        )

    def _untagged(
        self, fingerprint: str, batch_size: int
    ) -> tuple[int, int, Iterator[tuple[list[AssetRow], np.ndarray]]]:
        """(rows in the library, rows not tagged with ``fingerprint``, those rows and their vectors in batches),
        never every row at once: positions in the search copy, else the ids of the rows Milvus returns."""
        copy = self._search_copy()
        if copy is not None:
            positions = copy.untagged(fingerprint)
            batches = (copy.at(positions[i : i + batch_size]) for i in range(0, len(positions), batch_size))
            return len(copy.index()), len(positions), batches
        total, ids = 0, []
        for row in self.store.rows():
            total += 1
            if row.tagged != fingerprint:
                ids.append(row.id)

        def fetch() -> Iterator[tuple[list[AssetRow], np.ndarray]]:
            for i in range(0, len(ids), batch_size):
                found = [(row, vec) for row, vec in self.store.get(ids[i : i + batch_size], True) if vec is not None]
                if found:
                    yield [row for row, _ in found], np.stack([vec for _, vec in found])

        return total, len(ids), fetch()

    def tag_counts(self) -> dict[str, int]:
        """Every tag in the library and how many images carry it, most common first."""
        if self.store.meta() is None or "tags" not in self.store.fields():
            return {}
        # The app asks on every rerun: on Milvus Lite, whose write marks tell when the rows change, the
        # counts are kept until they do.
        version = (self.store.generation(), self.store.write_mark()) if self.store.local else None
        if version is None or self._tag_counts[0] != version:
            copy = self._search_copy()
            rows = copy.snapshot()[0] if copy is not None else self.store.rows()
            counts = Counter(tag for row in rows for tag in row.tags)
            self._tag_counts = (version, dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))))
        return dict(self._tag_counts[1])

    def duplicate_threshold(self) -> float:
        """The cosine above which two of this library's images are one shot unless told otherwise: its model
        family's, measured (``registry.DUPLICATE_THRESHOLDS``)."""
        return threshold_for(self.encoder.facts)

    def duplicates(self, threshold: float | None = None) -> DuplicateReport:
        """Groups of near-identical images over the whole library (``engine.duplicates``); ``threshold``:
        ``duplicate_threshold()`` when None."""
        if threshold is not None:
            check_threshold(threshold)
        if self.store.meta() is None:
            raise self._empty()
        rows, vectors = self._rows_and_vectors()
        return find_duplicates(rows, vectors, self.duplicate_threshold() if threshold is None else threshold)

    def _rows_and_vectors(self) -> tuple[list[AssetRow], np.ndarray]:
        """Every row and its vector: from the search copy when this library keeps one, else from Milvus."""
        copy = self._search_copy()
        return self.store.rows_and_vectors() if copy is None else copy.snapshot()

    @staticmethod
    def copy_hits(results: Sequence[SearchResult], folder: str | os.PathLike[str]) -> CopyReport:
        """Copy the hits' files into ``folder`` as ``RANK-NAME``, never overwriting, with ``manifest.csv``."""
        return copy_picks([Pick.of_result(r) for r in results], Path(folder))

    def search_collapsed(
        self,
        text: str | None = None,
        *,
        k: int = 10,
        offset: int = 0,
        threshold: float | None = None,
        **query: Any,
    ) -> list[Collapsed]:
        """``search`` with one entry per near-duplicate group among the hits, the rest of each group beside
        it; ranks count the entries. ``query`` as for ``search``; ``threshold`` as for ``duplicates``."""
        if k < 1:
            raise UsageError("-k must be at least 1.")
        if threshold is not None:
            check_threshold(threshold)
        fetch = 4 * (offset + k)
        while True:
            results = self.search(text, k=fetch, **query)
            found = {row.id: vec for row, vec in self._vectors_of([r.id for r in results])}
            vectors = np.asarray([found[r.id] for r in results], dtype=np.float32).reshape(len(results), -1)
            groups = collapse(results, vectors, self.duplicate_threshold() if threshold is None else threshold)
            if len(groups) >= offset + k or len(results) < fetch or fetch >= MAX_CANDIDATES:
                page = groups[offset : offset + k]
                return [Collapsed(replace(g.hit, rank=offset + n), g.similar) for n, g in enumerate(page, 1)]
            fetch = min(MAX_CANDIDATES, fetch * 4)

    def stats(self) -> LibraryStats:
        meta = self.store.meta()
        count = self.store.count()
        return LibraryStats(
            count=count,
            model=meta.model_name if meta else None,
            precision=meta.precision if meta else None,
            dim=meta.dim if meta else None,
            index_type=meta.index_type if meta else None,
            uri=self.store.uri,
            collection=self.store.collection,
            search_copy=copy_status(self.store, count),
            read_only=self.store.read_only,
        )

    # -- repair ---------------------------------------------------------------------

    @staticmethod
    def check(
        db: str | os.PathLike[str] | None = None,
        *,
        uri: str | None = None,
        token: str | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> doctor.Checkup:
        """Check a library without changing it (its files, metadata, counts, saved search copy); opens even
        a damaged one, which the constructor refuses."""
        return doctor.check(uri or (os.fspath(db) if db is not None else default_db()), token, collection)

    @classmethod
    def rebuild(
        cls,
        folder: str | os.PathLike[str],
        *,
        db: str | os.PathLike[str] | None = None,
        collection: str = DEFAULT_COLLECTION,
        model: str | os.PathLike[str] | None = None,
        precision: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        **options: Any,
    ) -> doctor.RebuildReport:
        """Rebuild a Milvus Lite collection, damaged or not: read every row its files still hold, move them
        out of the library (kept in ``LIBRARY.damaged/``), write the rows into a fresh collection of the
        same name, then index ``folder`` into it (``options`` as for ``index``), encoding only what was
        not restored. Old vectors are reused only when their model is known to be the one used now."""
        where = os.fspath(db) if db is not None else default_db()
        if not is_local(where):
            raise UsageError("--rebuild rebuilds a Milvus Lite library (--db); a Milvus server keeps its own files.")
        Indexer.check_folder(Path(folder))
        salvaged = doctor.set_aside(Path(where).expanduser().resolve(), collection)
        old = salvaged.meta
        with cls(
            where,
            collection=collection,
            model=model if model is not None else (old.model_name if old else None),
            precision=precision or (old.precision if old else None),
            device=device,
            threads=threads,
        ) as lib:
            enc = lib._writer()
            reuse = old is not None and (old.model_id, old.dim) == (enc.facts.model_id, enc.dim)
            restored = doctor.restore(lib.store, salvaged.rows, enc.dim) if reuse else 0
            report = lib.index(folder, **options)
        return doctor.RebuildReport(restored, salvaged.unreadable, salvaged.aside, reuse, report)
