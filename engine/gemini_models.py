"""The Gemini image models AssetLens knows: their limits, their status, and the default.

What a key may actually use comes from the service's model listing
(``image_models_in``); this registry only supplies each model's limits and
the default, and names the models Google has shut down.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from assetlens.engine.errors import UsageError

Status = Literal["GA", "preview", "retired"]

IMAGE_SIZES = ("1K", "2K", "4K")
"""Every output size the image models offer (``ImageConfig.image_size``)."""

_NAME = re.compile(r"[a-z0-9][a-z0-9.\-]{0,99}")


@dataclass(frozen=True)
class ImageModel:
    """One Gemini image model; ``image_sizes`` is empty when the model has one fixed size."""

    name: str
    status: Status
    max_references: int
    image_sizes: tuple[str, ...] = ()
    shutdown: date | None = None

    def describe(self) -> str:
        """The name and status, e.g. "gemini-3-pro-image (GA)", "gemini-2.5-flash-image (shut down 2 October 2026)"."""
        if self.status == "retired":
            return (
                f"{self.name} (shut down {spoken_date(self.shutdown)})" if self.shutdown else f"{self.name} (retired)"
            )
        return f"{self.name} ({self.status})"


def spoken_date(day: date) -> str:
    """A date as a sentence says it: 2 October 2026."""
    return f"{day.day} {day:%B %Y}"


IMAGE_MODELS: tuple[ImageModel, ...] = (
    ImageModel("gemini-3.1-flash-image", "GA", max_references=14, image_sizes=IMAGE_SIZES),
    ImageModel("gemini-3-pro-image", "GA", max_references=14, image_sizes=IMAGE_SIZES),
    ImageModel("gemini-2.5-flash-image", "retired", max_references=3, shutdown=date(2026, 10, 2)),
    ImageModel(
        "gemini-3.1-flash-image-preview",
        "retired",
        max_references=14,
        image_sizes=IMAGE_SIZES,
        shutdown=date(2026, 6, 25),
    ),
    ImageModel(
        "gemini-3-pro-image-preview", "retired", max_references=14, image_sizes=IMAGE_SIZES, shutdown=date(2026, 6, 25)
    ),
)
DEFAULT_MODEL = "gemini-3.1-flash-image"
"""The current GA fast image model."""


def known_model(name: str) -> ImageModel | None:
    """The registry's entry for ``name`` (with or without the ``models/`` prefix), if any."""
    name = name.removeprefix("models/")
    return next((m for m in IMAGE_MODELS if m.name == name), None)


def offered_models() -> list[ImageModel]:
    """The models to offer for choice: those not shut down, the default first."""
    live = [m for m in IMAGE_MODELS if m.status != "retired"]
    return sorted(live, key=lambda m: m.name != DEFAULT_MODEL)


def model_name(text: str) -> str:
    """A model id as the service spells them (``gemini-3-pro-image``), else ``UsageError``."""
    name = text.strip().removeprefix("models/")
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{text.strip()[:100]!r} is not a Gemini model name; choose one like {DEFAULT_MODEL} "
            f"(known: {', '.join(m.name for m in offered_models())})."
        )
    return name


def image_models_in(listing: Iterable[Any]) -> list[str]:
    """The image-capable names in an SDK model listing: ``generateContent`` among the supported
    actions and "image" in the name; sorted, without the ``models/`` prefix."""
    found = {
        str(m.name).removeprefix("models/")
        for m in listing
        if m.name and "image" in str(m.name).lower() and "generateContent" in (m.supported_actions or ())
    }
    return sorted(found)


def check_limits(model: str, references: int, image_size: str | None) -> None:
    """Refuse, in one sentence, a request the model's known limits rule out (unknown models: the service decides)."""
    if image_size is not None and image_size not in IMAGE_SIZES:
        raise UsageError(f"Unknown output size {image_size!r}; choose one of {', '.join(IMAGE_SIZES)}.")
    entry = known_model(model)
    if entry is None:
        return
    if references > entry.max_references:
        raise UsageError(
            f"{entry.name} takes at most {entry.max_references} reference images, not {references}; "
            "pick fewer references."
        )
    if image_size is not None and image_size not in entry.image_sizes:
        offered = f"offers {', '.join(entry.image_sizes)}" if entry.image_sizes else "has one fixed output size"
        raise UsageError(
            f"{entry.name} does not offer the output size {image_size}: it {offered}. "
            "Choose another size or another model."
        )
