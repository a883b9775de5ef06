"""Contact sheets: search hits as a picture, rank, score and file name under each thumbnail."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from assetlens.engine.errors import ImageDecodeError
from assetlens.engine.preprocess import decode
from assetlens.engine.search import SearchResult

BACKGROUND = (250, 250, 250)
INK = (30, 30, 30)
MUTED = (110, 110, 110)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _thumbnail(path: str, size: int) -> Image.Image:
    try:
        img = decode(Path(path), min_side=size).image
    except (ImageDecodeError, OSError):
        img = Image.new("RGB", (size, size), (220, 220, 220))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (size, size), (255, 255, 255))
    tile.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return tile


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, draw: ImageDraw.ImageDraw) -> str:
    """``text`` on one line within ``width``; newlines, other control characters and undecodable bytes of a
    file name show as U+FFFD."""
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[SearchResult]]],
    out: Path,
    thumb: int = 160,
    columns: int | None = None,
) -> Path:
    """Write a PNG with one labelled band per query; returns ``out``."""
    pad, caption_h, title_h = 12, 40, 30
    columns = columns or max([len(r) for _, r in rows] + [1])
    bands = [(title, list(res[i : i + columns])) for title, res in rows for i in range(0, max(len(res), 1), columns)]
    width = pad + columns * (thumb + pad)
    band_h = title_h + thumb + caption_h + pad
    sheet = Image.new("RGB", (width, pad + band_h * len(bands)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title_font, small = _font(16), _font(12)
    y = pad
    previous = None
    for title, results in bands:
        if title != previous:
            draw.text((pad, y + 4), _fit(title, title_font, width - 2 * pad, draw), fill=INK, font=title_font)
        previous = title
        if not results:
            draw.text((pad, y + title_h), "no results", fill=MUTED, font=small)
        for col, res in enumerate(results):
            x = pad + col * (thumb + pad)
            sheet.paste(_thumbnail(res.path, thumb), (x, y + title_h))
            draw.text((x, y + title_h + thumb + 4), f"#{res.rank}  {res.score:.3f}", fill=INK, font=small)
            draw.text((x, y + title_h + thumb + 20), _fit(res.filename, small, thumb, draw), fill=MUTED, font=small)
        y += band_h
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
