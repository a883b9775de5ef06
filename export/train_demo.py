"""Train the small demo CLIP that ships in ``engine/data/demo`` and export it.

    python -m assetlens.export.train_demo [--out engine/data/demo] [--seed 0] [--steps 2400] [--threads 1]

Real CLIP weights cannot be downloaded offline (or in CI), and random weights
make search meaningless, so AssetLens ships a *small* CLIP trained here on the
synthetic product catalogue of ``assetlens.catalogue``. It exercises everything
a real model does (CLIP's real BPE tokenizer and vocabulary, the runtime's own
image preprocessing, the ONNX export, int8 quantisation, normalisation) and
gives ``assetlens demo`` sensible answers.

Recipe (seeded: the same seed, code, library versions, CPU type and
``--threads`` give bit-identical weights; another thread count gives a model
of the same quality but different bits):

1. Tokenizer: CLIP's real tokenizer (``export.clip_tokenizer``), 49408 tokens,
   applied by the runtime's own ``engine.tokens``.
2. Data: a pool of 12000 catalogue pictures of the *training* (colour,
   object) pairs (``assetlens.catalogue.split``; held-out pairs are never
   rendered here), each rendered at 256 px, saved as JPEG or PNG bytes and
   read back through the runtime's own ``engine.preprocess.decode`` and
   ``model_pixels`` (64 px, CLIP mean/std), as the indexer does. Random
   horizontal flips. The pool is cached under ``--work`` (keyed by its items
   and the pixels of its first pictures, so any change to drawing or
   preprocessing re-renders it).
3. Captions: a random template per picture: half name colour, object and
   background ("a red mug on a wooden table", synonyms included), about a
   quarter colour and object only ("a red mug"), the rest one or two
   attributes ("a mug", "something red on a gray background"). 15% of the
   pictures are recoloured (random hue rotation and saturation, the whole
   picture) and captioned by their object only, so object features cannot
   lean on colour.
4. Model: ``transformers.CLIPModel`` from a ``CLIPConfig`` (``model_config``):
   ViT 64 px / patch 8, width 96, 4 layers, 4 heads; text width 16, 4 layers,
   2 heads, 77 positions, vocabulary 49408; projection 64. The text width is
   small on purpose: its 49408-row token table is most of the shipped bytes.
5. Loss: CLIP's symmetric contrastive loss with a learnt temperature, where
   every caption that truthfully describes a picture in the batch is a
   positive for it ("a red mug" is true of every red mug in the batch,
   whatever the background), a full caption gives 0.1 credit to pictures
   that only miss its background (so red mugs elsewhere outrank red chairs on
   the right table), and recoloured pictures are left out for captions
   naming a colour or background. AdamW, lr 1e-3, warm-up then cosine,
   batch 128, 2400 steps.
6. Held-out recall (queries about unseen colour/object pairs, see
   ``assetlens.catalogue.HeldOut``, the metric of tests/test_demo_model.py) is
   printed during training, with zero-shot colour/object/background accuracy.
7. Token-embedding rows of tokens never seen in training (all but ~55) are
   set to zero after training: they were never trained, and zero rows make
   the shipped ONNX files compress well in git and in wheels. An unknown word
   in a query therefore contributes only its position.
8. The checkpoint is saved as a Hugging Face folder (weights, a
   ``CLIPImageProcessor`` for 64 px and the tokenizer files) under ``--work``
   (default: a folder in the system temp dir, never shipped) and exported with
   ``export.onnx_export.export_model`` to ``<out>/fp32`` and ``<out>/int8``;
   the exported models are then scored through the runtime
   (``engine.encoders.Encoder``).

One thread is the default because it is what the shipped model was trained
with (and on a shared two-core machine it is also the fastest); ``--threads 2``
is quicker on an idle machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from assetlens import catalogue as cat
from assetlens.engine.encoders import Encoder
from assetlens.engine.models import ImageFacts
from assetlens.engine.preprocess import decode, model_pixels
from assetlens.engine.registry import OPENAI_MEAN, OPENAI_STD
from assetlens.engine.tokens import load_tokenizer, tokenize
from assetlens.export.clip_tokenizer import write_clip_tokenizer
from assetlens.export.onnx_export import export_model

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from transformers import CLIPConfig, CLIPModel

IMAGE_SIZE = 64
RENDER_SIZE = 256
FACTS = ImageFacts(
    file="image.onnx",
    input_name="pixel_values",
    output_name="image_embeds",
    resize_shortest_edge=IMAGE_SIZE,
    crop_size=IMAGE_SIZE,
    mean=OPENAI_MEAN,
    std=OPENAI_STD,
    resample="bicubic",
)
BOS_ID, EOS_ID, VOCAB_SIZE, CONTEXT_LENGTH = 49406, 49407, 49408, 77
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "engine" / "data" / "demo"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "assetlens-train-demo"

# Partial captions (which attributes they name: colour, object, background).
PARTIAL_TEMPLATES: tuple[tuple[str, tuple[bool, bool, bool]], ...] = (
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
# Share of captions naming all three attributes / colour and object / fewer.
# Partial captions ("a handbag", "something red") teach colour-independent
# object features and object-independent colour features, which is what
# lets the model handle unseen colour/object pairs.
FULL_SHARE, SHORT_SHARE = 0.5, 0.22
FULL_TEMPLATES = tuple(t for t in cat.CAPTION_TEMPLATES if "{bg}" in t or "{background}" in t)
SHORT_TEMPLATES = tuple(t for t in cat.CAPTION_TEMPLATES if t not in FULL_TEMPLATES)


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- model


def model_config() -> CLIPConfig:
    from transformers import CLIPConfig

    text = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=16,  # small on purpose: the token table (49408 x width) dominates the files
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,  # pool at the first <|endoftext|>
        pad_token_id=EOS_ID,
    )
    vision = dict(
        image_size=IMAGE_SIZE,
        patch_size=8,
        hidden_size=96,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_channels=3,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)  # type: ignore[no-untyped-call, unused-ignore]


# --------------------------------------------------------------------------- data


def pixels_for(img: Image.Image, fmt: str, quality: int, draft: bool) -> np.ndarray:
    """A picture through the runtime's path: file bytes -> decode -> model_pixels."""
    data = cat.encode(img, fmt, quality=quality)
    decoded = decode(data, min_side=IMAGE_SIZE if draft else None).image
    return model_pixels(decoded, FACTS)


