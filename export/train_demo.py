"""Train the small demo models that ship in ``engine/data`` and export them.

    python -m assetlens.export.train_demo [--model demo] [--out engine/data/demo] [--seed 0] [--steps 3600]
    python -m assetlens.export.train_demo --model demo-siglip [--out engine/data/demo-siglip] [--steps 5000]
        [--threads 1]

Real CLIP and SigLIP weights cannot be downloaded offline (or in CI), and
random weights make search meaningless, so AssetLens ships *small* models
trained here on the synthetic product catalogue of ``assetlens.catalogue``:
``demo``, a CLIP, and ``demo-siglip``, a SigLIP that also understands
Indonesian. They exercise everything a real model does (a real tokenizer, the
runtime's own image preprocessing and tokenisation, the ONNX export, int8
quantisation, normalisation) and give ``assetlens demo`` sensible answers. Each
one's preprocessing and text rules are its registry entry's
(``engine.registry``).

Recipe (seeded: the same seed, code, library versions, CPU type and
``--threads`` give bit-identical weights; another thread count gives a model
of the same quality but different bits):

1. Tokenizer. ``demo``: CLIP's real tokenizer (``export.clip_tokenizer``),
   49408 tokens. ``demo-siglip``: a SentencePiece-style Unigram tokenizer
   trained here with ``tokenizers`` on 60000 captions sampled as in step 3, in
   both languages, a third of them again with punctuation (NFKC and
   lower-casing in its normalizer, as SigLIP's reference lower-cases;
   Metaspace pre-tokenizer; ``<pad>`` 0, ``</s>`` 1 appended to every text,
   ``<unk>`` 2; at most 4096 pieces, of which the trainer keeps the few
   hundred the captions support: whole words and letters; it lists the
   letters and digits no caption needs last, in an order that changes from
   run to run, and step 7 zeroes their rows, so the model is the same). Either is
   applied by the runtime's own ``engine.tokens``: CLIP pads a batch to its
   longest text, SigLIP every text to its context length with ``<pad>``.
2. Data: a pool of 12000 catalogue pictures of the *training* (colour,
   object) pairs (``assetlens.catalogue.split``; held-out pairs are never
   rendered here), each rendered at 256 px, saved as JPEG or PNG bytes and
   read back through the runtime's own ``engine.preprocess.decode`` and
   ``model_pixels`` (64 px; CLIP: shortest side and crop, CLIP mean/std;
   SigLIP: squash, mean/std 0.5), as the indexer does. Random horizontal
   flips. The pool is cached under ``--work`` (keyed by its items and the
   pixels of its first pictures, so any change to drawing or preprocessing
   re-renders it).
3. Captions: a random template per picture: half name colour, object and
   background ("a red mug on a wooden table", synonyms included), about a
   quarter colour and object only ("a red mug"), the rest one or two
   attributes ("a mug", "something red on a gray background"). 15% of the
   pictures are recoloured (random hue rotation and saturation, the whole
   picture) and captioned by their object only, so object features cannot
   lean on colour. ``demo-siglip`` captions each picture in English or in
   Indonesian (``assetlens.catalogue.indonesian``: "jam tangan emas di atas
   latar putih"), one or the other at random.
4. Model. ``demo``: ``transformers.CLIPModel`` from a ``CLIPConfig``
   (``model_config``): ViT 64 px / patch 8, width 96, 4 layers, 4 heads; text
   width 16, 4 layers, 2 heads, 77 positions, vocabulary 49408; projection 64.
   The text width is small on purpose: its 49408-row token table is most of
   the shipped bytes. ``demo-siglip``: ``transformers.SiglipModel`` from a
   ``SiglipConfig``: the same ViT with SigLIP's attention-pooling head (96-d
   embeddings); text width 64, 4 layers, 4 heads, 32 positions, the Unigram
   vocabulary, pooled at the last position and projected to 96.
5. Loss. ``demo``: CLIP's symmetric contrastive loss with a learnt
   temperature; ``demo-siglip``: SigLIP's sigmoid loss (every picture/caption
   pair of the batch is a binary decision) with a learnt temperature and bias,
   started at 10 and -10 as in the SigLIP paper; the temperature (and bias) learn at 10 times the
   weights' rate (``--logit-lr-scale``), or in so short a training they would hardly leave their start:
   with 10 and -10 no pair can score above 0, and SigLIP's paper gets away with that start only
   through batches of thousands and a hundred thousand steps. In both, every caption that
   truthfully describes a picture in the batch is a positive for it ("a red
   mug" is true of every red mug in the batch, whatever the background), a
   full caption gives 0.1 credit to pictures that only miss its background
   (so red mugs elsewhere outrank red chairs on the right table), and
   recoloured pictures are left out for captions naming a colour or
   background. AdamW, lr 1e-3, warm-up then cosine, batch 128, 3600 steps
   (``demo``) or 5000 (``demo-siglip``).
6. Held-out recall (queries about unseen colour/object pairs, see
   ``assetlens.catalogue.HeldOut``, the metric of tests/test_demo_model.py and
   tests/test_demo_siglip.py) is printed during training for each language,
   with zero-shot colour/object/background accuracy.
7. Token-embedding rows of tokens never seen in training are set to zero
   after training: they were never trained, and zero rows make the shipped
   ONNX files compress well in git and in wheels. An unknown word in a query
   therefore contributes only its position.
8. The checkpoint is saved as a Hugging Face folder (weights, the image
   processor for 64 px and the tokenizer files) under ``--work`` (default: a
   folder in the system temp dir, never shipped), exported with
   ``export.onnx_export.export_model`` to ``<out>/fp32`` and quantised from those
   graphs (``quantize_export``) to ``<out>/int8``; both are then scored through the runtime
   (``engine.encoders.Encoder``).

One thread is the default because it is what the shipped models were trained
with (and on a shared two-core machine it is also the fastest); ``--threads 2``
is quicker on an idle machine. The shipped models were trained on a two-core AVX2
machine, one thread each, beside other work: ``demo`` in 37 minutes (0.61 s a step),
``demo-siglip`` in 71 (0.86 s a step), rendering their picture pools not included.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer

from assetlens import catalogue as cat
from assetlens.catalogue import indonesian
from assetlens.engine.encoders import Encoder
from assetlens.engine.models import ImageFacts
from assetlens.engine.preprocess import decode, model_pixels
from assetlens.engine.registry import DEMO_MODEL, DEMO_SIGLIP_MODEL, ModelSpec, TextSpec, find_model
from assetlens.engine.tokens import load_tokenizer, tokenize
from assetlens.export.clip_tokenizer import write_clip_tokenizer
from assetlens.export.onnx_export import export_model, quantize_export

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from transformers import CLIPConfig, SiglipConfig

RENDER_SIZE = 256
# CLIP's tokenizer: <|startoftext|>, <|endoftext|> (also the pad), its vocabulary and context length.
BOS_ID, EOS_ID, VOCAB_SIZE, CONTEXT_LENGTH = 49406, 49407, 49408, 77
# The SigLIP demo's Unigram tokenizer: special tokens (ids 0, 1, 2), most pieces, captions it is trained on.
UNIGRAM_SPECIALS = ("<pad>", "</s>", "<unk>")
UNIGRAM_VOCAB, UNIGRAM_CAPTIONS = 4096, 60000
DATA_ROOT = Path(__file__).resolve().parent.parent / "engine" / "data"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "assetlens-train-demo"

Named = tuple[bool, bool, bool]  # which attributes a caption names: colour, object, background

# Partial captions (which attributes they name: colour, object, background).
PARTIAL_TEMPLATES: tuple[tuple[str, Named], ...] = (
    ("something {color} on {bg}", (True, False, True)),
    ("{article_color} {color} product on {bg}", (True, False, True)),
    ("something {color}", (True, False, False)),
    ("{article_color} {color} product", (True, False, False)),
    ("{thing_noun}", (False, True, False)),
    ("a photo of {thing_noun}", (False, True, False)),
    ("{thing_noun} on {bg}", (False, True, True)),
    ("{thing_noun}, {background}", (False, True, True)),
    ("a product on {bg}", (False, False, True)),
)
OBJECT_TEMPLATES = ("{thing_noun}", "a photo of {thing_noun}", "a product photo of {thing_noun}")
# Share of captions naming all three attributes / colour and object / fewer.
# Partial captions ("a handbag", "something red") teach colour-independent
# object features and object-independent colour features, which is what
# lets the model handle unseen colour/object pairs.
FULL_SHARE, SHORT_SHARE = 0.5, 0.22
FULL_TEMPLATES = tuple(t for t in cat.CAPTION_TEMPLATES if "{bg}" in t or "{background}" in t)
SHORT_TEMPLATES = tuple(t for t in cat.CAPTION_TEMPLATES if t not in FULL_TEMPLATES)


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- captions


def with_article(noun: str) -> str:
    """ "a handbag", "an orange", "sunglasses"."""
    return noun if noun in cat.PLURAL_OBJECTS else f"{cat.article(noun)} {noun}"


def english_caption(item: cat.Item, template: str, noun: str, background: str) -> str:
    """A catalogue template (``Item.caption``) or a partial one filled in, in English."""
    if template in cat.CAPTION_TEMPLATES:
        return item.caption(template, noun, background)
    return template.format(
        color=item.color,
        article_color=cat.article(item.color),
        thing_noun=with_article(noun),
        bg=f"{cat.article(background)} {background}",
        background=background,
    )


@dataclass(frozen=True)
class Language:
    """One language's training captions: its names (each first, then synonyms), templates and filler."""

    nouns: Mapping[str, tuple[str, ...]]
    backgrounds: Mapping[str, tuple[str, ...]]
    full: tuple[str, ...]
    short: tuple[str, ...]
    partial: tuple[tuple[str, Named], ...]
    object_only: tuple[str, ...]
    fill: Callable[[cat.Item, str, str, str], str]  # (item, template, noun, background) -> caption


