"""What the two ONNX graphs look like: tower wrappers and their optimum specs, per model family.

Each tower is exported on its own so the runtime can embed images without
loading the text tower and vice versa. The wrappers put the L2
normalisation inside the graph, so every consumer gets unit vectors and
cosine similarity is a plain dot product. CLIP's text graph takes ids and an
attention mask; SigLIP's takes ids only, as its Hugging Face model is run
(every text padded to the context length, no mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from optimum.exporters.onnx import OnnxConfig
from optimum.exporters.onnx.config import TextEncoderOnnxConfig, VisionOnnxConfig
from optimum.utils import NormalizedTextConfig, NormalizedVisionConfig
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from assetlens.engine.registry import Family

IMAGE_INPUT = "pixel_values"
IMAGE_OUTPUT = "image_embeds"
TEXT_OUTPUT = "text_embeds"


@dataclass(frozen=True)
class FamilyGraphs:
    """Which field of each tower's Hugging Face output is the embedding, and what the text graph takes."""

    image_embeds: str
    text_embeds: str
    text_inputs: tuple[str, ...]


FAMILY_GRAPHS: dict[Family, FamilyGraphs] = {
    # CLIP{Vision,Text}ModelWithProjection
    "clip": FamilyGraphs("image_embeds", "text_embeds", ("input_ids", "attention_mask")),
    # Siglip{Vision,Text}Model: the pooled output is what SiglipModel.get_{image,text}_features return.
    "siglip": FamilyGraphs("pooler_output", "pooler_output", ("input_ids",)),
}


class ImageTower(nn.Module):
    """``pixel_values`` -> L2-normalised ``image_embeds``."""

    def __init__(self, model: PreTrainedModel, embeds: str) -> None:
        super().__init__()
        self.model = model
        self.embeds = embeds
        self.config = model.config  # optimum reads and sets attributes on it

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        embeds = getattr(self.model(pixel_values=pixel_values), self.embeds)
        return {IMAGE_OUTPUT: nn.functional.normalize(embeds, dim=-1)}


class TextTower(nn.Module):
    """``input_ids`` (and ``attention_mask`` where the family takes one) -> L2-normalised ``text_embeds``."""

    def __init__(self, model: PreTrainedModel, embeds: str) -> None:
        super().__init__()
        self.model = model
        self.embeds = embeds
        self.config = model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        embeds = getattr(self.model(input_ids=input_ids, attention_mask=attention_mask), self.embeds)
        return {TEXT_OUTPUT: nn.functional.normalize(embeds, dim=-1)}


class ImageTowerOnnxConfig(VisionOnnxConfig):
    """Dynamic batch; height and width stay fixed at the model's image size because
    the position embeddings only cover that many patches."""

    NORMALIZED_CONFIG_CLASS = NormalizedVisionConfig

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {IMAGE_INPUT: {0: "batch"}}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {IMAGE_OUTPUT: {0: "batch"}}


class TextTowerOnnxConfig(TextEncoderOnnxConfig):
    """Dynamic batch and sequence, so a short CLIP query is not padded to 77 tokens."""

    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig

    def __init__(self, config: PretrainedConfig, input_names: tuple[str, ...]) -> None:
        super().__init__(config, task="feature-extraction")
        self.input_names = input_names

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch", 1: "sequence"} for name in self.input_names}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {TEXT_OUTPUT: {0: "batch"}}


def towers(vision: PreTrainedModel, text: PreTrainedModel, family: Family) -> tuple[ImageTower, TextTower]:
    """The two wrapped towers, in eval mode."""
    graphs = FAMILY_GRAPHS[family]
    return ImageTower(vision, graphs.image_embeds).eval(), TextTower(text, graphs.text_embeds).eval()


def tower_specs(
    vision: PreTrainedModel, text: PreTrainedModel, family: Family
) -> dict[str, tuple[nn.Module, OnnxConfig]]:
    """``{"image": (module, spec), "text": (module, spec)}`` for ``export_models``."""
    image_tower, text_tower = towers(vision, text, family)
    return {
        "image": (image_tower, ImageTowerOnnxConfig(vision.config, task="feature-extraction")),
        "text": (text_tower, TextTowerOnnxConfig(text.config, FAMILY_GRAPHS[family].text_inputs)),
    }
