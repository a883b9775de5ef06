"""Conformance suite for the vector store: every backend must pass the same tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import DIM, rows_and_vectors

from assetlens import MILVUS_LITE_WRITE_BUFFER
from assetlens.benchmarks.milvus_server import infix_like
from assetlens.engine.errors import ModelMismatchError, StoreError, StoreLockedError
from assetlens.engine.store import MilvusStore, contains_filter, prefix_filter

pytestmark = [pytest.mark.store]


@pytest.fixture(params=["lite", pytest.param("server", marks=[pytest.mark.server, pytest.mark.slow])])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "server":
        return str(request.getfixturevalue("server_uri"))
    return str(tmp_path / "lib.db")


def test_meta_is_recorded_and_survives_reopen(store_uri: str) -> None:
    with MilvusStore(store_uri, collection="c") as store:
        assert store.meta() is None and store.count() == 0
        meta = store.ensure("m:fp32:abc", "demo", "fp32", DIM)
        rows, vecs = rows_and_vectors(5)
        store.upsert(rows, vecs)
    with MilvusStore(store_uri, collection="c") as store:
        again = store.meta()
        assert again == meta and again.dim == DIM and again.model_name == "demo"
        assert store.count() == 5


def test_other_model_is_refused(store_uri: str) -> None:
    with MilvusStore(store_uri, collection="c") as store:
        store.ensure("m:fp32:abc", "demo", "fp32", DIM)
        with pytest.raises(ModelMismatchError, match="holds 16-d embeddings of demo"):
            store.ensure("other:fp32:def", "other", "fp32", 32)


def test_upsert_by_path_is_idempotent(store_uri: str) -> None:
    rows, vecs = rows_and_vectors(20)
    with MilvusStore(store_uri) as store:
        store.ensure("m", "m", "fp32", DIM)
        store.upsert(rows, vecs)
        store.upsert(rows[:10], vecs[:10])
        assert store.count() == 20
        assert sorted(r.path for r in store.rows()) == sorted(r.path for r in rows)


def test_search_orders_by_cosine_and_returns_metadata(store_uri: str) -> None:
    rows, vecs = rows_and_vectors(50)
    with MilvusStore(store_uri) as store:
        store.ensure("m", "m", "fp32", DIM)
        store.upsert(rows, vecs)
        q = vecs[7] + 0.1 * vecs[3]
        q /= np.linalg.norm(q)
        hits = store.search(q[None], 5)[0]
        exact = np.argsort(-(vecs @ q))[:5]
        assert [h.row.path for h in hits] == [rows[i].path for i in exact]
        np.testing.assert_allclose([h.score for h in hits], (vecs @ q)[exact], atol=1e-5)
        assert hits[0].row == rows[7]


def test_filters_by_prefix_and_name(store_uri: str) -> None:
    rows, vecs = rows_and_vectors(30)
    with MilvusStore(store_uri) as store:
        store.ensure("m", "m", "fp32", DIM)
        store.upsert(rows, vecs)
        hits = store.search(vecs[:1], 30, prefix_filter("path", "/photos/sub1/"))[0]
        assert {h.row.folder for h in hits} == {"/photos/sub1"} and len(hits) == 10
        if not infix_like(store_uri):
            with pytest.raises(StoreError, match=r"cannot match text inside file names .* needs Milvus 2\.4"):
                store.search(vecs[:1], 30, contains_filter("filename", "img_1"))
            return
        hits = store.search(vecs[:1], 30, contains_filter("filename", "img_1"))[0]
        assert sorted(h.row.filename for h in hits) == sorted(r.filename for r in rows if "img_1" in r.filename)


def test_delete_and_get_vectors(store_uri: str) -> None:
    rows, vecs = rows_and_vectors(10)
    with MilvusStore(store_uri) as store:
        store.ensure("m", "m", "fp32", DIM)
        store.upsert(rows, vecs)
        assert store.delete([rows[0].id, rows[1].id]) == 2
        assert store.count() == 8
        got = store.get([rows[2].id], with_vectors=True)
        assert got[0][0] == rows[2]
        np.testing.assert_allclose(got[0][1], vecs[2], atol=1e-6)


def test_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    with MilvusStore(str(db)) as store:
        store.ensure("m", "m", "fp32", DIM)
        code = (
            "from assetlens.engine.store import MilvusStore\n"
            "from assetlens.engine.errors import StoreLockedError\n"
            f"try:\n    MilvusStore({str(db)!r})\nexcept StoreLockedError as e:\n    print('LOCKED', e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "LOCKED The library" in out.stdout
    assert "in use by another AssetLens process" in out.stdout
    assert "Traceback" not in out.stderr


def test_lock_error_type_in_process(tmp_path: Path) -> None:
    assert issubclass(StoreLockedError, StoreError)


def test_unreachable_server_is_one_sentence() -> None:
    with pytest.raises(StoreError, match=re.escape("No Milvus server answers at http://127.0.0.1:1")):
        MilvusStore("http://127.0.0.1:1")


@pytest.mark.parametrize("first", ["assetlens.benchmarks.search", "assetlens.cli", "assetlens.engine.store"])
@pytest.mark.parametrize("preset", [None, "1048576"], ids=["default", "user-set"])
def test_milvus_lite_seals_a_small_write_buffer_whichever_module_is_imported_first(
    first: str, preset: str | None
) -> None:
    # benchmarks.search imports pymilvus (and with it Milvus Lite) before any AssetLens module
    env = {k: v for k, v in os.environ.items() if k != "MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"}
    if preset is not None:
        env["MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"] = preset
    code = f"import {first}; import milvus_lite.engine.collection as c; print(c.MEMTABLE_MEMORY_LIMIT)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) == (int(preset) if preset else MILVUS_LITE_WRITE_BUFFER)