ENGLISH = Language(
    nouns={o: (o, *cat.SYNONYMS[o]) for o in cat.OBJECTS},
    backgrounds={b: (b, *cat.BACKGROUND_SYNONYMS[b]) for b in cat.BACKGROUNDS},
    full=FULL_TEMPLATES,
    short=SHORT_TEMPLATES,
    partial=PARTIAL_TEMPLATES,
    object_only=OBJECT_TEMPLATES,
    fill=english_caption,
)
INDONESIAN = Language(
    nouns={o: (indonesian.OBJECTS[o], *indonesian.SYNONYMS[o]) for o in cat.OBJECTS},
    backgrounds={b: (indonesian.BACKGROUNDS[b], *indonesian.BACKGROUND_SYNONYMS[b]) for b in cat.BACKGROUNDS},
    full=tuple(t for t in indonesian.CAPTION_TEMPLATES if "{background}" in t),
    short=tuple(t for t in indonesian.CAPTION_TEMPLATES if "{background}" not in t),
    partial=indonesian.PARTIAL_TEMPLATES,
    object_only=indonesian.OBJECT_TEMPLATES,
    fill=indonesian.caption,
)
LANGUAGES: dict[str, Language] = {"en": ENGLISH, "id": INDONESIAN}


def sample_noun(item: cat.Item, r: np.random.Generator, lang: Language = ENGLISH) -> str:
    """The object's name, or now and then one of its synonyms."""
    names = lang.nouns[item.object]
    if len(names) > 1 and r.random() < 0.2:
        return str(r.choice(names[1:]))
    return names[0]


