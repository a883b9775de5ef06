"""Hostile and odd input, and bad arguments, through the real ``assetlens`` command in subprocesses.

A generated corpus holds every kind of file a real photo folder ends up with. Each bad file must be
skipped with one warning line naming it and counted as failed; odd but valid files must be indexed,
upright, under their exact names, and be searchable; junk (hidden files, macOS resource forks) is left
alone unless asked for. Bad arguments get one sentence and a non-zero exit. Nothing prints a traceback.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_process import assert_no_traceback, assert_one_sentence, needs_permissions, run_cli, warnings_in
from helpers import library_snapshot, read_only_folder
from PIL import Image, ImageOps

from assetlens.catalogue import Item, render
from assetlens.engine.indexer import path_text
from assetlens.engine.store import MilvusStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "demo"
NON_UTF8_DIR = os.fsdecode(b"d\xe9j\xe0 vu")  # Latin-1 names, not valid UTF-8
NON_UTF8 = NON_UTF8_DIR + os.sep + os.fsdecode(b"caf\xe9.jpg")

#: Odd but valid files -> the (width, height) stored for them: upright, full resolution.
GOOD = {
    "plain.jpg": (160, 120),
    "deep16.png": (64, 48),
    "cmyk.jpg": (96, 80),
    "palette.png": (90, 90),
    "anim.gif": (80, 60),
    "first-frame.png": (80, 60),  # anim.gif's first frame, as Pillow reads it
    "last-frame.png": (80, 60),  # and its last
    "rotated.jpg": (120, 160),  # stored 160x120 with EXIF orientation 6 (turn 90 degrees clockwise)
    "upright.png": (120, 160),  # rotated.jpg's pixels turned upright, no EXIF
    "sideways.png": (160, 120),  # rotated.jpg's pixels as stored, EXIF ignored
    'with space/it\'s "quoted" name.png': (100, 100),
    "café ☕ 日本.jpg": (110, 100),
    NON_UTF8: (100, 110),
}
#: Bad files -> what their warning says.
BAD = {
    "empty.jpg": "is not an image Pillow can read",
    "page.jpg": "is not an image Pillow can read",
    "notes.png": "is not an image Pillow can read",
    "truncated.jpg": "cannot be decoded (image file is truncated",
    "truncated.png": "cannot be decoded (",
    "bomb.png": "holds more than 200 MP, over the 100 MP limit (a decompression bomb)",
    "broken.jpg": "cannot be read (No such file or directory)",
    "loop.jpg": "cannot be read (Too many levels of symbolic links)",
    "locked.jpg": "cannot be read (Permission denied)",
}
#: Skipped by default; the first two are ordinary hidden images that --include-hidden indexes.
HIDDEN = {".hidden.jpg": (50, 40), ".cache/thumb.jpg": (40, 50)}
ALWAYS_SKIPPED = ("._plain.jpg", "__MACOSX/._x.jpg", "readme.txt")


def shot(obj: str, color: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A catalogue product shot cropped to ``size``."""
    side = max(size)
    img = render(Item(obj, color, "wooden table"), size=side, seed=seed)
    left, top = (side - size[0]) // 2, (side - size[1]) // 2
    return img.crop((left, top, left + size[0], top + size[1]))


