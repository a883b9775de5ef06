"""Text tokens as an exported text tower takes them: ids and an attention mask per batch.

The runtime encoder (``Encoder.tokenize``) and the demo model's training
(export/train_demo.py) both tokenise here, so the model is trained on exactly
the tokens it is queried with. How a model pads and whether its queries are
lower-cased come from its manifest (``TextFacts``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers

# What Python's str.isspace() and re's \s match, code point by code point: the Rust regex \s that a
# tokenizer.json runs is narrower (it leaves \x1c-\x1f alone).
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _char_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


def canonicalizer() -> normalizers.Normalizer:
    """SigLIP's text canonicalisation as transformers' SiglipTokenizer does it (after big_vision): ASCII
    punctuation removed, every whitespace run made one space, the ends stripped. As tokenizers normalizers,
    so that a ``tokenizer.json`` carries it and the runtime needs no rule of its own."""
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(_char_class(string.punctuation)), ""),
            normalizers.Replace(Regex(_char_class(PY_WHITESPACE) + "+"), " "),
            normalizers.Strip(),
        ]
    )


def canonicalize_file(path: Path) -> None:
    """Put ``canonicalizer`` in front of the normalizer of the ``tokenizer.json`` at ``path``. Applying it
    again changes nothing, so a file that already canonicalises stays as it tokenises."""
    tokenizer = Tokenizer.from_file(str(path))
    own = tokenizer.normalizer
    tokenizer.normalizer = normalizers.Sequence([canonicalizer(), own]) if own is not None else canonicalizer()
    tokenizer.save(str(path))


def load_tokenizer(path: Path, context_length: int) -> Tokenizer:
    """A ``tokenizer.json`` that truncates at ``context_length`` tokens and never pads (``tokenize`` does)."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(context_length)
    tokenizer.no_padding()
    return tokenizer


def tokenize(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    pad_id: int,
    *,
    length: int | None = None,
    side: str = "right",
    lowercase: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention mask), int64, padded with ``pad_id`` on ``side`` to exactly ``length`` tokens, or
    (``None``) only to the longest text in the batch; ``lowercase`` lower-cases the texts first."""
    encodings = tokenizer.encode_batch([text.lower() if lowercase else text for text in texts])
    width = length if length is not None else max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        cols = slice(width - len(enc.ids), width) if side == "left" else slice(0, len(enc.ids))
        ids[row, cols] = enc.ids
        mask[row, cols] = 1
    return ids, mask
