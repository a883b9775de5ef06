"""A synthetic product catalogue drawn with Pillow (pure numpy and Pillow: no torch, no downloads).

The shipped demo CLIP (``engine/data/demo``) is trained on these pictures by
``export/train_demo.py``, and ``assetlens demo`` writes a folder of them to
index and search. Every picture shows one product (an *object kind* in one
*colour*) on one *background*, drawn as a varied product shot: position,
size, rotation, lighting, metallic sheen, a soft shadow, sensor noise, slight
blur and the odd small neutral distractor (a pebble, a pen, a card) change
from picture to picture, while the three attributes stay clearly visible.

- ``vocabulary``: the kinds, colours, backgrounds, ``Item`` and its captions.
- ``drawing``: the pen and one painter per object kind.
- ``render``: ``render(item, size, seed)`` (deterministic) and ``encode``.
- ``dataset``: ``all_items``, ``split`` (held-out (colour, object) pairs the
  demo model never sees in training), ``sample_items``, ``catalogue_items``
  and ``write_catalogue`` (a folder of JPEGs and PNGs, one sub-folder per kind).
- ``evaluation``: ``HeldOut``, the held-out retrieval benchmark (its queries
  in each of ``LANGUAGES``), ``recall_at_k`` and ``tag_accuracy``.
- ``indonesian``: the same world in Indonesian ("jam tangan emas di atas latar
  putih"), for the bilingual SigLIP demo.
"""

from assetlens.catalogue import indonesian
from assetlens.catalogue.dataset import (
    DEMO_IMAGES,
    DEMO_SEED,
    all_items,
    catalogue_items,
    sample_items,
    split,
    write_catalogue,
)
from assetlens.catalogue.evaluation import BENCHMARK_SEED, LANGUAGES, HeldOut, recall_at_k, tag_accuracy
from assetlens.catalogue.render import encode, render
from assetlens.catalogue.vocabulary import (
    BACKGROUND_SYNONYMS,
    BACKGROUNDS,
    CAPTION_TEMPLATES,
    COLORS,
    INVISIBLE,
    OBJECTS,
    PLURAL_OBJECTS,
    SYNONYMS,
    Item,
    article,
)

__all__ = [
    "BACKGROUNDS",
    "BACKGROUND_SYNONYMS",
    "BENCHMARK_SEED",
    "CAPTION_TEMPLATES",
    "COLORS",
    "DEMO_IMAGES",
    "DEMO_SEED",
    "INVISIBLE",
    "LANGUAGES",
    "OBJECTS",
    "PLURAL_OBJECTS",
    "SYNONYMS",
    "HeldOut",
    "Item",
    "all_items",
    "article",
    "catalogue_items",
    "encode",
    "indonesian",
    "recall_at_k",
    "render",
    "sample_items",
    "split",
    "tag_accuracy",
    "write_catalogue",
]
