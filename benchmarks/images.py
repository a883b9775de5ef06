"""Generated image folders for the indexing benchmark, cached between runs.

Photos: ``assetlens.catalogue`` product shots upscaled to 2-4 megapixels in
camera aspect ratios (4:3, 3:2, 16:9, some portrait), with film-grain noise
and a low-frequency texture so the JPEGs compress like photos (about 1 MB
at quality 90, not the few kB a flat render would give), and a quarter of
them carrying an EXIF orientation tag as phone pictures do. Small PNGs:
renders of 0.5-1x ``png_side``, a third with an alpha channel.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from assetlens.catalogue import render, sample_items

ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0)
EXIF_ORIENTATION = 0x0112


def _photo(index: int, megapixels: float, rng: np.random.Generator) -> tuple[Image.Image, int]:
    item = sample_items(index + 1, seed=7)[index]
    aspect = ASPECTS[index % len(ASPECTS)]
    width = round((megapixels * 1e6 * aspect) ** 0.5)
    height = round(width / aspect)
    base = render(item, size=512, seed=index).resize((width, height), Image.Resampling.BICUBIC)
    texture = rng.standard_normal((height // 64 + 2, width // 64 + 2, 3)).astype(np.float32)
    low = np.asarray(
        Image.fromarray(((texture * 24) + 128).clip(0, 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BILINEAR
        ),
        dtype=np.float32,
    )
    arr = np.asarray(base, dtype=np.float32) + (low - 128) * np.float32(0.5)
    arr += rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(rng.uniform(3, 7))
    orientation = 6 if index % 4 == 3 else 1
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8)), orientation


def _small_png(index: int, side: int, rng: np.random.Generator) -> Image.Image:
    item = sample_items(index + 1, seed=11)[index]
    size = int(side * rng.uniform(0.5, 1.0))
    img = render(item, size=max(16, size), seed=1000 + index)
    if index % 3 == 2:
        alpha = Image.new("L", img.size, 255)
        alpha.paste(0, (0, 0, img.width // 6, img.height))
        img.putalpha(alpha)
    return img


def make_folders(
    root: Path, jpegs: int, megapixels: tuple[float, float], pngs: int, png_side: int, seed: int = 0
) -> dict[str, Path]:
    """``{"jpeg": folder, "png": folder}`` under ``root``, generated unless already there."""
    spec = json.dumps([jpegs, megapixels, pngs, png_side, seed, 1])
    base = root / f"images-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"
    folders = {"jpeg": base / "jpeg", "png": base / "png"}
    if (base / "done").is_file():
        return folders
    shutil.rmtree(base, ignore_errors=True)
    for folder in folders.values():
        folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(jpegs):
        img, orientation = _photo(i, float(rng.uniform(*megapixels)), rng)
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        img.save(folders["jpeg"] / f"IMG_{i:04d}.jpg", "JPEG", quality=90, exif=exif.tobytes())
    for i in range(pngs):
        _small_png(i, png_side, rng).save(folders["png"] / f"asset-{i:04d}.png", "PNG")
    (base / "done").write_text(spec)
    return folders