def sample_caption(item: cat.Item, r: np.random.Generator, lang: Language = ENGLISH) -> tuple[str, Named]:
    """A random caption for ``item`` and which attributes it names."""
    noun = sample_noun(item, r, lang)
    names = lang.backgrounds[item.background]
    background = names[0]
    if r.random() < 0.15:
        background = str(r.choice(names[1:]))
    u = r.random()
    if u < FULL_SHARE:
        return lang.fill(item, str(r.choice(lang.full)), noun, background), (True, True, True)
    if u < FULL_SHARE + SHORT_SHARE:
        return lang.fill(item, str(r.choice(lang.short)), noun, background), (True, True, False)
    template, mask = lang.partial[int(r.integers(len(lang.partial)))]
    return lang.fill(item, template, noun, background), mask


def sample_object_caption(item: cat.Item, r: np.random.Generator, lang: Language = ENGLISH) -> tuple[str, Named]:
    """A caption naming only the object ("a handbag"), for recoloured pictures."""
    noun = sample_noun(item, r, lang)
    template = str(r.choice(lang.object_only))
    return lang.fill(item, template, noun, lang.backgrounds[item.background][0]), (False, True, False)


# --------------------------------------------------------------------------- the two models


@dataclass(frozen=True)
class Recipe:
    """What differs between the two demo models: the registry entry (preprocessing, text rules, embedding
    size), the caption languages and the default number of steps."""

    spec: ModelSpec
    languages: tuple[str, ...]
    steps: int

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def facts(self) -> ImageFacts:
        """The registry's image rules as the runtime's ``ImageFacts`` (what ``model_pixels`` takes)."""
        return ImageFacts.of_spec(
            self.spec.image, file="image.onnx", input_name="pixel_values", output_name="image_embeds"
        )

    @property
    def checkpoint(self) -> str:
        """The Hugging Face folder's name under ``--work``."""
        return "assetlens-demo-clip" if self.family == "clip" else f"assetlens-{self.spec.name}"


def recipe_for(name: str) -> Recipe:
    spec = find_model(name)
    assert spec is not None, name
    return Recipe(spec, ("en",), 3600) if spec.family == "clip" else Recipe(spec, ("en", "id"), 5000)


RECIPES = (DEMO_MODEL, DEMO_SIGLIP_MODEL)


# --------------------------------------------------------------------------- tokenizers


