"""The models the benchmarks run: CLIP checkpoints with random weights, exported once and cached.

Real ViT-B/32 weights cannot be downloaded here, and speed does not depend
on the weights' values: a ``CLIPModel`` built from openai/clip-vit-base-patch32's
configuration (written out below) with seeded random weights does exactly
the real model's compute. It is saved as a Hugging Face checkpoint (with an
image processor and CLIP's tokenizer) and exported through the project's
own exporter, so the benchmarks time what users run. Everything lands under
``<cache>/bench/<model>-<config hash>/`` and is reused by later runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assetlens.engine.models import MANIFEST_FILE, cache_root, load_facts
from assetlens.engine.preprocess import model_batch

SEED = 0
# Bumped when the exporter's output changes, so cached exports are redone.
EXPORT_REVISION = 5

#: openai/clip-vit-base-patch32, written out by hand.
VIT_B_32: dict[str, Any] = {
    "text_config": {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
    },
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_channels": 3,
        "image_size": 224,
        "patch_size": 32,
        "hidden_act": "quick_gelu",
    },
    "projection_dim": 512,
    "logit_scale_init_value": 2.6592,
}

#: A tiny CLIP for the smoke test: the same code paths in seconds.
TOY: dict[str, Any] = {
    "text_config": {
        "vocab_size": 49408,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
    },
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_channels": 3,
        "image_size": 64,
        "patch_size": 16,
        "hidden_act": "quick_gelu",
    },
    "projection_dim": 512,  # the search benchmark's vectors are 512-d
    "logit_scale_init_value": 2.6592,
}


def _siglip(vocab_size: int, image_size: int, patch_size: int, width: int = 768, layers: int = 12) -> dict[str, Any]:
    """A SigLIP configuration: text padded to 64 tokens, ``gelu_pytorch_tanh``, attention-pooled image tower."""
    tower = {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, width // 64),
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    }
    text = {**tower, "vocab_size": vocab_size, "max_position_embeddings": 64, "projection_size": width}
    text.update(pad_token_id=0, eos_token_id=1, bos_token_id=1)  # the Unigram tokenizer's ids (UNIGRAM_SPECIALS)
    return {
        "text_config": text,
        "vision_config": {**tower, "num_channels": 3, "image_size": image_size, "patch_size": patch_size},
    }


#: google/siglip-base-patch16-224 and google/siglip2-base-patch32-256 (a fixed-resolution SigLIP 2, which loads as
#: a SigLIP model), written out by hand; the vocabularies are theirs (SigLIP's 32k SentencePiece, SigLIP 2's
#: 256k Gemma tokenizer), so the token tables weigh what theirs do.
SIGLIP_B16_224 = _siglip(32_000, 224, 16)
SIGLIP2_B32_256 = _siglip(256_000, 256, 32)
TOY_SIGLIP = _siglip(4096, 64, 16, width=32, layers=2)

CONFIGS = {
    "vit-b-32": VIT_B_32,
    "toy": TOY,
    "siglip-b16-224": SIGLIP_B16_224,
    "siglip2-b32-256": SIGLIP2_B32_256,
    "toy-siglip": TOY_SIGLIP,
}
#: The model families whose shapes the ``families`` section measures: name -> key of ``CONFIGS``.
FAMILIES = {
    "clip-b32-224": "vit-b-32",
    "siglip-b16-224": "siglip-b16-224",
    "siglip2-b32-256": "siglip2-b32-256",
    "toy-siglip": "toy-siglip",
}


def family_of(config: dict[str, Any]) -> str:
    """``clip`` or ``siglip``: SigLIP configurations have no projection (both towers embed at their width)."""
    return "clip" if "projection_dim" in config else "siglip"


def image_gflops(config: dict[str, Any]) -> float:
    """Forward GFLOP of the image tower per image (2 x multiply-adds of every matrix product)."""
    v = config["vision_config"]
    d, inner = v["hidden_size"], v["intermediate_size"]
    patches = (v["image_size"] // v["patch_size"]) ** 2
    tokens = patches + 1
    layer = tokens * (4 * d * d + 2 * d * inner) + 2 * tokens * tokens * d
    macs = v["num_hidden_layers"] * layer + patches * v["num_channels"] * v["patch_size"] ** 2 * d
    return 2 * (macs + d * config.get("projection_dim", d)) / 1e9


def text_gflops(config: dict[str, Any], tokens: int) -> float:
    """Forward GFLOP of the text tower for one text of ``tokens`` tokens."""
    t = config["text_config"]
    d, inner = t["hidden_size"], t["intermediate_size"]
    layer = tokens * (4 * d * d + 2 * d * inner) + 2 * tokens * tokens * d
    return 2 * (t["num_hidden_layers"] * layer + d * config.get("projection_dim", d)) / 1e9


@dataclass(frozen=True)
class BenchModel:
    """One benchmark model: its HF checkpoint and its exported precisions."""

    name: str
    config: dict[str, Any]
    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "hf"

    def export_dir(self, precision: str) -> Path:
        return self.root / f"{precision}.r{EXPORT_REVISION}"

    @property
    def static_int8_path(self) -> Path:
        return self.root / f"int8-static.r{EXPORT_REVISION}" / "image.onnx"

    @property
    def image_gflops(self) -> float:
        return image_gflops(self.config)

    @property
    def family(self) -> str:
        return family_of(self.config)

    def torch_model(self, threads: int) -> Any:
        """The checkpoint in PyTorch eager (transformers ``CLIPModel`` or ``SiglipModel``) on ``threads`` threads."""
        import torch
        from transformers import CLIPModel, SiglipModel

        torch.set_num_threads(threads)
        cls = CLIPModel if self.family == "clip" else SiglipModel
        return cls.from_pretrained(build_checkpoint(self)).eval()


def bench_model(name: str, cache: Path | None = None) -> BenchModel:
    """Where model ``name`` (a key of ``CONFIGS``) lives in the cache; nothing is built yet."""
    config = CONFIGS[name]
    digest = hashlib.sha256(json.dumps([config, SEED], sort_keys=True).encode()).hexdigest()[:10]
    return BenchModel(name, config, (cache or cache_root() / "bench") / f"{name}-{digest}")


def build_checkpoint(model: BenchModel) -> Path:
    """Save the seeded random CLIP or SigLIP with its image processor and tokenizer (once). SigLIP gets the
    SigLIP demo's Unigram tokenizer: a query's token count, not the vocabulary, sets the text tower's cost."""
    done = model.checkpoint / "config.json"
    if done.is_file() and (model.checkpoint / "tokenizer.json").is_file():
        return model.checkpoint
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipImageProcessor, SiglipModel

    from assetlens.export.clip_tokenizer import write_clip_tokenizer
    from assetlens.export.train_demo import write_unigram_tokenizer

    tmp = model.checkpoint.with_name("hf.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(SEED)
    side = model.config["vision_config"]["image_size"]
    if model.family == "clip":
        CLIPModel(CLIPConfig(**model.config)).eval().save_pretrained(tmp)
        processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
        processor.save_pretrained(tmp)
        write_clip_tokenizer(tmp)
    else:
        SiglipModel(SiglipConfig(**model.config)).eval().save_pretrained(tmp)
        SiglipImageProcessor(size={"height": side, "width": side}).save_pretrained(tmp)
        tokenizer = write_unigram_tokenizer(tmp / "tokenizer", SEED)
        for file in tokenizer.iterdir():
            file.rename(tmp / file.name)
        tokenizer.rmdir()
    shutil.rmtree(model.checkpoint, ignore_errors=True)
    tmp.rename(model.checkpoint)
    return model.checkpoint


def export(model: BenchModel, precision: str) -> Path:
    """The model exported at ``precision`` by ``export.onnx_export.export_model`` (once)."""
    out = model.export_dir(precision)
    if (out / MANIFEST_FILE).is_file():
        return out
    from assetlens.export.onnx_export import export_model

    build_checkpoint(model)
    shutil.rmtree(out, ignore_errors=True)
    return Path(export_model(model.checkpoint, out, precision, name=f"bench-{model.name}"))


def build_static_int8(model: BenchModel) -> Path:
    """The image tower quantised with ``export.quantize.STATIC_INT8`` (once), calibrated on the exporter's
    calibration pictures: the static QDQ alternative measured beside the exported (dynamic) int8."""
    if model.static_int8_path.is_file():
        return model.static_int8_path
    from assetlens.export.onnx_export import calibration_images
    from assetlens.export.quantize import STATIC_INT8, prepare_int8, quantize_int8

    facts = load_facts(export(model, "fp32"))
    work = model.static_int8_path.parent
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    prepared = work / "image.prepared.onnx"
    prepare_int8(facts.path(facts.image.file), prepared)
    feeds = [{facts.image.input_name: p[None]} for p in model_batch(calibration_images(), facts.image)]
    partial = work / "image.partial.onnx"
    quantize_int8(prepared, partial, STATIC_INT8, feeds)
    prepared.unlink()
    partial.rename(model.static_int8_path)
    return model.static_int8_path
