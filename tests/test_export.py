"""Export a tiny random CLIP and check the ONNX folder against PyTorch."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("optimum.exporters.onnx")

from tokenizers import Tokenizer  # noqa: E402

from assetlens.cli import main  # noqa: E402
from assetlens.engine.cpu import this_cpu  # noqa: E402
from assetlens.engine.errors import ExportError  # noqa: E402
from assetlens.engine.manifest import VERSION, ModelManifest  # noqa: E402
from assetlens.engine.models import load_facts  # noqa: E402
from assetlens.export import onnx_export  # noqa: E402
from assetlens.export.onnx_export import export_model, quantize_export  # noqa: E402
from assetlens.export.quantize import INT16_MAX, int16_pair_sum, integer_matmul_weights  # noqa: E402

pytestmark = [pytest.mark.parity, pytest.mark.slow]

GOLDEN = "a golden watch on a red table"
GOLDEN_IDS = [49406, 320, 3878, 1239, 525, 320, 736, 2175, 49407]
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def torch_clip(tiny_clip: Path):
    return transformers.CLIPModel.from_pretrained(tiny_clip).eval()


@pytest.fixture(scope="module")
def fp32_dir(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(tiny_clip, tmp_path_factory.mktemp("exports") / "fp32")


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _normalised(t) -> np.ndarray:
    return torch.nn.functional.normalize(t, dim=-1).detach().numpy()


def _assert_close(got: np.ndarray, want: np.ndarray, floor: float = 0.9999) -> None:
    assert got.shape == want.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)
    assert float(np.min((got * want).sum(-1))) >= floor


def test_fp32_folder_and_manifest(fp32_dir: Path, tiny_clip: Path) -> None:
    names = {p.name for p in fp32_dir.iterdir()}
    assert names == {"image.onnx", "text.onnx", "tokenizer.json", "manifest.json"}
    manifest = json.loads((fp32_dir / "manifest.json").read_text())
    assert manifest["format"] == f"assetlens-model/{VERSION}"
    assert manifest["name"] == tiny_clip.name
    assert manifest["source"] == str(tiny_clip.resolve())
    assert manifest["precision"] == "fp32"
    assert manifest["embedding_dim"] == 16
    assert manifest["opset"] == 17
    image = manifest["image"]
    assert (image["file"], image["input_name"], image["output_name"]) == ("image.onnx", "pixel_values", "image_embeds")
    assert (image["resize_shortest_edge"], image["crop_size"], image["resample"]) == (32, 32, "bicubic")
    assert image["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert image["std"] == pytest.approx([0.26862954, 0.26130258, 0.27577711])
    text = manifest["text"]
    assert text["input_names"] == ["input_ids", "attention_mask"]
    assert (text["output_name"], text["context_length"], text["pad_token_id"]) == ("text_embeds", 77, 49407)
    for file, digest in manifest["files"].items():
        assert hashlib.sha256((fp32_dir / file).read_bytes()).hexdigest() == digest
    assert set(manifest["files"]) == {"image.onnx", "text.onnx", "tokenizer.json"}
    parity = manifest["parity"]
    assert parity["image_min_cosine"] >= 0.9999 and parity["text_min_cosine"] >= 0.9999
    assert parity["images"] > 0 and parity["texts"] > 0 and parity["reference"] == "pytorch fp32"
    cpu = this_cpu()
    assert parity["cpu"] == {"machine": cpu.machine, "flags": None if cpu.flags is None else list(cpu.flags)}
    assert parity["int8_saturation_safe"] is True and parity["int8_recipes"] == {}
    assert {"torch", "transformers", "optimum", "onnx", "onnxruntime"} <= set(manifest["versions"])
    facts = load_facts(fp32_dir)  # what the runtime reads
    assert facts.embedding_dim == 16 and facts.text.context_length == 77


def test_shipped_tokenizer(fp32_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(fp32_dir / "tokenizer.json"))
    assert tokenizer.encode(GOLDEN).ids == GOLDEN_IDS
    long_ids = tokenizer.encode(" ".join(["word"] * 200)).ids
    assert len(long_ids) == 77 and long_ids[-1] == 49407


def test_graph_signatures(fp32_dir: Path) -> None:
    image = _session(fp32_dir / "image.onnx")
    assert [(i.name, i.shape) for i in image.get_inputs()] == [("pixel_values", ["batch", 3, 32, 32])]
    assert [(o.name, o.shape) for o in image.get_outputs()] == [("image_embeds", ["batch", 16])]
    text = _session(fp32_dir / "text.onnx")
    assert [(i.name, i.shape) for i in text.get_inputs()] == [
        ("input_ids", ["batch", "sequence"]),
        ("attention_mask", ["batch", "sequence"]),
    ]
    assert [(o.name, o.shape) for o in text.get_outputs()] == [("text_embeds", ["batch", 16])]


@pytest.mark.parametrize("batch", [1, 3])
def test_image_graph_matches_torch(fp32_dir: Path, torch_clip, batch: int) -> None:
    pixels = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    (got,) = _session(fp32_dir / "image.onnx").run(None, {"pixel_values": pixels})
    with torch.no_grad():
        want = _normalised(torch_clip.get_image_features(pixel_values=torch.from_numpy(pixels)))
    _assert_close(got, want)


def test_text_graph_matches_torch_at_any_length(fp32_dir: Path, torch_clip) -> None:
    tokenizer = Tokenizer.from_file(str(fp32_dir / "tokenizer.json"))
    session = _session(fp32_dir / "text.onnx")
    texts = ["cat", GOLDEN, "a long caption about " + "a very " * 20 + "big house by the sea"]
    encodings = [tokenizer.encode(t).ids for t in texts]
    assert len({len(ids) for ids in encodings}) == 3

    def reference(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _normalised(
                torch_clip.get_text_features(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
            )

    for ids in encodings:  # batch 1, each at its own length
        feed = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), np.int64)}
        (got,) = session.run(None, feed)
        _assert_close(got, reference(feed["input_ids"], feed["attention_mask"]))

    width = max(len(ids) for ids in encodings)  # batch 3, padded to the longest
    ids = np.full((3, width), 49407, dtype=np.int64)
    mask = np.zeros((3, width), dtype=np.int64)
    for row, encoded in enumerate(encodings):
        ids[row, : len(encoded)] = encoded
        mask[row, : len(encoded)] = 1
    (batched,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    _assert_close(batched, reference(ids, mask))


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_records_parity(tiny_clip: Path, tmp_path: Path, precision: str) -> None:
    out = export_model(tiny_clip, tmp_path / precision, precision, name="tiny")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == precision and manifest["name"] == "tiny"
    for key in ("image_min_cosine", "text_min_cosine"):
        assert isinstance(manifest["parity"][key], float)
        assert 0.9 < manifest["parity"][key] <= 1.0 + 1e-6
    pixels = np.zeros((2, 3, 32, 32), dtype=np.float32)
    (embeds,) = _session(out / "image.onnx").run(None, {"pixel_values": pixels})
    assert embeds.dtype == np.float32  # float32 in and out, whatever the precision inside
    np.testing.assert_allclose(np.linalg.norm(embeds, axis=-1), 1.0, atol=1e-3)
    assert load_facts(out).parity.int8_saturation_safe is True


def _assert_saturation_safe(graph: Path) -> int:
    """Every s8 weight of an integer MatMul within [-64, 64] (u8 weights widen to int32); returns their count."""
    weights = integer_matmul_weights(onnx.load(str(graph)))
    for name, w in weights.items():
        assert w.dtype in (np.int8, np.uint8), name
        if w.dtype == np.int8:
            assert int(w.min()) >= -64 and int(w.max()) <= 64, name
    assert int16_pair_sum(graph) <= INT16_MAX
    return len(weights)


def test_fresh_int8_export_cannot_saturate(tiny_clip: Path, tmp_path: Path) -> None:
    out = export_model(tiny_clip, tmp_path / "int8", "int8", name="tiny")
    manifest = ModelManifest.load(out)
    for tower in ("image", "text"):
        # 2 layers x 6 MatMuls + the projection
        assert _assert_saturation_safe(out / f"{tower}.onnx") == 13
        recipe = manifest.parity.int8_recipes[tower]
        assert recipe.weight_type == "QUInt8" or recipe.reduce_range
    assert manifest.parity.int8_saturation_safe is True and manifest.parity.cpu == this_cpu()


def test_int8_from_fp32_export(fp32_dir: Path, tmp_path: Path) -> None:
    out = quantize_export(fp32_dir, tmp_path / "int8")
    assert {p.name for p in out.iterdir()} == {"image.onnx", "text.onnx", "tokenizer.json", "manifest.json"}
    fp32, int8 = load_facts(fp32_dir), load_facts(out)
    assert (int8.precision, int8.name, int8.embedding_dim, int8.image, int8.text) == (
        "int8",
        fp32.name,
        16,
        fp32.image,
        fp32.text,
    )
    for file, digest in int8.files.items():
        assert hashlib.sha256((out / file).read_bytes()).hexdigest() == digest
    assert int8.files["tokenizer.json"] == fp32.files["tokenizer.json"]
    assert int8.files["image.onnx"] != fp32.files["image.onnx"]
    assert int8.parity.reference == "onnx fp32" and int8.parity.int8_saturation_safe is True
    assert 0.99 <= int8.parity.image_min_cosine <= 1.0 + 1e-6 and 0.99 <= int8.parity.text_min_cosine <= 1.0 + 1e-6
    assert set(int8.parity.int8_recipes) == {"image", "text"}
    for tower in ("image", "text"):
        assert _assert_saturation_safe(out / f"{tower}.onnx") == 13
    with pytest.raises(ExportError, match=r"is not an fp32 export \(its precision is int8\)") as caught:
        quantize_export(out, tmp_path / "again")
    assert "\n" not in str(caught.value) and not (tmp_path / "again").exists()


def test_cli_export_prints_from_the_manifest(
    tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert main(["export", "--model", str(tiny_clip), "--out", str(out), "--precision", "fp32"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    parity = ModelManifest.load(out).parity
    assert lines[-2:] == [
        f"exported {tiny_clip} (fp32, 16-d) to {out}",
        f"parity vs pytorch fp32: image min cosine {parity.image_min_cosine:.6f}, "
        f"text min cosine {parity.text_min_cosine:.6f}",
    ]


def test_unknown_model_offline_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "never"
    with pytest.raises(ExportError) as caught:
        export_model("assetlens-tests/no-such-clip-model", out)
    message = str(caught.value)
    assert "\n" not in message and "--model" in message
    assert message.endswith(".") and message.count(". ") == 0
    assert not out.exists() and not list(tmp_path.iterdir())


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="There is no folder") as caught:
        export_model(tmp_path / "nowhere", tmp_path / "out")
    assert "\n" not in str(caught.value) and "--model" in str(caught.value)


def test_folder_without_weights(tiny_clip: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(tiny_clip / "config.json", broken)
    with pytest.raises(ExportError, match="cannot read its model weights") as caught:
        export_model(broken, tmp_path / "out")
    assert "\n" not in str(caught.value) and "--model" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_failed_parity_keeps_previous_export(
    fp32_dir: Path, tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = tmp_path / "model"
    shutil.copytree(fp32_dir, previous)
    before = (previous / "manifest.json").read_text()
    monkeypatch.setattr(onnx_export, "FP32_MIN_COSINE", 1.5)  # impossible to meet
    with pytest.raises(ExportError, match="do not match PyTorch"):
        export_model(tiny_clip, previous)
    assert (previous / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left behind


def test_refuses_to_replace_unrelated_folder(tiny_clip: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an AssetLens model folder"):
        export_model(tiny_clip, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_checkpoint_without_tokenizer_gets_openai_tokenizer(tiny_clip: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(tiny_clip, bare, ignore=shutil.ignore_patterns(*TOKENIZER_FILES))
    out = export_model(bare, tmp_path / "out")
    assert Tokenizer.from_file(str(out / "tokenizer.json")).encode(GOLDEN).ids == GOLDEN_IDS


def test_static_int8_image_tower_is_qdq_and_close_to_fp32(fp32_dir: Path, tmp_path: Path) -> None:
    """The benchmarks' static alternative to the exported int8, calibrated as they calibrate it."""
    from assetlens.engine.preprocess import model_batch
    from assetlens.export.onnx_export import calibration_images
    from assetlens.export.quantize import STATIC_INT8, prepare_int8, quantize_int8

    facts = load_facts(fp32_dir).image
    prepared, static_path = tmp_path / "prepared.onnx", tmp_path / "static.onnx"
    prepare_int8(fp32_dir / "image.onnx", prepared)
    feeds = [{"pixel_values": p[None]} for p in model_batch(calibration_images(), facts)]
    quantize_int8(prepared, static_path, STATIC_INT8, feeds)
    ops = {node.op_type for node in onnx.load(str(static_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "DynamicQuantizeLinear" not in ops
    assert _assert_saturation_safe(static_path) == 13  # the same arithmetic on every CPU, so the bound below holds
    pixels = model_batch(onnx_export.synthetic_images(4, seed=3), facts)
    (static,) = _session(static_path).run(None, {"pixel_values": pixels})
    (fp32,) = _session(fp32_dir / "image.onnx").run(None, {"pixel_values": pixels})
    assert np.min(np.sum(static * fp32, axis=1)) > 0.99
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(prepared, tmp_path / "x.onnx", STATIC_INT8)
