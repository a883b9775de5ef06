"""The product itself: a pen in unit coordinates and one painter per object kind.

``paint_object`` draws an item's product alone, supersampled and shaded in
its colour (with a metallic sheen for gold and silver), as an RGBA layer that
``render`` places on a background.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image, ImageDraw

from assetlens.catalogue.vocabulary import COLORS, METALLIC, Item

Point = tuple[float, float]
Box = tuple[float, float, float, float]
RGB = tuple[int, int, int]

_SS = 2  # supersampling factor for the object layer (anti-aliasing)


class Pen:
    """Draws in unit coordinates onto a supersampled canvas.

    ``body`` is the product's shade mask: 0 = empty, otherwise a shade level
    (200 = base colour, lower = darker, higher = lighter) that becomes the
    product colour. ``detail`` is an RGBA layer of neutral parts (a watch
    face, lenses, a sole) painted over the body.
    """

    def __init__(self, size: int) -> None:
        self.n = size * _SS
        self.body = Image.new("L", (self.n, self.n), 0)
        self.detail = Image.new("RGBA", (self.n, self.n), (0, 0, 0, 0))
        self.b = ImageDraw.Draw(self.body)
        self.d = ImageDraw.Draw(self.detail)

    def _p(self, pts: Iterable[Point]) -> list[Point]:
        return [(x * self.n, y * self.n) for x, y in pts]

    def _box(self, box: Box) -> list[float]:
        x0, y0, x1, y1 = box
        return [x0 * self.n, y0 * self.n, x1 * self.n, y1 * self.n]

    def w(self, width: float) -> int:
        return max(1, round(width * self.n))

    # body (coloured) shapes
    def poly(self, pts: Iterable[Point], shade: int = 200) -> None:
        self.b.polygon(self._p(pts), fill=shade)

    def rect(self, box: Box, shade: int = 200, radius: float = 0.0) -> None:
        if radius:
            self.b.rounded_rectangle(self._box(box), radius=radius * self.n, fill=shade)
        else:
            self.b.rectangle(self._box(box), fill=shade)

    def ellipse(self, box: Box, shade: int = 200) -> None:
        self.b.ellipse(self._box(box), fill=shade)

    def ring(self, box: Box, width: float, shade: int = 200) -> None:
        self.b.ellipse(self._box(box), outline=shade, width=self.w(width))

    def arc(self, box: Box, start: float, end: float, width: float, shade: int = 200) -> None:
        self.b.arc(self._box(box), start, end, fill=shade, width=self.w(width))

    def line(self, pts: Iterable[Point], width: float, shade: int = 200) -> None:
        self.b.line(self._p(pts), fill=shade, width=self.w(width), joint="curve")

    def cut(self, kind: str, box: Box) -> None:
        """Remove a region from the body (a mug's handle hole, a t-shirt's neck)."""
        getattr(self.b, kind)(self._box(box), fill=0)

    # neutral details
    def d_poly(self, pts: Iterable[Point], rgb: RGB) -> None:
        self.d.polygon(self._p(pts), fill=(*rgb, 255))

    def d_rect(self, box: Box, rgb: RGB, radius: float = 0.0) -> None:
        if radius:
            self.d.rounded_rectangle(self._box(box), radius=radius * self.n, fill=(*rgb, 255))
        else:
            self.d.rectangle(self._box(box), fill=(*rgb, 255))

    def d_ellipse(self, box: Box, rgb: RGB | None, outline: RGB | None = None, width: float = 0.0) -> None:
        self.d.ellipse(
            self._box(box),
            fill=(*rgb, 255) if rgb else None,
            outline=(*outline, 255) if outline else None,
            width=self.w(width) if outline else 0,
        )

    def d_line(self, pts: Iterable[Point], rgb: RGB, width: float) -> None:
        self.d.line(self._p(pts), fill=(*rgb, 255), width=self.w(width), joint="curve")


# Each drawer paints one object kind roughly centred in the unit square,
# filling about half to two thirds of it. ``r`` varies the design a little.


def _mug(p: Pen, r: np.random.Generator) -> None:
    top, bot = 0.27 + r.uniform(-0.03, 0.03), 0.76
    x0, x1 = 0.26, 0.62 + r.uniform(-0.03, 0.03)
    p.ring((x1 - 0.09, 0.36, x1 + 0.17, 0.64), width=0.055, shade=185)
    p.rect((x0, top, x1, bot), radius=0.05)
    p.rect((x0 + 0.03, top + 0.05, x0 + 0.08, bot - 0.06), shade=232, radius=0.02)  # highlight
    p.ellipse((x0, top - 0.04, x1, top + 0.04), shade=215)
    p.ellipse((x0 + 0.025, top - 0.025, x1 - 0.025, top + 0.025), shade=110)  # inside


def _watch(p: Pen, r: np.random.Generator) -> None:
    p.rect((0.40, 0.06, 0.60, 0.94), shade=170, radius=0.06)  # strap
    for y in (0.14, 0.2, 0.8, 0.86):
        p.line([(0.41, y), (0.59, y)], width=0.012, shade=135)
    p.ellipse((0.28, 0.28, 0.72, 0.72), shade=210)  # case
    p.rect((0.7, 0.46, 0.76, 0.54), shade=190, radius=0.01)  # crown
    face = (235, 233, 225) if r.random() < 0.6 else (28, 30, 36)
    ink = (30, 30, 30) if face[0] > 128 else (230, 230, 230)
    p.d_ellipse((0.34, 0.34, 0.66, 0.66), face)
    for k in range(12):
        a = k * math.pi / 6
        p.d_line(
            [
                (0.5 + 0.13 * math.cos(a), 0.5 + 0.13 * math.sin(a)),
                (0.5 + 0.15 * math.cos(a), 0.5 + 0.15 * math.sin(a)),
            ],
            ink,
            0.008,
        )
    h, m = r.uniform(0, 2 * math.pi), r.uniform(0, 2 * math.pi)
    p.d_line([(0.5, 0.5), (0.5 + 0.08 * math.cos(h), 0.5 + 0.08 * math.sin(h))], ink, 0.014)
    p.d_line([(0.5, 0.5), (0.5 + 0.12 * math.cos(m), 0.5 + 0.12 * math.sin(m))], ink, 0.009)


def _shoe(p: Pen, r: np.random.Generator) -> None:
    high = r.uniform(0.0, 0.08)
    upper = [
        (0.12, 0.66),
        (0.13, 0.40 - high),
        (0.26, 0.36 - high),
        (0.34, 0.45),
        (0.52, 0.47),
        (0.72, 0.53),
        (0.88, 0.60),
        (0.90, 0.67),
    ]
    p.poly(upper)
    p.poly([(0.13, 0.40 - high), (0.26, 0.36 - high), (0.30, 0.41), (0.14, 0.45 - high)], shade=150)  # collar
    p.poly([(0.66, 0.53), (0.88, 0.60), (0.90, 0.67), (0.70, 0.67)], shade=225)  # toe cap
    for k in range(4):
        x = 0.38 + 0.06 * k
        p.line([(x, 0.46 + 0.01 * k), (x + 0.04, 0.52 + 0.01 * k)], width=0.014, shade=240)
    sole = (238, 236, 230) if r.random() < 0.7 else (40, 40, 42)
    p.d_rect((0.10, 0.65, 0.92, 0.73), sole, radius=0.03)


def _handbag(p: Pen, r: np.random.Generator) -> None:
    p.arc((0.32, 0.14, 0.68, 0.58), 180, 360, width=0.045, shade=175)  # handle
    p.poly([(0.24, 0.36), (0.76, 0.36), (0.84, 0.80), (0.16, 0.80)])
    p.poly([(0.24, 0.36), (0.76, 0.36), (0.79, 0.54), (0.21, 0.54)], shade=165)  # flap
    p.line([(0.20, 0.78), (0.80, 0.78)], width=0.012, shade=150)
    metal = (212, 180, 90) if r.random() < 0.5 else (190, 192, 198)
    p.d_rect((0.46, 0.50, 0.54, 0.57), metal, radius=0.01)  # clasp


def _lamp(p: Pen, r: np.random.Generator) -> None:
    p.poly([(0.34, 0.14), (0.66, 0.14), (0.78, 0.44), (0.22, 0.44)])  # shade
    p.poly([(0.34, 0.14), (0.66, 0.14), (0.67, 0.17), (0.33, 0.17)], shade=165)
    p.rect((0.47, 0.44, 0.53, 0.78), shade=175)  # stem
    p.ellipse((0.30, 0.74, 0.70, 0.86))  # base
    p.ellipse((0.33, 0.745, 0.67, 0.80), shade=225)
    p.d_ellipse((0.44, 0.40, 0.56, 0.48), (255, 240, 190))  # glowing bulb under the shade


def _bottle(p: Pen, r: np.random.Generator) -> None:
    wide = r.uniform(-0.03, 0.03)
    p.rect((0.35 - wide, 0.30, 0.65 + wide, 0.88), radius=0.07)
    p.poly([(0.37 - wide, 0.33), (0.63 + wide, 0.33), (0.56, 0.20), (0.44, 0.20)])  # shoulder
    p.rect((0.44, 0.13, 0.56, 0.22))  # neck
    p.rect((0.42, 0.08, 0.58, 0.15), shade=140, radius=0.015)  # cap
    p.rect((0.39 - wide, 0.36, 0.44 - wide, 0.82), shade=235, radius=0.02)  # highlight
    p.rect((0.35 - wide, 0.52, 0.65 + wide, 0.56), shade=160)


def _chair(p: Pen, r: np.random.Generator) -> None:
    p.rect((0.30, 0.12, 0.70, 0.50), radius=0.04)  # backrest
    p.rect((0.34, 0.18, 0.66, 0.44), shade=170, radius=0.03)
    p.poly([(0.24, 0.50), (0.76, 0.50), (0.80, 0.60), (0.20, 0.60)], shade=220)  # seat
    for x0, x1 in ((0.24, 0.20), (0.76, 0.80), (0.34, 0.36), (0.66, 0.64)):
        p.line([(x0, 0.60), (x1, 0.90)], width=0.035, shade=160 if 0.3 < x0 < 0.7 else 185)


def _hat(p: Pen, r: np.random.Generator) -> None:
    p.ellipse((0.10, 0.54, 0.90, 0.74), shade=185)  # brim
    p.rect((0.28, 0.26, 0.72, 0.64), radius=0.12)  # crown
    p.ellipse((0.40, 0.24, 0.60, 0.32), shade=165)  # dent
    band = (30, 30, 34) if r.random() < 0.5 else (236, 230, 214)
    p.d_rect((0.28, 0.52, 0.72, 0.59), band)


def _tshirt(p: Pen, r: np.random.Generator) -> None:
    p.poly(
        [
            (0.36, 0.14),
            (0.64, 0.14),
            (0.90, 0.28),
            (0.80, 0.46),
            (0.70, 0.40),
            (0.70, 0.88),
            (0.30, 0.88),
            (0.30, 0.40),
            (0.20, 0.46),
            (0.10, 0.28),
        ]
    )
    p.line([(0.70, 0.41), (0.70, 0.87)], width=0.012, shade=165)
    p.line([(0.30, 0.41), (0.30, 0.87)], width=0.012, shade=165)
    p.cut("ellipse", (0.42, 0.08, 0.58, 0.22))  # neck
    p.arc((0.41, 0.07, 0.59, 0.23), 0, 180, width=0.02, shade=160)  # collar


def _sunglasses(p: Pen, r: np.random.Generator) -> None:
    frame = 0.05
    for x0 in (0.10, 0.54):
        p.rect((x0, 0.36, x0 + 0.36, 0.64), radius=0.10)
    p.line([(0.44, 0.44), (0.56, 0.44)], width=0.05)  # bridge
    p.line([(0.10, 0.42), (0.03, 0.36)], width=0.035, shade=170)  # temples
    p.line([(0.90, 0.42), (0.97, 0.36)], width=0.035, shade=170)
    lens = (26, 28, 34) if r.random() < 0.7 else (60, 45, 30)
    for x0 in (0.10, 0.54):
        p.d_rect((x0 + frame, 0.36 + frame, x0 + 0.36 - frame, 0.64 - frame), lens, radius=0.07)
        p.d_line([(x0 + 0.10, 0.44), (x0 + 0.16, 0.42)], (120, 125, 135), 0.012)  # reflection


def _headphones(p: Pen, r: np.random.Generator) -> None:
    p.arc((0.18, 0.10, 0.82, 0.80), 180, 360, width=0.07)  # headband
    p.line([(0.18, 0.45), (0.19, 0.58)], width=0.05, shade=175)
    p.line([(0.82, 0.45), (0.81, 0.58)], width=0.05, shade=175)
    for x0 in (0.10, 0.72):
        p.rect((x0, 0.50, x0 + 0.18, 0.82), radius=0.07)  # ear cups
        p.rect((x0 + 0.04, 0.54, x0 + 0.14, 0.78), shade=150, radius=0.04)
    cushion = (32, 32, 36)
    p.d_rect((0.26, 0.54, 0.30, 0.78), cushion, radius=0.015)
    p.d_rect((0.70, 0.54, 0.74, 0.78), cushion, radius=0.015)


DRAWERS: dict[str, Callable[[Pen, np.random.Generator], None]] = {
    "mug": _mug,
    "watch": _watch,
    "shoe": _shoe,
    "handbag": _handbag,
    "lamp": _lamp,
    "bottle": _bottle,
    "chair": _chair,
    "hat": _hat,
    "t-shirt": _tshirt,
    "sunglasses": _sunglasses,
    "headphones": _headphones,
}


@functools.lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(yy, xx) pixel coordinates scaled to 0..1, read-only and cached."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(max(size - 1, 1))
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _jitter_color(color: str, r: np.random.Generator) -> np.ndarray:
    rgb: np.ndarray = np.array(COLORS[color], dtype=np.float32)
    if color in ("white", "black", "silver"):
        rgb = rgb + r.uniform(-6, 6) + r.uniform(-3, 3, 3)
    else:
        rgb = rgb * r.uniform(0.88, 1.08) + r.uniform(-8, 8, 3)
    return np.clip(rgb, 0, 255)


def paint_object(item: Item, size: int, r: np.random.Generator) -> Image.Image:
    """The product alone as an RGBA image of ``size`` (transparent around it)."""
    pen = Pen(size)
    DRAWERS[item.object](pen, r)
    # shapes are drawn supersampled; average coverage and shade down to ``size``
    cover = pen.body.point(lambda v: 255 if v else 0)
    cov = np.asarray(cover.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    summed = np.asarray(pen.body.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    shade = np.where(cov > 0, summed / np.maximum(cov, 1e-3), 200.0) / 200.0  # 1.0 = base colour
    detail = np.asarray(pen.detail.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    rgb = _jitter_color(item.color, r)

    yy, xx = grid(size)
    light = r.uniform(0, 2 * math.pi)
    ramp = (xx - 0.5) * np.float32(math.cos(light)) + (yy - 0.5) * np.float32(math.sin(light))
    lighting = 1.0 + ramp * np.float32(r.uniform(0.2, 0.5))
    if item.color == "white":
        # keep white bright; shading shows the shape with grey shadows
        tone = np.clip(shade * (0.97 + 0.06 * ramp), 0.55, 1.08)
    else:
        tone = shade * lighting
    col = rgb[None, None, :].astype(np.float32) * tone[..., None]
    if item.color == "black":
        col = col + np.clip(shade - 1.0, 0, None)[..., None] * 60  # visible highlights
    if item.color in METALLIC:
        # anisotropic sheen: bright and dark bands across the surface
        a = light + r.uniform(-0.6, 0.6)
        u = (xx * np.float32(math.cos(a)) + yy * np.float32(math.sin(a))) * np.float32(r.uniform(2.0, 3.5))
        band = np.sin((u + np.float32(r.uniform(0, 1))) * np.float32(2 * math.pi))
        spec = np.clip(band, 0, None) ** 3
        hi = np.array([255, 246, 205] if item.color == "gold" else [252, 253, 255], dtype=np.float32)
        col = col * (0.78 + 0.22 * (band[..., None] + 1) / 2)
        col = col * (1 - 0.6 * spec[..., None]) + hi * 0.6 * spec[..., None]

    da = detail[..., 3:4] / 255.0
    col = col * (1 - da) + detail[..., :3] * (0.9 + 0.1 * lighting[..., None]) * da
    out = np.empty((size, size, 4), dtype=np.uint8)
    out[..., :3] = np.clip(col, 0, 255)
    out[..., 3] = np.clip(np.maximum(cov, da[..., 0]) * 255 + 0.5, 0, 255)
    return Image.fromarray(out, "RGBA")
