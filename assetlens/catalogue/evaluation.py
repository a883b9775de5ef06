"""The held-out retrieval benchmark: queries about (colour, object) pairs the demo model never saw.

``HeldOut.build()`` is the one definition of it, shared by the demo model's
training progress (export/train_demo.py), the quality benchmark
(benchmarks/quality.py) and the quality test (tests/test_demo_model.py).
``tag_accuracy`` scores auto-tags of catalogue pictures, for the benchmark and tests/test_tags.py.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from assetlens.catalogue import indonesian
from assetlens.catalogue.dataset import all_items, sample_items, split
from assetlens.catalogue.render import render, stable_seed
from assetlens.catalogue.vocabulary import Item

#: Render seed of the benchmark's pictures (training never uses it).
BENCHMARK_SEED = 20240601
#: Side of the benchmark's pictures.
RENDER_SIZE = 256


def tag_accuracy(
    tags: Mapping[str, Sequence[str]], truth: Mapping[str, Item], colours: Collection[str]
) -> tuple[float, float]:
    """The share of pictures whose first tag is their object kind, and the share whose first tag among
    ``colours`` is their colour. ``tags``: each picture's tags, best first, by the key ``truth`` has it under."""
    if tags.keys() != truth.keys():
        raise ValueError("tags and truth name different pictures")
    objects = sum(bool(t) and t[0] == truth[key].object for key, t in tags.items())
    right = sum(next((c for c in t if c in colours), None) == truth[key].color for key, t in tags.items())
    return objects / len(tags), right / len(tags)


Captioner = Callable[[Item], str]
#: Caption languages: (canonical caption, colour-and-object caption) of an item.
LANGUAGES: dict[str, tuple[Captioner, Captioner]] = {
    "en": (Item.caption, Item.short_caption),
    "id": (indonesian.caption, indonesian.short_caption),
}


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Fraction of queries (rows) with a relevant gallery column among their top ``k`` scores."""
    scores = np.asarray(scores)
    relevant = np.asarray(relevant, dtype=bool)
    order = np.argsort(-scores, axis=1, kind="stable")
    hits_sorted = np.take_along_axis(relevant, order, axis=1)
    return {k: float(hits_sorted[:, :k].any(axis=1).mean()) for k in ks}


@dataclass(frozen=True)
class HeldOut:
    """Queries, gallery and relevance of the held-out benchmark.

    ``queries``: every drawable item of a held-out (colour, object) pair, one
    per distinct canonical caption (``texts``). ``gallery``: one picture of each
    query's item, then distractor pictures of training pairs (never a correct
    answer); ``seeds`` are their render seeds. ``short_texts`` name each
    held-out pair without a background ("a green mug"), one per ``pairs``.
    """

    queries: tuple[Item, ...]
    gallery: tuple[Item, ...]
    seeds: tuple[int, ...]

    @classmethod
    def build(cls, distractors: int = 100, seed: int = BENCHMARK_SEED) -> HeldOut:
        train, held = split()
        queries = all_items(held)
        seeds = [stable_seed("bench", seed, i) for i in range(len(queries))]
        others = sample_items(distractors, seed, pairs=train)
        seeds += [stable_seed("bench-distractor", seed, i) for i in range(len(others))]
        return cls(tuple(queries), tuple(queries + others), tuple(seeds))

    @cached_property
    def images(self) -> tuple[Image.Image, ...]:
        """The gallery's pictures, in gallery order."""
        return tuple(render(item, RENDER_SIZE, seed) for item, seed in zip(self.gallery, self.seeds, strict=True))

    @cached_property
    def texts(self) -> tuple[str, ...]:
        """The queries' canonical captions ("a green mug on a white background")."""
        return self.texts_in("en")

    def texts_in(self, language: str) -> tuple[str, ...]:
        """The queries' canonical captions in ``language`` (a key of ``LANGUAGES``): "mug hijau di atas latar putih"."""
        return tuple(LANGUAGES[language][0](q) for q in self.queries)

    @cached_property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The held-out (colour, object) pairs, sorted."""
        return tuple(sorted({q.pair for q in self.queries}))

    @cached_property
    def short_texts(self) -> tuple[str, ...]:
        """One colour-and-object caption per pair ("a green mug"), in ``pairs`` order."""
        return self.short_texts_in("en")

    def short_texts_in(self, language: str) -> tuple[str, ...]:
        """One colour-and-object caption per pair in ``language``, in ``pairs`` order ("mug hijau")."""
        captions = {q.pair: LANGUAGES[language][1](q) for q in self.queries}
        return tuple(captions[p] for p in self.pairs)

    @cached_property
    def relevant(self) -> np.ndarray:
        """(queries, gallery) booleans: the gallery picture shows exactly the query's item."""
        return np.array([[g == q for g in self.gallery] for q in self.queries])

    @cached_property
    def relevant_pair(self) -> np.ndarray:
        """(pairs, gallery) booleans: the gallery picture has the pair's colour and object, any background."""
        return np.array([[g.pair == p for g in self.gallery] for p in self.pairs])

    def recall(
        self, image_vectors: np.ndarray, text_vectors: np.ndarray, ks: Iterable[int] = (1, 5)
    ) -> dict[int, float]:
        """Text -> image recall@k of the captions ``texts`` (rows of ``text_vectors``) over the gallery."""
        return recall_at_k(self._scores(image_vectors, text_vectors, len(self.texts)), self.relevant, ks)

    def pair_recall(
        self, image_vectors: np.ndarray, short_vectors: np.ndarray, ks: Iterable[int] = (1, 5)
    ) -> dict[int, float]:
        """Text -> image recall@k of ``short_texts``: a hit is any picture of the pair, whatever its background."""
        return recall_at_k(self._scores(image_vectors, short_vectors, len(self.pairs)), self.relevant_pair, ks)

    def _scores(self, image_vectors: np.ndarray, text_vectors: np.ndarray, n_texts: int) -> np.ndarray:
        images, texts = np.asarray(image_vectors), np.asarray(text_vectors)
        if images.ndim != 2 or images.shape[0] != len(self.gallery):
            raise ValueError(
                f"Expected {len(self.gallery)} image vectors (one per gallery picture), got {images.shape}."
            )
        if texts.ndim != 2 or texts.shape != (n_texts, images.shape[1]):
            raise ValueError(f"Expected {n_texts} text vectors of dimension {images.shape[1]}, got {texts.shape}.")
        scores: np.ndarray = texts @ images.T
        return scores
