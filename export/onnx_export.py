"""Export a Hugging Face CLIP or SigLIP checkpoint to the ONNX model folder AssetLens runs.

The folder holds two graphs (``image.onnx``, ``text.onnx``) that return
L2-normalised embeddings, the tokenizer, and a ``manifest.json``
(``engine.manifest.ModelManifest``) recording preprocessing, file hashes,
library versions and how closely the graphs match PyTorch, on which CPU.

SigLIP means ``SiglipModel`` checkpoints, the fixed-resolution SigLIP 2 releases
included (they load as SigLIP models); SigLIP 2 NaFlex (``Siglip2Model``) is
refused. Steps: load the towers with transformers -> export each with
``optimum.exporters.onnx.export_models`` using the declarative specs in
``export.specs`` -> apply ONNX Runtime's basic (provider-independent) graph
optimisations offline -> convert to fp16 or int8 if asked -> compare with
PyTorch on real or synthetic images and captions -> write the folder
atomically. ``quantize_export`` derives the int8 folder from an fp32 export
the same way, without PyTorch or the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from assetlens.engine.cpu import this_cpu
from assetlens.engine.errors import ExportError
from assetlens.engine.manifest import ImageFacts, Int8Recipe, ModelManifest, Parity, TextFacts, file_sha256
from assetlens.engine.models import MANIFEST_FILE, PRECISIONS, ModelFacts, export_dir_for, load_facts
from assetlens.engine.registry import FAMILY_LABELS, Family, ModelSpec, Padding, Resize, find_model

IMAGE_FILE = "image.onnx"
TEXT_FILE = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"
FP32_MIN_COSINE = 0.9999
# fp16/int8 are expected to lose a little; below this the conversion is broken.
REDUCED_MIN_COSINE = 0.99
DEFAULT_CAPTIONS = (
    "a photo of a cat",
    "a golden watch on a red table",
    "Two people hiking up a snowy mountain at sunrise.",
    "diagram",
    "a bowl of ramen with chopsticks, top view, studio lighting",
    "an empty room with white walls, a wooden floor and sunlight coming through a large window",
    "NEON SIGN saying 'open 24/7'",
    "🌅 sunset over the ocean",
)
# Texts the written tokenizer.json must turn into the checkpoint tokenizer's ids, beside the parity captions:
# case, punctuation, runs of whitespace, scripts without spaces, right-to-left text, emoji sequences and a
# text longer than any context.
TOKEN_CHECK_TEXTS = (
    "",
    "  A  Red\tChair \n",
    "Hello, World! It's 100% (really) [new] {ok}...",
    "Kursi merah di ruangan — sangat nyaman, bukan?",
    "Crème brûlée à côté de l'hôtel",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ and ﬁne",
    "一只黑猫坐在木桌上，红色的椅子",
    "قطة سوداء على طاولة خشبية",
    "🌅🐈 SUNSET 🐈\u200d⬛",
    " ".join(["a very long description of a golden watch on a wooden table"] * 20),
)
# PIL resampling codes (the image processor's resample) the runtime implements.
_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}

Progress = Callable[[str], None]


def export_model(
    model: str | Path,
    out_dir: Path | None = None,
    precision: str = "fp32",
    *,
    name: str | None = None,
    opset: int = 17,
    parity_images: Sequence[Image.Image] | None = None,
    parity_texts: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Export ``model`` (a registry short name, a Hugging Face id or a local checkpoint folder) and return
    the model folder.

    ``out_dir`` defaults to the AssetLens model cache entry for ``name``
    (itself defaulting to the hub id, or the folder name of a local
    checkpoint). Parity is measured on ``parity_images``/``parity_texts``, or
    on built-in synthetic images and captions. Every failure is raised as
    ``ExportError`` with a one-sentence message, and leaves no partial folder.
    """
    if precision not in PRECISIONS:
        raise ExportError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    say = progress or (lambda _message: None)
    local = Path(model).expanduser()
    is_local = local.is_dir()
    spec = None if is_local else find_model(str(model))
    if spec is not None:
        model = _checkpoint_of(spec)
    if not is_local and (local.is_absolute() or str(model).startswith((".", "~")) or str(model).count("/") > 1):
        raise ExportError(
            f"There is no folder {model}; point --model at a local folder holding the CLIP or SigLIP checkpoint, "
            "or at a Hugging Face model id such as openai/clip-vit-base-patch32."
        )
    source = str(local.resolve()) if is_local else str(model)
    name = name or (local.resolve().name if is_local else str(model))
    out_dir = Path(out_dir) if out_dir is not None else export_dir_for(name, precision)
    _check_replaceable(out_dir)

    say(f"Loading {source}")
    with _failure(f"Loading {source}"):
        bundle = _load(source, is_local)
    with _staging(out_dir) as staging, _failure(f"Exporting {source} to ONNX"), _quiet():
        _build(bundle, staging, name, source, precision, opset, parity_images, parity_texts, say).save(staging)
    say(f"Wrote {out_dir}")
    return out_dir


