"""The tokenizer files derived from OpenAI's BPE table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from tokenizers import Tokenizer  # noqa: E402

from assetlens.export.clip_tokenizer import CONTEXT_LENGTH, VOCAB_SIZE, write_clip_tokenizer  # noqa: E402

pytestmark = [pytest.mark.parity]

GOLDEN = "a golden watch on a red table"
GOLDEN_IDS = [49406, 320, 3878, 1239, 525, 320, 736, 2175, 49407]
LONG = " ".join(f"word{i} and more" for i in range(100))  # 300 words
STRINGS = [
    GOLDEN,
    "A Golden Watch On A Red Table",
    "A GOLDEN WATCH ON A RED TABLE!!!",
    "a photo of a cat.",
    "Hello, world! How's it going?",
    "it's, they're; we'll: don't won't I'd you've I'm",
    "123 4567 3.14159 2024-01-31 1,000,000",
    "  leading and   trailing   whitespace  ",
    "tabs\tand\nnewlines\r\nmixed",
    "",
    "   ",
    "café au lait",
    "naïve résumé façade",
    "ümlaut Straße Øresund",
    "Ελληνικά and Москва",
    "한국어 텍스트",
    "مرحبا بالعالم",
    "🐶 dog 🐱 cat 🚗",
    "thumbs up 👍🏽",
    "e-mail: someone@example.com, url: https://example.com/a?b=c",
    "C++ & C# | $100 (USD) [sic] {x} <tag> #hashtag @mention",
    "...?!;:---___***",
    "snake_case camelCase kebab-case",
    "x" * 200,
    "supercalifragilisticexpialidocious",
    "a\u00a0non-breaking space",
    "hello<|endoftext|>world",
    "<|startoftext|>",
    LONG,
    "a red car, a blue car, and a green car parked in a row at sunset",
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer"))


@pytest.fixture(scope="module")
def fast(tokenizer_dir: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    tokenizer.enable_truncation(CONTEXT_LENGTH)
    return tokenizer


@pytest.fixture(scope="module")
def slow(tokenizer_dir: Path):
    return transformers.CLIPTokenizer(
        vocab_file=str(tokenizer_dir / "vocab.json"), merges_file=str(tokenizer_dir / "merges.txt")
    )


def test_files_written(tokenizer_dir: Path) -> None:
    names = {p.name for p in tokenizer_dir.iterdir()}
    assert {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= names
    vocab = json.loads((tokenizer_dir / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == VOCAB_SIZE
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    merges = (tokenizer_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0].startswith("#version") and len(merges) == 1 + 48894


def test_golden_ids(fast: Tokenizer, slow) -> None:
    assert fast.encode(GOLDEN).ids == GOLDEN_IDS
    assert slow(GOLDEN)["input_ids"] == GOLDEN_IDS


def test_transformers_loads_the_folder(tokenizer_dir: Path) -> None:
    for cls in (transformers.CLIPTokenizer, transformers.CLIPTokenizerFast):
        tokenizer = cls.from_pretrained(tokenizer_dir)
        assert tokenizer(GOLDEN)["input_ids"] == GOLDEN_IDS
        assert tokenizer.pad_token_id == 49407 and tokenizer.model_max_length == CONTEXT_LENGTH


@pytest.mark.parametrize("text", STRINGS, ids=range(len(STRINGS)))
def test_fast_matches_slow(fast: Tokenizer, slow, text: str) -> None:
    expected = slow(text, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]
    assert fast.encode(text).ids == expected


def test_truncation_keeps_eos_last(fast: Tokenizer) -> None:
    ids = fast.encode(LONG).ids
    assert len(ids) == CONTEXT_LENGTH
    assert ids[0] == 49406 and ids[-1] == 49407 and 49407 not in ids[1:-1]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        # Ids from OpenAI's own SimpleTokenizer (open_clip). transformers' slow
        # tokenizer differs here when ftfy is not installed (it splits CJK
        # characters apart and drops zero-width joiners); the fast one, which
        # AssetLens ships, agrees with OpenAI.
        ("日本語のテキスト", [49406, 39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486, 49407]),
    ],
)
def test_matches_openai_where_slow_differs(fast: Tokenizer, text: str, ids: list[int]) -> None:
    assert fast.encode(text).ids == ids
