"""Hostile input: decoder memory, --prune on folders that cannot be read, names that are not UTF-8 or hold
control characters, output paths that cannot be written and output pipes that close.

Memory is measured in a subprocess (peak RSS from ``resource``) against generous bounds; nothing is timed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_process import (
    DROP_DAC,
    assert_no_traceback,
    assert_one_sentence,
    cli_env,
    needs_permissions,
    run_cli,
    warnings_in,
)
from helpers import clip_image_facts, library_snapshot, read_only_folder
from PIL import Image

from assetlens.catalogue import Item, render
from assetlens.engine.indexer import path_text
from assetlens.engine.preprocess import decode, model_pixels

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "demo"


def shot(color: str, seed: int, size: int = 96) -> Image.Image:
    return render(Item("mug", color, "wooden table"), size=size, seed=seed)


def index(folder: Path, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = run_cli("index", folder, "--db", db, "--model", MODEL, "--device", "cpu", *extra)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    return result


def stored_paths(db: Path) -> set[str]:
    return set(library_snapshot(db))


# -- decoding: memory per decode ----------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_rows(width: int, height: int, row: bytes, depth: int, color: int = 0) -> bytes:
    """A PNG (colour type ``color``: 0 grey, 6 RGBA) of ``height`` copies of ``row`` (raw samples),
    compressed without holding the picture."""
    packer = zlib.compressobj(9)
    line = b"\0" + row
    body = b"".join(packer.compress(line) for _ in range(height)) + packer.flush()
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def icns_declaring_256(inner_png: bytes) -> bytes:
    """An ICNS file whose one entry is the 256x256 slot (ic08) and holds ``inner_png``, whatever its size."""
    entry = b"ic08" + struct.pack(">I", 8 + len(inner_png)) + inner_png
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


PEAK_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from assetlens.engine.preprocess import decode
    from assetlens.engine.errors import ImageDecodeError
    path, min_side, limit = sys.argv[1], int(sys.argv[2]) or None, float(sys.argv[3])
    data = open(path, "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        size, error = decode(data, min_side=min_side, max_megapixels=limit, name=path).image.size, None
    except ImageDecodeError as exc:
        size, error = None, str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grew_bytes": (after - before) * 1024, "size": size, "error": error}))
    """
)


def decode_peak(path: Path, min_side: int = 0, limit: float = 100.0) -> dict[str, object]:
    """Decode ``path`` in a fresh interpreter: how much its peak RSS grew, the image size or the error."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path), str(min_side), str(limit)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_container_declaring_a_small_picture_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    """An ICNS file named .png declares 256x256; its inner PNG is 8000x8000 RGBA (256 MB decoded)."""
    inner = png_of_rows(8000, 8000, bytes(4 * 8000), 8, color=6)
    path = tmp_path / "icon.png"
    path.write_bytes(icns_declaring_256(inner))
    assert path.stat().st_size < 300_000
    got = decode_peak(path)
    assert got["error"] == f"{path} is not an image Pillow can read.", got
    assert isinstance(got["grew_bytes"], int) and got["grew_bytes"] < 64 * 2**20, got


def test_pillow_keeps_its_own_bomb_guard() -> None:
    """Importing the engine leaves Pillow's process-wide guard as Pillow sets it (on)."""
    script = (
        "from PIL import Image; default = Image.MAX_IMAGE_PIXELS; import assetlens.engine.preprocess; "
        "print(Image.MAX_IMAGE_PIXELS == default and default is not None)"
    )
    result = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr


def ramp16(width: int) -> bytes:
    return np.linspace(0, 65535, width).astype(">u2").tobytes()


