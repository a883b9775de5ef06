"""Image decoding and model-input preprocessing in numpy and Pillow (no torch).

``model_pixels`` reproduces Hugging Face ``CLIPImageProcessor`` (shortest side
to ``resize_shortest_edge``, centre crop) or ``SiglipImageProcessor`` (squash
to the square), then rescales to [0, 1] and applies per-channel mean/std, all
as the model's manifest says; parity tests hold it to both.
``decode`` turns whatever a folder holds into an upright RGB image:
EXIF orientation, alpha composited on white, palette, CMYK, 16-bit and
grayscale images, first frame of animations (the primary picture of a HEIF),
SVG rasterised (``engine.formats``). Large JPEGs decode in Pillow's
draft mode (DCT scaling) to no less than the model's input size, which cuts
decode time several-fold.

Memory per decode is bounded by the megapixel limit: only the formats AssetLens
indexes are opened (no container format whose inner picture may be larger than
the size it declares), Pillow's own decompression-bomb guard stays on (at twice
the call's limit) for what a format decodes inside, high-bit-depth pictures are
converted to 8 bits a band of rows at a time, and an SVG renders at the size the
caller needs, within the limit.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from assetlens.engine.errors import ImageDecodeError
from assetlens.engine.formats import HEAD_BYTES, over_limit, pillow_formats, rasterise_svg, read_psb, refusal, sniff
from assetlens.engine.models import ImageFacts

DEFAULT_MAX_MEGAPIXELS = 100.0
MAX_ASPECT = 8  # a resized long side beyond this many crops is resized in part (``resized_center``)
_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I", "F")
_BAND_PIXELS = 1 << 20  # pixels converted at once from a high-bit-depth picture
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image plus the size of the file's full-resolution picture."""

    image: Image.Image
    width: int
    height: int


_guard_lock = threading.Lock()
_guard_limits: Counter[int] = Counter()
_PILLOW_DEFAULT = Image.MAX_IMAGE_PIXELS


@contextmanager
def _pillow_guard(max_pixels: int) -> Iterator[None]:
    """Pillow's bomb guard at this call's limit: it refuses pictures over twice ``MAX_IMAGE_PIXELS``
    wherever a format finds them, after the declared size has met the limit itself in ``decode``.

    The setting is Pillow's global: decodes running at once in other threads share the largest
    of their limits, and the default comes back when none runs.
    """
    with _guard_lock:
        _guard_limits[max_pixels] += 1
        Image.MAX_IMAGE_PIXELS = max(_guard_limits)
    try:
        yield
    finally:
        with _guard_lock:
            _guard_limits[max_pixels] -= 1
            if not _guard_limits[max_pixels]:
                del _guard_limits[max_pixels]
            Image.MAX_IMAGE_PIXELS = max(_guard_limits) if _guard_limits else _PILLOW_DEFAULT


