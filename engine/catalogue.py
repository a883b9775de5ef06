"""A synthetic product catalogue drawn with Pillow (no torch, no downloads).

The shipped demo CLIP (``engine/data/demo``) is trained on these pictures by
``export/train_demo.py``, and ``assetlens demo`` writes a folder of them to
index and search. Every picture shows one product (an *object kind* in one
*colour*) on one *background*, drawn as a varied product shot: position,
size, rotation, lighting, metallic sheen, a soft shadow, sensor noise, slight
blur and the odd small neutral distractor (a pebble, a pen, a card) change
from picture to picture, while the three attributes stay clearly visible.

- ``Item(object, color, background)`` names one product shot; ``caption()``
  gives its canonical caption ("a red mug on a wooden table") and
  ``captions()`` the training templates.
- ``render(item, size, seed)`` draws it; the same item, size and seed always
  give the same pixels.
- ``split()`` holds out some (colour, object) pairs: the demo model never sees
  them in training, and the quality test queries exactly those, so it
  measures compositional generalisation ("a gold chair" when training only
  had gold watches and red chairs).
- ``benchmark()`` and ``recall_at_k()`` define that held-out retrieval
  benchmark (tests/test_demo_model.py, benchmarks/quality.py, the training
  script's progress).
- ``write_catalogue(folder, n, seed)`` writes ``n`` pictures, a mix of JPEG and
  PNG, into one sub-folder per object kind; ``catalogue_items`` picks them so
  that every colour of every kind appears once before any appears twice.

Colour/background pairs that would be invisible (a white product on a white
background, black on black, blue on blue, silver on gray) never occur.
"""

from __future__ import annotations

import functools
import io
import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# --------------------------------------------------------------------------- attributes

#: Object kinds, in a fixed order (the order matters for ``split``).
OBJECTS: tuple[str, ...] = (
    "mug",
    "watch",
    "shoe",
    "handbag",
    "lamp",
    "bottle",
    "chair",
    "hat",
    "t-shirt",
    "sunglasses",
    "headphones",
)

#: Plural nouns take no article: "red sunglasses", not "a red sunglasses".
PLURAL_OBJECTS: frozenset[str] = frozenset({"sunglasses", "headphones", "glasses", "shades"})

#: Other words people use for the object kinds (training variety only; the
#: canonical caption always uses the name in ``OBJECTS``).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "mug": ("cup", "coffee mug"),
    "watch": ("wristwatch",),
    "shoe": ("sneaker",),
    "handbag": ("bag", "purse"),
    "lamp": ("table lamp",),
    "bottle": ("water bottle",),
    "chair": (),
    "hat": (),
    "t-shirt": ("shirt", "tee"),
    "sunglasses": ("glasses", "shades"),
    "headphones": ("headset",),
}

#: Colour name -> base sRGB. Gold and silver are drawn with a metallic sheen.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 32, 38),
    "orange": (243, 128, 22),
    "yellow": (246, 214, 40),
    "green": (38, 150, 62),
    "blue": (34, 82, 205),
    "purple": (122, 52, 165),
    "pink": (242, 125, 178),
    "black": (34, 34, 38),
    "white": (243, 243, 240),
    "gold": (200, 155, 48),
    "silver": (178, 182, 190),
}
METALLIC: frozenset[str] = frozenset({"gold", "silver"})

#: Backgrounds, named as they appear in captions after "on a".
BACKGROUNDS: tuple[str, ...] = (
    "white background",
    "black background",
    "gray background",
    "blue background",
    "wooden table",
)

#: Other ways to name the backgrounds (training variety only).
BACKGROUND_SYNONYMS: dict[str, tuple[str, ...]] = {
    "white background": ("white backdrop",),
    "black background": ("black backdrop",),
    "gray background": ("grey background",),
    "blue background": ("blue backdrop",),
    "wooden table": ("wood table", "wooden desk"),
}

#: (colour, background) pairs never drawn: the product would vanish.
INVISIBLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("white", "white background"),
        ("black", "black background"),
        ("blue", "blue background"),
        ("silver", "gray background"),
    }
)