def quantize_export(
    fp32_dir: Path,
    out_dir: Path,
    *,
    parity_images: Sequence[Image.Image] | None = None,
    parity_texts: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the int8 folder of an fp32 export to ``out_dir``, with the recipes and checks of
    ``export_model``; parity is measured against the fp32 graphs (``onnx fp32``)."""
    say = progress or (lambda _message: None)
    facts = load_facts(fp32_dir)
    if facts.precision != "fp32":
        raise ExportError(
            f"{fp32_dir} is not an fp32 export (its precision is {facts.precision}); int8 is made from fp32."
        )
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    with _staging(out_dir) as staging, _failure(f"Quantising {fp32_dir}"):
        work = staging / "work"
        work.mkdir()
        for tower in ("image", "text"):
            shutil.copyfile(facts.path(getattr(facts, tower).file), work / f"{tower}-fp32.onnx")
        check = _ParityCheck.from_export(facts, parity_images, parity_texts)
        say("Quantising to int8 (comparing recipes)")
        final = {"image": staging / facts.image.file, "text": staging / facts.text.file}
        cosines, recipes = _quantize_best(check, work, final)
        _check_reduced(cosines, "int8")
        shutil.rmtree(work)
        shutil.copyfile(facts.path(facts.text.tokenizer_file), staging / facts.text.tokenizer_file)
        files = (facts.image.file, facts.text.file, facts.text.tokenizer_file)
        dataclasses.replace(
            facts.manifest,
            precision="int8",
            files={file: file_sha256(staging / file) for file in files},
            parity=_parity(check, cosines, final, recipes, reference="onnx fp32"),
            versions={**facts.versions, **_onnx_versions()},
            created=_now(),
        ).save(staging)
    say(f"Wrote {out_dir}")
    return out_dir


# --------------------------------------------------------------------- loading


def _checkpoint_of(spec: ModelSpec) -> str:
    """The Hugging Face id to export a registry entry from, or a one-sentence refusal."""
    if spec.hf_id is None:
        raise ExportError(
            f"The {spec.name} model ships with AssetLens and has no checkpoint to export; "
            "python -m assetlens.export.train_demo trains and exports it."
        )
    return spec.hf_id


@dataclass
class _Bundle:
    """The PyTorch towers and the processing recipe of one checkpoint."""

    family: Family
    vision: Any  # CLIPVisionModelWithProjection or SiglipVisionModel
    text: Any  # CLIPTextModelWithProjection or SiglipTextModel
    image_processor: Any  # CLIPImageProcessor or SiglipImageProcessor
    tokenizer: Any  # a fast tokenizer (CLIPTokenizerFast, GemmaTokenizerFast, ...): its tokenizer.json is written
    reference_tokenizer: Any  # the checkpoint's own tokenizer, which the parity inputs come from
    embedding_dim: int
    context_length: int
    lowercase: bool  # the runtime lower-cases queries: the reference does and the tokenizer does not

    @property
    def padding(self) -> Padding:
        """CLIP pools at the end-of-text token, so padding a batch to its longest text is invisible;
        SigLIP pools the last position and was trained on texts padded to the context length."""
        return "longest" if self.family == "clip" else "max-length"

    def tokens(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The text graph's inputs for ``texts``, made by the checkpoint's own tokenizer."""
        from assetlens.export.specs import FAMILY_GRAPHS

        encoded = self.reference_tokenizer(
            [text.lower() if self.lowercase else text for text in texts],
            padding=True if self.padding == "longest" else "max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="np",
            return_attention_mask=True,
        )
        return {name: encoded[name].astype(np.int64) for name in FAMILY_GRAPHS[self.family].text_inputs}


class _Unsupported(ValueError):
    """The checkpoint loads but is not a kind AssetLens exports."""


class _Missing(OSError):
    """A part of the checkpoint (named by the message) could not be read."""


def _read(part: str, loader: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return loader(*args, **kwargs)
    except (OSError, ValueError) as exc:
        raise _Missing(part) from exc


def _offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read it again so a
    # variable set later in the process is honoured too.
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return constants.HF_HUB_OFFLINE or any(f.strip().lower() in {"1", "on", "yes", "true"} for f in flags)


def _load(source: str, is_local: bool) -> _Bundle:
    """Load from a folder, else from the HF cache, else (unless offline) from the Hub."""
    error: Exception | None = None
    for local_files_only in [True] if is_local or _offline() else [True, False]:
        try:
            with _quiet():
                return _load_bundle(source, local_files_only)
        except _Unsupported as exc:
            raise ExportError(str(exc)) from None
        except (OSError, ValueError) as exc:
            error = exc
    assert error is not None  # the loop ran and every attempt failed
    if is_local:
        raise ExportError(
            f"{source} does not hold a complete CLIP or SigLIP checkpoint (cannot read its {_one_line(error)}); "
            "point --model at a folder saved with CLIPModel or SiglipModel.save_pretrained plus its processor files, "
            "or at a Hugging Face model id."
        ) from None
    raise ExportError(
        f"Cannot load {source!r}: it is not a local folder, it is not in the Hugging Face cache, and the Hub "
        f"{'is switched off (HF_HUB_OFFLINE)' if _offline() else 'could not be reached or has no such model'}; "
        "point --model at a local folder holding the checkpoint, or run once with network access to cache it."
    ) from None


def _family_of(source: str, model_type: str) -> Family:
    """The registry family of a checkpoint's ``model_type``, or a one-sentence refusal."""
    if model_type == "siglip2":
        raise _Unsupported(
            f"{source} is a SigLIP 2 NaFlex model (variable resolution and aspect ratio), which AssetLens does not "
            "export; choose a fixed-resolution SigLIP 2 checkpoint such as google/siglip2-base-patch16-224."
        )
    if model_type not in FAMILY_LABELS:
        raise _Unsupported(
            f"{source} is a {model_type!r} model, not CLIP or SigLIP; AssetLens exports those two families only."
        )
    return cast(Family, model_type)


def _load_bundle(source: str, local_files_only: bool) -> _Bundle:
    import torch
    from transformers import (
        AutoConfig,
        CLIPImageProcessor,
        CLIPTextModelWithProjection,
        CLIPVisionModelWithProjection,
        SiglipImageProcessor,
        SiglipTextModel,
        SiglipVisionModel,
    )

    config = _read("config.json", AutoConfig.from_pretrained, source, local_files_only=local_files_only)
    family = _family_of(source, config.model_type)
    if family == "clip":
        # The sub-configs of some checkpoints lack projection_dim (then 512 by
        # default); the top-level value is the one the weights were saved with.
        config.vision_config.projection_dim = config.text_config.projection_dim = config.projection_dim
        classes: tuple[type[Any], type[Any], type[Any]] = (
            CLIPVisionModelWithProjection,
            CLIPTextModelWithProjection,
            CLIPImageProcessor,
        )
        embedding_dim = int(config.projection_dim)
    else:
        classes = (SiglipVisionModel, SiglipTextModel, SiglipImageProcessor)
        embedding_dim = int(config.vision_config.hidden_size)
        if int(config.text_config.projection_size) != embedding_dim:
            raise _Unsupported(
                f"{source} has image embeddings of {embedding_dim} and text embeddings of "
                f"{config.text_config.projection_size} dimensions; its towers do not share one embedding space."
            )
    towers = []
    for cls, sub_config in ((classes[0], config.vision_config), (classes[1], config.text_config)):
        tower, info = _read(
            "model weights",
            cls.from_pretrained,
            source,
            config=sub_config,
            attn_implementation="eager",  # plain MatMul/Softmax attention that every exporter handles
            dtype=torch.float32,
            local_files_only=local_files_only,
            output_loading_info=True,
        )
        if info["missing_keys"]:
            raise _Missing(f"weights for {', '.join(sorted(info['missing_keys'])[:3])}")
        towers.append(tower.eval())
    processor = _read("preprocessor_config.json", classes[2].from_pretrained, source, local_files_only=local_files_only)
    if family == "clip":
        tokenizer = reference = _load_clip_tokenizer(source, local_files_only, config.text_config.vocab_size)
    else:
        tokenizer, reference = _load_siglip_tokenizer(source, local_files_only)
    return _Bundle(
        family=family,
        vision=towers[0],
        text=towers[1],
        image_processor=processor,
        tokenizer=tokenizer,
        reference_tokenizer=reference,
        embedding_dim=embedding_dim,
        context_length=int(config.text_config.max_position_embeddings),
        lowercase=_runtime_lowercases(source, tokenizer),
    )


def _load_clip_tokenizer(source: str, local_files_only: bool, vocab_size: int) -> Any:
    """The checkpoint's tokenizer, or OpenAI's when the checkpoint ships none."""
    from transformers import CLIPTokenizerFast

    try:
        tokenizer = CLIPTokenizerFast.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, TypeError, ValueError):
        # Missing tokenizer files surface as any of these, depending on which is absent.
        from assetlens.export.clip_tokenizer import VOCAB_SIZE, write_clip_tokenizer

        if vocab_size != VOCAB_SIZE:
            raise _Missing(f"tokenizer files (and its {vocab_size}-token vocabulary is not OpenAI CLIP's)") from None
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = CLIPTokenizerFast.from_pretrained(write_clip_tokenizer(Path(tmp)))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_siglip_tokenizer(source: str, local_files_only: bool) -> tuple[Any, Any]:
    """(a fast tokenizer whose ``tokenizer.json`` the runtime runs, the checkpoint's own tokenizer), with a pad
    token: the same object when the checkpoint ships a fast one, else the slow ``SiglipTokenizer`` of the
    first SigLIP releases converted (``export.siglip_tokenizer``)."""
    from transformers import AutoTokenizer, SiglipTokenizer

    try:
        tokenizer = _read(
            "tokenizer files", AutoTokenizer.from_pretrained, source, local_files_only=local_files_only, use_fast=True
        )
    except ImportError:  # a slow-only tokenizer class whose library is not installed
        raise _Unsupported(
            f"{source} ships only a sentencepiece tokenizer, and reading it needs the sentencepiece package; "
            "install AssetLens with its export extra (pip install 'assetlens[export]')."
        ) from None
    if tokenizer.pad_token_id is None:
        raise _Missing("pad token (SigLIP pads every text to the context length)")
    if tokenizer.is_fast:
        return tokenizer, tokenizer
    if not isinstance(tokenizer, SiglipTokenizer):
        raise _Unsupported(
            f"{source} ships a {type(tokenizer).__name__} without a tokenizer.json, which AssetLens cannot convert; "
            "save the checkpoint with a fast tokenizer, or choose a SigLIP 2 checkpoint."
        )
    from assetlens.export.siglip_tokenizer import fast_siglip_tokenizer

    return fast_siglip_tokenizer(tokenizer), tokenizer


def _runtime_lowercases(source: str, tokenizer: Any) -> bool:
    """Whether the runtime must lower-case queries: the reference does (the registry's rule for the model) and
    the tokenizer's own normalizer does not."""
    spec = find_model(source)
    reference = spec.text.lowercase if spec is not None else True  # every registry entry's reference does
    normalizer = json.loads(tokenizer.backend_tokenizer.to_str()).get("normalizer")
    return reference and "Lowercase" not in json.dumps(normalizer)


# ---------------------------------------------------------------------- export


def _build(
    bundle: _Bundle,
    staging: Path,
    name: str,
    source: str,
    precision: str,
    opset: int,
    parity_images: Sequence[Image.Image] | None,
    parity_texts: Sequence[str] | None,
    say: Progress,
) -> ModelManifest:
    """Write graphs and tokenizer to ``staging``; return their manifest."""
    import torch
    import transformers
    from optimum.exporters.onnx import export_models

    from assetlens.export.specs import FAMILY_GRAPHS, TEXT_OUTPUT, tower_specs

    image_facts = _image_facts(bundle)
    backend = bundle.tokenizer.backend_tokenizer
    # The text graph has position embeddings for context_length tokens only;
    # padding is left to the runtime (manifest padding and pad_token_id).
    backend.enable_truncation(bundle.context_length)
    backend.no_padding()
    backend.save(str(staging / TOKENIZER_FILE))
    text_facts = TextFacts(
        file=TEXT_FILE,
        input_names=FAMILY_GRAPHS[bundle.family].text_inputs,
        output_name=TEXT_OUTPUT,
        context_length=bundle.context_length,
        tokenizer_file=TOKENIZER_FILE,
        pad_token_id=int(bundle.tokenizer.pad_token_id),
        padding=bundle.padding,
        padding_side="left" if bundle.tokenizer.padding_side == "left" else "right",
        lowercase=bundle.lowercase,
    )
    _check_tokens(bundle, staging / TOKENIZER_FILE, text_facts, [*TOKEN_CHECK_TEXTS, *(parity_texts or ())])
    work = staging / "work"
    say(f"Exporting the image and text towers to ONNX (opset {opset})")
    export_models(
        tower_specs(bundle.vision, bundle.text, bundle.family),
        work,
        opset=opset,
        output_names=["image-raw.onnx", "text-raw.onnx"],
    )
    say("Optimising the graphs")
    for tower in ("image", "text"):
        _optimise(work / f"{tower}-raw.onnx", work / f"{tower}-fp32.onnx")

    say("Checking the fp32 graphs against PyTorch")
    check = _ParityCheck.prepare(bundle, parity_images, parity_texts)
    fp32 = check.measure(work / "image-fp32.onnx", work / "text-fp32.onnx")
    if _below(fp32, FP32_MIN_COSINE):
        raise ExportError(
            f"The fp32 ONNX graphs do not match PyTorch (min cosine: image {fp32['image']:.6f}, "
            f"text {fp32['text']:.6f}, required {FP32_MIN_COSINE}); the export was not written."
        )

    final = {"image": staging / IMAGE_FILE, "text": staging / TEXT_FILE}
    recipes: dict[str, Int8Recipe] = {}
    if precision == "fp32":
        cosines = fp32
        for tower, dst in final.items():
            shutil.move(work / f"{tower}-fp32.onnx", dst)
    elif precision == "fp16":
        from assetlens.export.quantize import convert_fp16

        say("Converting to fp16")
        for tower, dst in final.items():
            convert_fp16(work / f"{tower}-fp32.onnx", dst)
        cosines = check.measure(final["image"], final["text"])
    else:
        say("Quantising to int8 (comparing recipes)")
        cosines, recipes = _quantize_best(check, work, final)
    if precision != "fp32":
        _check_reduced(cosines, precision)
    shutil.rmtree(work)

    files = (IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE)
    return ModelManifest(
        name=name,
        source=source,
        precision=precision,
        embedding_dim=bundle.embedding_dim,
        image=image_facts,
        text=text_facts,
        files={file: file_sha256(staging / file) for file in files},
        opset=opset,
        parity=_parity(check, cosines, final, recipes, reference="pytorch fp32"),
        versions={
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "optimum": _dist_version("optimum"),
            "optimum-onnx": _dist_version("optimum-onnx"),
            **_onnx_versions(),
        },
        created=_now(),
    )


def _check_reduced(cosines: dict[str, float], precision: str) -> None:
    if _below(cosines, REDUCED_MIN_COSINE):
        raise ExportError(
            f"The {precision} graphs drift too far from fp32 (min cosine: image {cosines['image']:.4f}, "
            f"text {cosines['text']:.4f}, required {REDUCED_MIN_COSINE}); use fp32 for this model."
        )


def _check_tokens(bundle: _Bundle, tokenizer_file: Path, text: TextFacts, texts: Sequence[str]) -> None:
    """Refuse the export unless the written tokenizer, run as the runtime runs it with ``text``'s rules, gives
    the checkpoint tokenizer's ids for every one of ``texts``."""
    from assetlens.engine.tokens import load_tokenizer, tokenize

    runtime = load_tokenizer(tokenizer_file, text.context_length)
    length = text.context_length if text.padding == "max-length" else None
    for sample in texts:
        want = bundle.tokens([sample])["input_ids"][0].tolist()
        got = tokenize(
            runtime, [sample], text.pad_token_id, length=length, side=text.padding_side, lowercase=text.lowercase
        )[0][0].tolist()
        if got != want:
            at = next((i for i, (x, y) in enumerate(zip(got, want, strict=False)) if x != y), min(len(got), len(want)))
            raise ExportError(
                f"The written tokenizer.json gives other tokens than the checkpoint's tokenizer for {sample[:40]!r} "
                f"(first difference at token {at}); the export was not written."
            )


def _parity(
    check: _ParityCheck,
    cosines: dict[str, float],
    graphs: dict[str, Path],
    recipes: dict[str, Int8Recipe],
    reference: str,
) -> Parity:
    """The parity record: the cosines, the CPU they were measured on, and whether int8 can saturate anywhere."""
    from assetlens.export.quantize import INT16_MAX, int16_pair_sum

    return Parity(
        image_min_cosine=cosines["image"],
        text_min_cosine=cosines["text"],
        images=check.n_images,
        texts=check.n_texts,
        reference=reference,
        cpu=this_cpu(),
        int8_saturation_safe=all(int16_pair_sum(graph) <= INT16_MAX for graph in graphs.values()),
        int8_recipes=recipes,
    )


def _onnx_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _image_facts(bundle: _Bundle) -> ImageFacts:
    """The processor's recipe in the runtime's terms: shortest-edge resize and centre crop (CLIP) or a squash
    to the model's square (SigLIP), then rescale and normalise."""
    from assetlens.export.specs import IMAGE_INPUT, IMAGE_OUTPUT

    proc = bundle.image_processor
    size, crop = proc.size or {}, getattr(proc, "crop_size", None) or {}
    image_size = int(bundle.vision.config.image_size)
    if bundle.family == "clip":
        resize: Resize = "shortest-edge-crop"
        shape = (
            proc.do_resize
            and "shortest_edge" in size
            and proc.do_center_crop
            and crop.get("height") == crop.get("width") == image_size
        )
        recipe = "shortest-edge resize plus square centre crop"
    else:
        resize = "squash"
        shape = proc.do_resize and size.get("height") == size.get("width") == image_size
        recipe = "resize to the model's square"
    supported = (
        shape
        and proc.do_rescale
        and abs(proc.rescale_factor - 1 / 255) < 1e-9
        and int(proc.resample) in _RESAMPLE_NAMES
    )
    if not supported:
        raise ExportError(
            f"The checkpoint's image preprocessing (size {size}, crop {crop}, resample {proc.resample}, model input "
            f"{image_size}) is not the {recipe} that AssetLens implements."
        )
    mean, std = (proc.image_mean, proc.image_std) if proc.do_normalize else ([0.0] * 3, [1.0] * 3)
    return ImageFacts(
        file=IMAGE_FILE,
        input_name=IMAGE_INPUT,
        output_name=IMAGE_OUTPUT,
        resize_shortest_edge=int(size["shortest_edge"]) if resize == "shortest-edge-crop" else image_size,
        crop_size=image_size,
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        resample=_RESAMPLE_NAMES[int(proc.resample)],
        resize=resize,
    )


def _optimise(src: Path, dst: Path) -> None:
    """Save ORT's basic optimisations (constant folding, redundant-node removal,
    standard-op fusions). They run before graph partitioning, so the result
    runs on any execution provider; the provider-specific extended and layout
    levels are applied by the runtime at session creation (ORT_ENABLE_ALL)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])


def _quantize_best(
    check: _ParityCheck, work: Path, final: dict[str, Path]
) -> tuple[dict[str, float], dict[str, Int8Recipe]]:
    """Quantise each tower with every recipe; keep the fastest one that is close enough (``choose_recipe``)."""
    from assetlens.export.quantize import INT8_RECIPES, choose_recipe, prepare_int8, quantize_int8

    cosines: dict[str, float] = {}
    chosen: dict[str, Int8Recipe] = {}
    for tower, dst in final.items():
        prepared = work / f"{tower}-prepared.onnx"
        prepare_int8(work / f"{tower}-fp32.onnx", prepared)
        measured = []
        for index, recipe in enumerate(INT8_RECIPES):
            candidate = work / f"{tower}-int8-{index}.onnx"
            quantize_int8(prepared, candidate, recipe)
            measured.append((check.measure_one(tower, candidate), recipe, candidate))
        cosine, recipe, candidate = measured[choose_recipe([m[0] for m in measured])]
        shutil.copyfile(candidate, dst)
        cosines[tower], chosen[tower] = cosine, recipe
    return cosines, chosen


# ---------------------------------------------------------------------- parity


@dataclass
class _ParityCheck:
    """Fixed inputs and the reference embeddings (PyTorch's, or an fp32 export's) the ONNX graphs must reproduce."""

    feeds: dict[str, dict[str, np.ndarray]]
    reference: dict[str, np.ndarray]
    n_images: int
    n_texts: int

    @classmethod
    def prepare(
        cls, bundle: _Bundle, images: Sequence[Image.Image] | None, texts: Sequence[str] | None
    ) -> _ParityCheck:
        import torch

        from assetlens.export.specs import IMAGE_INPUT, IMAGE_OUTPUT, TEXT_OUTPUT, towers

        images = list(images) if images else synthetic_images()
        texts = list(texts) if texts else list(DEFAULT_CAPTIONS)
        pixel_values = bundle.image_processor(images=[im.convert("RGB") for im in images], return_tensors="np")[
            "pixel_values"
        ].astype(np.float32)
        text_feed = bundle.tokens(texts)
        image_tower, text_tower = towers(bundle.vision, bundle.text, bundle.family)
        with torch.no_grad():
            image_ref = image_tower(torch.from_numpy(pixel_values))[IMAGE_OUTPUT]
            text_ref = text_tower(**{k: torch.from_numpy(v) for k, v in text_feed.items()})[TEXT_OUTPUT]
        return cls(
            feeds={"image": {IMAGE_INPUT: pixel_values}, "text": text_feed},
            reference={"image": image_ref.numpy(), "text": text_ref.numpy()},
            n_images=len(images),
            n_texts=len(texts),
        )

    @classmethod
    def from_export(
        cls, facts: ModelFacts, images: Sequence[Image.Image] | None, texts: Sequence[str] | None
    ) -> _ParityCheck:
        """The inputs as the runtime prepares them; the reference is the fp32 export's own output."""
        from assetlens.engine.encoders import Encoder
        from assetlens.engine.preprocess import model_batch

        images = list(images) if images else synthetic_images()
        texts = list(texts) if texts else list(DEFAULT_CAPTIONS)
        encoder = Encoder(facts, device="cpu")
        pixel_values = model_batch([im.convert("RGB") for im in images], facts.image)
        check = cls(
            feeds={"image": {facts.image.input_name: pixel_values}, "text": encoder.text_feeds(texts)},
            reference={},
            n_images=len(images),
            n_texts=len(texts),
        )
        check.reference = {tower: check.run(tower, facts.path(getattr(facts, tower).file)) for tower in check.feeds}
        return check

    def run(self, tower: str, graph: Path) -> np.ndarray:
        """The graph's embeddings of this check's inputs, as the runtime would run it."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        (got,) = session.run(None, self.feeds[tower])
        return np.asarray(got)

    def measure_one(self, tower: str, graph: Path) -> float:
        """Smallest cosine between the graph's and the reference embeddings."""
        got, want = self.run(tower, graph), self.reference[tower]
        cosine = (got * want).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1))
        return float(np.min(cosine))

    def measure(self, image_graph: Path, text_graph: Path) -> dict[str, float]:
        return {"image": self.measure_one("image", image_graph), "text": self.measure_one("text", text_graph)}


