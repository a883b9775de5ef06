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

CONFIGS = {"vit-b-32": VIT_B_32, "toy": TOY}


def image_gflops(config: dict[str, Any]) -> float:
    """Forward GFLOP of the image tower per image (2 x multiply-adds of every matrix product)."""
    v = config["vision_config"]
    d, inner = v["hidden_size"], v["intermediate_size"]
    patches = (v["image_size"] // v["patch_size"]) ** 2
    tokens = patches + 1
    layer = tokens * (4 * d * d + 2 * d * inner) + 2 * tokens * tokens * d
    macs = v["num_hidden_layers"] * layer + patches * v["num_channels"] * v["patch_size"] ** 2 * d
    return 2 * (macs + d * config["projection_dim"]) / 1e9


def text_gflops(config: dict[str, Any], tokens: int) -> float:
    """Forward GFLOP of the text tower for one text of ``tokens`` tokens."""
    t = config["text_config"]
    d, inner = t["hidden_size"], t["intermediate_size"]
    layer = tokens * (4 * d * d + 2 * d * inner) + 2 * tokens * tokens * d
    return 2 * (t["num_hidden_layers"] * layer + d * config["projection_dim"]) / 1e9


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


def bench_model(name: str, cache: Path | None = None) -> BenchModel:
    """Where model ``name`` (a key of ``CONFIGS``) lives in the cache; nothing is built yet."""
    config = CONFIGS[name]
    digest = hashlib.sha256(json.dumps([config, SEED], sort_keys=True).encode()).hexdigest()[:10]
    return BenchModel(name, config, (cache or cache_root() / "bench") / f"{name}-{digest}")


def build_checkpoint(model: BenchModel) -> Path:
    """Save the seeded random CLIP with its image processor and tokenizer (once)."""
    done = model.checkpoint / "config.json"
    if done.is_file() and (model.checkpoint / "tokenizer.json").is_file():
        return model.checkpoint
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from assetlens.export.clip_tokenizer import write_clip_tokenizer

    tmp = model.checkpoint.with_name("hf.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(SEED)
    clip = CLIPModel(CLIPConfig(**model.config)).eval()
    clip.save_pretrained(tmp)
    side = model.config["vision_config"]["image_size"]
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}).save_pretrained(tmp)
    write_clip_tokenizer(tmp)
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