def jpeg(img: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **params)
    return buf.getvalue()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds almost none: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def build_corpus(root: Path) -> None:
    """Write GOOD, BAD, HIDDEN and ALWAYS_SKIPPED files (and a directory symlink loop) under ``root``."""
    (root / "with space").mkdir(parents=True)
    (root / NON_UTF8_DIR).mkdir()
    (root / ".cache").mkdir()
    (root / "__MACOSX").mkdir()
    shot("mug", "red", GOOD["plain.jpg"], 1).save(root / "plain.jpg", quality=90)
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(root / "deep16.png")  # mode I;16
    (root / "cmyk.jpg").write_bytes(jpeg(shot("watch", "gold", GOOD["cmyk.jpg"], 2).convert("CMYK")))
    palette = shot("lamp", "yellow", GOOD["palette.png"], 3).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    palette.save(root / "palette.png", transparency=0)
    frames = [shot("hat", color, GOOD["anim.gif"], 4) for color in ("blue", "green", "black")]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(root / "anim.gif") as gif:
        gif.convert("RGB").save(root / "first-frame.png")
        gif.seek(gif.n_frames - 1)
        gif.convert("RGB").save(root / "last-frame.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = shot("shoe", "green", GOOD["sideways.png"], 5)
    (root / "rotated.jpg").write_bytes(jpeg(stored, exif=exif))
    with Image.open(root / "rotated.jpg") as img:
        img.convert("RGB").save(root / "sideways.png")
        ImageOps.exif_transpose(img).convert("RGB").save(root / "upright.png")
    shot("bottle", "blue", GOOD['with space/it\'s "quoted" name.png'], 6).save(
        root / "with space" / 'it\'s "quoted" name.png'
    )
    shot("mug", "white", GOOD["café ☕ 日本.jpg"], 7).convert("RGB").save(root / "café ☕ 日本.jpg", quality=90)
    (root / NON_UTF8).write_bytes(jpeg(shot("chair", "red", GOOD[NON_UTF8], 8)))

    (root / "empty.jpg").write_bytes(b"")
    (root / "page.jpg").write_text("<!doctype html><html><body>not a picture</body></html>\n")
    (root / "notes.png").write_text("just some notes\n")
    whole = jpeg(shot("watch", "silver", (320, 240), 9))
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    whole = png(shot("watch", "black", (320, 240), 10))
    (root / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "bomb.png").write_bytes(png_header_only(30000, 30000))
    (root / "broken.jpg").symlink_to(root / "gone.jpg")
    (root / "loop.jpg").symlink_to("loop.jpg")
    (root / "locked.jpg").write_bytes(jpeg(shot("lamp", "red", (64, 64), 11)))
    (root / "locked.jpg").chmod(0)

    shot("hat", "red", HIDDEN[".hidden.jpg"], 12).save(root / ".hidden.jpg", quality=90)
    shot("hat", "gold", HIDDEN[".cache/thumb.jpg"], 13).save(root / ".cache" / "thumb.jpg", quality=90)
    (root / "._plain.jpg").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)  # AppleDouble resource fork
    (root / "__MACOSX" / "._x.jpg").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)
    (root / "readme.txt").write_text("not an image\n")
    (root / "again").symlink_to(".")  # a directory loop: never followed