def tokenizer_captions(n: int, seed: int) -> list[str]:
    """``n`` training captions of the training pairs in both languages, drawn as training draws them."""
    train_pairs, _ = cat.split()
    r = np.random.default_rng([seed, 3])
    captions = []
    for i, item in enumerate(cat.sample_items(n, seed, pairs=train_pairs)):
        lang = LANGUAGES["en" if i % 2 == 0 else "id"]
        captions.append((sample_object_caption if i % 7 == 0 else sample_caption)(item, r, lang)[0])
    return captions


def write_unigram_tokenizer(out_dir: Path, seed: int) -> Path:
    """Train the SigLIP demo's Unigram tokenizer on its captions and save it as Hugging Face fast-tokenizer
    files (``tokenizer.json`` included) in ``out_dir``."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    pad, eos, unk = UNIGRAM_SPECIALS
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=UNIGRAM_VOCAB,
        special_tokens=list(UNIGRAM_SPECIALS),
        unk_token=unk,
        initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789-,.'"),
    )
    captions = tokenizer_captions(UNIGRAM_CAPTIONS, seed)
    # The trainer counts each distinct word once and seeds only pieces found in two of them, so a third of
    # the captions also come with a full stop after every word ("jam. tangan. emas."): every whole word
    # becomes a candidate piece, and a query's punctuation its own token.
    punctuated = [" ".join(f"{word}." for word in caption.split()) for caption in captions[::3]]
    backend.train_from_iterator(captions + punctuated, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, backend.token_to_id(eos))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=pad, eos_token=eos, unk_token=unk, model_max_length=CONTEXT_LENGTH
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def write_tokenizer(recipe: Recipe, out_dir: Path, seed: int) -> Path:
    """The recipe's tokenizer files in ``out_dir``."""
    return write_clip_tokenizer(out_dir) if recipe.family == "clip" else write_unigram_tokenizer(out_dir, seed)


class Tokens:
    """The runtime's tokenisation (``engine.tokens``) of the tokenizer being shipped, under the model's text
    rules, remembering every token id it has produced for ``remember=True`` batches (the others are zeroed
    after training; padding counts, as SigLIP's text tower reads it)."""

    def __init__(self, tokenizer_json: Path, text: TextSpec | None = None) -> None:
        self.text = text or recipe_for(DEMO_MODEL).spec.text
        self.tokenizer: Tokenizer = load_tokenizer(tokenizer_json, self.text.context_length)
        self.seen: set[int] = set()

    def __call__(self, texts: list[str], remember: bool = False) -> tuple[np.ndarray, np.ndarray]:
        length = self.text.context_length if self.text.padding == "max-length" else None
        ids, mask = tokenize(self.tokenizer, texts, self.text.pad_token_id, length=length)
        if remember:
            self.seen.update(np.unique(ids).tolist())
        return ids, mask


# --------------------------------------------------------------------------- model


def model_config(recipe: Recipe, vocab_size: int) -> CLIPConfig | SiglipConfig:
    from transformers import CLIPConfig, SiglipConfig

    vision = dict(
        image_size=recipe.spec.image.size,
        patch_size=8,
        hidden_size=96,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_channels=3,
    )
    if recipe.family == "clip":
        text = dict(
            vocab_size=vocab_size,
            hidden_size=16,  # small on purpose: the token table (49408 x width) dominates the files
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=2,
            max_position_embeddings=CONTEXT_LENGTH,
            bos_token_id=BOS_ID,
            eos_token_id=EOS_ID,  # pool at the first <|endoftext|>
            pad_token_id=EOS_ID,
        )
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=recipe.spec.dim)  # type: ignore[no-untyped-call, unused-ignore]
    siglip_text = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=recipe.spec.text.context_length,
        projection_size=recipe.spec.dim,  # the vision width: both towers embed in one space
        pad_token_id=recipe.spec.text.pad_token_id,
        eos_token_id=UNIGRAM_SPECIALS.index("</s>"),
        bos_token_id=UNIGRAM_SPECIALS.index("</s>"),  # no bos: Siglip's config wants one
    )
    return SiglipConfig(text_config=siglip_text, vision_config=vision)


def new_model(recipe: Recipe, vocab_size: int) -> Any:
    """A freshly initialised ``CLIPModel`` or ``SiglipModel`` (SigLIP's temperature 10 and bias -10)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SiglipModel

    config = model_config(recipe, vocab_size)
    if isinstance(config, CLIPConfig):
        return CLIPModel(config)
    model = SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(10))
        model.logit_bias.fill_(-10.0)
    return model


def text_inputs(recipe: Recipe, ids: np.ndarray, mask: np.ndarray) -> dict[str, torch.Tensor]:
    """The text tower's inputs, as its ONNX graph takes them (SigLIP: ids only, no attention mask)."""
    import torch

    feeds = {"input_ids": torch.from_numpy(ids)}
    if recipe.family == "clip":
        feeds["attention_mask"] = torch.from_numpy(mask)
    return feeds


# --------------------------------------------------------------------------- data


