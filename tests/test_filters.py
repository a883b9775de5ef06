"""Filters people use (orientation, minimum size, file type, modification dates, tags): the same rows from
Milvus Lite, a Milvus server and the search copy, each equal to the set computed from the stored metadata;
values that look like expression syntax stay literal. And collections made before file types and tags were
stored: read as before, upgraded by the first write, with nothing lost when the upgrade is killed."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from app_driver import literal, start
from cli_process import cli_env
from helpers import DIM, asset_row, run_main, unit_vectors
from milvus_lite.server_manager import server_manager_instance
from pymilvus import DataType, MilvusClient

from assetlens.benchmarks.milvus_server import drop_all_collections
from assetlens.engine.errors import StoreError, UsageError
from assetlens.engine.library import Library
from assetlens.engine.scan import IMAGE_EXTENSIONS
from assetlens.engine.search import Filter, parse_file_types
from assetlens.engine.search_copy import CopyIndex
from assetlens.engine.store import (
    FILE_TYPES,
    GENERATION_PROPERTY,
    META_PROPERTY,
    ROW_FIELDS,
    V1_FIELDS,
    VECTOR_FIELD,
    AssetRow,
    CollectionMeta,
    MilvusStore,
    upgrade_names,
)

pytestmark = [pytest.mark.store]

COLLECTION = "filters"
#: Tags and names that read as expression syntax if pasted into one.
HOSTILE = ['say "hi"', "back\\slash", "100%", '" or 1==1 or "', "it's", "under_score", "a) or (1==1"]
EXTENSIONS = [".jpg", ".JPG", ".jpeg", ".png", ".Png", ".webp", ".heic", ".HEIF", ".tif", ".svg", ".PSD", ".gif"]
SIZES = [(800, 600), (600, 800), (700, 700), (4000, 3000), (2000, 2000), (1080, 1920)]


def local(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def catalogue_rows() -> list[AssetRow]:
    """40 rows over every orientation, several sizes, mixed-case extensions, five months of times (two exactly
    at midnight of a bound) and tags, some of them hostile."""
    rows = []
    start = local("2025-12-20")
    for i in range(40):
        width, height = SIZES[i % len(SIZES)]
        name = f"img_{i}{HOSTILE[i % len(HOSTILE)] if i % 5 == 0 else ''}{EXTENSIONS[i % len(EXTENSIONS)]}"
        mtime = start + i * 4 * 86400 + 3600.25
        if i in (3, 30):
            mtime = local("2026-01-01") if i == 3 else local("2026-05-01")
        tags = (["watch", "gold"] if i % 2 else ["mug", "red"]) + [HOSTILE[i % len(HOSTILE)]] * (i % 3 == 0)
        row = asset_row(
            f"/lib/{i % 4}/{name}", size=1000 + i, mtime=mtime, digest=f"{i:064x}", width=width, height=height
        )
        rows.append(dataclasses.replace(row, tags=tuple(tags), tagged="t"))
    return rows


@dataclass
class Written:
    store: MilvusStore
    stored: list[AssetRow]  # as read back from Milvus
    copy: CopyIndex

    def check(self, flt: Filter, wanted: Callable[[AssetRow], bool]) -> set[str]:
        """The rows each backend returns for ``flt``, asserted equal to those ``wanted`` picks; returned."""
        expected = {r.path for r in self.stored if wanted(r)}
        q = unit_vectors(1, DIM, seed=9)[0]
        n = len(self.stored)
        from_milvus = {h.row.path for h in self.store.search(q[None], n, flt.expr())[0]}
        from_copy = {h.row.path for h in self.copy.search(q, n, flt)}
        assert from_milvus == expected, flt
        assert from_copy == expected, flt
        assert {r.path for r in self.stored if flt.matches(r)} == expected
        return expected


@pytest.fixture(scope="module", params=["lite", pytest.param("server", marks=[pytest.mark.server, pytest.mark.slow])])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    """The rows written once per backend (the server's collection is this module's own)."""
    if request.param == "server":
        uri = request.getfixturevalue("milvus_server").uri
    else:
        uri = str(tmp_path_factory.mktemp("filters") / "lib.db")
    rows = catalogue_rows()
    vectors = unit_vectors(len(rows), DIM, seed=1)
    with MilvusStore(uri, collection=COLLECTION) as store:
        if store.exists():
            drop_all_collections(uri)
        store.ensure("m", "m", "fp32", DIM)
        store.upsert(rows, vectors)
        store.flush()
        stored, stored_vectors = store.rows_and_vectors()
        assert sorted(stored, key=lambda r: r.path) == sorted(rows, key=lambda r: r.path)  # all fields kept
        yield Written(store, stored, CopyIndex(stored, stored_vectors))


def test_orientation(written: Written) -> None:
    seen = [
        written.check(Filter(orientation="landscape"), lambda r: r.width > r.height),
        written.check(Filter(orientation="portrait"), lambda r: r.width < r.height),
        written.check(Filter(orientation="square"), lambda r: r.width == r.height),
    ]
    assert all(seen) and sum(map(len, seen)) == len(written.stored)


def test_minimum_width_and_height(written: Written) -> None:
    assert written.check(Filter(min_width=2000), lambda r: r.width >= 2000)
    assert written.check(Filter(min_height=1920), lambda r: r.height >= 1920)
    both = written.check(Filter(min_width=1000, min_height=1000), lambda r: r.width >= 1000 and r.height >= 1000)
    assert {(r.width, r.height) for r in written.stored if r.path in both} == {(4000, 3000), (2000, 2000), (1080, 1920)}
    assert written.check(Filter(min_width=4001), lambda r: False) == set()


def test_file_type_by_extension_whatever_its_case(written: Written) -> None:
    jpeg = written.check(Filter.of(file_types="jpeg"), lambda r: Path(r.filename).suffix.lower() in (".jpg", ".jpeg"))
    assert {Path(p).suffix for p in jpeg} == {".jpg", ".JPG", ".jpeg"}
    assert written.check(
        Filter.of(file_types="PNG, .heif"), lambda r: Path(r.filename).suffix.lower() in IMAGE_PNG_HEIC
    )
    assert written.check(
        Filter.of(file_types=["tif", "psd"]), lambda r: Path(r.filename).suffix.lower() in {".tif", ".psd"}
    )


IMAGE_PNG_HEIC = {".png", ".heic", ".heif"}


def test_modification_dates_since_included_before_not(written: Written) -> None:
    since, before = local("2026-01-01"), local("2026-05-01")
    ranged = written.check(Filter.of(since="2026-01-01", before="2026-05-01"), lambda r: since <= r.mtime < before)
    paths = {r.mtime: r.path for r in written.stored}
    assert paths[since] in ranged and paths[before] not in ranged  # the two rows exactly at the bounds
    assert written.check(Filter.of(since="2026-03-15T12:30"), lambda r: r.mtime >= local("2026-03-15T12:30"))
    assert written.check(Filter.of(before=datetime(2026, 1, 1)), lambda r: r.mtime < since)


def test_tags_and_hostile_values_are_literal(written: Written) -> None:
    assert written.check(Filter(tags=frozenset({"watch"})), lambda r: "watch" in r.tags)
    assert written.check(Filter(tags=frozenset({"watch", "gold"})), lambda r: {"watch", "gold"} <= set(r.tags))
    assert written.check(Filter(tags=frozenset({"watch", "red"})), lambda r: False) == set()
    for value in HOSTILE:
        assert written.check(Filter(tags=frozenset({value})), lambda r, v=value: v in r.tags)  # type: ignore[misc]
        i = next(i for i in range(0, 40, 5) if HOSTILE[i % len(HOSTILE)] == value)
        prefix = f"/lib/{i % 4}/img_{i}{value}"
        assert written.check(Filter(folder_prefix=prefix), lambda r, p=prefix: r.path.startswith(p))  # type: ignore[misc]


def test_filters_combine(written: Written) -> None:
    flt = Filter.of(orientation="landscape", min_width=1000, file_types="jpeg,png,heic,gif", since="2026-01-15")
    assert written.check(
        flt,
        lambda r: (
            r.width > r.height
            and r.width >= 1000
            and r.file_type in {"jpeg", "png", "heic", "gif"}
            and r.mtime >= local("2026-01-15")
        ),
    )


def test_file_types_are_every_indexed_extension() -> None:
    assert set(FILE_TYPES) == IMAGE_EXTENSIONS
    row = asset_row("/x/Photo.JPEG")
    assert row.file_type == "jpeg" and asset_row("/x/readme.txt").file_type == ""


@pytest.mark.unit
@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (lambda: Filter.of(orientation="diagonal"), "--orientation must be one of landscape, portrait, square"),
        (lambda: Filter(min_width=0), "--min-width must be a whole number of pixels"),
        (lambda: Filter(min_height=2.5), "--min-height must be a whole number of pixels"),  # type: ignore[arg-type]
        (lambda: Filter.of(file_types='jpeg" or 1==1'), "is not a file type AssetLens indexes"),
        (lambda: Filter.of(file_types=" , "), "--type names no file type"),
        (lambda: Filter.of(since="2026-13-01"), "--since '2026-13-01' is not a date"),
        (lambda: Filter.of(before='1" or 1==1'), "is not a date; give one as YYYY-MM-DD"),
        (lambda: Filter.of(since=float("nan")), "--since must be a date"),
        (lambda: Filter.of(since="2026-02-01", before="2026-02-01"), "--since must be earlier than --before"),
        (lambda: Filter(tags=frozenset({" "})), "A --tag is empty"),
    ],
)
def test_bad_values_are_one_sentence(make: Callable[[], Filter], sentence: str) -> None:
    with pytest.raises(UsageError, match=re.escape(sentence)):
        make()


@pytest.mark.unit
def test_type_names_and_aliases() -> None:
    assert parse_file_types("JPG, tif,.heif") == {"jpeg", "tiff", "heic"}


@pytest.mark.e2e
def test_cli_search_filters(capsys: pytest.CaptureFixture[str], catalogue_library: Path, catalogue_dir: Path) -> None:
    """``assetlens search`` with every filter flag gives the rows the API gives; a bad date is one sentence."""
    code, out, err = run_main(
        capsys, "search", "a red mug", "--db", str(catalogue_library), "-k", "60", "--json",
        "--type", "png", "--orientation", "square", "--min-width", "10", "--since", "2000-01-01",
    )  # fmt: skip
    assert code == 0, err
    hits = json.loads(out)
    with Library(catalogue_library) as lib:
        api = lib.search("a red mug", k=60, file_types="png", orientation="square", min_width=10, since="2000-01-01")
    assert [h["path"] for h in hits] == [r.path for r in api] and hits
    assert {Path(h["path"]).suffix for h in hits} == {".png"}
    code, out, err = run_main(capsys, "search", "mug", "--db", str(catalogue_library), "--since", "yesterday")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--since 'yesterday' is not a date" in err


# -- collections made before file types and tags were stored -----------------------------------------------


def old_collection(db: Path, rows: list[AssetRow], vectors: np.ndarray) -> None:
    """A Milvus Lite collection as AssetLens wrote it before version 2: the fields of ``V1_FIELDS`` only."""
    client = MilvusClient(str(db))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=40)
    schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=DIM)
    for name in ("path", "folder", "filename", "hash", "origin"):
        schema.add_field(name, DataType.VARCHAR, max_length=4096)
    schema.add_field("size", DataType.INT64)
    schema.add_field("mtime", DataType.DOUBLE)
    schema.add_field("width", DataType.INT32)
    schema.add_field("height", DataType.INT32)
    index = client.prepare_index_params()
    index.add_index(VECTOR_FIELD, index_type="FLAT", metric_type="COSINE")
    meta = {"model_id": "m", "model_name": "m", "precision": "fp32", "dim": DIM, "index_type": "FLAT"}
    props = {META_PROPERTY: json.dumps({**meta, "schema_version": 1}), GENERATION_PROPERTY: "old"}
    client.create_collection(COLLECTION, schema=schema, index_params=index, properties=props)
    data = [
        {**{k: getattr(r, k) for k in V1_FIELDS}, VECTOR_FIELD: v.tolist()} for r, v in zip(rows, vectors, strict=True)
    ]
    client.insert(COLLECTION, data)
    client.flush(COLLECTION)
    client.close()
    server_manager_instance.release_server(str(db.resolve()))


@pytest.fixture
def old_library(tmp_path: Path) -> tuple[Path, list[AssetRow], np.ndarray]:
    rows = [dataclasses.replace(r, tags=(), tagged="") for r in catalogue_rows()]
    vectors = unit_vectors(len(rows), DIM, seed=2)
    old_collection(tmp_path / "lib.db", rows, vectors)
    return tmp_path / "lib.db", rows, vectors


def assert_all_there(db: Path, rows: list[AssetRow], vectors: np.ndarray) -> MilvusStore:
    store = MilvusStore(str(db), collection=COLLECTION)
    found = {r.id: (r, v) for r, v in store.get([r.id for r in rows], with_vectors=True)}
    assert store.count() == len(rows) and set(found) == {r.id for r in rows}
    for row, vec in zip(rows, vectors, strict=True):
        assert found[row.id][0] == row
        np.testing.assert_allclose(found[row.id][1], vec, atol=1e-6)  # type: ignore[arg-type]
    return store


def test_old_collection_reads_and_refuses_new_filters_in_a_sentence(
    old_library: tuple[Path, list[AssetRow], np.ndarray],
) -> None:
    db, rows, vectors = old_library
    with assert_all_there(db, rows, vectors) as store:
        assert store.fields() == V1_FIELDS and store.meta() == CollectionMeta("m", "m", "fp32", DIM, "FLAT")
        assert {r.file_type for r in store.rows()} >= {"jpeg", "png", "heic"}  # derived from the names
        hits = store.search(vectors[:1], 5, Filter(orientation="square", min_width=1000).expr())[0]
        assert hits and all(h.row.width == h.row.height >= 1000 for h in hits)
        lib = Library(store=store)
        with pytest.raises(
            StoreError,
            match=re.escape(
                f"no file types or tags yet; tagging upgrades it: assetlens tag --db {db} --collection {COLLECTION}"
            ),
        ):
            lib.search(vector=vectors[0], file_types="png", tags=["mug"])


def test_first_write_upgrades_an_old_collection(old_library: tuple[Path, list[AssetRow], np.ndarray]) -> None:
    db, rows, vectors = old_library
    with MilvusStore(str(db), collection=COLLECTION) as store:
        store.ensure("m", "m", "fp32", DIM)
        assert store.fields() == ROW_FIELDS
        assert sorted(store._client.list_collections()) == [COLLECTION]
        extra = asset_row("/lib/new.png", digest="n" * 64)
        extra_vector = unit_vectors(1, DIM, seed=5)
        store.upsert([extra], extra_vector)
        store.flush()
        assert {h.row.path for h in store.search(vectors[:1], 50, Filter.of(file_types="png").expr())[0]} == {
            r.path for r in [*rows, extra] if r.file_type == "png"
        }
    assert_all_there(db, [*rows, extra], np.concatenate([vectors, extra_vector])).close()


#: Where the upgrade is killed: the n-th call of a client method.
KILL_POINTS = [("insert", 1), ("flush", 1), ("rename_collection", 1), ("rename_collection", 2), ("drop_collection", 1)]

KILLER = """
import os, signal, sys
from pymilvus import MilvusClient
from assetlens.engine import store as store_module
method, nth = sys.argv[2], int(sys.argv[3])
real = getattr(MilvusClient, method)
calls = []
def dying(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args, **kwargs)
store_module.UPGRADE_BATCH = 16
with store_module.MilvusStore(sys.argv[1], collection="filters") as store:
    setattr(MilvusClient, method, dying)
    store.ensure("m", "m", "fp32", 16)