#: Caption templates. ``{thing}`` is "a red mug" / "red sunglasses",
#: ``{bg}`` is "a wooden table"; the first template is the canonical caption.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "{thing} on {bg}",
    "a photo of {thing} on {bg}",
    "a product photo of {thing} on {bg}",
    "{color} {object} on {bg}",
    "{thing}, {background}",
    "{thing} in front of {bg}",
    "{thing}",
    "a photo of {thing}",
    "{color} {object}",
    "{object} in {color} on {bg}",
    "{object} in {color}",
)


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@dataclass(frozen=True)
class Item:
    """One product shot: an object kind, its colour and the background."""

    object: str
    color: str
    background: str

    def __post_init__(self) -> None:
        if self.object not in OBJECTS:
            raise ValueError(f"Unknown object kind {self.object!r}; choose one of {', '.join(OBJECTS)}.")
        if self.color not in COLORS:
            raise ValueError(f"Unknown colour {self.color!r}; choose one of {', '.join(COLORS)}.")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"Unknown background {self.background!r}; choose one of {', '.join(BACKGROUNDS)}.")
        if (self.color, self.background) in INVISIBLE:
            raise ValueError(f"A {self.color} product on a {self.background} would be invisible.")

    @property
    def pair(self) -> tuple[str, str]:
        """The (colour, object) combination that ``split`` holds out or not."""
        return (self.color, self.object)

    @property
    def thing(self) -> str:
        """ "a red mug", "an orange hat", "red sunglasses"."""
        return self._thing(self.object)

    def _thing(self, noun: str) -> str:
        phrase = f"{self.color} {noun}"
        return phrase if noun in PLURAL_OBJECTS else f"{article(self.color)} {phrase}"

    def caption(self, template: str | None = None, noun: str | None = None, background: str | None = None) -> str:
        """The canonical caption ("a red mug on a wooden table") or one template filled in.

        ``noun`` and ``background`` replace the object's and background's
        names (synonyms, for training variety).
        """
        noun = noun or self.object
        background = background or self.background
        template = template or CAPTION_TEMPLATES[0]
        obj = noun
        if template.startswith("{object}") and noun not in PLURAL_OBJECTS:
            obj = f"{article(noun)} {noun}"
        return template.format(
            thing=self._thing(noun),
            color=self.color,
            object=obj,
            bg=f"{article(background)} {background}",
            background=background,
        )

    def short_caption(self) -> str:
        """Colour and object only: "a red mug"."""
        return self.thing

    def captions(self) -> list[str]:
        """Every template filled in (for training variety)."""
        return [self.caption(t) for t in CAPTION_TEMPLATES]

    @property
    def slug(self) -> str:
        """A file-name-friendly description: ``red-mug-on-wooden-table``."""
        return f"{self.color}-{self.object}-on-{self.background}".replace(" ", "-")


def all_items(pairs: Iterable[tuple[str, str]] | None = None) -> list[Item]:
    """Every drawable item, optionally only for the given (colour, object) pairs."""
    keep = None if pairs is None else set(pairs)
    return [
        Item(obj, color, bg)
        for obj in OBJECTS
        for color in COLORS
        for bg in BACKGROUNDS
        if (color, bg) not in INVISIBLE and (keep is None or (color, obj) in keep)
    ]


def split() -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """(train pairs, held-out pairs) of (colour, object) combinations.

    Fixed, not random: object ``i`` is held out in colours ``i+3`` and ``i+7``
    (mod the number of colours), so every colour and every object is held out
    exactly twice and still appears in nine training combinations. The two
    sets are disjoint and cover all combinations.
    """
    colors = list(COLORS)
    held = set()
    for i, obj in enumerate(OBJECTS):
        for shift in (3, 7):
            held.add((colors[(i + shift) % len(colors)], obj))
    everything = {(c, o) for c in colors for o in OBJECTS}
    return frozenset(everything - held), frozenset(held)


# --------------------------------------------------------------------------- drawing helpers

_SS = 2  # supersampling factor for the object layer (anti-aliasing)


def _stable_seed(*parts: object) -> int:
    return zlib.crc32("|".join(str(p) for p in parts).encode("utf-8"))


