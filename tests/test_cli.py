"""End-to-end CLI tests on generated images with the shipped demo model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_main
from PIL import Image

from assetlens.catalogue import Item
from assetlens.cli import main

pytestmark = [pytest.mark.store]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, catalogue_dir: Path) -> Path:
    db = tmp_path_factory.mktemp("lib") / "lib.db"
    assert main(["index", str(catalogue_dir), "--db", str(db), "--model", "demo", "--device", "cpu"]) == 0
    return db


def test_index_summary_and_reindex_is_incremental(
    capsys: pytest.CaptureFixture[str], indexed: Path, catalogue_dir: Path
) -> None:
    code, out, err = run_main(capsys, "index", str(catalogue_dir), "--db", str(indexed))
    assert code == 0
    assert "0 indexed, 60 unchanged" in out
    assert ": 60 images" in out
    assert "CPUExecutionProvider" in err


def test_search_json_finds_the_described_product(
    capsys: pytest.CaptureFixture[str], indexed: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    items = {str(p): item for p, item in catalogue}
    target = catalogue[0][1]
    code, out, _ = run_main(capsys, "search", target.caption(), "--db", str(indexed), "-k", "3", "--json")
    assert code == 0
    hits = json.loads(out)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    top = items[hits[0]["path"]]
    assert (top.object, top.color) == (target.object, target.color)


def test_search_text_output_and_grid(capsys: pytest.CaptureFixture[str], indexed: Path, tmp_path: Path) -> None:
    grid = tmp_path / "hits.png"
    code, out, err = run_main(capsys, "search", "a gold watch", "--db", str(indexed), "-k", "4", "--grid", str(grid))
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 4 and lines[0].split()[0] == "1"
    with Image.open(grid) as img:
        assert img.width >= 4 * 160 and img.height > 160
    assert str(grid) in err


def test_image_query_leaves_itself_out(
    capsys: pytest.CaptureFixture[str], indexed: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    path = str(catalogue[5][0])
    code, out, _ = run_main(capsys, "search", "--image", path, "--db", str(indexed), "-k", "5", "--json")
    assert code == 0
    hits = json.loads(out)
    assert len(hits) == 5 and path not in [h["path"] for h in hits]
    code, out, _ = run_main(capsys, "search", "--like", path, "--db", str(indexed), "-k", "5", "--json")
    assert [h["path"] for h in json.loads(out)] == [h["path"] for h in hits]


def test_bad_files_are_skipped_and_counted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p, _ in catalogue[:5]:
        shutil.copy(p, folder / p.name)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "page.png").write_text("<html>not an image</html>")
    code, out, err = run_main(capsys, "index", str(folder), "--db", str(tmp_path / "m.db"), "--model", "demo")
    assert code == 0
    assert "5 indexed" in out and "2 failed" in out
    assert "empty.jpg" in err and "page.png" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["index", "/nonexistent/folder", "--model", "demo"], "does not exist"),
        (["search", "", "-k", "3"], "empty"),
        (["search", "a mug", "-k", "0"], "-k must be at least 1"),
        (["search", "a mug", "--image", "/nonexistent.jpg"], "does not exist"),
    ],
)
def test_bad_arguments_get_one_sentence(
    capsys: pytest.CaptureFixture[str], indexed: Path, argv: list[str], message: str
) -> None:
    code, _, err = run_main(capsys, *argv, "--db", str(indexed))
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_file_instead_of_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "x.jpg"
    f.write_bytes(b"")
    code, _, err = run_main(capsys, "index", str(f), "--db", str(tmp_path / "l.db"), "--model", "demo")
    assert code == 2 and "is a file, not a folder" in err


def test_unexported_model_says_how_to_export(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, catalogue_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSETLENS_CACHE", str(tmp_path / "cache"))
    code, _, err = run_main(
        capsys, "index", str(catalogue_dir), "--db", str(tmp_path / "l.db"), "--model", "openai/clip-vit-base-patch32"
    )
    assert code == 1
    assert "is not here yet, and the registry has no recorded pins (commit and sha256)" in err
    assert "assetlens export --model openai/clip-vit-base-patch32" in err
    assert not (tmp_path / "l.db").exists() or "Traceback" not in err


def test_mixing_models_is_refused(capsys: pytest.CaptureFixture[str], indexed: Path, catalogue_dir: Path) -> None:
    code, _, err = run_main(capsys, "index", str(catalogue_dir), "--db", str(indexed), "--precision", "int8")
    assert code == 1
    assert "was indexed with demo (fp32), not demo (int8)" in err


def test_search_without_a_library(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_main(capsys, "search", "a mug", "--db", str(tmp_path / "none.db"))
    assert code == 1 and "There is no library at" in err
    assert not (tmp_path / "none.db").exists()


def test_search_on_empty_library(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert (
        run_main(capsys, "index", str(tmp_path / "empty"), "--db", str(tmp_path / "empty.db"), "--model", "demo")[0]
        == 0
    )
    code, _, err = run_main(capsys, "search", "a mug", "--db", str(tmp_path / "empty.db"))
    assert code == 2 and "has no images yet" in err


def test_cuda_without_cuda_is_a_clear_error(capsys: pytest.CaptureFixture[str], indexed: Path) -> None:
    from assetlens.engine.encoders import cuda_available

    if cuda_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_main(capsys, "search", "a mug", "--db", str(indexed), "--device", "cuda")
    assert code == 1 and "no CUDA device is usable" in err


def test_stats(capsys: pytest.CaptureFixture[str], indexed: Path) -> None:
    code, out, _ = run_main(capsys, "stats", "--db", str(indexed), "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["count"] == 60 and stats["model"] == "demo" and stats["precision"] == "fp32"
    assert stats["index_type"] == "FLAT" and stats["dim"] > 0
    # written by the index run, not built by a search
    assert stats["search_copy"] == {"state": "current", "rows": 60, "graph": False}


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_command_in_a_subprocess(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "assetlens", "demo", "--out", str(tmp_path / "demo"), "--count", "40"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "40 indexed" in out.stdout
    sheet = tmp_path / "demo" / "results.png"
    assert f"contact sheet: {sheet}" in out.stdout
    with Image.open(sheet) as img:
        assert img.height > 6 * 160  # one band per query
    assert "Traceback" not in out.stderr


def test_combined_query_is_the_weighted_sum(indexed: Path, catalogue: list[tuple[Path, Item]]) -> None:
    import numpy as np

    from assetlens.engine import Library

    image = catalogue[3][0]
    with Library(indexed, create=False) as lib:
        query, exclude = lib.query_vector(
            "a watch", image, minus=["gold"], text_weight=0.7, image_weight=1.3, minus_weight=0.4
        )
        t, m = lib.text_encoder.encode_texts(["a watch", "gold"])
        from assetlens.engine.preprocess import decode

        i = lib.encoder.encode_images([decode(image).image])[0]
    expected = 0.7 * t + 1.3 * i - 0.4 * m
    np.testing.assert_allclose(query, expected / np.linalg.norm(expected), atol=1e-5)
    assert len(exclude) == 1  # the query image's own content is left out of results


def test_minus_steers_away(
    capsys: pytest.CaptureFixture[str], indexed: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    """The catalogue (seed 1) holds several gold products; subtracting "gold" pushes them down."""
    items = {str(p): item for p, item in catalogue}
    assert sum(i.color == "gold" for i in items.values()) >= 3
    base = json.loads(run_main(capsys, "search", "something gold", "--db", str(indexed), "-k", "3", "--json")[1])
    steered = json.loads(
        run_main(
            capsys,
            "search",
            "something gold",
            "--minus",
            "gold",
            "--minus-weight",
            "1.0",
            "--db",
            str(indexed),
            "-k",
            "3",
            "--json",
        )[1]
    )
    assert sum(items[h["path"]].color == "gold" for h in base) >= 2
    assert sum(items[h["path"]].color == "gold" for h in steered) == 0
