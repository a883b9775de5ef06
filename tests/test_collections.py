"""A collection is bound to one model: another model in the same database reuses nothing and says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_main

from assetlens.engine.library import Library, OtherCollection
from assetlens.engine.store import AssetRow

pytestmark = [pytest.mark.store]


def test_a_second_model_in_one_database_encodes_everything_afresh_and_says_so(
    catalogue_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "lib.db")
    with Library(db, model="demo", precision="fp32", device="cpu") as lib:
        first = lib.index(catalogue_dir)
        fp32_rows, fp32_vectors = lib.store.rows_and_vectors()
    assert first.encoded == 60

    code, out, err = run_main(
        capsys, "index", str(catalogue_dir), "--db", db, "--model", "demo", "--precision", "int8", "--collection", "b"
    )
    assert code == 0
    assert "60 indexed" in out and "0 moved or copied" in out
    assert (
        "collection b is new and bound to demo (int8): every image is encoded with it; nothing is reused from "
        "assets (demo fp32, 60 images), which hold another model's vectors." in err
    )
    with Library(db, collection="b", device="cpu") as lib:
        assert lib.other_models() == [OtherCollection("assets", "demo", "fp32", 60)]
        got = by_path(*lib.store.rows_and_vectors())
    with Library(tmp_path / "alone.db", model="demo", precision="int8", device="cpu") as alone:
        alone.index(catalogue_dir)
        int8 = by_path(*alone.store.rows_and_vectors())
    fp32 = by_path(fp32_rows, fp32_vectors)
    assert got.keys() == int8.keys() == fp32.keys()
    for path, vector in got.items():
        assert np.array_equal(vector, int8[path])  # the int8 model's own vectors ...
        assert not np.array_equal(vector, fp32[path])  # ... never the fp32 ones

    code, out, err = run_main(capsys, "index", str(catalogue_dir), "--db", db, "--collection", "b")
    assert code == 0 and "is new" not in err  # said once, when the collection is created

    code, _, err = run_main(capsys, "index", str(catalogue_dir), "--db", db, "--precision", "int8")
    assert code != 0 and err.strip().count("\n") == 0
    assert "Collection assets was indexed with demo (fp32), not demo (int8)" in err


def by_path(rows: list[AssetRow], vectors: np.ndarray) -> dict[str, np.ndarray]:
    return {r.path: v for r, v in zip(rows, vectors, strict=True)}
