"""Contact sheets: search hits (rank, score and file name under each thumbnail) or duplicate groups as a picture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from assetlens.engine.duplicates import DuplicateReport
from assetlens.engine.errors import ImageDecodeError
from assetlens.engine.preprocess import decode
from assetlens.engine.search import SearchResult

BACKGROUND = (250, 250, 250)
INK = (30, 30, 30)
MUTED = (110, 110, 110)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def thumbnail(path: str | Path, size: int) -> Image.Image | None:
    """An image file scaled to fit ``size`` x ``size`` (decoded at reduced scale), or None if unreadable."""
    try:
        img = decode(Path(path), min_side=size).image
    except (ImageDecodeError, OSError):
        return None
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return img


def _thumbnail(path: str, size: int) -> Image.Image:
    img = thumbnail(path, size) or Image.new("RGB", (size, size), (220, 220, 220))
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


@dataclass(frozen=True)
class Tile:
    """One thumbnail of a sheet: its image file, a line under it, and the file name under that."""

    path: str
    caption: str
    name: str


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[SearchResult]]],
    out: Path,
    thumb: int = 160,
    columns: int | None = None,
) -> Path:
    """Write a PNG with one labelled band per query; returns ``out``."""
    tiles = [(title, [Tile(r.path, f"#{r.rank}  {r.score:.3f}", r.filename) for r in res]) for title, res in rows]
    return sheet(tiles, out, thumb, columns)


def duplicate_sheet(report: DuplicateReport, out: Path, thumb: int = 160, columns: int | None = None) -> Path:
    """Write a PNG with one band per duplicate group, the image to keep first; returns ``out``."""
    rows = [
        (
            f"group {n} · {group.kind} · {len(group.members)} images",
            [
                Tile(m.path, f"{'keep' if m.keep else f'{m.similarity:.3f}'}  {m.width}x{m.height}", m.filename)
                for m in group.members
            ],
        )
        for n, group in enumerate(report.groups, 1)
    ]
    return sheet(rows or [("no duplicate groups", [])], out, thumb, columns)


def sheet(
    rows: Sequence[tuple[str, Sequence[Tile]]],
    out: Path,
    thumb: int = 160,
    columns: int | None = None,
) -> Path:
    """Write a PNG with one labelled band per row of tiles; returns ``out``."""
    pad, caption_h, title_h = 12, 40, 30
    columns = columns or max([len(r) for _, r in rows] + [1])
    bands = [(title, list(res[i : i + columns])) for title, res in rows for i in range(0, max(len(res), 1), columns)]
    width = pad + columns * (thumb + pad)
    band_h = title_h + thumb + caption_h + pad
    picture = Image.new("RGB", (width, pad + band_h * len(bands)), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    title_font, small = _font(16), _font(12)
    y = pad
    previous = None
    for title, tiles in bands:
        if title != previous:
            draw.text((pad, y + 4), _fit(title, title_font, width - 2 * pad, draw), fill=INK, font=title_font)
        previous = title
        if not tiles:
            draw.text((pad, y + title_h), "no results", fill=MUTED, font=small)
        for col, tile in enumerate(tiles):
            x = pad + col * (thumb + pad)
            picture.paste(_thumbnail(tile.path, thumb), (x, y + title_h))
            draw.text((x, y + title_h + thumb + 4), _fit(tile.caption, small, thumb, draw), fill=INK, font=small)
            draw.text((x, y + title_h + thumb + 20), _fit(tile.name, small, thumb, draw), fill=MUTED, font=small)
        y += band_h
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    return out
