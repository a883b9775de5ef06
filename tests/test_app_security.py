"""Who may use the app (the access token of ``assetlens ui``) and what it shows of file names (escaped Markdown)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from app_driver import finish_indexing, start
from streamlit.testing.v1 import AppTest

import assetlens.cli
from assetlens.catalogue import Item
from assetlens.engine.library import Library
from assetlens.ui.access import TOKEN_VARIABLE
from assetlens.ui.markdown import plain

pytestmark = [pytest.mark.store]

TOKEN = "s3cret-token_for-this-server"
# File names that Markdown would turn into a link, a remote image, an autolink, HTML or a Streamlit directive.
CRAFTED = (
    "[x](https:evil.example).jpg",
    "![](https:evil.example).jpg",
    "www.evil.example.jpg",
    "<img src=https:evil.example>.jpg",
    ":red[alert] **bold** &amp; $x$.jpg",
)


@pytest.fixture
def crafted(tmp_path: Path, catalogue: list[tuple[Path, Item]]) -> tuple[Path, Path]:
    """(library, folder): the crafted names, each a copy of a distinct catalogue JPEG, indexed."""
    folder = tmp_path / "[folder](https:evil.example)"
    folder.mkdir()
    jpegs = [path for path, _ in catalogue if path.suffix == ".jpg"]
    for name, source in zip(CRAFTED, jpegs, strict=False):
        shutil.copyfile(source, folder / name)
    db = tmp_path / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        assert lib.index(folder).encoded == len(CRAFTED)
    return db, folder


def everything(at: AppTest) -> list[Any]:
    kinds = ("markdown", "caption", "metric", "text_input", "button", "image", "tabs", "error", "warning", "success")
    return [e for kind in kinds for e in at.get(kind)] + list(at.sidebar.children.values())


# -- the access token -------------------------------------------------------------------


@pytest.mark.parametrize("given", [None, "", "wrong", TOKEN[:-1], TOKEN + "x", "tökén"])
def test_without_the_right_token_the_app_shows_nothing_of_the_library(
    app_env: pytest.MonkeyPatch, crafted: tuple[Path, Path], tmp_path: Path, given: str | None
) -> None:
    app_env.setenv(TOKEN_VARIABLE, TOKEN)
    at = start(app_env, crafted[0], tmp_path / "gen", token=given)
    assert [i.value for i in at.info] == [
        "Open the URL that `assetlens ui` printed in its terminal; it carries this server's access token."
    ]
    assert everything(at) == []
    assert "admitted" not in at.session_state


def test_the_right_token_admits_the_session_for_its_reruns(
    app_env: pytest.MonkeyPatch, crafted: tuple[Path, Path], tmp_path: Path
) -> None:
    app_env.setenv(TOKEN_VARIABLE, TOKEN)
    at = start(app_env, crafted[0], tmp_path / "gen", token=TOKEN)
    assert {m.label: m.value for m in at.metric}["Images"] == str(len(CRAFTED))
    at.query_params.clear()  # the URL of a later rerun need not carry it
    at.text_input(key="query").input("a product photo").run()
    assert len([c for c in at.caption if c.value.startswith("**")]) == len(CRAFTED)


def test_without_a_token_configured_the_app_is_open(
    app_env: pytest.MonkeyPatch, crafted: tuple[Path, Path], tmp_path: Path
) -> None:
    at = start(app_env, crafted[0], tmp_path / "gen")
    assert {m.label: m.value for m in at.metric}["Images"] == str(len(CRAFTED))
    assert not at.info[0].value.startswith("Open the URL")


class Exec(Exception):
    """``os.execve`` replaced: the argv and environment the command would have become."""

    def __init__(self, argv: list[str], environ: dict[str, str]) -> None:
        self.argv, self.environ = argv, environ


def launch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[list[str], dict[str, str], str]:
    """What ``assetlens ui ARGS`` would exec: (argv, environment, what it printed)."""

    def execve(path: str, argv: list[str], environ: dict[str, str]) -> None:
        raise Exec(argv, environ)

    monkeypatch.setattr(os, "execve", execve)
    with pytest.raises(Exec) as started:
        assetlens.cli.main(["ui", "--db", "lib.db", "--port", "8765", *args])
    return started.value.argv, started.value.environ, capsys.readouterr().out


def test_assetlens_ui_makes_a_token_per_start_and_passes_it_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "inherited")
    argv, environ, printed = launch(monkeypatch, capsys)
    token = environ[TOKEN_VARIABLE]
    assert token != "inherited" and len(token) >= 40
    assert printed.strip() == f"AssetLens: open http://127.0.0.1:8765/?token={token}"
    assert not any(token in arg for arg in argv)
    _, again, _ = launch(monkeypatch, capsys)
    assert again[TOKEN_VARIABLE] != token


def test_no_token_starts_the_app_open(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "inherited")
    argv, environ, printed = launch(monkeypatch, capsys, "--no-token")
    assert TOKEN_VARIABLE not in environ
    assert "token=" not in printed and "http://127.0.0.1:8765/" in printed
    assert "--no-token" not in argv


# -- escaped Markdown ---------------------------------------------------------------------


def shows_literally(markdown: str, text: str) -> bool:
    """``text`` is in ``markdown`` escaped, and nowhere raw."""
    return plain(text) in markdown and text not in markdown


def test_crafted_file_names_are_shown_as_text(
    app_env: pytest.MonkeyPatch, crafted: tuple[Path, Path], tmp_path: Path
) -> None:
    db, folder = crafted
    at = start(app_env, db, tmp_path / "gen")
    at.text_input(key="query").input("a product photo").run()
    cards = [c.value for c in at.caption if c.value.startswith("**")]
    assert len(cards) == len(CRAFTED)
    for name in CRAFTED:
        assert sum(shows_literally(card, name) for card in cards) == 1, name
    [stats] = [c.value for c in at.caption if c.value.startswith("Library")]
    assert shows_literally(stats, str(db))

    # "More like" a crafted name
    [like] = [b for b in at.button if b.key and b.key.startswith("like-")][:1]
    like.click().run()
    [note] = [m.value for m in at.markdown if m.value.startswith("More like")]
    assert any(shows_literally(note, name) for name in CRAFTED)

    # a crafted file gone from disk: the card's warning
    (folder / CRAFTED[0]).unlink()
    at.button(key="clear_like").click().run()
    [gone] = [w.value for w in at.warning if "missing or unreadable" in w.value]
    assert shows_literally(gone, CRAFTED[0])

    # an upload with a crafted name that is not an image: the engine's message
    at.file_uploader(key="upload").set_value((CRAFTED[1].replace(".jpg", ".png"), b"not an image", "image/png")).run()
    assert shows_literally(at.warning[0].value, CRAFTED[1].replace(".jpg", ".png"))


def test_crafted_folder_names_in_index_messages_are_shown_as_text(
    app_env: pytest.MonkeyPatch, crafted: tuple[Path, Path], tmp_path: Path
) -> None:
    db, folder = crafted
    (folder / "[bad](https:evil.example).jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    at = start(app_env, db, tmp_path / "gen")
    at.text_input(key="index_folder").input(str(folder)).run()
    at.button(key="index_go").click().run()
    finish_indexing()
    at.run()
    [done] = at.success
    assert shows_literally(done.value, str(folder)) and "1 failed" in done.value
    for missing in (
        str(tmp_path / "![](https:evil.example)"),
        "www.evil.example",
        "a@evil.example",
    ):
        at.text_input(key="index_folder").input(missing).run()
        at.button(key="index_go").click().run()
        assert shows_literally(at.error[0].value, missing)
        assert not re.search(r"(?i)www\\?\.|://|\w\\?@", at.error[0].value), at.error[0].value  # no GFM autolink


def test_a_file_name_that_is_not_utf8_is_shown_with_replacement_characters(
    app_env: pytest.MonkeyPatch, catalogue: list[tuple[Path, Item]], tmp_path: Path
) -> None:
    folder = tmp_path / "latin1"
    folder.mkdir()
    jpeg = next(path for path, _ in catalogue if path.suffix == ".jpg")
    shutil.copyfile(jpeg, os.path.join(os.fsencode(folder), b"caf\xe9.jpg"))
    db = tmp_path / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        assert lib.index(folder).encoded == 1
    at = start(app_env, db, tmp_path / "gen")
    at.text_input(key="query").input("a product photo").run()
    assert not at.exception, [e.value for e in at.exception]
    [card] = [c.value for c in at.caption if c.value.startswith("**")]
    assert "caf\ufffd" in card
