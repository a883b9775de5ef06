"""HEIC/HEIF, AVIF, SVG, PSD and PSB read like any other image; every declared size bounded."""

from __future__ import annotations

import base64
import io
import logging
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from app_driver import literal, start
from helpers import run_main
from PIL import Image, features

from assetlens.catalogue import Item, render
from assetlens.engine.errors import ImageDecodeError
from assetlens.engine.grid import thumbnail
from assetlens.engine.library import Library
from assetlens.engine.preprocess import decode
from assetlens.engine.scan import iter_images

pytestmark = [pytest.mark.unit]

RED = (255, 0, 0)
BLUE = (0, 0, 255)
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


def psd_bytes(img: Image.Image, *, version: int = 1, blocks: bytes = b"") -> bytes:
    """A minimal Photoshop file (version 2: a PSB): header, empty colour mode and resource sections, a layer
    section holding no layer and the tagged ``blocks``, raw planar RGB."""
    rgb = np.asarray(img.convert("RGB"))
    height, width = rgb.shape[:2]
    header = b"8BPS" + struct.pack(">H6xHIIHH", version, 3, height, width, 8, 3)
    length = ">I" if version == 1 else ">Q"
    layers = struct.pack(length, 0) + struct.pack(">I", 0) + blocks if blocks else b""
    planes = rgb.transpose(2, 0, 1).tobytes()
    return header + struct.pack(">II", 0, 0) + struct.pack(length, len(layers)) + layers + struct.pack(">H", 0) + planes


def psd_declaring(width: int, height: int, *, version: int = 1) -> bytes:
    """A Photoshop header that declares ``width`` x ``height`` and holds no pixels."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", version, 3, height, width, 8, 3)
    return header + struct.pack(">II", 0, 0) + struct.pack(">I" if version == 1 else ">Q", 0) + struct.pack(">H", 0)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height``: signature, header chunk and an empty data chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", b"")
    )


def save_as(img: Image.Image, path: Path) -> Path:
    """``img`` written in the format ``path``'s extension names."""
    if path.suffix in (".psd", ".psb"):
        path.write_bytes(psd_bytes(img, version=1 if path.suffix == ".psd" else 2))
    else:
        img.save(path, format={".heic": "HEIF", ".avif": "AVIF"}[path.suffix], quality=95)
    return path


def two_colour_svg(width: str, height: str, extra: str = "") -> bytes:
    """A 2:1 SVG (viewBox 0 0 2 1): left half red, right half blue."""
    return (
        f'<?xml version="1.0"?>\n<svg {SVG_NS} xmlns:xlink="http://www.w3.org/1999/xlink" width="{width}" '
        f'height="{height}" viewBox="0 0 2 1"><rect width="1" height="1" fill="red"/>'
        f'<rect x="1" width="1" height="1" fill="blue"/>{extra}</svg>'
    ).encode()


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


@pytest.mark.parametrize("suffix", [".heic", ".avif", ".psd", ".psb"])
def test_raster_format_decodes_to_its_pixels(tmp_path: Path, suffix: str) -> None:
    img = Image.new("RGB", (96, 64), RED)
    img.paste(BLUE, (48, 0, 96, 64))
    decoded = decode(save_as(img, tmp_path / f"pic{suffix}"))
    assert (decoded.width, decoded.height) == (96, 64)
    assert decoded.image.size == (96, 64) and decoded.image.mode == "RGB"
    assert near(decoded.image.getpixel((10, 32)), RED)
    assert near(decoded.image.getpixel((86, 32)), BLUE)


def test_svg_renders_its_colours_in_its_aspect_at_the_model_size() -> None:
    decoded = decode(two_colour_svg("200", "100"), min_side=224, name="logo.svg")
    assert decoded.image.size == (448, 224) and (decoded.width, decoded.height) == (448, 224)
    assert decoded.image.getpixel((100, 112)) == RED
    assert decoded.image.getpixel((348, 112)) == BLUE


def test_svg_transparency_is_white() -> None:
    svg = f'<svg {SVG_NS} width="10" height="10"><rect width="5" height="10" fill="red"/></svg>'.encode()
    decoded = decode(svg, min_side=64)
    assert decoded.image.getpixel((10, 32)) == RED
    assert decoded.image.getpixel((54, 32)) == (255, 255, 255)


