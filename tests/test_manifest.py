"""manifest.json as one typed, versioned object: round trip, migration of versions 1 and 2, refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from assetlens.engine.cpu import CpuInfo
from assetlens.engine.errors import ModelLoadError
from assetlens.engine.manifest import MANIFEST_FILE, VERSION, Int8Recipe, ModelManifest
from assetlens.engine.models import DEMO_ROOT, load_facts

pytestmark = [pytest.mark.unit]


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith(".")
    assert "Traceback" not in message


def _v1_int8(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest as version 1 wrote it: no CPU record, no saturation mark, no reduce_range, a processor config."""
    body = json.loads(json.dumps(manifest))
    body["format"] = "assetlens-model/1"
    del body["parity"]["cpu"], body["parity"]["int8_saturation_safe"]
    body["parity"]["int8_recipes"] = {
        tower: {"weight_type": r["weight_type"], "per_channel": r["per_channel"], "op_types": ["MatMul", "Gemm"]}
        for tower, r in body["parity"]["int8_recipes"].items()
    }
    body["files"]["preprocessor_config.json"] = "45d08d4b"
    return body


@pytest.fixture
def int8_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "int8"
    shutil.copytree(DEMO_ROOT / "int8", folder)
    return folder


def _write(folder: Path, body: object) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(body), encoding="utf-8")


def test_round_trip_is_exact(int8_dir: Path, tmp_path: Path) -> None:
    manifest = ModelManifest.load(int8_dir)
    changed = dataclasses.replace(
        manifest,
        name="other",
        parity=dataclasses.replace(manifest.parity, cpu=CpuInfo("aarch64", None), int8_saturation_safe=False),
    )
    out = tmp_path / "out"
    out.mkdir()
    path = changed.save(out)
    assert path == out / MANIFEST_FILE
    raw = json.loads(path.read_text())
    assert raw["format"] == f"assetlens-model/{VERSION}" == "assetlens-model/4"
    assert raw["parity"]["cpu"] == {"machine": "aarch64", "flags": None}
    assert raw["image"]["mean"] == list(manifest.image.mean)
    loaded = ModelManifest.load(out)
    assert loaded == changed
    assert isinstance(loaded.parity.int8_recipes["image"], Int8Recipe)
    assert loaded.text.input_names == ("input_ids", "attention_mask")


def test_shipped_manifests_load(int8_dir: Path) -> None:
    fp32 = ModelManifest.load(DEMO_ROOT / "fp32")
    assert (fp32.precision, fp32.embedding_dim, fp32.text.context_length) == ("fp32", 64, 77)
    assert fp32.parity.int8_saturation_safe  # no integer MatMuls at all
    int8 = ModelManifest.load(int8_dir)
    assert int8.precision == "int8" and int8.parity.int8_saturation_safe
    assert int8.parity.cpu is not None and int8.parity.cpu.machine
    assert set(int8.files) == {"image.onnx", "text.onnx", "tokenizer.json"}
    assert not (int8_dir / "preprocessor_config.json").exists()


def test_version_1_is_migrated(int8_dir: Path) -> None:
    current = json.loads((int8_dir / MANIFEST_FILE).read_text())
    _write(int8_dir, _v1_int8(current))
    facts = load_facts(int8_dir)
    assert facts.parity.cpu is None
    assert facts.parity.int8_saturation_safe is False  # version 1 never checked its graphs
    assert facts.parity.int8_recipes["image"] == Int8Recipe(
        current["parity"]["int8_recipes"]["image"]["weight_type"], True
    )
    assert facts.parity.int8_recipes["image"].reduce_range is False
    assert facts.embedding_dim == current["embedding_dim"] and facts.directory == int8_dir
    assert facts.model_id == f"demo:int8:{current['files']['image.onnx'][:12]}"


def test_version_2_is_migrated_as_clip_shaped(int8_dir: Path) -> None:
    body = json.loads((int8_dir / MANIFEST_FILE).read_text())
    for part, keys in (("image", ("resize",)), ("text", ("padding", "padding_side", "lowercase"))):
        body[part] = {k: v for k, v in body[part].items() if k not in keys}
    _write(int8_dir, {**body, "format": "assetlens-model/2"})
    facts = load_facts(int8_dir)
    assert (facts.image.resize, facts.text.padding, facts.text.padding_side, facts.text.lowercase) == (
        "shortest-edge-crop",
        "longest",
        "right",
        False,
    )


def test_version_3_migrates_to_int64_input_ids(int8_dir: Path) -> None:
    body = json.loads((int8_dir / MANIFEST_FILE).read_text())
    for key in ("ids_input", "token_dtype"):
        body["text"].pop(key, None)
    _write(int8_dir, {**body, "format": "assetlens-model/3"})
    text = load_facts(int8_dir).text
    assert (text.ids_input, text.token_dtype, text.input_names) == (
        "input_ids",
        "int64",
        ("input_ids", "attention_mask"),
    )


def test_newer_version_is_refused(int8_dir: Path) -> None:
    body = json.loads((int8_dir / MANIFEST_FILE).read_text())
    _write(int8_dir, {**body, "format": f"assetlens-model/{VERSION + 1}"})
    with pytest.raises(ModelLoadError, match="newer AssetLens") as caught:
        ModelManifest.load(int8_dir)
    _one_sentence(str(caught.value))
    assert f"format {VERSION + 1}" in str(caught.value) and f"up to {VERSION}" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, "has no manifest.json"),
        ("{not json", "is not valid JSON"),
        ([1, 2], "is not an AssetLens model manifest"),
        ({"format": "something/1"}, "has format 'something/1'"),
        ({"format": "assetlens-model/3", "name": "x"}, "is damaged (source: Field required)"),
    ],
)
def test_missing_or_damaged_manifest_is_one_sentence(int8_dir: Path, body: object, expected: str) -> None:
    path = int8_dir / MANIFEST_FILE
    if body is None:
        path.unlink()
    elif isinstance(body, str):
        path.write_text(body)
    else:
        _write(int8_dir, body)
    with pytest.raises(ModelLoadError) as caught:
        load_facts(int8_dir)
    assert expected in str(caught.value)
    _one_sentence(str(caught.value))


def test_wrong_type_names_the_field(int8_dir: Path) -> None:
    body = json.loads((int8_dir / MANIFEST_FILE).read_text())
    body["image"]["mean"] = [0.5, 0.5]
    _write(int8_dir, body)
    with pytest.raises(ModelLoadError, match=r"damaged \(image\.mean") as caught:
        ModelManifest.load(int8_dir)
    _one_sentence(str(caught.value))


def test_missing_graph_is_one_sentence(int8_dir: Path) -> None:
    (int8_dir / "text.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"is missing text\.onnx") as caught:
        load_facts(int8_dir)
    _one_sentence(str(caught.value))
