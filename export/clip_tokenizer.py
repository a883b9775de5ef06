"""Hugging Face CLIP tokenizer files derived offline from OpenAI's BPE table.

CLIP's tokenizer is fully determined by ``bpe_simple_vocab_16e6.txt.gz``
(shipped in ``export/data``, taken from the ``open_clip_torch`` wheel), so a
model directory without tokenizer files can still be given one without
network access. The vocabulary is built exactly as OpenAI's
``SimpleTokenizer`` does: the 256 byte-level symbols, the same with ``</w>``,
one entry per merge, then ``<|startoftext|>`` (49406) and ``<|endoftext|>``
(49407).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

BPE_FILE = Path(__file__).resolve().parent / "data" / "bpe_simple_vocab_16e6.txt.gz"
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77
# OpenAI keeps merges[1 : 49152 - 256 - 2 + 1]: line 0 is a header, and the
# vocabulary is capped at 49152 BPE entries (48894 merges + 2 * 256 symbols)
# before the two special tokens are appended.
_N_MERGES = 49152 - 256 - 2


def _read_merges(bpe_file: Path) -> list[str]:
    lines = gzip.decompress(bpe_file.read_bytes()).decode("utf-8").split("\n")
    return lines[1 : _N_MERGES + 1]


def _bytes_to_unicode() -> dict[int, str]:
    # Same byte -> printable character table as OpenAI CLIP and GPT-2.
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    table: dict[int, str] = bytes_to_unicode()
    return table


def build_vocab(merges: list[str]) -> dict[str, int]:
    """Token -> id, in OpenAI's order."""
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def write_vocab_and_merges(out_dir: Path, bpe_file: Path = BPE_FILE) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` (slow-tokenizer files) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    merges = _read_merges(bpe_file)
    vocab = build_vocab(merges)
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"{bpe_file} gives {len(vocab)} tokens, expected {VOCAB_SIZE}.")
    vocab_path = out_dir / "vocab.json"
    merges_path = out_dir / "merges.txt"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # CLIPTokenizer skips the first line of merges.txt, as OpenAI's reader does.
    merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def write_clip_tokenizer(out_dir: Path, bpe_file: Path = BPE_FILE) -> Path:
    """Write a complete Hugging Face CLIP tokenizer to ``out_dir`` and return it.

    Produces ``vocab.json``, ``merges.txt``, ``tokenizer.json``,
    ``tokenizer_config.json`` and ``special_tokens_map.json``, so both
    ``CLIPTokenizer`` and ``CLIPTokenizerFast`` load from the directory.
    """
    from transformers import CLIPTokenizerFast

    out_dir = Path(out_dir)
    vocab_path, merges_path = write_vocab_and_merges(out_dir, bpe_file)
    # Built from vocab/merges, the fast tokenizer converts the slow one
    # (CLIPConverter), which is what produces tokenizer.json.
    tokenizer = CLIPTokenizerFast(  # type: ignore[no-untyped-call, unused-ignore]
        vocab_file=str(vocab_path),
        merges_file=str(merges_path),
        model_max_length=CONTEXT_LENGTH,
    )
    tokenizer.save_pretrained(str(out_dir), legacy_format=False)
    return out_dir
