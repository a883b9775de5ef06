"""Preprocessing parity with Hugging Face CLIPImageProcessor, and decoding of every odd image kind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from helpers import clip_image_facts
from PIL import Image

from assetlens.engine.errors import ImageDecodeError
from assetlens.engine.preprocess import decode, model_pixels
from assetlens.engine.registry import OPENAI_MEAN, OPENAI_STD

transformers = pytest.importorskip("transformers")

pytestmark = [pytest.mark.unit]


def varied_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = []
    for w, h in [(640, 480), (480, 640), (224, 224), (300, 301), (1000, 250), (97, 131), (50, 40), (2048, 1536)]:
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), (xx + yy) % 256], -1)
        arr = (arr + rng.integers(0, 40, size=arr.shape)).clip(0, 255).astype(np.uint8)
        out.append(Image.fromarray(arr, "RGB"))
    return out


@pytest.mark.parametrize("size", [224, 64])
def test_matches_clip_image_processor(size: int) -> None:
    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=OPENAI_MEAN,
        image_std=OPENAI_STD,
    )
    for img in varied_images():
        if min(img.size) < size:
            continue  # HF pads differently below the crop size; covered by test_small_image_is_padded
        ours = model_pixels(img, clip_image_facts(size))
        theirs = processor(images=img, return_tensors="np")["pixel_values"][0]
        assert ours.shape == theirs.shape == (3, size, size)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("size", [(230, 9000), (12000, 240), (1900, 224)])
def test_a_very_long_image_matches_clip_image_processor_to_an_intensity_level(size: tuple[int, int]) -> None:
    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=OPENAI_MEAN,
        image_std=OPENAI_STD,
    )
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")
    ours = model_pixels(img, clip_image_facts(224))
    theirs = processor(images=img, return_tensors="np")["pixel_values"][0]
    level = 1 / 255 / min(OPENAI_STD) + 1e-5
    assert np.abs(ours - theirs).max() <= level
    assert np.mean(np.abs(ours - theirs) > 1e-5) < 0.02  # float rounding flips a level now and then


def test_a_thin_image_is_resized_without_its_full_size_intermediate() -> None:
    """1 x 100000 pixels: the full resize would be 224 x 22.4 million pixels (15 GB); only the kept part is made."""
    import tracemalloc

    img = Image.new("RGB", (1, 100_000), (200, 30, 30))
    tracemalloc.start()
    pixels = model_pixels(img, clip_image_facts(224))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pixels.shape == (3, 224, 224)
    red = (200 / 255 - OPENAI_MEAN[0]) / OPENAI_STD[0]
    np.testing.assert_allclose(pixels[0], red, atol=1e-5)
    assert peak < 50e6


def test_small_image_is_padded_to_crop() -> None:
    img = Image.new("RGB", (50, 40), (255, 0, 0))
    out = model_pixels(img, clip_image_facts(64))
    assert out.shape == (3, 64, 64)
    # resized to 64 on the short side -> 80x64, crop keeps the centre: all red
    red = (1.0 - OPENAI_MEAN[0]) / OPENAI_STD[0]
    np.testing.assert_allclose(out[0], red, atol=1e-5)


def save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_alpha_is_composited_on_white() -> None:
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 255, 255))
    out = decode(save(img, "PNG")).image
    assert out.mode == "RGB"
    assert out.getpixel((5, 5)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (0, 0, 255)


def test_palette_with_transparency() -> None:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 255, 0] + [200, 0, 0] * 255)
    img.putpixel((1, 1), 1)
    data = save(img, "PNG", transparency=0)
    out = decode(data).image
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (200, 0, 0)


def test_cmyk_jpeg_becomes_rgb() -> None:
    img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = decode(save(img, "JPEG", quality=95)).image
    r, g, b = out.getpixel((8, 8))
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16bit_png_is_scaled_not_clipped() -> None:
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    img = Image.fromarray(arr)
    out = decode(save(img, "PNG")).image
    assert out.mode == "RGB"
    assert abs(out.getpixel((0, 0))[0] - 128) <= 1


def test_grayscale_becomes_rgb() -> None:
    out = decode(save(Image.new("L", (4, 4), 77), "PNG")).image
    assert out.getpixel((0, 0)) == (77, 77, 77)


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    got = decode(save(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert (got.width, got.height) == (20, 40)
    assert got.image.size == (20, 40)
    r, _, b = got.image.getpixel((10, 5))  # after 90 CW, the red left half is on top
    assert r > 200 and b < 60


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode(buf.getvalue()).image
    r, g, _ = out.getpixel((4, 4))
    assert r > 200 and g < 60


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "not an image"),
        (b"<html><body>not a picture</body></html>", "not an image"),
    ],
)
def test_garbage_is_a_decode_error(data: bytes, fragment: str) -> None:
    with pytest.raises(ImageDecodeError, match=fragment):
        decode(data, name="x.jpg")


def test_truncated_jpeg_is_a_decode_error() -> None:
    data = save(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    with pytest.raises(ImageDecodeError, match="cannot be decoded"):
        decode(data[: len(data) // 2], name="cut.jpg")


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    data = save(Image.new("L", (12000, 12000), 0), "PNG", optimize=True)
    with pytest.raises(ImageDecodeError, match="144 MP"):
        decode(data, name="bomb.png", max_megapixels=100)
    assert decode(data, max_megapixels=200).width == 12000


def test_draft_mode_keeps_embedding_input_close() -> None:
    """Large JPEGs decode at reduced scale; the model input barely changes."""
    img = varied_images()[-1]  # 2048x1536
    data = save(img, "JPEG", quality=92)
    full = model_pixels(decode(data).image, clip_image_facts(224))
    fast_img = decode(data, min_side=224).image
    assert fast_img.size[1] < 1536  # draft really reduced the decode
    fast = model_pixels(fast_img, clip_image_facts(224))
    cos = float((full * fast).sum() / np.linalg.norm(full) / np.linalg.norm(fast))
    assert cos > 0.999
    assert decode(data, min_side=224).width == 2048  # the file's real size is reported
