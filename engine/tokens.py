"""Text tokens as an exported text tower takes them: ids and an attention mask per batch.

The runtime encoder (``Encoder.tokenize``) and the demo model's training
(export/train_demo.py) both tokenise here, so the model is trained on exactly
the tokens it is queried with. How a model pads and whether its queries are
lower-cased come from its manifest (``TextFacts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


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