@pytest.mark.parametrize("min_side, bytes_per_pixel", [(224, 4), (0, 8)])
def test_16bit_picture_decodes_in_bounded_memory(tmp_path: Path, min_side: int, bytes_per_pixel: int) -> None:
    """A 36 MP 16-bit grayscale PNG: 2 bytes a pixel as loaded, so bounds of 4 (reduced for the model)
    and 8 (full size, RGB) bytes a pixel leave room for little more than the picture itself."""
    width = height = 6000
    path = tmp_path / "deep.png"
    path.write_bytes(png_of_rows(width, height, ramp16(width), 16))
    got = decode_peak(path, min_side)
    assert got["error"] is None, got
    size = got["size"]
    assert isinstance(size, list) and min(size) >= (min_side or height), got
    assert isinstance(got["grew_bytes"], int) and got["grew_bytes"] < bytes_per_pixel * width * height, got


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_high_depth_conversion_keeps_the_model_input(tmp_path: Path, mode: str) -> None:
    """Full size: exactly the 8-bit picture of the float64 formula; reduced for the model: the same input to
    within the draft-mode tolerance."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1500, 0:2000]
    values = (xx * 30 + yy * 3 + rng.integers(0, 900, size=xx.shape)).clip(0, 65535)
    if mode == "F":
        values = values / 65535.0
    img = Image.fromarray(values.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    img = img if img.mode == mode else img.convert(mode)
    path = tmp_path / "deep.tif"
    img.save(path)
    arr = np.asarray(Image.open(path), dtype=np.float64)
    peak = 1.0 if mode == "F" else 65535.0
    expected = np.clip(arr * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
    full = decode(path).image
    assert full.size == (2000, 1500)
    np.testing.assert_array_equal(np.asarray(full)[..., 0], expected)
    facts = clip_image_facts(224)
    reduced = decode(path, min_side=224)
    assert min(reduced.image.size) < 1500 and min(reduced.image.size) >= 224
    assert (reduced.width, reduced.height) == (2000, 1500)
    a, b = model_pixels(full, facts), model_pixels(reduced.image, facts)
    assert float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)) > 0.999


# -- --prune ------------------------------------------------------------------------------


@needs_permissions
def test_prune_keeps_rows_of_an_unreadable_folder_and_drops_a_broken_link(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    (folder / "private").mkdir(parents=True)
    elsewhere.mkdir()
    shot("red", 1).save(folder / "keep.png")
    shot("blue", 2).save(folder / "private" / "away.png")
    shot("green", 3).save(folder / "deleted.png")
    shot("white", 4).save(elsewhere / "target.png")
    (folder / "link.png").symlink_to(elsewhere / "target.png")
    db = tmp_path / "lib.db"
    index(folder, db)
    (folder / "deleted.png").unlink()
    (elsewhere / "target.png").unlink()
    (folder / "private").chmod(0)
    try:
        result = index(folder, db, "--prune")
    finally:
        (folder / "private").chmod(0o755)
    assert "2 removed" in result.stdout, result.stdout
    assert stored_paths(db) == {str(folder / "keep.png"), str(folder / "private" / "away.png")}
    assert f"warning: {folder / 'private'} cannot be read (Permission denied)" in result.stderr
    assert "1 indexed image(s) under" in result.stderr and "they are kept" in result.stderr


def two_mugs_indexed(folder: Path) -> tuple[Path, Path]:
    """``folder`` with a red and a blue mug, indexed into ``lib.db`` beside it: (folder, library)."""
    folder.mkdir()
    for i, color in enumerate(("red", "blue")):
        shot(color, i).save(folder / f"{color}.png")
    db = folder.parent / "lib.db"
    index(folder, db)
    return folder, db


@needs_permissions
def test_prune_removes_nothing_under_a_root_that_cannot_be_read(tmp_path: Path) -> None:
    folder, db = two_mugs_indexed(tmp_path / "share")
    folder.chmod(0)
    try:
        result = index(folder, db, "--prune")
    finally:
        folder.chmod(0o755)
    assert " removed" not in result.stdout, result.stdout
    assert len(stored_paths(db)) == 2
    assert warnings_in(result.stderr) == [
        f"warning: {folder} cannot be read (Permission denied); the images in it are skipped.",
        f"warning: 2 indexed image(s) under {folder} cannot be checked (unreadable folders); they are kept.",
    ]


def test_prune_removes_nothing_under_a_root_that_lists_empty(tmp_path: Path) -> None:
    """An unmounted drive's mount point is an empty folder: its images are not gone."""
    folder, db = two_mugs_indexed(tmp_path / "mnt")
    for file in folder.iterdir():
        file.rename(tmp_path / file.name)
    result = index(folder, db, "--prune")
    assert " removed" not in result.stdout, result.stdout
    assert len(stored_paths(db)) == 2
    assert f"warning: {folder} is empty (a drive or share not mounted?); its 2 indexed image(s) are kept." in (
        warnings_in(result.stderr)
    )


# -- names --------------------------------------------------------------------------------


