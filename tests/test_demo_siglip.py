"""The shipped bilingual SigLIP demo (``engine/data/demo-siglip``), measured through the runtime (no torch).

``python -m assetlens.export.train_demo --model demo-siglip`` trains it on the synthetic catalogue with
captions in English and in Indonesian (``assetlens.catalogue.indonesian``) and its own Unigram
tokenizer. Its quality is measured on the benchmark of tests/test_demo_model.py
(``assetlens.catalogue.HeldOut``: 102 held-out items of 22 colour/object pairs never seen in training, a
gallery of 202 pictures), with the queries in each language: "a green mug on a white background" and
"mug hijau di atas latar putih". Both precisions must reach text->image recall@5 >= 0.9 in both
languages, for the full captions and for the colour-and-object ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_main
from PIL import Image
from tokenizers import Tokenizer

from assetlens.catalogue import BACKGROUNDS, COLORS, OBJECTS, HeldOut, Item, catalogue_items, indonesian
from assetlens.demo import FIXED_QUERIES, demo_queries
from assetlens.engine.encoders import Encoder
from assetlens.engine.models import load_facts, resolve_model_dir
from assetlens.engine.registry import DEMO_SIGLIP_MODEL, find_model
from assetlens.export.onnx_export import FP32_MIN_COSINE, REDUCED_MIN_COSINE

pytestmark = [pytest.mark.unit]

SPEC = find_model(DEMO_SIGLIP_MODEL)
MIN_RECALL_AT_5 = 0.9
TEXTS = [
    "jam tangan emas di atas latar putih",
    "Kacamata Hitam MERAH MUDA",
    "a gold watch on a white background",
    "Green Sunglasses, please!",
    "sepatu " * 50,
    "",
]


@pytest.fixture(scope="module")
def held() -> HeldOut:
    return HeldOut.build()


@pytest.fixture(scope="module")
def encoders() -> dict[str, Encoder]:
    return {p: Encoder.load(DEMO_SIGLIP_MODEL, precision=p, device="cpu") for p in ("fp32", "int8")}


@pytest.fixture(scope="module")
def image_vectors(encoders: dict[str, Encoder], held: HeldOut) -> dict[str, np.ndarray]:
    return {p: enc.encode_images(held.images) for p, enc in encoders.items()}


def reference_tokenizer(enc: Encoder) -> Tokenizer:
    """The shipped tokenizer.json through ``tokenizers`` alone, padded to the context length with <pad>."""
    text = enc.facts.text
    tokenizer = Tokenizer.from_file(str(enc.facts.path(text.tokenizer_file)))
    tokenizer.enable_truncation(text.context_length)
    tokenizer.enable_padding(length=text.context_length, pad_id=text.pad_token_id, pad_token="<pad>")
    return tokenizer


def test_indonesian_captions_put_the_colour_after_the_noun(held: HeldOut) -> None:
    assert indonesian.caption(Item("watch", "gold", "white background")) == "jam tangan emas di atas latar putih"
    assert indonesian.short_caption(Item("sunglasses", "pink", "wooden table")) == "kacamata hitam merah muda"
    assert indonesian.caption(Item("mug", "red", "gray background"), "foto {object} {color}") == "foto mug merah"
    for table, names in (
        (indonesian.OBJECTS, OBJECTS),
        (indonesian.COLORS, COLORS),
        (indonesian.BACKGROUNDS, BACKGROUNDS),
    ):
        assert list(table) == list(names) and len(set(table.values())) == len(names)
    assert set(indonesian.SYNONYMS) == set(OBJECTS) and set(indonesian.BACKGROUND_SYNONYMS) == set(BACKGROUNDS)
    # the benchmark's queries in either language are about the same items, in the same order
    first = held.queries[0]
    assert held.texts_in("en") == held.texts and held.texts[0] == first.caption()
    assert held.texts_in("id")[0] == indonesian.caption(first)
    assert held.short_texts_in("id")[0] == indonesian.short_caption(
        next(q for q in held.queries if q.pair == held.pairs[0])
    )


def test_demo_queries_add_indonesian_for_the_bilingual_model() -> None:
    items = catalogue_items(121)
    english = demo_queries(items)
    assert english[:2] == list(FIXED_QUERIES["en"]) and len(english) == 5
    both = demo_queries(items, languages=("en", "id"))
    assert both[:4] == [*FIXED_QUERIES["en"], *FIXED_QUERIES["id"]] and "jam tangan emas" in both
    assert both[4:7] == english[2:]
    kinds = {item.object: item for item in reversed(items)}  # the first item of each kind, as demo_queries picks
    fourth = list(dict.fromkeys(item.object for item in items))[3]
    assert both[7] == indonesian.caption(kinds[fourth]) and len(both) == 8


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_manifest_is_siglip_shaped_and_matches_the_registry(precision: str) -> None:
    assert SPEC is not None and SPEC.family == "siglip" and SPEC.shipped and SPEC.hf_id is None
    facts = load_facts(resolve_model_dir(DEMO_SIGLIP_MODEL, precision))
    assert facts.name == DEMO_SIGLIP_MODEL and facts.precision == precision
    assert facts.embedding_dim == SPEC.dim == 96
    image = facts.image
    assert (image.resize, image.crop_size, image.mean, image.std) == ("squash", 64, (0.5,) * 3, (0.5,) * 3)
    assert (image.resize, image.crop_size, image.resample) == (SPEC.image.resize, SPEC.image.size, SPEC.image.resample)
    text = facts.text
    assert (text.padding, text.context_length, text.pad_token_id, text.input_names) == (
        "max-length",
        32,
        0,
        ("input_ids",),
    )
    assert (text.padding, text.context_length, text.pad_token_id) == (
        SPEC.text.padding,
        SPEC.text.context_length,
        SPEC.text.pad_token_id,
    )
    parity = facts.parity
    assert parity is not None and parity.int8_saturation_safe
    floor = FP32_MIN_COSINE if precision == "fp32" else REDUCED_MIN_COSINE
    reference = "pytorch fp32" if precision == "fp32" else "onnx fp32"  # int8 is quantised from the fp32 graphs
    assert parity.reference == reference and min(parity.image_min_cosine, parity.text_min_cosine) >= floor
    assert sum(f.stat().st_size for f in facts.directory.iterdir()) < 5_000_000


def test_runtime_tokens_are_the_tokenizers_padded_to_max_length(encoders: dict[str, Encoder]) -> None:
    enc = encoders["fp32"]
    reference = reference_tokenizer(enc)
    ids, mask = enc.tokenize(TEXTS)
    assert np.array_equal(ids, np.array([e.ids for e in reference.encode_batch(TEXTS)]))
    assert ids.shape == (len(TEXTS), 32) and ids.dtype == np.int64
    pieces = [reference.id_to_token(int(i)) for i in ids[0, : mask[0].sum()]]
    assert pieces == ["▁jam", "▁tangan", "▁emas", "▁di", "▁atas", "▁latar", "▁putih", "</s>"]
    assert ids[0, mask[0].sum() :].tolist() == [0] * (32 - 8)  # <pad> to the context length
    # lower-cased by the tokenizer itself, as SigLIP's reference lower-cases
    assert np.array_equal(ids[1], enc.tokenize(["kacamata hitam merah muda"])[0][0])
    assert mask[4].sum() == 32 and ids[4, -1] == reference.token_to_id("</s>")  # truncated, still ends in </s>
    assert ids[5, 0] == reference.token_to_id("</s>") and mask[5].sum() == 1


def test_training_tokenises_as_the_runtime_does(encoders: dict[str, Encoder]) -> None:
    from assetlens.export.train_demo import Tokens

    enc = encoders["fp32"]
    assert SPEC is not None
    tokens = Tokens(enc.facts.path(enc.facts.text.tokenizer_file), SPEC.text)
    ids, mask = tokens(TEXTS)
    runtime_ids, runtime_mask = enc.tokenize(TEXTS)
    assert np.array_equal(ids, runtime_ids) and np.array_equal(mask, runtime_mask)
    tokens(TEXTS[:1], remember=True)
    assert tokens.seen == set(ids[0].tolist())  # the padding too: SigLIP's text tower reads it


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "id"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_held_out_text_to_image_recall(
    encoders: dict[str, Encoder], image_vectors: dict[str, np.ndarray], held: HeldOut, precision: str, language: str
) -> None:
    enc, image = encoders[precision], image_vectors[precision]
    full = held.recall(image, enc.encode_texts(held.texts_in(language)))
    pair = held.pair_recall(image, enc.encode_texts(held.short_texts_in(language)))
    print(
        f"\ndemo-siglip {precision} [{language}]: held-out caption recall@1 {full[1]:.3f} recall@5 {full[5]:.3f}; "
        f"colour+object recall@1 {pair[1]:.3f} recall@5 {pair[5]:.3f}"
    )
    assert full[5] >= MIN_RECALL_AT_5, full
    assert pair[5] >= MIN_RECALL_AT_5, pair


@pytest.mark.slow
def test_int8_agrees_with_fp32(encoders: dict[str, Encoder], image_vectors: dict[str, np.ndarray]) -> None:
    assert np.median((image_vectors["fp32"] * image_vectors["int8"]).sum(1)) > 0.95
    fp32, int8 = (encoders[p].encode_texts(TEXTS) for p in ("fp32", "int8"))
    assert np.median((fp32 * int8).sum(1)) > 0.95


@pytest.mark.store
@pytest.mark.slow
def test_demo_command_with_demo_siglip_answers_indonesian(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``assetlens demo --model demo-siglip`` as a user runs it (200 pictures): the Indonesian queries find
    the product, and the sheet has a band for each of them."""
    code, out, err = run_main(capsys, "demo", "--out", str(tmp_path / "demo"), "--model", "demo-siglip")
    assert code == 0, err
    assert "model demo-siglip (fp32, 96-d)" in out and "200 indexed" in out
    lines = out.splitlines()

    def hits(query: str) -> list[str]:
        start = lines.index(f'"{query}"') + 1
        return [line.split()[2] for line in lines[start : start + 5]]

    gold_watch = hits("jam tangan emas")
    assert gold_watch[0].startswith("images/watch/gold-watch-"), gold_watch
    assert all(path.startswith("images/watch/") for path in gold_watch[:3]), gold_watch
    green_sunglasses = hits("kacamata hitam hijau")
    assert green_sunglasses[0].startswith("images/sunglasses/green-sunglasses-"), green_sunglasses
    # the catalogue's only green pair first; each hit after it shares its kind or its colour
    assert all(p.startswith("images/sunglasses/") or "/green-" in p for p in green_sunglasses), green_sunglasses
    with Image.open(tmp_path / "demo" / "results.png") as sheet:
        assert sheet.height > 9 * 160  # 8 queries (3 in Indonesian) and "more like"
    assert "--collection demo_siglip" in out