class _Pen:
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

    def _p(self, pts: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * self.n, y * self.n) for x, y in pts]

    def _box(self, box: tuple[float, float, float, float]) -> list[float]:
        x0, y0, x1, y1 = box
        return [x0 * self.n, y0 * self.n, x1 * self.n, y1 * self.n]

    def w(self, width: float) -> int:
        return max(1, round(width * self.n))

    # body (coloured) shapes
    def poly(self, pts, shade: int = 200) -> None:
        self.b.polygon(self._p(pts), fill=shade)

    def rect(self, box, shade: int = 200, radius: float = 0.0) -> None:
        if radius:
            self.b.rounded_rectangle(self._box(box), radius=radius * self.n, fill=shade)
        else:
            self.b.rectangle(self._box(box), fill=shade)

    def ellipse(self, box, shade: int = 200) -> None:
        self.b.ellipse(self._box(box), fill=shade)

    def ring(self, box, width: float, shade: int = 200) -> None:
        self.b.ellipse(self._box(box), outline=shade, width=self.w(width))

    def arc(self, box, start: float, end: float, width: float, shade: int = 200) -> None:
        self.b.arc(self._box(box), start, end, fill=shade, width=self.w(width))

    def line(self, pts, width: float, shade: int = 200) -> None:
        self.b.line(self._p(pts), fill=shade, width=self.w(width), joint="curve")

    def cut(self, kind: str, box) -> None:
        """Remove a region from the body (a mug's handle hole, a t-shirt's neck)."""
        getattr(self.b, kind)(self._box(box), fill=0)

    # neutral details
    def d_poly(self, pts, rgb) -> None:
        self.d.polygon(self._p(pts), fill=(*rgb, 255))

    def d_rect(self, box, rgb, radius: float = 0.0) -> None:
        if radius:
            self.d.rounded_rectangle(self._box(box), radius=radius * self.n, fill=(*rgb, 255))
        else:
            self.d.rectangle(self._box(box), fill=(*rgb, 255))

    def d_ellipse(self, box, rgb, outline=None, width: float = 0.0) -> None:
        self.d.ellipse(
            self._box(box),
            fill=(*rgb, 255) if rgb else None,
            outline=(*outline, 255) if outline else None,
            width=self.w(width) if outline else 0,
        )

    def d_line(self, pts, rgb, width: float) -> None:
        self.d.line(self._p(pts), fill=(*rgb, 255), width=self.w(width), joint="curve")


# Each drawer paints one object kind roughly centred in the unit square,
# filling about half to two thirds of it. ``r`` varies the design a little.


def _mug(p: _Pen, r: np.random.Generator) -> None:
    top, bot = 0.27 + r.uniform(-0.03, 0.03), 0.76
    x0, x1 = 0.26, 0.62 + r.uniform(-0.03, 0.03)
    p.ring((x1 - 0.09, 0.36, x1 + 0.17, 0.64), width=0.055, shade=185)
    p.rect((x0, top, x1, bot), radius=0.05)
    p.rect((x0 + 0.03, top + 0.05, x0 + 0.08, bot - 0.06), shade=232, radius=0.02)  # highlight
    p.ellipse((x0, top - 0.04, x1, top + 0.04), shade=215)
    p.ellipse((x0 + 0.025, top - 0.025, x1 - 0.025, top + 0.025), shade=110)  # inside


def _watch(p: _Pen, r: np.random.Generator) -> None:
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


def _shoe(p: _Pen, r: np.random.Generator) -> None:
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


def _handbag(p: _Pen, r: np.random.Generator) -> None:
    p.arc((0.32, 0.14, 0.68, 0.58), 180, 360, width=0.045, shade=175)  # handle
    p.poly([(0.24, 0.36), (0.76, 0.36), (0.84, 0.80), (0.16, 0.80)])
    p.poly([(0.24, 0.36), (0.76, 0.36), (0.79, 0.54), (0.21, 0.54)], shade=165)  # flap
    p.line([(0.20, 0.78), (0.80, 0.78)], width=0.012, shade=150)
    metal = (212, 180, 90) if r.random() < 0.5 else (190, 192, 198)
    p.d_rect((0.46, 0.50, 0.54, 0.57), metal, radius=0.01)  # clasp


def _lamp(p: _Pen, r: np.random.Generator) -> None:
    p.poly([(0.34, 0.14), (0.66, 0.14), (0.78, 0.44), (0.22, 0.44)])  # shade
    p.poly([(0.34, 0.14), (0.66, 0.14), (0.67, 0.17), (0.33, 0.17)], shade=165)
    p.rect((0.47, 0.44, 0.53, 0.78), shade=175)  # stem
    p.ellipse((0.30, 0.74, 0.70, 0.86))  # base
    p.ellipse((0.33, 0.745, 0.67, 0.80), shade=225)
    p.d_ellipse((0.44, 0.40, 0.56, 0.48), (255, 240, 190))  # glowing bulb under the shade