def _render_train(job: tuple[int, int, str, str, str]) -> np.ndarray:
    index, seed, obj, color, background = job
    item = cat.Item(obj, color, background)
    r = np.random.default_rng([seed, index, 7])
    img = cat.render(item, RENDER_SIZE, seed=seed * 1_000_003 + index)
    fmt = "jpeg" if r.random() < 0.65 else "png"
    return pixels_for(img, fmt, quality=int(r.integers(75, 97)), draft=r.random() < 0.75)


def _pool_key(jobs: list[tuple[int, int, str, str, str]]) -> str:
    """Cache key of a picture pool: its items plus the pixels of its first pictures, rendered now
    (any change to drawing or preprocessing changes them)."""
    h = hashlib.sha256(repr([j[2:] for j in jobs]).encode())
    for job in jobs[:16]:
        h.update(_render_train(job).tobytes())
    return h.hexdigest()[:12]


def render_pool(n: int, seed: int, workers: int, cache_dir: Path | None) -> tuple[np.ndarray, list[cat.Item]]:
    """``n`` preprocessed training pictures (float32, N x 3 x 64 x 64) and their items."""
    train_pairs, _ = cat.split()
    items = cat.sample_items(n, seed, pairs=train_pairs)
    jobs = [(i, seed, it.object, it.color, it.background) for i, it in enumerate(items)]
    cache = cache_dir / f"pool-{seed}-{n}-{_pool_key(jobs)}.npy" if cache_dir else None
    if cache and cache.is_file():
        log(f"pool: {n} pictures from cache {cache}")
        return np.load(cache), items
    pool = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    t0 = time.time()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as procs:
        for i, arr in enumerate(procs.imap(_render_train, jobs, chunksize=64)):
            pool[i] = arr
            if (i + 1) % 2000 == 0 or i + 1 == n:
                log(f"pool: rendered {i + 1}/{n} pictures ({time.time() - t0:.0f}s)")
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, pool)
    return pool, items


def sample_noun(item: cat.Item, r: np.random.Generator) -> str:
    """The object's name, or now and then one of its synonyms."""
    if cat.SYNONYMS[item.object] and r.random() < 0.2:
        return str(r.choice(cat.SYNONYMS[item.object]))
    return item.object


def with_article(noun: str) -> str:
    """ "a handbag", "an orange", "sunglasses"."""
    return noun if noun in cat.PLURAL_OBJECTS else f"{cat.article(noun)} {noun}"


def sample_caption(item: cat.Item, r: np.random.Generator) -> tuple[str, tuple[bool, bool, bool]]:
    """A random caption for ``item`` and which attributes it names."""
    noun = sample_noun(item, r)
    background = item.background
    if r.random() < 0.15:
        background = str(r.choice(cat.BACKGROUND_SYNONYMS[item.background]))
    u = r.random()
    if u < FULL_SHARE:
        return item.caption(str(r.choice(FULL_TEMPLATES)), noun, background), (True, True, True)
    if u < FULL_SHARE + SHORT_SHARE:
        return item.caption(str(r.choice(SHORT_TEMPLATES)), noun, background), (True, True, False)
    template, mask = PARTIAL_TEMPLATES[int(r.integers(len(PARTIAL_TEMPLATES)))]
    text = template.format(
        color=item.color,
        article_color=cat.article(item.color),
        thing_noun=with_article(noun),
        bg=f"{cat.article(background)} {background}",
        background=background,
    )
    return text, mask