def test_svg_renders_at_the_bounded_size_not_the_declared_one() -> None:
    huge = two_colour_svg("200000", "100000")
    assert decode(huge).image.size == (1024, 512)  # short side 512 when the caller asks for no size
    assert decode(huge, min_side=224).image.size == (448, 224)
    square = f'<svg {SVG_NS} width="100000" height="100000"><rect width="9" height="9"/></svg>'.encode()
    assert decode(square, min_side=64).image.size == (64, 64)
    small = decode(huge, max_megapixels=0.01).image
    assert small.width * small.height <= 10_000 and small.width == 2 * small.height


def test_svg_reads_no_file_or_url_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where resvg resolves a relative name
    Image.new("RGB", (20, 20), (0, 255, 0)).save(tmp_path / "green.png")
    for href in (str(tmp_path / "green.png"), "green.png", "http://127.0.0.1:9/green.png"):
        svg = two_colour_svg("200", "100", f'<image xlink:href="{href}" width="2" height="1"/>')
        img = decode(svg, min_side=100).image
        assert img.getpixel((50, 50)) == RED and img.getpixel((150, 50)) == BLUE, href


def test_svg_keeps_embedded_pictures_within_the_limit_and_refuses_a_larger_one() -> None:
    green = Image.new("RGB", (4, 4), (0, 255, 0))
    buf = io.BytesIO()
    green.save(buf, format="PNG")
    inline = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    img = decode(two_colour_svg("200", "100", f'<image href="{inline}" width="2" height="1"/>'), min_side=100).image
    # the square picture keeps its aspect: centred over both halves
    assert (
        img.getpixel((20, 50)) == RED and near(img.getpixel((100, 50)), (0, 255, 0)) and img.getpixel((180, 50)) == BLUE
    )
    for side in (12_000, 100_000):  # over the limit; over twice the limit, where Pillow's own guard refuses it
        bomb = "data:image/png;base64," + base64.b64encode(png_declaring(side, side)).decode()
        with pytest.raises(ImageDecodeError) as err:
            decode(two_colour_svg("200", "100", f'<image href="{bomb}" width="2" height="1"/>'), name="bomb.svg")
        assert str(err.value) == "bomb.svg embeds a picture over the 100 MP limit."


@pytest.mark.parametrize("suffix", [".heic", ".avif", ".psd", ".psb"])
def test_declared_size_over_the_limit_is_refused(tmp_path: Path, suffix: str) -> None:
    path = save_as(Image.new("RGB", (64, 64), RED), tmp_path / f"big{suffix}")
    with pytest.raises(ImageDecodeError) as err:
        decode(path, max_megapixels=0.003, name=f"big{suffix}")
    assert str(err.value) == f"big{suffix} declares 64x64 pixels (0.0041 MP), over the 0.003 MP limit."


def test_photoshop_file_declaring_a_bomb_is_refused_unread() -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode(psd_declaring(100_000, 100_000), name="bomb.psd")
    assert str(err.value) == "bomb.psd holds more than 200 MP, over the 100 MP limit (a decompression bomb)."
    with pytest.raises(ImageDecodeError) as err:
        decode(psd_declaring(300_000, 300_000, version=2), name="bomb.psb")
    assert str(err.value) == "bomb.psb declares 300000x300000 pixels (9e+04 MP), over the 100 MP limit."


def test_avif_without_pillow_support_is_refused_in_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_as(Image.new("RGB", (16, 16), RED), tmp_path / "pic.avif")
    real: Callable[[str], bool | None] = features.check_module
    monkeypatch.setattr(features, "check_module", lambda feature: False if feature == "avif" else real(feature))
    with pytest.raises(ImageDecodeError) as err:
        decode(path, name="pic.avif")
    assert str(err.value) == "pic.avif is an AVIF image, and the installed Pillow was built without AVIF support."


