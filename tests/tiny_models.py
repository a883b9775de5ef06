"""Tiny random CLIP and SigLIP checkpoints, built offline and saved like Hugging Face Hub checkpoints.

Shared by the export, SigLIP and pull tests (tests/conftest.py's ``tiny_clip`` and ``tiny_siglip``).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from assetlens.export.clip_tokenizer import write_clip_tokenizer

CONTEXT, DIM, IMAGE = 64, 32, 32
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]  # ids 0-3, as in Gemma's vocabulary order for pad/eos/bos
CORPUS = [
    "a red chair in a bright room",
    "a golden watch on a wooden table",
    "two people hiking up a snowy mountain at sunrise",
    "a bowl of ramen with chopsticks",
    "kursi merah di ruangan yang terang, sangat nyaman",
    "jam tangan emas di atas meja kayu",
    "café crème brûlée à côté de la fenêtre",
    "一只黑猫坐在木桌上",
    "红色的椅子",
    "قطة سوداء على طاولة خشبية",
    "كرسي أحمر في غرفة مشرقة",
    "🌅 sunset over the ocean 🐈",
]


def build_tiny_clip(out: Path) -> Path:
    """A randomly initialised CLIP small enough to export in seconds, saved like a hub checkpoint."""
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 49408,
            "max_position_embeddings": 77,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        # projection_dim is only set at the top level, as in some hub configs.
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    transformers.CLIPModel(config).eval().save_pretrained(out)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        out
    )
    write_clip_tokenizer(out)
    return out


def build_tiny_siglip(out: Path) -> Path:
    """A randomly initialised SiglipModel, a SigLIP 2 style image processor (squash, bilinear) and a Gemma-style
    fast tokenizer (Unigram, no bos, eos appended, <pad> = 0) trained on ``CORPUS``, saved like a hub checkpoint."""
    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(
        CORPUS * 4, trainers.UnigramTrainer(vocab_size=300, special_tokens=SPECIALS, unk_token="<unk>")
    )
    tokenizer = transformers.GemmaTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        add_bos_token=False,
        add_eos_token=True,
        model_max_length=CONTEXT,
    )
    tokenizer.save_pretrained(out)
    _save_siglip(out, backend.get_vocab_size(), pad=0, eos=1, bos=2, resample=2)
    return out


def train_sentencepiece(path: Path, vocab_size: int = 150) -> Path:
    """A T5-style sentencepiece Unigram model (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, nmt_nfkc normalisation, no
    byte fallback), the kind the first SigLIP releases ship as ``spiece.model``, trained on ``CORPUS``."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=0.98,  # leaves the rarest characters out, so unknown-character runs are tested too
        hard_vocab_limit=False,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


def build_tiny_siglip_v1(out: Path) -> Path:
    """A SiglipModel saved as the first SigLIP releases are: ``spiece.model`` and the slow ``SiglipTokenizer``
    only (pad and eos both ``</s>``, lower-casing), a bicubic squash image processor."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.SiglipTokenizer(str(train_sentencepiece(out / "spiece.model")), model_max_length=CONTEXT)
    tokenizer.save_pretrained(out)
    _save_siglip(out, len(tokenizer), pad=1, eos=1, bos=None, resample=3)
    return out


def _save_siglip(out: Path, vocab_size: int, pad: int, eos: int, bos: int | None, resample: int) -> None:
    torch.manual_seed(0)
    layers = {"intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = transformers.SiglipConfig(
        text_config={
            "hidden_size": DIM,
            "projection_size": DIM,
            "vocab_size": vocab_size,
            "max_position_embeddings": CONTEXT,
            "pad_token_id": pad,
            "eos_token_id": eos,
            "bos_token_id": bos,
            **layers,
        },
        vision_config={"hidden_size": DIM, "image_size": IMAGE, "patch_size": 8, **layers},
    )
    transformers.SiglipModel(config).eval().save_pretrained(out)
    transformers.SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE}, resample=resample).save_pretrained(out)
