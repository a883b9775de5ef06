"""Text queries of an fp32 library on the same model's int8 text tower (``Library(query_precision=...)``).

On the shipped demo model (whose int8 text tower records a min cosine of 0.9993 against fp32) ``auto``
encodes an fp32 library's text queries with the int8 tower and finds what fp32 queries find; an int8
export recording a lower cosine, or quantised from other weights, is refused by ``int8`` and passed
over by ``auto``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import run_main

from assetlens.catalogue import Item
from assetlens.engine import library
from assetlens.engine.encoders import Encoder
from assetlens.engine.errors import ModelMismatchError, ModelNotFoundError, UsageError
from assetlens.engine.library import Library
from assetlens.engine.manifest import ModelManifest, file_sha256
from assetlens.engine.models import DEMO_ROOT, INT8_QUERY_MIN_COSINE, ModelFacts, int8_text_facts, quantised_from

pytestmark = [pytest.mark.store]

QUERY = "a red mug on a wooden table"


def tower(precision: str, root: Path = DEMO_ROOT) -> np.ndarray:
    """``QUERY`` as the demo model's ``precision`` text tower encodes it."""
    return Encoder.load(root / precision, precision, device="cpu").encode_texts([QUERY])[0]


def query(lib: Library) -> np.ndarray:
    return lib.query_vector(QUERY)[0]


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """The demo model's fp32 and int8 exports copied into ``model/`` (a model folder, as the cache holds)."""
    root = tmp_path / "model"
    for precision in ("fp32", "int8"):
        shutil.copytree(DEMO_ROOT / precision, root / precision)
    return root


def lowered_cosine(root: Path, cosine: float) -> None:
    """Rewrite the int8 manifest of ``root`` as if quantisation had measured ``cosine`` on the text tower."""
    manifest = ModelManifest.load(root / "int8")
    parity = dataclasses.replace(manifest.parity, text_min_cosine=cosine)
    dataclasses.replace(manifest, parity=parity).save(root / "int8")


def other_weights(root: Path) -> None:
    """Make the int8 text graph of ``root`` one of other weights: its token embedding is not fp32's."""
    import onnx
    from onnx import numpy_helper

    path = root / "int8" / "text.onnx"
    graph = onnx.load(str(path))
    for i, init in enumerate(graph.graph.initializer):
        if init.name.endswith("token_embedding.weight"):
            moved = numpy_helper.to_array(init) * np.float32(1.01)
            graph.graph.initializer[i].CopyFrom(numpy_helper.from_array(moved, init.name))
    onnx.save(graph, str(path))
    manifest = ModelManifest.load(root / "int8")
    dataclasses.replace(manifest, files={**manifest.files, "text.onnx": file_sha256(path)}).save(root / "int8")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith(".") and "Traceback" not in message


def test_auto_encodes_an_fp32_librarys_text_queries_with_the_int8_tower(catalogue_library: Path) -> None:
    fp32, int8 = tower("fp32"), tower("int8")
    assert float(np.abs(fp32 - int8).max()) > 1e-3  # the two towers are told apart
    with Library(catalogue_library, device="cpu", create=False) as lib:
        np.testing.assert_allclose(query(lib), int8, atol=1e-6)
        run = lib.runtime()
        assert (run.precision, run.query_precision) == ("fp32", "int8")
        assert lib.encoder.facts.precision == "fp32"  # images, and so the stored vectors, stay fp32
    with Library(catalogue_library, device="cpu", create=False, query_precision="fp32") as lib:
        np.testing.assert_allclose(query(lib), fp32, atol=1e-6)
        assert lib.runtime().query_precision == "fp32"


def _recall(lib: Library, catalogue: list[tuple[Path, Item]], k: int) -> tuple[float, float]:
    """Exact-item recall@k of every catalogue caption, and colour+object recall@k of every short caption."""
    items = {str(path): item for path, item in catalogue}
    exact = [str(path) in {r.path for r in lib.search(item.caption(), k=k)} for path, item in catalogue]
    pairs = {(item.color, item.object): item.short_caption() for _, item in catalogue}
    pair = [
        any((items[r.path].color, items[r.path].object) == key for r in lib.search(text, k=k))
        for key, text in pairs.items()
    ]
    return float(np.mean(exact)), float(np.mean(pair))


@pytest.mark.parametrize("k", [1, 5])
def test_int8_queries_find_what_fp32_queries_find(
    catalogue_library: Path, catalogue: list[tuple[Path, Item]], k: int
) -> None:
    found = {}
    for precision in ("fp32", "int8"):
        with Library(catalogue_library, device="cpu", create=False, query_precision=precision) as lib:
            assert lib.runtime().query_precision == precision
            found[precision] = _recall(lib, catalogue, k)
    print(f"\ndemo catalogue recall@{k} (exact item, colour+object): fp32 {found['fp32']}, int8 {found['int8']}")
    assert found["int8"] == found["fp32"]