def test_scan_picks_up_the_new_formats(tmp_path: Path) -> None:
    names = ["a.heic", "b.HEIF", "c.avif", "d.svg", "e.psd", "f.psb", "g.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in iter_images(tmp_path)] == names[:-1]


def write_brand_folder(folder: Path) -> None:
    """A red mug (HEIC), a blue mug (AVIF), a green mug (PSD), a yellow mug (PSB), a logo (SVG), and a broken
    file of each."""
    folder.mkdir()
    for color, suffix in (("red", ".heic"), ("blue", ".avif"), ("green", ".psd"), ("yellow", ".psb")):
        save_as(render(Item("mug", color, "wooden table"), size=128, seed=1), folder / f"{color}-mug{suffix}")
        (folder / f"broken{suffix}").write_bytes((folder / f"{color}-mug{suffix}").read_bytes()[:40])
    (folder / "logo.svg").write_bytes(two_colour_svg("64", "32"))
    (folder / "broken.svg").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><rect')


@pytest.mark.store
def test_brand_folder_is_indexed_and_searched(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "brand"
    write_brand_folder(folder)
    with caplog.at_level(logging.WARNING), Library(tmp_path / "lib.db", model="demo", device="cpu") as lib:
        report = lib.index(folder)
        top = {color: lib.search(f"a {color} mug", k=1)[0].filename for color in ("red", "blue", "green", "yellow")}
        count = lib.stats().count
    assert report.encoded == 5 and count == 5
    failed = sorted(Path(path).name for path, _reason in report.failed)
    assert failed == ["broken.avif", "broken.heic", "broken.psb", "broken.psd", "broken.svg"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in failed:
        assert sum(name in message for message in warned) == 1, name
    assert top == {"red": "red-mug.heic", "blue": "blue-mug.avif", "green": "green-mug.psd", "yellow": "yellow-mug.psb"}


@pytest.mark.parametrize("name", ["red-mug.heic", "blue-mug.avif", "green-mug.psd", "yellow-mug.psb", "logo.svg"])
def test_contact_sheet_thumbnail_of_each_format(tmp_path: Path, name: str) -> None:
    write_brand_folder(tmp_path / "brand")
    thumb = thumbnail(tmp_path / "brand" / name, 64)
    assert thumb is not None
    assert thumb.size == ((64, 32) if name.endswith(".svg") else (64, 64))
    if name.endswith(".svg"):
        assert thumb.getpixel((10, 16)) == RED and thumb.getpixel((54, 16)) == BLUE
    assert thumbnail(tmp_path / "brand" / ("broken" + Path(name).suffix), 64) is None


@pytest.mark.store
def test_app_takes_each_format_as_an_example_image(
    app_env: pytest.MonkeyPatch, mug_library: Path, tmp_path: Path
) -> None:
    at = start(app_env, mug_library, tmp_path / "out")
    assert {".heic", ".heif", ".avif", ".svg", ".psd", ".psb"} <= set(at.file_uploader(key="upload").allowed_type)
    red = save_as(render(Item("mug", "red", "wooden table"), size=96, seed=5), tmp_path / "query.heic")
    at.file_uploader(key="upload").set_value((red.name, red.read_bytes(), "image/heic")).run()
    assert not at.warning, [w.value for w in at.warning]
    cards = [c.value for c in at.caption if c.value.startswith("**") and "·" in c.value]
    assert literal(cards[0]).endswith("· red.png")


def test_photoshop_reader_chatter_stays_off_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    unknown_block = b"8BIMZZZZ" + struct.pack(">I", 0)  # psd-tools logs a warning for a key it does not know
    (folder / "poster.psb").write_bytes(psd_bytes(Image.new("RGB", (8, 8), RED), version=2, blocks=unknown_block))
    code, out, err = run_main(capsys, "index", str(folder), "--db", str(tmp_path / "lib.db"), "--model", "demo")
    assert code == 0 and "1 indexed" in out and "0 failed" in out
    assert "ZZZZ" not in err


@pytest.mark.parametrize(
    "doctype",
    [
        '<!ENTITY a "aaaaaaaaaa">' + "".join(f'<!ENTITY {chr(98 + i)} "{f"&{chr(97 + i)};" * 10}">' for i in range(9)),
        '<!ENTITY j SYSTEM "file:///etc/hostname">',
    ],
    ids=["entity-expansion", "external-entity"],
)
def test_svg_entities_are_neither_expanded_without_bound_nor_read_from_files(doctype: str) -> None:
    svg = f'<?xml version="1.0"?><!DOCTYPE svg [{doctype}]><svg {SVG_NS} width="9" height="9"><text>&j;</text></svg>'
    with pytest.raises(ImageDecodeError) as err:
        decode(svg.encode(), name="hostile.svg")
    assert str(err.value).startswith("hostile.svg is not a well-formed SVG (")