OBJECT_TEMPLATES = ("{thing_noun}", "a photo of {thing_noun}", "a product photo of {thing_noun}")


def sample_object_caption(item: cat.Item, r: np.random.Generator) -> tuple[str, tuple[bool, bool, bool]]:
    """A caption naming only the object ("a handbag"), for recoloured pictures."""
    noun = sample_noun(item, r)
    return str(r.choice(OBJECT_TEMPLATES)).format(thing_noun=with_article(noun)), (False, True, False)


def recolor(pix: torch.Tensor, r: np.random.Generator) -> torch.Tensor:
    """Rotate the hue (random angle) and scale the saturation (0 = grey) of normalised CLIP pixels."""
    import torch

    n = pix.shape[0]
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
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


class Tokens:
    """The runtime's tokenisation (``engine.tokens``) of the tokenizer being shipped, remembering every
    token id it has produced for ``remember=True`` batches (the others are zeroed after training)."""

    def __init__(self, tokenizer_json: Path) -> None:
        self.tokenizer: Tokenizer = load_tokenizer(tokenizer_json, CONTEXT_LENGTH)
        self.seen: set[int] = set()

    def __call__(self, texts: list[str], remember: bool = False) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = tokenize(self.tokenizer, texts, EOS_ID)
        if remember:
            self.seen.update(ids[mask == 1].tolist())
        return ids, mask


# --------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    """The held-out benchmark (``assetlens.catalogue.HeldOut``, the quality test's metric), plus
    zero-shot colour/object/background accuracy of its held-out pictures among every item's caption."""

    held: cat.HeldOut = field(default_factory=cat.HeldOut.build)
    everything: list[cat.Item] = field(default_factory=cat.all_items)

    @cached_property
    def pixels(self) -> np.ndarray:
        """The gallery through the runtime's preprocessing, for the torch model."""
        return np.stack([model_pixels(img, FACTS) for img in self.held.images])

    @cached_property
    def all_texts(self) -> list[str]:
        return [it.caption() for it in self.everything]

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