def pixels_for(img: Image.Image, fmt: str, quality: int, draft: bool, facts: ImageFacts) -> np.ndarray:
    """A picture through the runtime's path: file bytes -> decode -> model_pixels."""
    data = cat.encode(img, fmt, quality=quality)
    decoded = decode(data, min_side=facts.crop_size if draft else None).image
    return model_pixels(decoded, facts)


def _render_train(facts: ImageFacts, job: tuple[int, int, str, str, str]) -> np.ndarray:
    index, seed, obj, color, background = job
    item = cat.Item(obj, color, background)
    r = np.random.default_rng([seed, index, 7])
    img = cat.render(item, RENDER_SIZE, seed=seed * 1_000_003 + index)
    fmt = "jpeg" if r.random() < 0.65 else "png"
    return pixels_for(img, fmt, quality=int(r.integers(75, 97)), draft=r.random() < 0.75, facts=facts)


def _pool_key(jobs: list[tuple[int, int, str, str, str]], facts: ImageFacts) -> str:
    """Cache key of a picture pool: its items plus the pixels of its first pictures, rendered now
    (any change to drawing or preprocessing changes them)."""
    h = hashlib.sha256(repr([j[2:] for j in jobs]).encode())
    for job in jobs[:16]:
        h.update(_render_train(facts, job).tobytes())
    return h.hexdigest()[:12]


def render_pool(
    n: int, seed: int, workers: int, cache_dir: Path | None, facts: ImageFacts
) -> tuple[np.ndarray, list[cat.Item]]:
    """``n`` preprocessed training pictures (float32, N x 3 x size x size) and their items."""
    train_pairs, _ = cat.split()
    items = cat.sample_items(n, seed, pairs=train_pairs)
    jobs = [(i, seed, it.object, it.color, it.background) for i, it in enumerate(items)]
    cache = cache_dir / f"pool-{seed}-{n}-{_pool_key(jobs, facts)}.npy" if cache_dir else None
    if cache and cache.is_file():
        log(f"pool: {n} pictures from cache {cache}")
        return np.load(cache), items
    pool = np.empty((n, 3, facts.crop_size, facts.crop_size), np.float32)
    t0 = time.time()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as procs:
        for i, arr in enumerate(procs.imap(functools.partial(_render_train, facts), jobs, chunksize=64)):
            pool[i] = arr
            if (i + 1) % 2000 == 0 or i + 1 == n:
                log(f"pool: rendered {i + 1}/{n} pictures ({time.time() - t0:.0f}s)")
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, pool)
    return pool, items