def _to_gray8(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float grayscale picture as 8-bit "L", scaled to its range, a band of rows at a time."""
    high = cast(float, img.getextrema()[1])  # one band: (min, max)
    peak = 65535.0 if high > 255 else 255.0
    if img.mode == "F" and high <= 1.0:
        peak = 1.0
    width, height = img.size
    out = np.empty((height, width), dtype=np.uint8)
    rows = max(1, _BAND_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        band = np.asarray(img.crop((0, top, width, min(height, top + rows))), dtype=np.float64)
        out[top : top + band.shape[0]] = np.clip(band * (255.0 / peak) + 0.5, 0, 255)
    return Image.fromarray(out, "L")


def _to_rgb(img: Image.Image, min_side: int | None = None) -> Image.Image:
    """RGB on white; a high-bit-depth picture is first cut to 8 bits and, given ``min_side``, box-reduced
    to no less than that, so that its RGB copy is made at the reduced size."""
    if img.mode == "RGB":
        return img
    if img.mode in _HIGH_DEPTH:
        gray = _to_gray8(img)
        factor = min(gray.size) // min_side if min_side else 1
        return (gray.reduce(factor) if factor > 1 else gray).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode(
    source: str | Path | bytes,
    *,
    min_side: int | None = None,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    name: str | None = None,
) -> DecodedImage:
    """Decode a file (or its bytes) into an upright RGB image.

    ``min_side``: when set, JPEGs may be decoded at reduced scale (DCT scaling,
    which averages like an area filter), and high-bit-depth pictures reduced
    (box filter), as long as their shortest side stays at least ``min_side``;
    parity tests bound what that changes in the model input.
    Raises ``ImageDecodeError`` with a one-line reason for anything unreadable.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    try:
        with warnings.catch_warnings(), _pillow_guard(max(1, int(min(max_megapixels * 1e6, 2**62)))):
            warnings.simplefilter("ignore")  # EXIF, palette and bomb-guard warnings are noise here
            fp: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
            with fp:
                kind = sniff(fp.read(HEAD_BYTES))
                fp.seek(0)
                refused = refusal(kind, label)
                if refused:
                    raise ImageDecodeError(refused)
                if kind == "SVG":
                    svg = rasterise_svg(fp.read(), min_side=min_side, max_megapixels=max_megapixels, label=label)
                    return DecodedImage(svg, svg.width, svg.height)
                if kind == "PSB":
                    psb = read_psb(fp, max_megapixels=max_megapixels, label=label)
                    return DecodedImage(_to_rgb(psb, min_side), psb.width, psb.height)
                return _decode_pillow(fp, label, min_side, max_megapixels)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{label} is not an image Pillow can read.") from None
    except Image.DecompressionBombError:  # Pillow's guard: over twice the limit, declared or found inside
        raise ImageDecodeError(
            f"{label} holds more than {2 * max_megapixels:g} MP, over the {max_megapixels:g} MP limit "
            "(a decompression bomb)."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageDecodeError(f"{label} cannot be decoded ({reason}).") from None


def _decode_pillow(fp: BinaryIO, label: str, min_side: int | None, max_megapixels: float) -> DecodedImage:
    """``decode`` for what Pillow opens: the declared size meets the limit before any pixel is decoded."""
    with Image.open(fp, formats=pillow_formats()) as img:
        width, height = img.size
        refused = over_limit(label, width, height, max_megapixels)
        if refused:
            raise ImageDecodeError(refused)
        orientation = img.getexif().get(0x0112, 1)
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        img.load()
        upright = ImageOps.exif_transpose(img) if orientation != 1 else img
        rgb = _to_rgb(upright, min_side)
        if rgb is img:
            rgb = img.copy()
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(rgb, width, height)


def resized_center(img: Image.Image, shortest: int, crop: int, resample: str = "bicubic") -> np.ndarray:
    """Resize so the shortest side is ``shortest`` (rounded as CLIPImageProcessor rounds), keeping only the
    central ``crop`` pixels of the long side, as an array.

    A long side over ``MAX_ASPECT`` times the crop (a 1 x 100000 strip would become a 224 x 22 million
    pixel intermediate) is not resized whole: Pillow resizes the source ``box`` of the kept part at the
    full resize's scale, which gives the same pixels up to float rounding (now and then one intensity
    level). Other images are resized whole, exactly as the reference does.
    """
    w, h = img.size
    size = (shortest, int(shortest * h / w)) if w <= h else (int(shortest * w / h), shortest)
    if size == (w, h):
        return np.asarray(img)
    out_w, out_h = size
    if max(out_w, out_h) <= MAX_ASPECT * crop:
        return center_crop(np.asarray(img.resize(size, _RESAMPLE[resample])), crop)
    keep_w, keep_h = min(out_w, crop), min(out_h, crop)
    left, top = (out_w - keep_w) // 2, (out_h - keep_h) // 2
    sx, sy = w / out_w, h / out_h
    box = (left * sx, top * sy, (left + keep_w) * sx, (top + keep_h) * sy)
    return np.asarray(img.resize((keep_w, keep_h), _RESAMPLE[resample], box=box))


def center_crop(arr: np.ndarray, crop: int) -> np.ndarray:
    """Centre crop an HxWxC array to crop x crop, zero-padding if it is smaller."""
    h, w = arr.shape[:2]
    if h < crop or w < crop:
        padded = np.zeros((max(h, crop), max(w, crop), arr.shape[2]), dtype=arr.dtype)
        top, left = (padded.shape[0] - h) // 2, (padded.shape[1] - w) // 2
        padded[top : top + h, left : left + w] = arr
        arr, h, w = padded, padded.shape[0], padded.shape[1]
    top, left = (h - crop) // 2, (w - crop) // 2
    return arr[top : top + crop, left : left + crop]


def model_pixels(img: Image.Image, facts: ImageFacts) -> np.ndarray:
    """One image -> float32 array (3, crop, crop), the vision tower's input as the manifest describes it:
    CLIPImageProcessor's recipe (``shortest-edge-crop``) or SiglipImageProcessor's (``squash``)."""
    rgb = img.convert("RGB")
    if facts.resize == "squash":
        arr = np.asarray(rgb.resize((facts.crop_size, facts.crop_size), _RESAMPLE[facts.resample]))
    else:
        arr = center_crop(
            resized_center(rgb, facts.resize_shortest_edge, facts.crop_size, facts.resample), facts.crop_size
        )
    scaled = arr.astype(np.float32) * np.float32(1 / 255)
    mean = np.asarray(facts.mean, dtype=np.float32)
    std = np.asarray(facts.std, dtype=np.float32)
    pixels: np.ndarray = ((scaled - mean) / std).transpose(2, 0, 1)
    return pixels


def model_batch(images: list[Image.Image], facts: ImageFacts) -> np.ndarray:
    """Stack preprocessed images into an (N, 3, crop, crop) float32 batch."""
    return np.stack([model_pixels(img, facts) for img in images]).astype(np.float32, copy=False)