def _bottle(p: _Pen, r: np.random.Generator) -> None:
    wide = r.uniform(-0.03, 0.03)
    p.rect((0.35 - wide, 0.30, 0.65 + wide, 0.88), radius=0.07)
    p.poly([(0.37 - wide, 0.33), (0.63 + wide, 0.33), (0.56, 0.20), (0.44, 0.20)])  # shoulder
    p.rect((0.44, 0.13, 0.56, 0.22))  # neck
    p.rect((0.42, 0.08, 0.58, 0.15), shade=140, radius=0.015)  # cap
    p.rect((0.39 - wide, 0.36, 0.44 - wide, 0.82), shade=235, radius=0.02)  # highlight
    p.rect((0.35 - wide, 0.52, 0.65 + wide, 0.56), shade=160)


def _chair(p: _Pen, r: np.random.Generator) -> None:
    p.rect((0.30, 0.12, 0.70, 0.50), radius=0.04)  # backrest
    p.rect((0.34, 0.18, 0.66, 0.44), shade=170, radius=0.03)
    p.poly([(0.24, 0.50), (0.76, 0.50), (0.80, 0.60), (0.20, 0.60)], shade=220)  # seat
    for x0, x1 in ((0.24, 0.20), (0.76, 0.80), (0.34, 0.36), (0.66, 0.64)):
        p.line([(x0, 0.60), (x1, 0.90)], width=0.035, shade=160 if 0.3 < x0 < 0.7 else 185)


def _hat(p: _Pen, r: np.random.Generator) -> None:
    p.ellipse((0.10, 0.54, 0.90, 0.74), shade=185)  # brim
    p.rect((0.28, 0.26, 0.72, 0.64), radius=0.12)  # crown
    p.ellipse((0.40, 0.24, 0.60, 0.32), shade=165)  # dent
    band = (30, 30, 34) if r.random() < 0.5 else (236, 230, 214)
    p.d_rect((0.28, 0.52, 0.72, 0.59), band)


def _tshirt(p: _Pen, r: np.random.Generator) -> None:
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


def _sunglasses(p: _Pen, r: np.random.Generator) -> None:
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


def _headphones(p: _Pen, r: np.random.Generator) -> None:
    p.arc((0.18, 0.10, 0.82, 0.80), 180, 360, width=0.07)  # headband
    p.line([(0.18, 0.45), (0.19, 0.58)], width=0.05, shade=175)
    p.line([(0.82, 0.45), (0.81, 0.58)], width=0.05, shade=175)
    for x0 in (0.10, 0.72):
        p.rect((x0, 0.50, x0 + 0.18, 0.82), radius=0.07)  # ear cups
        p.rect((x0 + 0.04, 0.54, x0 + 0.14, 0.78), shade=150, radius=0.04)
    cushion = (32, 32, 36)
    p.d_rect((0.26, 0.54, 0.30, 0.78), cushion, radius=0.015)
    p.d_rect((0.70, 0.54, 0.74, 0.78), cushion, radius=0.015)


