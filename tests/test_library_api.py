"""The Library API the CLI, app and benchmarks share: injected store and encoder, bulk writes, the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assetlens.engine.encoders import Encoder
from assetlens.engine.errors import ModelMismatchError, UsageError
from assetlens.engine.library import Library
from assetlens.engine.models import load_facts, resolve_model_dir
from assetlens.engine.store import AssetRow, MilvusStore, path_id

pytestmark = [pytest.mark.store]


def demo_encoder(precision: str = "fp32") -> Encoder:
    return Encoder(load_facts(resolve_model_dir("demo", precision)), device="cpu")


def test_a_library_given_its_store_and_encoder_indexes_and_is_reopened_by_name(
    tmp_path: Path, catalogue_dir: Path
) -> None:
    db = tmp_path / "lib.db"
    encoder = demo_encoder()
    with Library(store=MilvusStore(str(db)), encoder=encoder) as lib:
        assert lib.encoder is encoder
        assert lib.index(catalogue_dir).encoded == 60
        given = [(h.path, round(h.score, 5)) for h in lib.search("a red mug", k=5)]
    with Library(db, device="cpu") as lib:  # the model recorded for the injected encoder loads by itself
        assert lib.stats().model == "demo"
        assert [(h.path, round(h.score, 5)) for h in lib.search("a red mug", k=5)] == given


def test_an_injected_encoder_of_another_model_is_refused(tmp_path: Path, catalogue_dir: Path) -> None:
    db = tmp_path / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        lib.index(catalogue_dir)
    with Library(db, encoder=demo_encoder("int8")) as lib, pytest.raises(ModelMismatchError, match="given encoder"):
        lib.search("a red mug")


def test_store_and_db_together_are_refused(tmp_path: Path) -> None:
    with MilvusStore(str(tmp_path / "a.db")) as store, pytest.raises(UsageError, match="not both"):
        Library(tmp_path / "b.db", store=store)
    with pytest.raises(UsageError, match="not both"):
        Library(tmp_path / "c.db", model="demo", encoder=demo_encoder())


def test_bulk_writes_are_searchable_after_flush(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [
        AssetRow(path_id(f"/bulk/{i}.jpg"), f"/bulk/{i}.jpg", "/bulk", f"{i}.jpg", 1, 1.0, f"{i:064x}", 8, 8)
        for i in range(50)
    ]
    with Library(tmp_path / "lib.db", model="demo", device="cpu") as lib:
        run = lib.prepare_writes()
        assert (run.model, run.precision, run.dim, run.provider) == ("demo", "fp32", 64, "CPUExecutionProvider")
        with pytest.raises(UsageError, match=r"\(50, 64\) array"):
            lib.write(rows, vectors[:, :32])
        lib.write(rows[:25], vectors[:25], new=True)
        lib.write(rows[25:], vectors[25:], new=True)
        lib.flush()
        assert lib.stats().count == 50
        [hit] = lib.search(vector=vectors[37], k=1)
        assert hit.path == "/bulk/37.jpg" and hit.score == pytest.approx(1.0, abs=1e-5)