def test_the_shipped_int8_text_graph_is_quantised_from_the_fp32_one(model_copy: Path) -> None:
    assert quantised_from(DEMO_ROOT / "fp32" / "text.onnx", DEMO_ROOT / "int8" / "text.onnx")
    other_weights(model_copy)
    assert not quantised_from(DEMO_ROOT / "fp32" / "text.onnx", model_copy / "int8" / "text.onnx")
    assert not quantised_from(DEMO_ROOT / "fp32" / "text.onnx", DEMO_ROOT.parent / "demo-siglip" / "int8" / "text.onnx")


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.999])
def test_a_truncated_int8_text_graph_was_not_quantised_from_the_fp32_one(model_copy: Path, keep: float) -> None:
    graph = model_copy / "int8" / "text.onnx"
    graph.write_bytes(graph.read_bytes()[: int(graph.stat().st_size * keep)])
    assert not quantised_from(DEMO_ROOT / "fp32" / "text.onnx", graph)


def test_the_int8_tower_is_chosen_once_per_library(monkeypatch: pytest.MonkeyPatch, catalogue_library: Path) -> None:
    calls = []

    def counted(facts: ModelFacts) -> ModelFacts:
        calls.append(facts.directory)
        return int8_text_facts(facts)

    monkeypatch.setattr(library, "int8_text_facts", counted)
    with Library(catalogue_library, device="cpu", create=False) as lib:
        for _ in range(3):
            query(lib)
        assert lib.runtime().query_precision == "int8"
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (
            lambda root: lowered_cosine(root, 0.998),
            f"min cosine of 0.998000 against fp32, below the {INT8_QUERY_MIN_COSINE}",
        ),
        (other_weights, "was not quantised from this fp32 text graph"),
    ],
    ids=["cosine-below-floor", "other-weights"],
)
def test_an_int8_tower_that_does_not_answer_as_fp32_is_refused_and_passed_over(
    model_copy: Path, tmp_path: Path, spoil: Callable[[Path], None], reason: str
) -> None:
    spoil(model_copy)
    lib = Library(tmp_path / "lib.db", model=model_copy, device="cpu", query_precision="int8")
    with lib, pytest.raises(ModelMismatchError) as refused:
        query(lib)
    assert reason in str(refused.value)
    _one_sentence(str(refused.value))
    with Library(tmp_path / "lib.db", model=model_copy, device="cpu") as lib:
        np.testing.assert_allclose(query(lib), tower("fp32", model_copy), atol=1e-6)
        assert lib.runtime().query_precision == "fp32"


def test_without_an_int8_export_auto_keeps_fp32_and_int8_is_refused(model_copy: Path, tmp_path: Path) -> None:
    shutil.rmtree(model_copy / "int8")
    with Library(tmp_path / "lib.db", model=model_copy, device="cpu") as lib:
        np.testing.assert_allclose(query(lib), tower("fp32", model_copy), atol=1e-6)
    lib = Library(tmp_path / "lib.db", model=model_copy, device="cpu", query_precision="int8")
    with lib, pytest.raises(ModelNotFoundError) as refused:
        query(lib)
    _one_sentence(str(refused.value))


def test_an_int8_library_answers_with_its_own_tower(tmp_path: Path) -> None:
    with Library(tmp_path / "lib.db", model="demo", precision="int8", device="cpu") as lib:
        np.testing.assert_allclose(query(lib), tower("int8"), atol=1e-6)
    lib = Library(tmp_path / "lib.db", model="demo", precision="int8", device="cpu", query_precision="fp32")
    with lib, pytest.raises(UsageError, match="--query-precision fp32 is for fp32 libraries"):
        query(lib)
    with pytest.raises(UsageError, match="Unknown query precision"):
        Library(tmp_path / "lib.db", query_precision="fp16")


def test_cli_search_refuses_an_int8_tower_below_the_floor(
    capsys: pytest.CaptureFixture[str], model_copy: Path, tmp_path: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path, _ in catalogue[:3]:
        shutil.copy(path, photos / path.name)
    db = str(tmp_path / "lib.db")
    assert run_main(capsys, "index", str(photos), "--db", db, "--model", str(model_copy), "--device", "cpu")[0] == 0
    lowered_cosine(model_copy, 0.998)
    code, out, err = run_main(capsys, "search", QUERY, "--db", db, "--query-precision", "int8", "--device", "cpu")
    assert code == 1 and not out
    assert err.startswith("error: The int8 export") and "below the 0.999" in err and "Traceback" not in err
    code, out, _ = run_main(capsys, "search", QUERY, "--db", db, "--device", "cpu", "-k", "3")  # auto: fp32
    assert code == 0 and len(out.strip().splitlines()) == 3