_DRAWERS: dict[str, Callable[[_Pen, np.random.Generator], None]] = {
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


# --------------------------------------------------------------------------- backgrounds


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(yy, xx) pixel coordinates scaled to 0..1, read-only and cached."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(max(size - 1, 1))
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _background(name: str, size: int, r: np.random.Generator) -> np.ndarray:
    """An (size, size, 3) float array in 0..255 for a named background."""
    yy, xx = _grid(size)
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


# --------------------------------------------------------------------------- rendering


def _jitter_color(color: str, r: np.random.Generator) -> np.ndarray:
    rgb: np.ndarray = np.array(COLORS[color], dtype=np.float32)
    if color in ("white", "black", "silver"):
        rgb = rgb + r.uniform(-6, 6) + r.uniform(-3, 3, 3)
    else:
        rgb = rgb * r.uniform(0.88, 1.08) + r.uniform(-8, 8, 3)
    return np.clip(rgb, 0, 255)


def _paint_object(item: Item, size: int, r: np.random.Generator) -> Image.Image:
    """The product alone as an RGBA image of ``size`` (transparent around it)."""
    pen = _Pen(size)
    _DRAWERS[item.object](pen, r)
    # shapes are drawn supersampled; average coverage and shade down to ``size``
    cover = pen.body.point(lambda v: 255 if v else 0)
    cov = np.asarray(cover.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    summed = np.asarray(pen.body.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    shade = np.where(cov > 0, summed / np.maximum(cov, 1e-3), 200.0) / 200.0  # 1.0 = base colour
    detail = np.asarray(pen.detail.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    rgb = _jitter_color(item.color, r)

    yy, xx = _grid(size)
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
    r = np.random.default_rng(_stable_seed(item.slug, seed, size))
    bg = _background(item.background, size, r)
    canvas = Image.fromarray(bg.astype(np.uint8), "RGB")
    if r.random() < 0.35:
        _distractor(canvas, size, r)

    obj = _paint_object(item, size, r)
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


def sample_items(n: int, seed: int = 0, pairs: Iterable[tuple[str, str]] | None = None) -> list[Item]:
    """``n`` items spread evenly over all (or the given pairs') items, in a seeded order."""
    pool = all_items(pairs)
    if not pool:
        raise ValueError("No drawable items for these pairs.")
    r = np.random.default_rng(_stable_seed("sample", seed))
    out: list[Item] = []
    while len(out) < n:
        out.extend(pool[i] for i in r.permutation(len(pool)))
    return out[:n]


def catalogue_items(n: int, seed: int = 0) -> list[Item]:
    """The items ``write_catalogue`` draws: every (colour, object) pair once per round, in a
    seeded order, each on a background chosen in turn, so that with ``n >= 121`` every
    colour of every object kind is there at least once."""
    r = np.random.default_rng(_stable_seed("catalogue-items", seed))
    pairs = [(c, o) for o in OBJECTS for c in COLORS]
    offsets = r.integers(0, len(BACKGROUNDS), size=len(pairs))
    out: list[Item] = []
    round_ = 0
    while len(out) < n:
        for k in r.permutation(len(pairs)):
            color, obj = pairs[k]
            backgrounds = [b for b in BACKGROUNDS if (color, b) not in INVISIBLE]
            # each round puts a pair on the next of its backgrounds
            out.append(Item(obj, color, backgrounds[(offsets[k] + round_) % len(backgrounds)]))
        round_ += 1
    return out[:n]


def write_catalogue(
    folder: Path | str,
    n: int = 200,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    size: int = 256,
) -> list[tuple[Path, Item]]:
    """Write ``n`` product shots under ``folder``, one sub-folder per object kind.

    Files are named after what they show (``mug/red-mug-on-wooden-table-007.jpg``);
    about two in three are JPEG, the rest PNG. ``progress(done, total)`` is
    called after each file. Deterministic given ``seed``. Returns
    ``(path, item)`` for every file written, in order.
    """
    if n < 0:
        raise ValueError("n must not be negative.")
    folder = Path(folder)
    r = np.random.default_rng(_stable_seed("catalogue", seed))
    written: list[tuple[Path, Item]] = []
    for i, item in enumerate(catalogue_items(n, seed)):
        fmt = "png" if r.random() < 1 / 3 else "jpg"
        sub = folder / item.object
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{item.slug}-{i:03d}.{fmt}"
        img = render(item, size=size, seed=_stable_seed(seed, i))
        if fmt == "jpg":
            img.save(path, "JPEG", quality=int(r.integers(82, 96)))
        else:
            img.save(path, "PNG")
        written.append((path, item))
        if progress is not None:
            progress(i + 1, n)
    return written


# --------------------------------------------------------------------------- held-out benchmark

#: Render seed of the benchmark's pictures (training never uses it).
BENCHMARK_SEED = 20240601


def benchmark(distractors: int = 100, seed: int = BENCHMARK_SEED) -> tuple[list[Item], list[tuple[Item, int]]]:
    """The held-out retrieval benchmark: ``(queries, gallery)``.

    ``queries``: every drawable item of a held-out (colour, object) pair, one
    per distinct canonical caption. ``gallery``: ``(item, render seed)`` for
    one picture of each of those items, plus ``distractors`` pictures of
    training pairs (which are never a correct answer). Render each gallery
    entry with ``render(item, 256, seed)``.
    """
    train, held = split()
    queries = all_items(held)
    gallery = [(item, _stable_seed("bench", seed, i)) for i, item in enumerate(queries)]
    others = sample_items(distractors, seed, pairs=train)
    gallery += [(item, _stable_seed("bench-distractor", seed, i)) for i, item in enumerate(others)]
    return queries, gallery


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Fraction of queries (rows) with a relevant gallery column among their top ``k`` scores."""
    scores = np.asarray(scores)
    relevant = np.asarray(relevant, dtype=bool)
    order = np.argsort(-scores, axis=1, kind="stable")
    hits_sorted = np.take_along_axis(relevant, order, axis=1)
    return {k: float(hits_sorted[:, :k].any(axis=1).mean()) for k in ks}