"""


@pytest.mark.parametrize(("method", "nth"), KILL_POINTS)
def test_an_upgrade_killed_anywhere_loses_nothing(
    old_library: tuple[Path, list[AssetRow], np.ndarray], method: str, nth: int
) -> None:
    db, rows, vectors = old_library
    run = subprocess.run(
        [sys.executable, "-c", KILLER, str(db), method, str(nth)], env=cli_env(), capture_output=True, text=True
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    with assert_all_there(db, rows, vectors) as store:  # before the next write: the old rows or the new ones
        store.ensure("m", "m", "fp32", DIM)
        assert store.fields() == ROW_FIELDS
        assert sorted(store._client.list_collections()) == [COLLECTION]
        assert not any(store._client.has_collection(name) for name in upgrade_names(COLLECTION))
    assert_all_there(db, rows, vectors).close()
    assert os.path.isdir(db)


def test_app_filters_give_the_api_s_rows(app_env: pytest.MonkeyPatch, catalogue_library: Path, tmp_path: Path) -> None:
    """The app's Filters box (a page holds 12 cards) answers as ``Library.search`` does."""
    with Library(catalogue_library, device="cpu") as lib:
        png = lib.search("a red mug", k=12, file_types=["png"], since=date(2000, 1, 1))
    assert png and all(r.filename.endswith(".png") for r in png)
    at = start(app_env, catalogue_library, tmp_path)
    at.text_input(key="query").input("a red mug").run()
    at.multiselect(key="filter_types").select("png").run()
    at.date_input(key="filter_since").set_value(date(2000, 1, 1)).run()
    names = [literal(c.value.split("·", 1)[1].strip()) for c in at.caption if c.value.startswith("**")]
    assert names == [r.filename for r in png] and not at.exception
    at.selectbox(key="filter_orientation").set_value("landscape").run()  # the catalogue's renders are square
    assert at.info[0].value == "No results."
    at.selectbox(key="filter_orientation").set_value("square").run()
    at.number_input(key="filter_min_width").set_value(257).run()  # they are 256 pixels wide
    assert "No results" in at.info[0].value