def stored(root: Path, names: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The paths as the library stores them -> expected (width, height)."""
    return {path_text(root / name): size for name, size in names.items()}


def library_sizes(db: Path) -> dict[str, tuple[int, int]]:
    return {path: (row.width, row.height) for path, (row, _) in library_snapshot(db).items()}


@dataclass(frozen=True)
class Indexed:
    corpus: Path
    db: Path
    out: str
    err: str


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexed]:
    """The hostile corpus, indexed once through the CLI."""
    base = tmp_path_factory.mktemp("hostile")
    corpus = base / "photos"
    build_corpus(corpus)
    db = base / "lib.db"
    result = run_cli("index", corpus, "--db", db, "--model", MODEL, "--device", "cpu", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    yield Indexed(corpus, db, result.stdout, result.stderr)
    (corpus / "locked.jpg").chmod(0o644)  # let pytest clean it up


@needs_permissions
def test_counts_and_one_warning_naming_each_bad_file(hostile: Indexed) -> None:
    assert (
        f"{len(GOOD)} indexed, 0 unchanged, 0 moved or copied (vector reused), 0 touched (metadata updated), "
        f"{len(BAD)} failed" in hostile.out
    )
    assert f": {len(GOOD)} images" in hostile.out
    warnings = warnings_in(hostile.err)
    assert len(warnings) == len(BAD), warnings
    for name, reason in BAD.items():
        path = path_text(hostile.corpus / name)
        naming = [w for w in warnings if f"{path} " in w]
        assert len(naming) == 1 and reason in naming[0], (name, naming)


@needs_permissions
def test_odd_files_are_stored_upright_under_their_exact_names(hostile: Indexed) -> None:
    assert library_sizes(hostile.db) == stored(hostile.corpus, GOOD)


def like(hostile: Indexed, name: str) -> dict[str, float]:
    """File name -> score of every other good file, searched with ``--like`` the indexed file ``name``."""
    result = run_cli("search", "--like", hostile.corpus / name, "--db", hostile.db, "-k", str(len(GOOD)), "--json")
    assert result.returncode == 0, result.stderr
    return {Path(h["path"]).name: h["score"] for h in json.loads(result.stdout)}


@needs_permissions
def test_exif_rotated_photo_is_embedded_upright(hostile: Indexed) -> None:
    scores = like(hostile, "rotated.jpg")
    assert max(scores, key=scores.__getitem__) == "upright.png"
    assert scores["upright.png"] > 0.999 and scores["sideways.png"] < scores["upright.png"] - 1e-3


@needs_permissions
def test_animated_gif_is_embedded_by_its_first_frame(hostile: Indexed) -> None:
    scores = like(hostile, "anim.gif")
    assert max(scores, key=scores.__getitem__) == "first-frame.png"
    assert scores["first-frame.png"] > 0.999 and scores["last-frame.png"] < scores["first-frame.png"] - 1e-3


@needs_permissions
@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--filename", "☕", "café ☕ 日本.jpg"),
        ("--filename", 'quoted"', 'with space/it\'s "quoted" name.png'),
        ("--filename", "it's", 'with space/it\'s "quoted" name.png'),
        ("--folder", NON_UTF8_DIR, NON_UTF8),
        ("--folder", "with space", 'with space/it\'s "quoted" name.png'),
    ],
)
def test_odd_names_are_searchable(hostile: Indexed, option: str, value: str, expected: str) -> None:
    if option == "--folder":
        value = str(hostile.corpus / value)
    result = run_cli("search", "a product photo", "--db", hostile.db, option, value, "-k", "5", "--json")
    assert result.returncode == 0, result.stderr
    assert [h["path"] for h in json.loads(result.stdout)] == [str(hostile.corpus / expected)]


@needs_permissions
def test_rerun_changes_nothing_and_warns_again(hostile: Indexed) -> None:
    result = run_cli("index", hostile.corpus, "--db", hostile.db, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    assert (
        f"0 indexed, {len(GOOD)} unchanged, 0 moved or copied (vector reused), 0 touched (metadata updated), "
        f"{len(BAD)} failed" in result.stdout
    )
    assert len(warnings_in(result.stderr)) == len(BAD)
    assert library_sizes(hostile.db) == stored(hostile.corpus, GOOD)


@needs_permissions
def test_hidden_files_only_when_asked_and_resource_forks_never(hostile: Indexed, tmp_path: Path) -> None:
    db = tmp_path / "hidden.db"
    result = run_cli("index", hostile.corpus, "--db", db, "--model", MODEL, "--device", "cpu", "--include-hidden")
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    assert f"{len(GOOD) + len(HIDDEN)} indexed" in result.stdout and f"{len(BAD)} failed" in result.stdout
    assert library_sizes(db) == stored(hostile.corpus, GOOD | HIDDEN)
    assert not any(name in result.stderr for name in ALWAYS_SKIPPED)


def test_megapixel_limit_is_per_run(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shot("mug", "red", (200, 100), 1).save(folder / "small.jpg")  # 0.02 MP
    shot("mug", "blue", (400, 300), 2).save(folder / "large.jpg")  # 0.12 MP
    db = tmp_path / "lib.db"
    result = run_cli("index", folder, "--db", db, "--model", MODEL, "--device", "cpu", "--max-megapixels", "0.07")
    assert result.returncode == 0, result.stderr
    assert "1 indexed" in result.stdout and "1 failed" in result.stdout
    assert warnings_in(result.stderr) == [
        f"warning: {folder / 'large.jpg'} declares 400x300 pixels (0.12 MP), over the 0.07 MP limit."
    ]
    assert library_sizes(db) == {str(folder / "small.jpg"): (200, 100)}


@needs_permissions
def test_unreadable_folder_is_named_and_the_rest_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "private").mkdir(parents=True)
    shot("mug", "red", (100, 100), 1).save(folder / "open.jpg")
    shot("mug", "blue", (100, 100), 2).save(folder / "private" / "hidden-away.jpg")
    (folder / "private").chmod(0)
    try:
        result = run_cli("index", folder, "--db", tmp_path / "lib.db", "--model", MODEL, "--device", "cpu")
    finally:
        (folder / "private").chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    assert "1 indexed" in result.stdout
    assert warnings_in(result.stderr) == [
        f"warning: {folder / 'private'} cannot be read (Permission denied); the images in it are skipped."
    ]


# -- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["search", "   "], 2, "The query text is empty"),
        (["search", "a mug", "-k", "-3"], 2, "-k must be at least 1"),
        (["search", "a mug", "--offset", "-1"], 2, "--offset cannot be negative"),
        (["search"], 2, "Give a text query, --image or --like (at least one)"),
        (["search", "--like", "/nowhere/x.jpg"], 2, "/nowhere/x.jpg is not in the library"),
        (["index", "PHOTOS", "--max-megapixels", "0"], 2, "--max-megapixels must be a positive number, not 0"),
        (["index", "PHOTOS", "--max-megapixels", "nan"], 2, "--max-megapixels must be a positive number, not nan"),
        (["search", os.fsdecode(b"caf\xe9")], 2, "The query text is not valid UTF-8"),
        (["search", "a mug", "--minus", os.fsdecode(b"\xff")], 2, "A --minus text is not valid UTF-8"),
        (["search", "a mug", "--grid", "sheet"], 2, "--grid sheet needs a picture file name ending in .png"),
        (["search", "a mug", "--grid", "PHOTOS"], 2, "is a folder; give a file name such as"),
        (["search", "a mug", "--collection", ""], 2, "'' is not a valid collection name"),
        (["search", "a mug", "--collection", "../x"], 2, "'../x' is not a valid collection name"),
        (["search", "a mug", "--collection", "c" * 256], 2, "(256 characters) is not a valid collection name"),
        (["index", "PHOTOS", "--collection", "no-dash"], 2, "'no-dash' is not a valid collection name"),
        (
            ["search", "a mug", "--text-weight", "nan"],
            2,
            "--text-weight must be a finite number of at least 0, not nan",
        ),
        (
            ["search", "a mug", "--image-weight", "inf"],
            2,
            "--image-weight must be a finite number of at least 0, not inf",
        ),
        (["search", "a mug", "--minus", "x", "--minus-weight", "-1"], 2, "--minus-weight must be a finite number"),
        (["search", "a mug", "--min-score", "nan"], 2, "--min-score must be a finite number of at least 0, not nan"),
        (["search", "--image", "PHOTOS"], 2, "is a folder, not a file"),
        (["generate", "a mug", "--timeout", "nan"], 2, "--timeout must be a positive number of seconds, not nan"),
        (["generate", "a mug", "--timeout", "-5"], 2, "--timeout must be a positive number of seconds, not -5"),
        (["search", "a mug", "--uri", "http://127.0.0.1:1"], 1, "No Milvus server answers at http://127.0.0.1:1"),
        (["search", "a mug", "--uri", "http://localhost:port"], 1, "http://localhost:port is not a valid Milvus URI"),
    ],
)
def test_bad_arguments_get_one_sentence(mug_library: Path, argv: list[str], code: int, message: str) -> None:
    argv = [str(mug_library.parent / "photos") if a == "PHOTOS" else a for a in argv]
    assert_one_sentence(run_cli(*argv, "--db", mug_library, "--device", "cpu"), code, message)


@pytest.mark.parametrize("argv", [["index", "PHOTOS", "--batch-size", "0"], ["search", "a mug", "-k", "many"]])
def test_malformed_options_get_usage_and_exit_2(mug_library: Path, argv: list[str]) -> None:
    argv = [str(mug_library.parent / "photos") if a == "PHOTOS" else a for a in argv]
    result = run_cli(*argv, "--db", mug_library)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert result.stderr.startswith("usage: assetlens") and "error: argument" in result.stderr


def test_silent_server_is_one_sentence_not_a_hang(mug_library: Path) -> None:
    """A port that accepts connections and never answers (bounded by the client's own timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = run_cli("index", mug_library.parent / "photos", "--uri", uri, "--model", MODEL, timeout=120)
    assert_one_sentence(result, 1, f"No Milvus server answers at {uri}")


@needs_permissions
def test_library_in_a_read_only_folder(mug_library: Path, tmp_path: Path) -> None:
    with read_only_folder(tmp_path / "read-only") as folder:
        result = run_cli("index", mug_library.parent / "photos", "--db", folder / "lib.db", "--model", MODEL)
        assert_one_sentence(result, 1, f"Cannot write the library {folder / 'lib.db'}: its folder is not writable.")
        assert list(folder.iterdir()) == []


def test_library_path_that_is_a_file(mug_library: Path, tmp_path: Path) -> None:
    (tmp_path / "lib.db").write_text("not a library")
    result = run_cli("search", "a mug", "--db", tmp_path / "lib.db")
    assert_one_sentence(result, 1, f"{tmp_path / 'lib.db'} exists but is not a Milvus Lite library (it is a file).")


@pytest.mark.parametrize("argv", [["search", "a mug"], ["index", "PHOTOS", "--model", MODEL], ["stats"]])
def test_library_in_use_by_another_process(mug_library: Path, tmp_path: Path, argv: list[str]) -> None:
    """Milvus Lite allows one process per library: the second one gets one sentence, at once."""
    argv = [str(mug_library.parent / "photos") if a == "PHOTOS" else a for a in argv]
    (tmp_path / "assetlens.db").symlink_to(mug_library)  # the default library of a CLI run in tmp_path
    with MilvusStore(str(mug_library)):
        result = run_cli(*argv, cwd=tmp_path, timeout=120)
    assert_one_sentence(
        result,
        1,
        "The library assetlens.db is in use by another AssetLens process; stop it or use a Milvus server with --uri.",
    )