def recolor(pix: torch.Tensor, r: np.random.Generator, facts: ImageFacts) -> torch.Tensor:
    """Rotate the hue (random angle) and scale the saturation (0 = grey) of normalised pixels."""
    import torch

    n = pix.shape[0]
    mean = torch.tensor(facts.mean).view(1, 3, 1, 1)
    std = torch.tensor(facts.std).view(1, 3, 1, 1)
    rgb = pix * std + mean
    theta = torch.from_numpy(r.uniform(0, 2 * math.pi, n).astype(np.float32))
    sat = torch.from_numpy(np.where(r.random(n) < 0.25, 0.0, r.uniform(0.4, 1.2, n)).astype(np.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    k = 1 / math.sqrt(3)
    eye, ones = torch.eye(3), torch.full((3, 3), 1 / 3)
    cross = torch.tensor([[0.0, -k, k], [k, 0.0, -k], [-k, k, 0.0]])
    rot = cos[:, None, None] * eye + (1 - cos)[:, None, None] * ones + sin[:, None, None] * cross  # (n, 3, 3)
    out = torch.einsum("nij,njhw->nihw", rot, rgb)
    grey = out.mean(1, keepdim=True)
    out = (grey + sat.view(n, 1, 1, 1) * (out - grey)).clamp(0, 1)
    return (out - mean) / std


# --------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    """The held-out benchmark (``assetlens.catalogue.HeldOut``, the quality tests' metric) in each of the
    recipe's languages, plus zero-shot colour/object/background accuracy of its held-out pictures among
    every item's caption."""

    recipe: Recipe
    held: cat.HeldOut = field(default_factory=cat.HeldOut.build)
    everything: list[cat.Item] = field(default_factory=cat.all_items)

    @cached_property
    def pixels(self) -> np.ndarray:
        """The gallery through the runtime's preprocessing, for the torch model."""
        return np.stack([model_pixels(img, self.recipe.facts) for img in self.held.images])

    def texts(self, language: str) -> tuple[tuple[str, ...], ...]:
        """The full captions, the colour-and-object captions and every item's caption, in ``language``."""
        every = tuple(cat.LANGUAGES[language][0](it) for it in self.everything)
        return self.held.texts_in(language), self.held.short_texts_in(language), every

    def score(
        self, image_emb: np.ndarray, text_emb: np.ndarray, short_emb: np.ndarray, all_emb: np.ndarray | None = None
    ) -> dict[str, float]:
        full = self.held.recall(image_emb, text_emb)
        short = self.held.pair_recall(image_emb, short_emb)
        out = {"r@1": full[1], "r@5": full[5], "short_r@1": short[1], "short_r@5": short[5]}
        if all_emb is not None:
            queries = self.held.queries
            pred = [self.everything[i] for i in np.argmax(image_emb[: len(queries)] @ all_emb.T, axis=1)]
            for attr in ("color", "object", "background"):
                out[attr] = float(
                    np.mean([getattr(p, attr) == getattr(q, attr) for p, q in zip(pred, queries, strict=True)])
                )
        return out

    def report(self, image_emb: np.ndarray, embed_texts: Callable[[list[str]], np.ndarray]) -> str:
        """Each language's scores on one line, the texts embedded by ``embed_texts``."""
        lines = []
        for language in self.recipe.languages:
            scores = self.score(image_emb, *(embed_texts(list(t)) for t in self.texts(language)))
            prefix = f"[{language}] " if len(self.recipe.languages) > 1 else ""
            lines.append(prefix + fmt_scores(scores))
        return "\n  ".join(lines)


def torch_report(model: Any, ev: Evaluation, tokens: Tokens) -> str:
    import torch

    model.eval()
    with torch.no_grad():
        img = model.get_image_features(pixel_values=torch.from_numpy(ev.pixels))
        image = torch.nn.functional.normalize(img, dim=-1).numpy()

        def embed(texts: list[str]) -> np.ndarray:
            emb = model.get_text_features(**text_inputs(ev.recipe, *tokens(texts)))
            return torch.nn.functional.normalize(emb, dim=-1).numpy()

        report = ev.report(image, embed)
    model.train()
    return report


def fmt_scores(s: dict[str, float]) -> str:
    text = (
        f"held-out recall@1 {s['r@1']:.3f} recall@5 {s['r@5']:.3f} | "
        f"colour+object only: recall@1 {s['short_r@1']:.3f} recall@5 {s['short_r@5']:.3f}"
    )
    if "object" in s:
        text += f" | zero-shot colour {s['color']:.2f} object {s['object']:.2f} background {s['background']:.2f}"
    return text


# --------------------------------------------------------------------------- training


def contrastive_loss(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric softmax loss over (images, texts) ``logits`` (already scaled), ``pos`` the targets."""
    i2t = -(pos / pos.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t2i = -(pos / pos.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    return (i2t + t2i) / 2


def sigmoid_loss(logits: torch.Tensor, pos: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
    """SigLIP's loss: a binary cross-entropy per (image, text) pair of ``logits`` (scaled and biased), summed
    and divided by the batch size; ``pos`` are the soft targets, ``ignore`` the pairs left out."""
    import torch

    per_pair = torch.nn.functional.binary_cross_entropy_with_logits(logits, pos, reduction="none")
    return per_pair.masked_fill(ignore, 0.0).sum() / logits.shape[0]


def train(args: argparse.Namespace, recipe: Recipe, tokens: Tokens, ev: Evaluation) -> Any:
    import torch

    torch.manual_seed(args.seed)
    model = new_model(recipe, tokens.tokenizer.get_vocab_size())
    n_params = sum(p.numel() for p in model.parameters())
    table = model.text_model.embeddings.token_embedding.weight
    log(
        f"model: {n_params / 1e6:.2f} M parameters "
        f"(vision {sum(p.numel() for p in model.vision_model.parameters()) / 1e6:.2f} M, "
        f"text {sum(p.numel() for p in model.text_model.parameters()) / 1e6:.2f} M, "
        f"of which token embeddings {table.numel() / 1e6:.2f} M)"
    )

    pool, items = render_pool(
        args.pool, args.seed, args.workers, args.work / "cache" if args.cache else None, recipe.facts
    )
    pool_t = torch.from_numpy(pool)
    attr = {
        name: {v: i for i, v in enumerate(vals)}
        for name, vals in (("color", list(cat.COLORS)), ("object", cat.OBJECTS), ("background", cat.BACKGROUNDS))
    }
    codes = np.array(
        [[attr["color"][it.color], attr["object"][it.object], attr["background"][it.background]] for it in items]
    )
    languages = [LANGUAGES[code] for code in recipe.languages]

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    logit: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if name in ("logit_scale", "logit_bias"):
            logit.append(p)
        else:
            (decay if p.ndim == 2 and "embedding" not in name else no_decay).append(p)
    # The temperature (and SigLIP's bias) start far from where a batch of 128 wants them (SigLIP's -10 suits
    # batches of 32k); at the weights' rate they would barely move in a few thousand steps.
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay, "rate": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "rate": 1.0},
            {"params": logit, "weight_decay": 0.0, "rate": args.logit_lr_scale},
        ],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        fused=True,
    )
    lr: float = args.lr
    steps: int = args.steps
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    r = np.random.default_rng([args.seed, 1])
    t0 = time.time()
    running = 0.0
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step) * g["rate"]
        idx = r.choice(len(items), size=args.batch_size, replace=False)
        # a few pictures are recoloured (random hue and saturation, the whole
        # picture) and captioned by their object only: object features must not
        # depend on the colour
        recolored = r.random(len(idx)) < args.recolor_share
        # each picture's caption language, one at random (no draw for a single language)
        spoken = r.integers(len(languages), size=len(idx)) if len(languages) > 1 else np.zeros(len(idx), int)
        captions, named = zip(
            *(
                (sample_object_caption if rc else sample_caption)(items[i], r, languages[lang])
                for i, rc, lang in zip(idx, recolored, spoken, strict=True)
            ),
            strict=True,
        )
        ids, attn = tokens(list(captions), remember=True)
        pix = pool_t[torch.from_numpy(idx)]
        flip = torch.from_numpy(r.random(len(idx)) < 0.5)
        pix = torch.where(flip[:, None, None, None], pix.flip(-1), pix)
        batch_codes = codes[idx].copy()
        if recolored.any():
            sel = torch.from_numpy(np.flatnonzero(recolored))
            pix[sel] = recolor(pix[sel], r, recipe.facts)
            batch_codes[recolored, 0] = -1  # colour and background no longer known
            batch_codes[recolored, 2] = -1
        masks = np.array(named)
        pos_t = torch.from_numpy(targets(batch_codes, masks, args.partial_credit))
        # a recoloured picture is neither a positive nor a negative for captions naming a colour or background
        ignore = torch.from_numpy(recolored[:, None] & (masks[None, :, 0] | masks[None, :, 2]))

        out = model(**text_inputs(recipe, ids, attn), pixel_values=pix)
        if recipe.family == "clip":
            loss = contrastive_loss(out.logits_per_image.masked_fill(ignore, -1e4), pos_t)
        else:
            loss = sigmoid_loss(out.logits_per_image, pos_t, ignore)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if recipe.family == "clip":
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
        running = loss.item() if step == 0 else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == steps:
            el = time.time() - t0
            bias = f" bias {model.logit_bias.item():.1f}" if recipe.family == "siglip" else ""
            log(
                f"step {step + 1}/{steps} loss {running:.3f} scale {model.logit_scale.exp().item():.1f}{bias} "
                f"lr {lr_at(step):.2e} | {el:.0f}s, eta {el / (step + 1) * (steps - step - 1):.0f}s"
            )
        if (step + 1) % args.eval_every == 0 or step + 1 == steps:
            log("  eval " + torch_report(model, ev, tokens))
    log(f"training: {steps} steps in {time.time() - t0:.0f}s")
    return model


def targets(codes: np.ndarray, masks: np.ndarray, partial_credit: float) -> np.ndarray:
    """Target weights[i, j] of picture i for caption j (the softmax loss normalises each row and column).

    1 when caption j truthfully describes picture i (every attribute it names
    matches: "a red mug" matches every red mug, whatever the background);
    ``partial_credit`` when j names colour, object and background and only the
    background is wrong (so "a red mug on a wooden table" ranks red mugs on
    other backgrounds above red chairs on wooden tables); 0 otherwise.
    ``codes``: (B, 3) colour/object/background indices; ``masks``: (B, 3) which
    of them caption j names.
    """
    same = codes[:, None, :] == codes[None, :, :]  # (pictures, captions, 3)
    named = masks[None, :, :]
    exact = np.all(~named | same, axis=2)
    near = np.all(named, axis=2) & same[..., 0] & same[..., 1] & ~same[..., 2]
    weights: np.ndarray = exact.astype(np.float32) + np.float32(partial_credit) * near.astype(np.float32)
    return weights


def zero_unseen_tokens(model: Any, seen: set[int]) -> int:
    import torch

    emb = model.text_model.embeddings.token_embedding.weight
    keep = torch.zeros(emb.shape[0], dtype=torch.bool)
    keep[sorted(seen)] = True
    with torch.no_grad():
        emb[~keep] = 0.0
    return int(keep.sum())


def save_checkpoint(model: Any, recipe: Recipe, tok_dir: Path, hf_dir: Path) -> None:
    """The model, its image processor and the tokenizer files of ``tok_dir`` as one Hugging Face folder."""
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_dir.mkdir(parents=True)
    model.save_pretrained(hf_dir)
    image = recipe.spec.image
    from PIL.Image import Resampling

    mean, std, resample = list(image.mean), list(image.std), Resampling[image.resample.upper()]
    if recipe.family == "clip":
        processor: Any = CLIPImageProcessor(
            size={"shortest_edge": image.size},
            crop_size={"height": image.size, "width": image.size},
            image_mean=mean,
            image_std=std,
            resample=resample,
        )
    else:
        processor = SiglipImageProcessor(
            size={"height": image.size, "width": image.size}, image_mean=mean, image_std=std, resample=resample
        )
    processor.save_pretrained(hf_dir)
    for file in tok_dir.iterdir():
        shutil.copyfile(file, hf_dir / file.name)


# --------------------------------------------------------------------------- export


def score_exported(directory: Path, ev: Evaluation) -> str:
    enc = Encoder.load(directory, device="cpu")
    return ev.report(enc.encode_images(ev.held.images), enc.encode_texts)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m assetlens.export.train_demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=RECIPES, default=DEMO_MODEL, help="which demo model to train")
    ap.add_argument("--out", type=Path, help="where fp32/ and int8/ are exported (default: engine/data/MODEL)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, help="training steps (default: 3600 for demo, 3000 for demo-siglip)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument(
        "--partial-credit",
        type=float,
        default=0.1,
        help="target weight of a picture whose colour and object match a caption but not its background",
    )
    ap.add_argument(
        "--recolor-share",
        type=float,
        default=0.15,
        help="share of each batch recoloured at random and captioned by the object only",
    )
    ap.add_argument(
        "--logit-lr-scale",
        type=float,
        default=10.0,
        help="learning rate of the temperature (and SigLIP's bias), as a multiple of --lr",
    )
    ap.add_argument("--pool", type=int, default=12000, help="pre-rendered training pictures")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (the weights depend on it bit for bit; the shipped models used 1)",
    )
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the picture pool")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="checkpoint and cache folder (not shipped)")
    ap.add_argument("--no-cache", dest="cache", action="store_false", help="re-render the picture pool")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--no-export", dest="export", action="store_false", help="train and save the checkpoint only")
    ap.add_argument("--export-only", action="store_true", help="export the checkpoint already in --work")
    args = ap.parse_args(argv)
    recipe = recipe_for(args.model)
    args.out = args.out if args.out is not None else DATA_ROOT / recipe.spec.name
    args.steps = args.steps if args.steps is not None else recipe.steps
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    recipe = recipe_for(args.model)
    args.work.mkdir(parents=True, exist_ok=True)
    hf_dir = args.work / recipe.checkpoint
    tok_dir = args.work / ("tokenizer" if recipe.family == "clip" else f"tokenizer-{recipe.spec.name}")
    t_start = time.time()
    write_tokenizer(recipe, tok_dir, args.seed)
    tokens = Tokens(tok_dir / "tokenizer.json", recipe.spec.text)
    ev = Evaluation(recipe)
    log(
        f"held-out benchmark: {len(ev.held.queries)} queries ({len(ev.held.pairs)} unseen colour/object pairs), "
        f"gallery of {len(ev.held.gallery)} pictures; languages {', '.join(recipe.languages)}; "
        f"vocabulary {tokens.tokenizer.get_vocab_size()}"
    )

    if not args.export_only:
        model = train(args, recipe, tokens, ev)
        vocab = tokens.tokenizer.get_vocab_size()
        kept = zero_unseen_tokens(model, tokens.seen)
        log(f"zeroed the token embeddings of {vocab - kept} tokens never seen in training (kept {kept})")
        log("after zeroing: " + torch_report(model, ev, tokens))
        save_checkpoint(model, recipe, tok_dir, hf_dir)
        (args.work / f"train_info-{recipe.spec.name}.json").write_text(
            json.dumps(
                {
                    "model": recipe.spec.name,
                    "seed": args.seed,
                    "steps": args.steps,
                    "batch_size": args.batch_size,
                    "pool": args.pool,
                    "threads": args.threads,
                    "seconds": round(time.time() - t_start),
                    "torch": torch.__version__,
                },
                indent=2,
            )
        )
        log(f"checkpoint: {hf_dir}")
    if not args.export:
        return 0

    for precision in ("fp32", "int8"):
        target = args.out / precision
        if target.exists():
            shutil.rmtree(target)
        if precision == "fp32":
            export_model(hf_dir, out_dir=target, precision=precision, name=recipe.spec.name)
        else:  # from the fp32 graphs, so that the int8 text tower can answer an fp32 library's queries
            quantize_export(args.out / "fp32", target)
        log(f"exported {precision}: {target} ({dir_size(target) / 1e6:.1f} MB)\n  " + score_exported(target, ev))
    log(f"total {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
