"""CLIP text tokens as an exported text tower takes them: ids and an attention mask per batch.

The runtime encoder (``ClipEncoder.tokenize``) and the demo model's training
(export/train_demo.py) both tokenise here, so the model is trained on exactly
the tokens it is queried with.
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


def tokenize(tokenizer: Tokenizer, texts: Sequence[str], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention mask), int64 and padded with ``pad_id`` only to the longest text in the batch."""
    encodings = tokenizer.encode_batch(list(texts))
    length = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), length), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc.ids)] = enc.ids
        mask[row, : len(enc.ids)] = 1
    return ids, mask
