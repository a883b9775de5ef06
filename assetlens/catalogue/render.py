"""A whole product shot: background, product, shadow, exposure, noise; and its file bytes.

The same item, size and seed always give the same pixels: the shipped demo
model was trained on these renders.
"""

from __future__ import annotations

import io
import math
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from assetlens.catalogue.drawing import grid, paint_object
from assetlens.catalogue.vocabulary import Item


def stable_seed(*parts: object) -> int:
    """A seed from any values, the same in every process (unlike ``hash``)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode("utf-8"))


def _background(name: str, size: int, r: np.random.Generator) -> np.ndarray:
    """An (size, size, 3) float array in 0..255 for a named background."""
    yy, xx = grid(size)
    angle = r.uniform(0, 2 * math.pi)
    grad = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle)  # -0.7..0.7
    vignette = ((xx - 0.5) ** 2 + (yy - 0.5) ** 2).astype(np.float32)
    if name == "white background":
        base = np.array([r.uniform(238, 252)] * 3) + r.uniform(-3, 3, 3)
        img = base + grad[..., None] * r.uniform(0, 14)
    elif name == "black background":
        base = np.array([r.uniform(12, 34)] * 3) + r.uniform(-3, 3, 3)
        img = base + grad[..., None] * r.uniform(0, 14)
    elif name == "gray background":
        base = np.array([r.uniform(112, 150)] * 3) + r.uniform(-4, 4, 3)
        img = base + grad[..., None] * r.uniform(0, 30)
    elif name == "blue background":
        base = np.array([r.uniform(25, 60), r.uniform(85, 125), r.uniform(175, 225)])
        img = base + grad[..., None] * r.uniform(0, 40)
    elif name == "wooden table":
        wood = np.array([r.uniform(130, 170), r.uniform(82, 108), r.uniform(40, 62)])
        freq = r.uniform(18, 34)
        warp = np.sin(xx * r.uniform(3, 7) + r.uniform(0, 6)) * r.uniform(0.01, 0.04)
        grain = np.sin((yy + warp) * freq * math.pi * 2) * 0.5 + 0.5
        streaks = np.sin((yy + warp * 1.7) * freq * 5.3 + xx * 0.7) * 0.5 + 0.5
        tone = 0.82 + 0.14 * grain + 0.06 * streaks
        img = wood * tone[..., None]
        # planks: a few darker seams
        for y in np.sort(r.uniform(0.05, 0.95, size=r.integers(1, 3))):
            seam = np.exp(-(((yy - y) * size / 1.6) ** 2))
            img = img * (1 - 0.45 * seam[..., None])
        img = img + grad[..., None] * r.uniform(0, 30)
    else:  # pragma: no cover - Item validates names
        raise ValueError(name)
    img = img * (1 - vignette[..., None] * r.uniform(0, 0.5))
    return np.clip(img, 0, 255).astype(np.float32)


def _distractor(canvas: Image.Image, size: int, r: np.random.Generator) -> None:
    """A small neutral object near a corner: a pebble, a pen or a card."""
    draw = ImageDraw.Draw(canvas)
    corner = r.integers(0, 4)
    cx = (0.1 if corner % 2 == 0 else 0.9) * size + r.uniform(-0.04, 0.04) * size
    cy = (0.1 if corner < 2 else 0.9) * size + r.uniform(-0.04, 0.04) * size
    g = int(r.uniform(90, 200))
    tint = (g, int(g * r.uniform(0.92, 1.0)), int(g * r.uniform(0.85, 1.0)))
    kind = r.integers(0, 3)
    s = size * r.uniform(0.04, 0.07)
    if kind == 0:
        draw.ellipse([cx - s, cy - s * 0.7, cx + s, cy + s * 0.7], fill=tint)
    elif kind == 1:
        a = r.uniform(0, math.pi)
        dx, dy = math.cos(a) * s * 1.6, math.sin(a) * s * 1.6
        draw.line([cx - dx, cy - dy, cx + dx, cy + dy], fill=(40, 40, 44), width=max(2, size // 90))
    else:
        draw.rectangle([cx - s, cy - s * 0.6, cx + s, cy + s * 0.6], fill=tint)


def render(item: Item, size: int = 256, seed: int = 0) -> Image.Image:
    """Draw one product shot as an RGB image of ``size`` x ``size``.

    Deterministic: the same ``item``, ``size`` and ``seed`` give the same pixels.
    """
    if size < 16:
        raise ValueError("size must be at least 16 pixels.")
    r = np.random.default_rng(stable_seed(item.slug, seed, size))
    bg = _background(item.background, size, r)
    canvas = Image.fromarray(bg.astype(np.uint8), "RGB")
    if r.random() < 0.35:
        _distractor(canvas, size, r)

    obj = paint_object(item, size, r)
    scale = r.uniform(0.62, 0.92)
    angle = r.uniform(-18, 18)
    if r.random() < 0.5 and item.object not in ("watch",):
        obj = obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    side = max(8, round(size * scale))
    obj = obj.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    obj = obj.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    slack = (size - side) / 2
    ox = round(slack + r.uniform(-0.7, 0.7) * slack)
    oy = round(slack + r.uniform(-0.7, 0.7) * slack)

    # soft drop shadow
    alpha = obj.getchannel("A")
    shadow_strength = r.uniform(0.25, 0.55) if item.background != "black background" else 0.2
    shadow = alpha.point(lambda v: int(v * shadow_strength)).filter(ImageFilter.GaussianBlur(size / 50))
    sx, sy = int(size * r.uniform(-0.02, 0.03)), int(size * r.uniform(0.01, 0.04))
    canvas.paste((0, 0, 0), (ox + sx, oy + sy), shadow)
    canvas.paste(obj, (ox, oy), obj)

    arr = np.asarray(canvas, dtype=np.float32)
    arr = arr * r.uniform(0.92, 1.06) + r.uniform(-8, 8)  # exposure
    arr = arr + r.standard_normal(arr.shape, dtype=np.float32) * np.float32(r.uniform(1.0, 5.0))  # sensor noise
    img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
    if r.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(r.uniform(0.3, 1.0) * size / 256))
    return img


def encode(img: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """An image as JPEG or PNG file bytes."""
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        img.save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, "PNG")
    return buf.getvalue()