def torch_embeddings(model: CLIPModel, ev: Evaluation, tokens: Tokens) -> list[np.ndarray]:
    import torch

    model.eval()  # type: ignore[no-untyped-call, unused-ignore]
    with torch.no_grad():
        img = model.get_image_features(pixel_values=torch.from_numpy(ev.pixels))
        out = [torch.nn.functional.normalize(img, dim=-1).numpy()]
        for texts in (ev.held.texts, ev.held.short_texts, ev.all_texts):
            ids, mask = tokens(list(texts))
            emb = model.get_text_features(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    model.train()
    return out


def fmt_scores(s: dict[str, float]) -> str:
    text = (
        f"held-out recall@1 {s['r@1']:.3f} recall@5 {s['r@5']:.3f} | "
        f"colour+object only: recall@1 {s['short_r@1']:.3f} recall@5 {s['short_r@5']:.3f}"
    )
    if "object" in s:
        text += f" | zero-shot colour {s['color']:.2f} object {s['object']:.2f} background {s['background']:.2f}"
    return text


# --------------------------------------------------------------------------- training


def train(args: argparse.Namespace, tokens: Tokens, ev: Evaluation) -> CLIPModel:
    import torch
    from transformers import CLIPModel

    torch.manual_seed(args.seed)
    model = CLIPModel(model_config())
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"model: {n_params / 1e6:.2f} M parameters "
        f"(vision {sum(p.numel() for p in model.vision_model.parameters()) / 1e6:.2f} M, "
        f"text {sum(p.numel() for p in model.text_model.parameters()) / 1e6:.2f} M, "
        f"of which token embeddings {VOCAB_SIZE * model.config.text_config.hidden_size / 1e6:.2f} M)"
    )

    pool, items = render_pool(args.pool, args.seed, args.workers, args.work / "cache" if args.cache else None)
    pool_t = torch.from_numpy(pool)
    attr = {
        name: {v: i for i, v in enumerate(vals)}
        for name, vals in (("color", list(cat.COLORS)), ("object", cat.OBJECTS), ("background", cat.BACKGROUNDS))
    }
    codes = np.array(
        [[attr["color"][it.color], attr["object"][it.object], attr["background"][it.background]] for it in items]
    )

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and "embedding" not in name else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
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
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = r.choice(len(items), size=args.batch_size, replace=False)
        # a few pictures are recoloured (random hue and saturation, the whole
        # picture) and captioned by their object only: object features must not
        # depend on the colour
        recolored = r.random(len(idx)) < args.recolor_share
        captions, named = zip(
            *(
                sample_object_caption(items[i], r) if rc else sample_caption(items[i], r)
                for i, rc in zip(idx, recolored, strict=True)
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
            pix[sel] = recolor(pix[sel], r)
            batch_codes[recolored, 0] = -1  # colour and background no longer known
            batch_codes[recolored, 2] = -1
        masks = np.array(named)
        pos_t = torch.from_numpy(targets(batch_codes, masks, args.partial_credit))
        # a recoloured picture is neither a positive nor a negative for captions naming a colour or background
        ignore = torch.from_numpy(recolored[:, None] & (masks[None, :, 0] | masks[None, :, 2]))

        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(attn), pixel_values=pix)
        logits = out.logits_per_image.masked_fill(ignore, -1e4)  # (images, texts), already scaled
        i2t = -(pos_t / pos_t.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        t2i = -(pos_t / pos_t.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
        loss = (i2t + t2i) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running = loss.item() if step == 0 else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            el = time.time() - t0
            log(
                f"step {step + 1}/{args.steps} loss {running:.3f} scale {model.logit_scale.exp().item():.1f} "
                f"lr {lr_at(step):.2e} | {el:.0f}s, eta {el / (step + 1) * (args.steps - step - 1):.0f}s"
            )
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            log("  eval " + fmt_scores(ev.score(*torch_embeddings(model, ev, tokens))))
    log(f"training: {args.steps} steps in {time.time() - t0:.0f}s")
    return model


def targets(codes: np.ndarray, masks: np.ndarray, partial_credit: float) -> np.ndarray:
    """Target weights[i, j] of picture i for caption j (each row and column is normalised by the loss).

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


def zero_unseen_tokens(model: CLIPModel, seen: set[int]) -> int:
    import torch

    emb = model.text_model.embeddings.token_embedding.weight
    keep = torch.zeros(emb.shape[0], dtype=torch.bool)
    keep[sorted(seen)] = True
    with torch.no_grad():
        emb[~keep] = 0.0
    return int(keep.sum())


def save_checkpoint(model: CLIPModel, hf_dir: Path) -> None:
    from transformers import CLIPImageProcessor

    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_dir.mkdir(parents=True)
    model.save_pretrained(hf_dir)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=list(OPENAI_MEAN),
        image_std=list(OPENAI_STD),
    ).save_pretrained(hf_dir)
    write_clip_tokenizer(hf_dir)


# --------------------------------------------------------------------------- export


def score_exported(directory: Path, ev: Evaluation) -> dict[str, float]:
    enc = Encoder.load(directory, device="cpu")
    image = enc.encode_images(ev.held.images)
    texts = (ev.held.texts, ev.held.short_texts, ev.all_texts)
    return ev.score(image, *(enc.encode_texts(t) for t in texts))


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m assetlens.export.train_demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where fp32/ and int8/ are exported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2400)
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
    ap.add_argument("--pool", type=int, default=12000, help="pre-rendered training pictures")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (the weights depend on it bit for bit; the shipped model used 1)",
    )
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the picture pool")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="checkpoint and cache folder (not shipped)")
    ap.add_argument("--no-cache", dest="cache", action="store_false", help="re-render the picture pool")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--no-export", dest="export", action="store_false", help="train and save the checkpoint only")
    ap.add_argument("--export-only", action="store_true", help="export the checkpoint already in --work")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    hf_dir = args.work / "assetlens-demo-clip"
    tok_dir = args.work / "tokenizer"
    t_start = time.time()
    write_clip_tokenizer(tok_dir)
    tokens = Tokens(tok_dir / "tokenizer.json")
    ev = Evaluation()
    log(
        f"held-out benchmark: {len(ev.held.queries)} queries ({len(ev.held.pairs)} unseen colour/object pairs), "
        f"gallery of {len(ev.held.gallery)} pictures"
    )

    if not args.export_only:
        model = train(args, tokens, ev)
        kept = zero_unseen_tokens(model, tokens.seen)
        log(f"zeroed the token embeddings of {VOCAB_SIZE - kept} tokens never seen in training (kept {kept})")
        log("after zeroing: " + fmt_scores(ev.score(*torch_embeddings(model, ev, tokens))))
        save_checkpoint(model, hf_dir)
        (args.work / "train_info.json").write_text(
            json.dumps(
                {
                    "seed": args.seed,
                    "steps": args.steps,
                    "batch_size": args.batch_size,
                    "pool": args.pool,
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
        export_model(hf_dir, out_dir=target, precision=precision, name="demo")
        scores = score_exported(target, ev)
        log(f"exported {precision}: {target} ({dir_size(target) / 1e6:.1f} MB) | " + fmt_scores(scores))
    log(f"total {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
