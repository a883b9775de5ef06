"""The models AssetLens knows: one frozen ``ModelSpec`` per checkpoint, the shipped demo included.

A spec holds what is known about a model before it is exported (its Hugging Face id, family,
embedding size, preprocessing and text rules, licence, published quality); the manifest written by
``assetlens export`` stays the record the runtime runs from. ``engine.models`` resolves names
through this registry and finds where each entry is exported.

An entry's ``sources`` say where pre-exported ONNX towers of it are published on the Hub
(``assetlens models pull``, ``engine.hub``): the layout, the repository, its commit and the sha256 of
each file, the graphs' input names and token type. The shipped entries' sources name the repositories
their layouts document; their commits, digests and reference vectors were not recorded (this registry
was written without network), so a pull of them refuses unless told to trust the Hub's current files.

Preprocessing facts are those of each checkpoint's ``preprocessor_config.json``,
``tokenizer_config.json`` and ``config.json`` on the Hugging Face Hub. Models whose licence forbids
commercial use (jina-clip-v2: CC-BY-NC-4.0; Apple MobileCLIP: research-only) are left out.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Family = Literal["clip", "siglip"]
Resize = Literal["shortest-edge-crop", "squash"]
Padding = Literal["longest", "max-length"]
Layout = Literal["immich", "onnx-community", "fastembed"]
TokenDtype = Literal["int64", "int32"]

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEMO_MODEL = "demo"
DEMO_SIGLIP_MODEL = "demo-siglip"

FAMILY_LABELS: dict[Family, str] = {"clip": "CLIP", "siglip": "SigLIP"}
# Zero-shot prompt per family: CLIP's paper prompt; the one SigLIP's Hugging Face docs use,
# lower-cased as SigLIP's text always is.
PROMPTS: dict[Family, str] = {"clip": "a photo of a {}.", "siglip": "this is a photo of {}."}
#: Cosine similarity above which two images are one shot (``engine.duplicates``), per family: measured with
#: each family's demo model on the generated set of tests/test_duplicates.py (an image with five variants:
#: resized, recompressed, cropped, colour-graded, watermarked), where the CLIP demo groups at precision 0.998
#: and recall 0.989 and the SigLIP demo, whose near copies score lower, at 1.000 and 0.956 (README); at 0.88
#: its recall is 0.967, but it pairs two distinct products of the 200-image demo catalogue, at 0.90 none.
DUPLICATE_THRESHOLDS: dict[Family, float] = {"clip": 0.96, "siglip": 0.90}

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

OPEN_CLIP = "open_clip results tables (zero-shot ImageNet-1k, COCO 5k retrieval)"
BIG_VISION = "big_vision SigLIP 2 README"


@dataclass(frozen=True)
class ImageSpec:
    """How pixels become the vision tower's input.

    ``shortest-edge-crop`` resizes the shortest side to ``size`` and centre-crops a square
    (CLIPImageProcessor); ``squash`` resizes straight to ``size`` x ``size`` without keeping the aspect
    ratio (SiglipImageProcessor)."""

    size: int
    resize: Resize
    resample: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class TextSpec:
    """How a query becomes the text tower's input.

    ``longest`` pads a batch to its longest text (CLIP pools at the end-of-text token, so padding is
    invisible); ``max-length`` pads every text to ``context_length`` with ``pad_token_id``, as SigLIP
    was trained (its text tower pools the last position, which is padding for short texts).
    ``lowercase``: the reference lower-cases text (CLIP's BPE does it itself; SigLIP's card asks for it).
    ``canonicalize``: the reference also removes ASCII punctuation and collapses whitespace before
    tokenising (SigLIP's SiglipTokenizer, ``engine.tokens.canonicalizer``); a pulled ``tokenizer.json``
    is given that step, an exported one has it from the conversion (``export.siglip_tokenizer``)."""

    context_length: int
    padding: Padding
    pad_token_id: int
    lowercase: bool = True
    padding_side: Literal["left", "right"] = "right"
    canonicalize: bool = False


@dataclass(frozen=True)
class Quality:
    """Published zero-shot figures, in percent."""

    imagenet_top1: float
    coco_text_to_image_r1: float
    source: str


@dataclass(frozen=True)
class RepoPin:
    """One Hugging Face Hub repository at one commit, with the sha256 of each file taken from it.

    ``revision`` is a full commit hash and ``sha256`` maps repository paths to digests; either being
    absent means the pin was not recorded, and ``assetlens models pull`` then refuses the files unless
    told to trust and record what the Hub serves now."""

    repo: str
    revision: str | None = None
    sha256: tuple[tuple[str, str], ...] = ()

    def digest(self, path: str) -> str | None:
        return dict(self.sha256).get(path)


@dataclass(frozen=True)
class Reference:
    """What a pulled model's self-check must reproduce: the unit vectors of the fixed image and its mirror
    (``engine.hub.self_check_image``) and of ``engine.hub.SELF_CHECK_CAPTIONS``, row after row; ``how``
    says where they were measured."""

    image: tuple[float, ...]
    text: tuple[float, ...]
    how: str


@dataclass(frozen=True)
class Source:
    """Where pre-exported ONNX towers of an entry are published, and how to run them.

    ``layout`` names the adapter (``engine.sources``) that knows where the repository keeps its files and
    its preprocessing; ``text_repo`` is the text tower's repository when the towers are split (fastembed).
    ``image_output``/``text_output`` None: the graph's first output. ``padding`` None: the entry's own rule;
    ``max-length`` for graphs whose token input has a fixed length. ``normalised``: whether the graphs
    return unit vectors (None: not checked; the runtime normalises either way). ``reference`` None: none
    published, and the self-check after a pull only checks shapes, finiteness and normalisation."""

    layout: Layout
    repo: RepoPin
    image_input: str
    image_output: str | None
    text_input: str
    text_output: str | None
    token_dtype: TokenDtype
    precisions: tuple[str, ...]
    text_repo: RepoPin | None = None
    padding: Padding | None = None
    normalised: bool | None = None
    reference: Reference | None = None
    note: str = ""

    @property
    def repos(self) -> tuple[RepoPin, ...]:
        return (self.repo,) if self.text_repo is None else (self.repo, self.text_repo)


@dataclass(frozen=True)
class ModelSpec:
    """One known model. ``hf_id`` is None for a model trained here; ``shipped`` ones live in the
    package data folder at ``precisions``, the others in the model cache once exported."""

    name: str
    hf_id: str | None
    family: Family
    dim: int
    image: ImageSpec
    text: TextSpec
    licence: str
    quality: Quality | None = None
    precisions: tuple[str, ...] = PRECISIONS
    shipped: bool = False
    sources: tuple[Source, ...] = ()  # pre-exported ONNX on the Hub, in order of preference
    own_prompt: str | None = None  # for a model trained on captions its family's prompt does not match

    @property
    def family_label(self) -> str:
        return FAMILY_LABELS[self.family]

    @property
    def prompt(self) -> str:
        """The zero-shot prompt template, with ``{}`` for the label."""
        return self.own_prompt or PROMPTS[self.family]

    @property
    def default(self) -> bool:
        return self.hf_id == DEFAULT_MODEL


@dataclass(frozen=True)
class Recommendation:
    """Which model (and precision) suits which machine."""

    machine: str
    model: str
    precision: str
    why: str


def _clip_image(size: int) -> ImageSpec:
    return ImageSpec(size, "shortest-edge-crop", "bicubic", OPENAI_MEAN, OPENAI_STD)


def _siglip_image(size: int, resample: str) -> ImageSpec:
    return ImageSpec(size, "squash", resample, HALF, HALF)


# pad = "<|endoftext|>" (49407) in the OpenAI and LAION tokenizer configs; 77 = max_position_embeddings.
CLIP_TEXT = TextSpec(context_length=77, padding="longest", pad_token_id=49407)
# SigLIP: T5 sentencepiece, pad = "</s>" (1), model_max_length 64, do_lower_case (tokenizer_config.json); its
# SiglipTokenizer also removes ASCII punctuation and collapses whitespace (immich's clean_text does too).
SIGLIP_TEXT = TextSpec(context_length=64, padding="max-length", pad_token_id=1, canonicalize=True)
# SigLIP 2: Gemma tokenizer, pad = "<pad>" (0), fixed padding to 64 (tokenizer.json; the model card
# asks for padding="max_length", max_length=64 and lower-cased text).
SIGLIP2_TEXT = TextSpec(context_length=64, padding="max-length", pad_token_id=0)
# The SigLIP demo: its own Unigram tokenizer (<pad> = 0, lower-casing in its normalizer); its longest
# caption is 17 tokens, so 32 positions leave room.
DEMO_SIGLIP_TEXT = TextSpec(context_length=32, padding="max-length", pad_token_id=0)

IMMICH_NOTE = (
    "immich-app's open_clip exports (machine-learning/export in immich-app/immich): int32 `text` padded to the "
    "context length; outputs and normalisation not checked here"
)
HF_ONNX_NOTE = "transformers.js / optimum exports: Hugging Face IO names; normalisation not checked here"


def _pinned(repo: str | RepoPin) -> RepoPin:
    """A repository as given: pinned already, or by name (no pins recorded)."""
    return repo if isinstance(repo, RepoPin) else RepoPin(repo)


def immich(repo: str | RepoPin, note: str = IMMICH_NOTE) -> Source:
    """An immich-app repository: ``visual/model.onnx`` takes ``image``, ``textual/model.onnx`` takes int32
    ``text`` of the fixed context length; fp32 only."""
    pin = _pinned(repo)
    return Source("immich", pin, "image", None, "text", None, "int32", ("fp32",), padding="max-length", note=note)


def onnx_community(repo: str | RepoPin, note: str = HF_ONNX_NOTE) -> Source:
    """An onnx-community or Xenova repository: ``onnx/vision_model*.onnx`` and ``onnx/text_model*.onnx`` with
    Hugging Face's input and output names, in fp32, fp16 and a quantised variant."""
    pin = _pinned(repo)
    return Source(
        "onnx-community",
        pin,
        "pixel_values",
        "image_embeds",
        "input_ids",
        "text_embeds",
        "int64",
        PRECISIONS,
        note=note,
    )


def fastembed(vision: str | RepoPin, text: str | RepoPin, note: str = HF_ONNX_NOTE) -> Source:
    """A Qdrant (fastembed) pair: a vision repository and a text repository, each with ``model.onnx``."""
    image_pin = _pinned(vision)
    text_pin = _pinned(text)
    return Source(
        "fastembed",
        image_pin,
        "pixel_values",
        "image_embeds",
        "input_ids",
        "text_embeds",
        "int64",
        ("fp32",),
        text_repo=text_pin,
        note=note,
    )


MODELS: tuple[ModelSpec, ...] = (
    # Trained by assetlens.export.train_demo on the generated catalogue; its facts are its shipped manifest's.
    ModelSpec(
        DEMO_MODEL,
        None,
        "clip",
        64,
        _clip_image(64),
        CLIP_TEXT,
        "MIT",
        precisions=("fp32", "int8"),
        shipped=True,
        # Its captions never end in a period ("a photo of a red mug"). Chosen on catalogues of other seeds
        # than the demo's: the object kind is the top tag for 95-97.5 % of them with this prompt, 89.5-91 %
        # with CLIP's "a photo of a {}.".
        own_prompt="a photo of a {}",
    ),
    # The same, SigLIP-shaped (sigmoid loss, squash, mean/std 0.5, fixed-length text) and bilingual
    # (English and Indonesian captions).
    ModelSpec(
        DEMO_SIGLIP_MODEL,
        None,
        "siglip",
        96,
        _siglip_image(64, "bicubic"),
        DEMO_SIGLIP_TEXT,
        "MIT",
        precisions=("fp32", "int8"),
        shipped=True,
        # Trained on the same captions as the CLIP demo: with SigLIP's "this is a photo of {}." the object
        # kind is the top tag for 88.5 % of the catalogues of seeds 1 and 2 (the demo catalogue is seed 0),
        # and the colour for 71.5-73 %; with this for 95-96.5 % and 93-94 %.
        own_prompt="a photo of a {}",
    ),
    # CLIP: projection_dim in config.json; shortest_edge/crop_size 224, resample 3 (bicubic), OpenAI mean/std
    # in preprocessor_config.json.
    ModelSpec(
        "clip-vit-base-patch32",
        DEFAULT_MODEL,
        "clip",
        512,
        _clip_image(224),
        CLIP_TEXT,
        "MIT",
        Quality(63.3, 30.4, OPEN_CLIP),
        sources=(
            immich("immich-app/ViT-B-32__openai"),
            fastembed("Qdrant/clip-ViT-B-32-vision", "Qdrant/clip-ViT-B-32-text"),
            onnx_community("Xenova/clip-vit-base-patch32"),
        ),
    ),
    ModelSpec(
        "clip-vit-b-32-laion2b",
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "clip",
        512,
        _clip_image(224),
        CLIP_TEXT,
        "MIT",
        Quality(66.6, 39.3, OPEN_CLIP),
        sources=(immich("immich-app/ViT-B-32__laion2b-s34b-b79k"),),
    ),
    ModelSpec(
        "clip-vit-large-patch14",
        "openai/clip-vit-large-patch14",
        "clip",
        768,
        _clip_image(224),
        CLIP_TEXT,
        "MIT",
        Quality(75.5, 36.5, OPEN_CLIP),
        sources=(immich("immich-app/ViT-L-14__openai"), onnx_community("Xenova/clip-vit-large-patch14")),
    ),
    # SigLIP: hidden_size is the embedding size (config.json); preprocessor_config.json squashes to
    # size {height, width} with mean/std 0.5, resample 3 (bicubic) for SigLIP and 2 (bilinear) for SigLIP 2
    # (read on siglip2-base-patch16-224 and -512; the fixed-resolution SigLIP 2 releases share that config).
    ModelSpec(
        "siglip-base-patch16-224",
        "google/siglip-base-patch16-224",
        "siglip",
        768,
        _siglip_image(224, "bicubic"),
        SIGLIP_TEXT,
        "Apache-2.0",
        Quality(76.0, 47.8, BIG_VISION),
        sources=(immich("immich-app/ViT-B-16-SigLIP__webli"), onnx_community("Xenova/siglip-base-patch16-224")),
    ),
    ModelSpec(
        "siglip2-base-patch32-256",
        "google/siglip2-base-patch32-256",
        "siglip",
        768,
        _siglip_image(256, "bilinear"),
        SIGLIP2_TEXT,
        "Apache-2.0",
        Quality(74.0, 47.2, BIG_VISION),
        sources=(immich("immich-app/ViT-B-32-SigLIP2-256__webli"),),
    ),
    ModelSpec(
        "siglip2-base-patch16-224",
        "google/siglip2-base-patch16-224",
        "siglip",
        768,
        _siglip_image(224, "bilinear"),
        SIGLIP2_TEXT,
        "Apache-2.0",
        Quality(78.2, 52.1, BIG_VISION),
        sources=(immich("immich-app/ViT-B-16-SigLIP2__webli"),),
    ),
    ModelSpec(
        "siglip2-so400m-patch14-384",
        "google/siglip2-so400m-patch14-384",
        "siglip",
        1152,
        _siglip_image(384, "bilinear"),
        SIGLIP2_TEXT,
        "Apache-2.0",
        Quality(84.1, 55.8, BIG_VISION),
        sources=(immich("immich-app/ViT-SO400M-14-SigLIP2-384__webli"),),
    ),
)

RECOMMENDATIONS: tuple[Recommendation, ...] = (
    Recommendation(
        "a small CPU laptop", "clip-vit-base-patch32", "int8", "fast, and 512-d vectors keep the library small"
    ),
    Recommendation(
        "the best retrieval, or queries in other languages",
        "siglip2-base-patch16-224",
        "fp32",
        "SigLIP 2 is multilingual and recalls best among the base-size models",
    ),
    Recommendation("a CUDA GPU", "siglip2-so400m-patch14-384", "fp16", "the most accurate entry, too heavy for a CPU"),
    Recommendation("trying AssetLens offline", DEMO_MODEL, "fp32", "ships in the package; knows only its catalogue"),
)


def find_model(name: str) -> ModelSpec | None:
    """The entry whose short name or Hugging Face id is ``name`` (case-insensitive), if any."""
    wanted = name.strip().lower()
    return next((m for m in MODELS if wanted in (m.name.lower(), (m.hf_id or "").lower())), None)


def model_family(name: str, resize: str) -> Family:
    """A model's family: its entry's, else SigLIP-shaped when its preprocessing squashes (``resize``)."""
    spec = find_model(name)
    if spec is not None:
        return spec.family
    return "siglip" if resize == "squash" else "clip"


def close_matches(name: str, limit: int = 3) -> list[str]:
    """Short names of the entries ``name`` most likely meant: those containing it, then difflib's."""
    wanted = name.strip().lower()
    by_key = {key.lower(): m.name for m in MODELS for key in (m.name, m.hf_id) if key}
    containing = [short for key, short in by_key.items() if wanted and wanted in key]
    similar = [by_key[key] for key in difflib.get_close_matches(wanted, by_key, n=limit, cutoff=0.6)]
    return list(dict.fromkeys(containing + similar))[:limit]


def canonical_name(name: str) -> str:
    """How a model name is recorded: a registry entry by its Hugging Face id (its short name when it has
    none), so that both spellings mean the same model; any other name as given."""
    spec = find_model(name)
    return (spec.hf_id or spec.name) if spec is not None else name
