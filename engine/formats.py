"""The formats ``decode`` reads beyond Pillow's built-in ones, and the sentences for those it refuses.

- HEIC/HEIF: pillow-heif's Pillow opener (libheif), registered on import, so Pillow's size checks apply.
- AVIF: Pillow's own plugin, where Pillow was built with libavif; otherwise each file is refused in a sentence.
- PSD: Pillow's plugin reads the flattened composite. PSB (the large document format), which Pillow's
  plugin does not read: psd-tools (numpy and attrs behind it) reads its composite, after its declared
  size has met the limit.
- SVG: rasterised by resvg (resvg-py) on white, fitted to the size the caller needs and within the
  megapixel limit, whatever size the file declares. resvg reads no network resource, but it does read
  local files an SVG names; every reference outside the document is removed first, and an embedded
  raster picture is kept only if its declared size is within the limit (resvg decodes it at full size).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import xml.etree.ElementTree as ET
from typing import BinaryIO

import pillow_heif
import resvg_py
from PIL import Image, UnidentifiedImageError, features

from assetlens.engine.errors import ImageDecodeError

pillow_heif.register_heif_opener()

#: Bytes of a file's start that ``sniff`` looks at.
HEAD_BYTES = 4096
#: The side an SVG is rendered at when the caller asks for no size (query images, the generator's references).
SVG_DEFAULT_SIDE = 512
#: Pillow formats of ``scan.IMAGE_EXTENSIONS`` (JPEG's opener also reads multi-picture JPEGs); AVIF is
#: added where Pillow reads it.
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PSD", "HEIF")
#: What resvg decodes inside an SVG (``<image>``, ``<feImage>``).
_EMBEDDED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
_SVG_START = re.compile(rb"^(\xef\xbb\xbf)?\s*<(\?xml|!--|!DOCTYPE|svg[\s>/])", re.IGNORECASE)
_SVG_ROOT = re.compile(rb"<svg[\s>/]")
_HREFS = ("href", "{http://www.w3.org/1999/xlink}href")


def pillow_formats() -> tuple[str, ...]:
    """What ``Image.open`` may try, AVIF first where Pillow reads it (libheif's opener accepts AVIF's brands)."""
    return (("AVIF",) if features.check_module("avif") else ()) + _PILLOW_FORMATS


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes, for those ``decode`` does not hand to Pillow as is:
    ``"SVG"``, ``"PSB"`` or ``"AVIF"``; None for anything else."""
    if head.startswith(b"8BPS\x00\x02"):
        return "PSB"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if _SVG_START.match(head) and _SVG_ROOT.search(head):
        return "SVG"
    return None


def refusal(kind: str | None, label: str) -> str | None:
    """The sentence for a file of a format ``decode`` cannot read here, or None."""
    if kind == "AVIF" and "AVIF" not in pillow_formats():
        return f"{label} is an AVIF image, and the installed Pillow was built without AVIF support."
    return None


def over_limit(label: str, width: int, height: int, max_megapixels: float) -> str | None:
    """The sentence for a picture whose declared size is over the limit, or None."""
    if width * height <= max_megapixels * 1e6:
        return None
    return (
        f"{label} declares {width}x{height} pixels ({width * height / 1e6:.3g} MP), "
        f"over the {max_megapixels:g} MP limit."
    )


def read_psb(fp: BinaryIO, *, max_megapixels: float, label: str) -> Image.Image:
    """A PSB's flattened composite as psd-tools gives it (any mode), its declared size checked first."""
    from psd_tools import PSDImage  # imported here: it takes 0.2 s, and only PSB files need it

    try:
        psb = PSDImage.open(fp)
        refused = over_limit(label, psb.width, psb.height, max_megapixels)
        if refused:
            raise ImageDecodeError(refused)
        composite: Image.Image | None = psb.topil()
    except ImageDecodeError:
        raise
    except Exception as exc:  # psd-tools raises many kinds (struct, value, assertion errors) on a malformed file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageDecodeError(f"{label} cannot be decoded as a Photoshop large document ({reason}).") from None
    if composite is None:
        raise ImageDecodeError(f"{label} holds no flattened composite (saved without maximised compatibility).")
    return composite


def _embedded_within(href: str, max_pixels: int, label: str) -> bool:
    """Whether a ``data:`` URI holds a raster picture resvg may decode: one Pillow reads within the limit."""
    header, _, payload = href.partition(",")
    if not header.endswith(";base64"):
        return False
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload)), formats=_EMBEDDED_FORMATS) as img:
            within = img.width * img.height <= max_pixels
    except Image.DecompressionBombError:  # over twice the limit (``decode`` sets Pillow's guard)
        within = False
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False
    if not within:
        raise ImageDecodeError(f"{label} embeds a picture over the {max_pixels / 1e6:g} MP limit.")
    return True


def _self_contained(data: bytes, max_pixels: int, label: str) -> str:
    """The SVG's text with every reference outside the document removed (``#id`` links stay)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ImageDecodeError(f"{label} is not a well-formed SVG ({exc}).") from None
    for element in root.iter():
        for key in _HREFS:
            href = element.get(key, "").strip()
            if not href or href.startswith("#"):
                continue
            if not (href.startswith("data:") and _embedded_within(href, max_pixels, label)):
                del element.attrib[key]
    return ET.tostring(root, encoding="unicode")


def _render(svg: str, width: int, height: int) -> Image.Image:
    """The SVG on white, scaled to fit ``width`` x ``height`` with its aspect kept."""
    png = resvg_py.svg_to_bytes(svg_string=svg, background="white", width=width, height=height)
    with Image.open(io.BytesIO(bytes(png)), formats=["PNG"]) as img:
        rgb: Image.Image = img.convert("RGB")
    return rgb


def rasterise_svg(data: bytes, *, min_side: int | None, max_megapixels: float, label: str) -> Image.Image:
    """An SVG as RGB on white with its shortest side ``min_side`` (or ``SVG_DEFAULT_SIDE``), its aspect from
    its width, height and viewBox, shrunk to fit ``max_megapixels``; the size it declares is not used."""
    side = min_side or SVG_DEFAULT_SIDE
    max_pixels = max(1, int(min(max_megapixels * 1e6, 2**62)))
    svg = _self_contained(data, max_pixels, label)
    box = max(1, min(side, math.isqrt(max_pixels)))
    try:
        img = _render(svg, box, box)  # a square fit: a square SVG is done, any other gives its aspect
        short = min(img.size)
        if short < side and short < box:
            scale = side / short
            scale = min(scale, math.sqrt(max_pixels / (img.width * img.height)))
            if scale > 1:
                img = _render(svg, max(1, int(img.width * scale)), max(1, int(img.height * scale)))
    except ValueError as exc:
        raise ImageDecodeError(f"{label} cannot be rendered ({exc}).") from None
    return img