def test_names_that_are_not_utf8_get_their_own_rows_and_paths_that_open(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    raw_names = [b"caf\xe9.png", b"caf\xe8.png", b"caf\\xe9.png"]  # the last one is valid UTF-8, a backslash
    digests = {}
    for i, raw in enumerate(raw_names):
        path = os.fsencode(folder) + b"/" + raw
        shot(("red", "blue", "green")[i], i).save(os.fsdecode(path), "PNG")
        with open(path, "rb") as f:
            digests[raw] = hashlib.sha256(f.read()).hexdigest()
    db = tmp_path / "lib.db"
    assert "3 indexed" in index(folder, db).stdout
    assert len(stored_paths(db)) == 3
    result = run_cli("search", "a mug", "--db", db, "-k", "10", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    opened = {}
    for hit in hits:
        with open(os.fsencode(hit["path"]), "rb") as f:
            opened[os.path.basename(os.fsencode(hit["path"]))] = hashlib.sha256(f.read()).hexdigest()
    assert opened == digests


EVIL = "evil\x1b[2J\r\n  1  1.0000  forged.png"


def test_control_characters_in_names_are_escaped_on_the_terminal_and_exact_in_json(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shot("red", 1).save(folder / f"{EVIL}.png", "PNG")
    (folder / "bad\x1b]0;owned\x07.jpg").write_text("not a picture")
    db = tmp_path / "lib.db"
    result = index(folder, db)
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert warnings_in(result.stderr) == [
        f"warning: {folder}/bad\\x1b]0;owned\\x07.jpg is not an image Pillow can read."
    ]
    text = run_cli("search", "a mug", "--db", db)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "\x1b" not in text.stdout and "\r" not in text.stdout and len(lines) == 1, text.stdout
    assert lines[0].endswith(f"  {folder}/evil\\x1b[2J\\r\\n  1  1.0000  forged.png.png"), lines
    as_json = run_cli("search", "a mug", "--db", db, "--json")
    assert [h["path"] for h in json.loads(as_json.stdout)] == [str(folder / f"{EVIL}.png")]


def test_contact_sheet_of_a_name_with_a_newline(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shot("red", 1).save(folder / "two\nlines.png", "PNG")
    db = tmp_path / "lib.db"
    index(folder, db)
    result = run_cli("search", "a mug", "--db", db, "--grid", tmp_path / "sheet.png")
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > 100


def test_pillow_log_records_are_not_fatal_looking_errors(tmp_path: Path) -> None:
    """A TIFF claiming 300 samples a pixel: Pillow logs that at ERROR; the run warns once, naming the file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shot("red", 1).save(folder / "fine.png")
    with Image.open(folder / "fine.png") as img:
        img.save(folder / "odd.tif")
    data = bytearray((folder / "odd.tif").read_bytes())
    first = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[first : first + 2])[0]):
        entry = first + 2 + 12 * i
        if struct.unpack("<H", data[entry : entry + 2])[0] == 277:  # SamplesPerPixel
            data[entry + 8 : entry + 10] = struct.pack("<H", 300)
    (folder / "odd.tif").write_bytes(bytes(data))
    result = index(folder, tmp_path / "lib.db")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith("error")], result.stderr
    assert warnings_in(result.stderr) == [f"warning: {folder / 'odd.tif'} is not an image Pillow can read."]
    assert "1 indexed" in result.stdout and "1 failed" in result.stdout


# -- arguments ----------------------------------------------------------------------------


@needs_permissions
def test_grid_in_a_folder_that_cannot_be_written(mug_library: Path, tmp_path: Path) -> None:
    with read_only_folder(tmp_path / "locked") as locked:
        result = run_cli("search", "a mug", "--db", mug_library, "--grid", locked / "sheet.png")
    assert_one_sentence(result, 2, f"--grid {locked / 'sheet.png'} cannot be written: permission denied.")
    assert result.stdout == ""


def test_output_into_a_closed_pipe_ends_quietly(mug_library: Path) -> None:
    """``assetlens search ... | head -0``: the reader is gone before the first line is written."""
    argv = [*DROP_DAC, sys.executable, "-m", "assetlens", "search", "a mug", "--db", str(mug_library), "--json"]
    with subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=300)
    assert err == "" and code == 1, (code, err)


def test_remove_counts_the_rows_it_removed(mug_library: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    index(mug_library.parent / "photos", db)
    red = mug_library.parent / "photos" / "red.png"
    result = run_cli("remove", red, red, tmp_path / "never-indexed.png", "--db", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "removed 1 image(s) from the library (files untouched)"
    assert path_text(red) not in stored_paths(db) and len(stored_paths(db)) == 2
    elsewhere = run_cli("remove", red, "--db", db, "--collection", "never_made")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout.strip() == "removed 0 image(s) from the library (files untouched)"