def _below(cosines: dict[str, float], floor: float) -> bool:
    """True when any cosine is under ``floor`` or not a number (NaN never compares)."""
    return not all(value >= floor for value in cosines.values())


def calibration_images() -> list[Image.Image]:
    """Activation-range samples for static int8 (``export.quantize.STATIC_INT8``): product shots from
    the synthetic catalogue and synthetic pictures, none of them in the default parity set."""
    from assetlens.catalogue import render, sample_items

    return [render(item, 256, seed=i) for i, item in enumerate(sample_items(16, seed=7))] + synthetic_images(8, seed=1)


def synthetic_images(count: int = 8, seed: int = 0) -> list[Image.Image]:
    """Deterministic, varied test pictures: gradients, shapes, stripes, noise, odd sizes."""
    rng = np.random.default_rng(seed)
    sizes = [(320, 240), (200, 300), (256, 256), (480, 270), (97, 131), (640, 480), (300, 300), (150, 400)]
    images: list[Image.Image] = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        kind = index % 6
        if kind == 0:  # linear colour gradient
            pixels = np.stack([x / width, y / height, 1 - x / width], axis=-1) * 255
        elif kind == 1:  # radial gradient
            r = np.hypot(x - width / 2, y - height / 2) / max(width, height)
            pixels = np.stack([1 - r, 0.5 * np.ones_like(r), r], axis=-1).clip(0, 1) * 255
        elif kind == 2:  # checkerboard
            board = ((x // 16 + y // 16) % 2)[..., None]
            pixels = board * rng.uniform(0, 255, 3) + (1 - board) * rng.uniform(0, 255, 3)
        elif kind == 3:  # uniform noise
            pixels = rng.uniform(0, 255, (height, width, 3))
        elif kind == 4:  # diagonal stripes
            pixels = (np.sin((x + y) / 7.0)[..., None] * 0.5 + 0.5) * rng.uniform(60, 255, 3)
        else:  # blurred noise
            pixels = rng.uniform(0, 255, (height, width, 3))
        image = Image.fromarray(pixels.astype(np.uint8), "RGB")
        if kind == 5:
            image = image.filter(ImageFilter.GaussianBlur(6))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):  # a few random shapes on top
            x0, y0 = rng.uniform(0, 0.6) * width, rng.uniform(0, 0.6) * height
            box = (x0, y0, x0 + rng.uniform(0.2, 0.4) * width, y0 + rng.uniform(0.2, 0.4) * height)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        images.append(image)
    return images


# -------------------------------------------------------------------- plumbing


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to overwrite anything but an earlier export or an empty folder."""
    if out_dir.exists() and not (
        out_dir.is_dir() and ((out_dir / MANIFEST_FILE).is_file() or not any(out_dir.iterdir()))
    ):
        raise ExportError(f"{out_dir} exists and is not an AssetLens model folder; choose another output folder.")


@contextlib.contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A fresh folder beside ``out_dir``, published in its place if the block succeeds, else removed."""
    with _failure(f"Creating {out_dir}"):
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would make the published model private
    try:
        yield staging
        with _failure(f"Writing {out_dir}"):
            _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, out_dir: Path) -> None:
    """Swap the finished folder into place; readers see the old or the new model, never a mix."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        out_dir.rename(old)
    staging.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _failure(action: str) -> Iterator[None]:
    """Turn any unexpected exception into a one-sentence ``ExportError`` (the cause stays chained)."""
    try:
        yield
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{action} failed ({_one_line(exc)}).") from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence tracer warnings and transformers' load chatter (e.g. the unused
    weights of the other tower), which would drown the CLI's own output."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
