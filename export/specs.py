"""What the two ONNX graphs look like: tower wrappers and their optimum specs.

Each tower is exported on its own so the runtime can embed images without
loading the text tower and vice versa. The wrappers put the L2
normalisation inside the graph, so every consumer gets unit vectors and
cosine similarity is a plain dot product.
"""

from __future__ import annotations

import torch
from optimum.exporters.onnx import OnnxConfig
from optimum.exporters.onnx.config import TextEncoderOnnxConfig, VisionOnnxConfig
from optimum.utils import NormalizedTextConfig, NormalizedVisionConfig
from torch import nn
from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection

IMAGE_INPUT = "pixel_values"
IMAGE_OUTPUT = "image_embeds"
TEXT_INPUTS = ("input_ids", "attention_mask")
TEXT_OUTPUT = "text_embeds"


class ImageTower(nn.Module):
    """``pixel_values`` -> L2-normalised ``image_embeds``."""

    def __init__(self, model: CLIPVisionModelWithProjection) -> None:
        super().__init__()
        self.model = model
        self.config = model.config  # optimum reads and sets attributes on it

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        embeds = self.model(pixel_values=pixel_values).image_embeds
        return {IMAGE_OUTPUT: nn.functional.normalize(embeds, dim=-1)}


class TextTower(nn.Module):
    """``input_ids``, ``attention_mask`` -> L2-normalised ``text_embeds``."""

    def __init__(self, model: CLIPTextModelWithProjection) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        embeds = self.model(input_ids=input_ids, attention_mask=attention_mask).text_embeds
        return {TEXT_OUTPUT: nn.functional.normalize(embeds, dim=-1)}


class ImageTowerOnnxConfig(VisionOnnxConfig):
    """Dynamic batch; height and width stay fixed at the crop size because
    CLIP's position embeddings only cover that many patches."""

    NORMALIZED_CONFIG_CLASS = NormalizedVisionConfig

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {IMAGE_INPUT: {0: "batch"}}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {IMAGE_OUTPUT: {0: "batch"}}


class TextTowerOnnxConfig(TextEncoderOnnxConfig):
    """Dynamic batch and sequence, so a short query is not padded to 77 tokens."""

    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch", 1: "sequence"} for name in TEXT_INPUTS}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {TEXT_OUTPUT: {0: "batch"}}


def tower_specs(
    vision: CLIPVisionModelWithProjection, text: CLIPTextModelWithProjection
) -> dict[str, tuple[nn.Module, OnnxConfig]]:
    """``{"image": (module, spec), "text": (module, spec)}`` for ``export_models``."""
    return {
        "image": (ImageTower(vision).eval(), ImageTowerOnnxConfig(vision.config, task="feature-extraction")),
        "text": (TextTower(text).eval(), TextTowerOnnxConfig(text.config, task="feature-extraction")),
    }
