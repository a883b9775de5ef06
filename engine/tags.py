"""Auto-tags: zero-shot labels for each image from a vocabulary, scored against the vectors already stored.

A label's score for an image is the cosine between the image's vector and the text embedding of the label
put into its model family's prompt (``registry.PROMPTS``: "a photo of a {}." for CLIP). Labels come in
categories (the shipped ``data/labels.txt`` has object kinds, colours and settings; a user's file adds its
own); an image gets the ``top`` best labels of each category whose score reaches ``min_score``.

Each tagged row keeps the fingerprint of what tagged it (model, prompt, vocabulary, ``top``, ``min_score``):
``Library.tag`` re-tags only rows whose fingerprint differs, and a row written with a new vector carries none.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.engine.encoders import Encoder
from assetlens.engine.errors import UsageError
from assetlens.engine.models import ModelFacts
from assetlens.engine.registry import PROMPTS, find_model, model_family
from assetlens.engine.store import MAX_TAG_BYTES, MAX_TAGS

DEFAULT_LABELS = Path(__file__).resolve().parent / "data" / "labels.txt"
#: The category of labels in a file that names none.
USER_CATEGORY = "custom"
MAX_LABELS = 10_000
MAX_LABELS_BYTES = 1 << 20


@dataclass(frozen=True)
class Vocabulary:
    """Labels by category, in the order they were read."""

    categories: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, text: str, where: str) -> Vocabulary:
        """One label a line; ``[name]`` starts a category (labels before any header are ``USER_CATEGORY``);
        blank lines and lines starting with ``#`` are skipped."""
        found: dict[str, list[str]] = {}
        category = USER_CATEGORY
        for number, line in enumerate(text.splitlines(), 1):
            label = line.strip()
            if not label or label.startswith("#"):
                continue
            if label.startswith("[") and label.endswith("]"):
                category = label[1:-1].strip()
                if not category:
                    raise UsageError(f"Line {number} of {where} names an empty category.")
                continue
            if not label.isprintable():
                raise UsageError(f"Line {number} of {where} holds a control character; give one plain label a line.")
            if len(label.encode("utf-8", "surrogatepass")) > MAX_TAG_BYTES:
                raise UsageError(f"Line {number} of {where} is longer than {MAX_TAG_BYTES} bytes; labels are short.")
            labels = found.setdefault(category, [])
            if label not in labels:
                labels.append(label)
        vocabulary = cls(tuple((name, tuple(labels)) for name, labels in found.items() if labels))
        if not vocabulary.labels:
            raise UsageError(f"{where} holds no labels; give one label a line.")
        if len(vocabulary.labels) > MAX_LABELS:
            raise UsageError(f"{where} holds {len(vocabulary.labels)} labels; at most {MAX_LABELS} are scored.")
        return vocabulary

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Vocabulary:
        where = os.fspath(path)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_LABELS_BYTES + 1)
        except FileNotFoundError:
            raise UsageError(f"The labels file {where} does not exist.") from None
        except IsADirectoryError:
            raise UsageError(f"The labels file {where} is a folder; give a text file, one label a line.") from None
        except OSError as exc:
            raise UsageError(f"The labels file {where} cannot be read ({exc.strerror or exc}).") from None
        if len(raw) > MAX_LABELS_BYTES:
            raise UsageError(f"The labels file {where} is over {MAX_LABELS_BYTES >> 20} MB; it should be a list.")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"The labels file {where} is not UTF-8 text.") from None
        return cls.parse(text, f"the labels file {where}")

    @classmethod
    def default(cls) -> Vocabulary:
        """The shipped vocabulary for product shots: object kinds, colours and settings."""
        return cls.parse(DEFAULT_LABELS.read_text(encoding="utf-8"), "the default labels")

    def plus(self, other: Vocabulary) -> Vocabulary:
        """This vocabulary with ``other``'s labels added, category by category."""
        merged = {name: list(labels) for name, labels in self.categories}
        for name, labels in other.categories:
            kept = merged.setdefault(name, [])
            kept.extend(label for label in labels if label not in kept)
        return Vocabulary(tuple((name, tuple(labels)) for name, labels in merged.items()))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for _, labels in self.categories for label in labels)

    def category(self, name: str) -> tuple[str, ...]:
        return dict(self.categories).get(name, ())


def prompt_for(facts: ModelFacts) -> str:
    """The zero-shot prompt of a model's family; an unregistered model is SigLIP-shaped when it squashes."""
    spec = find_model(facts.name)
    if spec is not None:
        return spec.prompt
    return PROMPTS[model_family(facts.name, facts.image.resize)]


def check_tagging(top: int, min_score: float | None, vocabulary: Vocabulary) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise UsageError(f"--top must be a whole number of at least 1, not {top!r}.")
    if top * len(vocabulary.categories) > MAX_TAGS:
        raise UsageError(
            f"--top {top} over {len(vocabulary.categories)} categories would give an image more than {MAX_TAGS} "
            "tags; lower --top."
        )
    if min_score is not None and not (math.isfinite(min_score) and -1.0 <= min_score <= 1.0):
        raise UsageError(f"--min-score for tags is a cosine from -1 to 1, not {min_score:g}.")


class Tagger:
    """Scores image vectors against a vocabulary's prompts with one model."""

    def __init__(self, encoder: Encoder, vocabulary: Vocabulary, top: int = 1, min_score: float | None = None):
        check_tagging(top, min_score, vocabulary)
        self.vocabulary = vocabulary
        self.top = top
        self.min_score = min_score
        self.prompt = prompt_for(encoder.facts)
        self.text = encoder.encode_texts([self.prompt.format(label) for label in vocabulary.labels])
        described = {
            "model": encoder.facts.model_id,
            "prompt": self.prompt,
            "categories": vocabulary.categories,
            "top": top,
            "min_score": min_score,
        }
        self.fingerprint = hashlib.sha256(json.dumps(described).encode()).hexdigest()[:32]

    def tags(self, vectors: np.ndarray) -> list[tuple[str, ...]]:
        """Each image's tags: the best ``top`` labels of each category in turn, best first."""
        scores = np.asarray(vectors, dtype=np.float32) @ self.text.T
        per_image: list[list[str]] = [[] for _ in range(len(scores))]
        start = 0
        for _, labels in self.vocabulary.categories:
            block = scores[:, start : start + len(labels)]
            best = np.argsort(-block, axis=1, kind="stable")[:, : self.top]
            for row, picks in enumerate(best):
                for pick in picks:
                    if self.min_score is None or block[row, pick] >= self.min_score:
                        label = labels[pick]
                        if label not in per_image[row]:
                            per_image[row].append(label)
            start += len(labels)
        return [tuple(tags) for tags in per_image]


@dataclass(frozen=True)
class TagReport:
    """What ``Library.tag`` did: rows tagged now, rows already tagged with this vocabulary, labels scored."""

    tagged: int
    unchanged: int
    labels: int
    categories: int
    fingerprint: str
    seconds: float
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
