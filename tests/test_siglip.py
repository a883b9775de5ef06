"""SigLIP beside CLIP: tiny random SigLIPs exported and run, one with a Gemma-style fast Unigram tokenizer and one
shipping only a T5-style ``spiece.model`` and the slow SiglipTokenizer (both trained here).

The runtime's preprocessing, tokens and embeddings are held to Hugging Face's SiglipImageProcessor,
tokenizer and SiglipModel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assetlens.engine.encoders import Encoder
from assetlens.engine.manifest import ImageFacts
from assetlens.engine.models import load_facts
from assetlens.engine.preprocess import model_pixels

pytestmark = [pytest.mark.parity]

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.onnx")

from tiny_models import CONTEXT, DIM, IMAGE  # noqa: E402

from assetlens.engine import tokens  # noqa: E402
from assetlens.engine.errors import ExportError  # noqa: E402
from assetlens.engine.library import Library  # noqa: E402
from assetlens.export import onnx_export  # noqa: E402
from assetlens.export.onnx_export import (  # noqa: E402
    FP32_MIN_COSINE,
    REDUCED_MIN_COSINE,
    export_model,
    quantize_export,
    synthetic_images,
)
from assetlens.export.quantize import INT16_MAX, int16_pair_sum  # noqa: E402

QUERIES = [
    "A Red Chair",
    "Kursi merah di ruangan — sangat nyaman, bukan?",
    "Crème brûlée à côté de l'hôtel",
    "一只黑猫坐在木桌上，红色的椅子",
    "قطة سوداء على طاولة خشبية",
    "🌅🐈 SUNSET 🐈‍⬛",
    " ".join(["a very long description of a golden watch on a wooden table"] * 20),
]


@pytest.fixture(scope="module")
def torch_siglip(tiny_siglip: Path):
    return transformers.SiglipModel.from_pretrained(tiny_siglip, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_siglip: Path):
    return transformers.AutoTokenizer.from_pretrained(tiny_siglip)


@pytest.fixture(scope="module")
def fp32_dir(tiny_siglip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(tiny_siglip, tmp_path_factory.mktemp("siglip-exports") / "fp32")


@pytest.fixture(scope="module")
def encoder(fp32_dir: Path) -> Encoder:
    return Encoder(load_facts(fp32_dir), device="cpu")


def torch_text(model, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model.get_text_features(input_ids=torch.from_numpy(ids))
    return torch.nn.functional.normalize(out, dim=-1).numpy()


def torch_images(model, processor, images: list[Image.Image]) -> np.ndarray:
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels)
    return torch.nn.functional.normalize(out, dim=-1).numpy()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


def varied_images() -> list[Image.Image]:
    """Odd sizes and aspect ratios in the modes a folder holds."""
    base = synthetic_images(8, seed=5)
    sizes = [(17, 300), (640, 480), (32, 32), (1000, 37), (33, 31), (256, 256), (5, 5), (300, 200)]
    modes = ["RGB", "RGBA", "L", "P", "CMYK", "LA", "RGB", "I;16"]
    images = []
    for image, size, mode in zip(base, sizes, modes, strict=True):
        resized = image.resize(size, Image.Resampling.BICUBIC)
        images.append(resized.convert("L").convert("I;16") if mode == "I;16" else resized.convert(mode))
    return images


@pytest.mark.unit
@pytest.mark.parametrize(("size", "resample", "name"), [(32, 2, "bilinear"), (224, 3, "bicubic"), (64, 0, "nearest")])
def test_squash_preprocessing_matches_siglip_image_processor(size: int, resample: int, name: str) -> None:
    processor = transformers.SiglipImageProcessor(
        size={"height": size, "width": size}, resample=resample, do_convert_rgb=True
    )
    facts = ImageFacts("image.onnx", "pixel_values", "image_embeds", size, size, (0.5,) * 3, (0.5,) * 3, name, "squash")
    for image in varied_images():
        want = processor(images=image, return_tensors="np")["pixel_values"][0]
        got = model_pixels(image, facts)
        assert got.shape == want.shape == (3, size, size), image.mode
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{image.mode} {image.size}")


@pytest.mark.slow
def test_manifest_and_graphs_carry_siglip_rules(fp32_dir: Path) -> None:
    manifest = json.loads((fp32_dir / "manifest.json").read_text())
    image, text = manifest["image"], manifest["text"]
    assert (image["resize"], image["crop_size"], image["resize_shortest_edge"], image["resample"]) == (
        "squash",
        IMAGE,
        IMAGE,
        "bilinear",
    )
    assert (image["mean"], image["std"]) == ([0.5] * 3, [0.5] * 3)
    assert text["input_names"] == ["input_ids"]
    assert (text["padding"], text["padding_side"], text["context_length"], text["pad_token_id"]) == (
        "max-length",
        "left",
        CONTEXT,
        0,
    )
    assert text["lowercase"] is True
    assert manifest["embedding_dim"] == DIM and manifest["parity"]["text_min_cosine"] >= FP32_MIN_COSINE
    text_graph = ort.InferenceSession(str(fp32_dir / "text.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in text_graph.get_inputs()] == ["input_ids"]


@pytest.mark.slow
def test_token_ids_equal_hf_tokenizer(encoder: Encoder, hf_tokenizer) -> None:
    ids, _ = encoder.tokenize(QUERIES)
    want = hf_tokenizer(
        [q.lower() for q in QUERIES], padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="np"
    )["input_ids"]
    assert ids.shape == (len(QUERIES), CONTEXT)
    assert ids.tolist() == want.tolist()
    alone, _ = encoder.tokenize(QUERIES[:1])  # padded to the context length, not to the batch's longest text
    assert alone.tolist() == want[:1].tolist()
    long_row = ids[-1].tolist()
    assert long_row[-1] == hf_tokenizer.eos_token_id and 0 not in long_row  # truncated, eos kept, no padding
    # Gemma's tokenizer pads on the left, so the last position (which SigLIP pools) is the eos.
    short_row, pad = ids[0].tolist(), hf_tokenizer.pad_token_id
    content = short_row[short_row.index(next(t for t in short_row if t != pad)) :]
    assert 2 < len(content) < CONTEXT and short_row == [pad] * (CONTEXT - len(content)) + content
    assert content[-1] == hf_tokenizer.eos_token_id and pad not in content
    assert hf_tokenizer(QUERIES[0])["input_ids"] != hf_tokenizer(QUERIES[0].lower())["input_ids"]  # lower-casing counts


@pytest.mark.slow
def test_text_embedding_matches_torch_only_with_max_length_padding(
    encoder: Encoder, torch_siglip, hf_tokenizer
) -> None:
    query = "a red chair"
    reference = torch_text(
        torch_siglip, hf_tokenizer([query], padding="max_length", max_length=CONTEXT, return_tensors="np")["input_ids"]
    )
    assert cosines(encoder.encode_texts([query]), reference).min() >= FP32_MIN_COSINE
    many = encoder.encode_texts(QUERIES)
    ids, _ = encoder.tokenize(QUERIES)
    assert cosines(many, torch_text(torch_siglip, ids)).min() >= FP32_MIN_COSINE
    # The same graph fed the query padded only to its own length (CLIP's rule) is another embedding.
    longest, _ = tokens.tokenize(encoder.tokenizer, [query], encoder.facts.text.pad_token_id, lowercase=True)
    assert longest.shape[1] < CONTEXT
    (unpadded,) = encoder.text_session.run(None, {"input_ids": longest})
    assert cosines(unpadded, reference).min() < 0.999


@pytest.mark.slow
def test_image_embedding_matches_torch(encoder: Encoder, torch_siglip, tiny_siglip: Path) -> None:
    processor = transformers.SiglipImageProcessor.from_pretrained(tiny_siglip)
    images = [image.convert("RGB") for image in varied_images()]
    got = encoder.encode_images(images)
    assert got.shape == (len(images), DIM)
    assert cosines(got, torch_images(torch_siglip, processor, images)).min() >= FP32_MIN_COSINE


@pytest.mark.slow
@pytest.mark.parametrize("route", ["checkpoint", "fp32 export"])
def test_int8_export_is_close_and_saturation_safe(
    tiny_siglip: Path, fp32_dir: Path, tmp_path: Path, route: str
) -> None:
    if route == "checkpoint":
        out = export_model(tiny_siglip, tmp_path / "int8", precision="int8")
    else:
        out = quantize_export(fp32_dir, tmp_path / "int8")
    facts = load_facts(out)
    assert facts.precision == "int8"
    assert facts.parity.reference == ("pytorch fp32" if route == "checkpoint" else "onnx fp32")
    assert min(facts.parity.image_min_cosine, facts.parity.text_min_cosine) >= REDUCED_MIN_COSINE
    assert facts.parity.int8_saturation_safe
    assert all(int16_pair_sum(out / name) <= INT16_MAX for name in ("image.onnx", "text.onnx"))
    assert set(facts.parity.int8_recipes) == {"image", "text"}
    assert (facts.text.padding, facts.text.input_names, facts.image.resize) == ("max-length", ("input_ids",), "squash")
    int8, fp32 = Encoder(facts, device="cpu"), Encoder(load_facts(fp32_dir), device="cpu")
    assert cosines(int8.encode_texts(QUERIES), fp32.encode_texts(QUERIES)).min() >= REDUCED_MIN_COSINE
    images = [image.convert("RGB") for image in varied_images()]
    assert cosines(int8.encode_images(images), fp32.encode_images(images)).min() >= REDUCED_MIN_COSINE


@pytest.mark.slow
@pytest.mark.store
def test_library_ranking_equals_torch_brute_force(
    fp32_dir: Path, torch_siglip, tiny_siglip: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    images = synthetic_images(8, seed=11)
    for index, image in enumerate(images):
        image.save(folder / f"picture-{index}.png")
    processor = transformers.SiglipImageProcessor.from_pretrained(tiny_siglip)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_siglip)
    image_vectors = torch_images(torch_siglip, processor, images)
    with Library(tmp_path / "lib.db", model=fp32_dir, device="cpu") as lib:
        report = lib.index(folder)
        assert (report.encoded, report.skipped) == (len(images), 0)
        for query in ("a red chair", "Jam tangan emas", "一只黑猫"):
            ids = hf_tokenizer([query.lower()], padding="max_length", max_length=CONTEXT, return_tensors="np")
            scores = image_vectors @ torch_text(torch_siglip, ids["input_ids"])[0]
            want = [f"picture-{i}.png" for i in np.argsort(-scores, kind="stable")]
            hits = lib.search(query, k=len(images), show_duplicates=True)
            assert [hit.filename for hit in hits] == want, query
            np.testing.assert_allclose([hit.score for hit in hits], np.sort(scores)[::-1], atol=1e-4)


def assert_export_refused(checkpoint: Path, out: Path, reason: str) -> None:
    """The export of ``checkpoint`` fails with one sentence giving ``reason`` and writes nothing."""
    with pytest.raises(ExportError) as caught:
        export_model(checkpoint, out)
    message = str(caught.value)
    assert reason in message and "\n" not in message and message.count(". ") == 0
    assert not out.exists()


@pytest.mark.unit
def test_naflex_siglip2_is_refused_in_one_sentence(tmp_path: Path) -> None:
    checkpoint = tmp_path / "naflex"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "siglip2"}))
    assert_export_refused(checkpoint, tmp_path / "out", "NaFlex")


def random_texts(count: int, seed: int = 0) -> list[str]:
    """Strings mixing what SiglipTokenizer's canonicalisation and sentencepiece's normalisation act on: ASCII
    punctuation, every kind of whitespace (Python's and Unicode's), "▁", case, accents, full-width forms,
    scripts the vocabulary lacks and emoji."""
    rng = np.random.default_rng(seed)
    alphabet = list("aBc xYz,.!?'\"-_()[]{}#%/\t\n\r\x1c\x85\xa0\u2003\u3000▁éÜ中文ｆＡ🐈\u200d⬛")
    return ["".join(rng.choice(alphabet, size=int(rng.integers(0, 30)))) for _ in range(count)]


@pytest.mark.unit
def test_canonicalizer_is_siglip_tokenizers_canonicalize_text() -> None:
    import re
    import string
    import sys

    python_whitespace = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert python_whitespace == tokens.PY_WHITESPACE
    table = str.maketrans("", "", string.punctuation)
    texts = [*QUERIES, python_whitespace.join(["a", "b", "c"]), *random_texts(500, seed=1)]
    want = [re.sub(r"\s+", " ", text.translate(table)).strip() for text in texts]
    assert [tokens.canonicalizer().normalize_str(text) for text in texts] == want


@pytest.mark.unit
def test_converted_sentencepiece_tokenizer_equals_slow_siglip_tokenizer(tiny_siglip_v1: Path) -> None:
    from assetlens.export.siglip_tokenizer import fast_siglip_tokenizer

    slow = transformers.SiglipTokenizer.from_pretrained(tiny_siglip_v1)
    fast = fast_siglip_tokenizer(slow)
    texts = [*QUERIES, *onnx_export.TOKEN_CHECK_TEXTS, *random_texts(2000)]
    got = [fast(t, truncation=True, max_length=CONTEXT)["input_ids"] for t in texts]
    want = [slow(t, truncation=True, max_length=CONTEXT)["input_ids"] for t in texts]
    assert got == want
    # What the conversion has to reproduce: punctuation and whitespace runs vanish, case folds, eos ends.
    assert (
        want[QUERIES.index("A Red Chair")] == slow("a red, chair!!")["input_ids"] == slow("  a  red chair")["input_ids"]
    )
    assert want[-1][-1] == slow.eos_token_id and len(want[texts.index(QUERIES[-1])]) == CONTEXT


@pytest.fixture(scope="module")
def v1_dir(tiny_siglip_v1: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(tiny_siglip_v1, tmp_path_factory.mktemp("siglip-v1-exports") / "fp32")


@pytest.mark.slow
def test_checkpoint_with_only_a_slow_tokenizer_exports_and_matches_torch(tiny_siglip_v1: Path, v1_dir: Path) -> None:
    slow = transformers.SiglipTokenizer.from_pretrained(tiny_siglip_v1)
    encoder = Encoder(load_facts(v1_dir), device="cpu")
    text = encoder.facts.text
    assert (text.padding, text.pad_token_id, text.padding_side, text.lowercase) == ("max-length", 1, "right", False)
    ids, _ = encoder.tokenize(QUERIES)
    want = slow(QUERIES, padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="np")["input_ids"]
    assert ids.tolist() == want.tolist()
    model = transformers.SiglipModel.from_pretrained(tiny_siglip_v1, attn_implementation="eager").eval()
    assert cosines(encoder.encode_texts(QUERIES), torch_text(model, want)).min() >= FP32_MIN_COSINE
    same = encoder.encode_texts(["A red chair!", "a red chair"])
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)


@pytest.mark.slow
def test_export_refuses_a_tokenizer_json_that_tokenizes_otherwise(
    tiny_siglip_v1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenizers import normalizers

    from assetlens.export.siglip_tokenizer import SiglipConverter

    # A conversion that forgets SiglipTokenizer's canonicalisation (sentencepiece's own rules only).
    monkeypatch.setattr(SiglipConverter, "normalizer", lambda self, proto: normalizers.Lowercase())
    assert_export_refused(tiny_siglip_v1, tmp_path / "out", "gives other tokens than the checkpoint's tokenizer")


@pytest.mark.unit
@pytest.mark.parametrize("name", ["siglip2-base-patch32-256", "google/siglip-base-patch16-224"])
def test_registry_siglip_entries_go_to_loading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    loaded: list[tuple[str, bool]] = []

    def load(source: str, is_local: bool) -> None:
        loaded.append((source, is_local))
        raise ExportError("stop before loading")

    monkeypatch.setattr(onnx_export, "_load", load)
    with pytest.raises(ExportError, match="stop before loading"):
        export_model(name, tmp_path / "out")
    hf_id = name if "/" in name else f"google/{name}"
    assert loaded == [(hf_id, False)]
