"""The Streamlit app's flows through Streamlit's AppTest (no browser), on the demo model and the Gemini stub."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from app_driver import finish_indexing, literal, start
from gemini_stub import STUB_KEY, GeminiStub
from PIL import Image
from streamlit.testing.v1 import AppTest

import assetlens.engine.library
from assetlens.catalogue import Item
from assetlens.engine.encoders import Encoder
from assetlens.engine.generate import TEMPLATES, Generator, load_gallery
from assetlens.engine.library import Library
from assetlens.engine.search import SearchResult

pytestmark = [pytest.mark.store]


def expected(db: Path, **query: object) -> list[SearchResult]:
    """What the library itself answers (the app's cached handle is released first)."""
    st.cache_resource.clear()
    with Library(db, device="cpu") as lib:
        return lib.search(**query)  # type: ignore[arg-type]


def card_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("**") and "·" in c.value]


def card_names(at: AppTest) -> list[str]:
    return [literal(c.split("·", 1)[1].strip()) for c in card_captions(at)]


def shown_text(at: AppTest) -> str:
    """Every message and text the page shows (the password box itself aside)."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "toast", "exception", "text")
    return " ".join(str(getattr(e, "value", "")) for kind in kinds for e in at.get(kind))


def test_text_search_grid_scores_and_more_like_this(
    app_env: pytest.MonkeyPatch, catalogue_library: Path, tmp_path: Path
) -> None:
    want = expected(catalogue_library, text="a gold watch", k=12)
    like = expected(catalogue_library, like=want[0].path, k=12)
    at = start(app_env, catalogue_library, tmp_path)
    assert "Type what you are looking for" in at.info[0].value
    at.text_input(key="query").input("a gold watch").run()
    assert card_names(at) == [r.filename for r in want]
    assert [c.split("**")[1] for c in card_captions(at)] == [f"{r.score:.3f}" for r in want]
    assert len([b for b in at.button if b.key and b.key.startswith("like-")]) == 12
    assert at.caption[0].value == "Results 1–12"

    at.button(key=f"like-{want[0].id}").click().run()
    assert f"More like **{want[0].filename}**" in [literal(m.value) for m in at.markdown]
    assert card_names(at) == [r.filename for r in like] and want[0].filename not in card_names(at)
    strict = expected(catalogue_library, like=want[0].path, k=12, min_relevance=1.5)
    assert 0 < len(strict) < 12
    at.slider(key="min_relevance").set_value(1.5).run()  # a filter keeps "more like this"
    assert card_names(at) == [r.filename for r in strict]
    assert [c.split("**")[2].split(")")[0] for c in card_captions(at)] == [f" ({r.relevance:+.1f} sd" for r in strict]
    at.button(key="clear_like").click().run()  # the bound stays on for the text query
    assert card_names(at) == [
        r.filename for r in expected(catalogue_library, text="a gold watch", k=12, min_relevance=1.5)
    ]


def test_relevance_bounds_and_paging_reuse_one_model(
    app_env: pytest.MonkeyPatch, catalogue_library: Path, tmp_path: Path
) -> None:
    page2 = expected(catalogue_library, text="a red mug", k=12, offset=12)
    near_best = expected(catalogue_library, text="a red mug", k=12, within=1.0)
    assert 0 < len(near_best) < 12
    loaded: list[str] = []

    class CountingEncoder(assetlens.engine.library.Encoder):  # type: ignore[name-defined,misc]
        def __init__(self, facts: Any, *args: Any, **kwargs: Any) -> None:
            loaded.append(facts.precision)
            super().__init__(facts, *args, **kwargs)

    app_env.setattr(assetlens.engine.library, "Encoder", CountingEncoder)
    at = start(app_env, catalogue_library, tmp_path)
    at.text_input(key="query").input("a red mug").run()
    assert at.button(key="page_prev").disabled and not at.button(key="page_next").disabled
    at.button(key="page_next").click().run()
    assert at.caption[0].value == "Results 13–24"
    assert card_names(at) == [r.filename for r in page2]
    at.slider(key="within").set_value(1.0).run()
    assert at.caption[0].value.startswith("Results 1–")  # a new filter starts again at page 1
    assert card_names(at) == [r.filename for r in near_best]
    at.slider(key="within").set_value(0.0).run()
    at.slider(key="min_relevance").set_value(6.0).run()
    assert at.info[0].value == "No results above the minimum relevance."
    # one load of the collection's model and one of the int8 text tower its text queries run on, for the whole
    # session: cached across reruns
    assert loaded == ["fp32", "int8"]


def test_query_by_example_image_and_combined(
    app_env: pytest.MonkeyPatch, catalogue_library: Path, tmp_path: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    path = catalogue[3][0]
    with Image.open(path) as img:
        by_image = expected(catalogue_library, image=img.convert("RGB"), k=12)
        both = expected(catalogue_library, text="on a white background", image=img.convert("RGB"), k=12)
    at = start(app_env, catalogue_library, tmp_path)
    at.file_uploader(key="upload").set_value((path.name, path.read_bytes(), "image/jpeg")).run()
    assert card_names(at) == [r.filename for r in by_image]
    assert card_names(at)[0] == path.name  # the example itself is in the library
    at.text_input(key="query").input("on a white background").run()
    assert card_names(at) == [r.filename for r in both]
    at.file_uploader(key="upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert "notes.png is not an image" in literal(at.warning[0].value)


def test_index_a_folder_with_progress_stats_and_failures(
    app_env: pytest.MonkeyPatch, tmp_path: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path, _ in catalogue[:7]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    at = start(app_env, tmp_path / "new.db", tmp_path / "gen")
    assert [(m.label, m.value) for m in at.metric][:1] == [("Images", "0")]
    assert at.button(key="index_go").disabled
    at.text_input(key="index_folder").input(str(folder)).run()
    at.button(key="index_go").click().run()
    assert not at.exception
    finish_indexing()
    at.run()
    assert not at.get("progress")
    assert literal(at.success[0].value).startswith(f"{folder}: 7 indexed, 0 unchanged")
    assert "1 failed" in at.success[0].value
    assert [e.label for e in at.expander if e.label != "Filters"] == ["1 file(s) skipped"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "7" and metrics["Precision"] == "fp32" and metrics["Device"] == "CPU"
    at.text_input(key="index_folder").input(str(tmp_path / "nowhere")).run()
    at.button(key="index_go").click().run()
    assert "does not exist" in at.error[0].value


def test_without_a_key_search_works_and_generate_says_how(
    app_env: pytest.MonkeyPatch, catalogue_library: Path, tmp_path: Path
) -> None:
    at = start(app_env, catalogue_library, tmp_path)
    assert any("Generation is off: no Gemini API key. Set GEMINI_API_KEY" in i.value for i in at.info)
    assert at.button(key="generate").disabled
    at.text_input(key="query").input("a blue handbag").run()
    assert len(card_captions(at)) == 12
    at.text_area(key="prompt").input("A promo").run()
    assert at.button(key="generate").disabled


def test_generate_from_picked_references_with_session_key(
    app_env: pytest.MonkeyPatch, catalogue_library: Path, tmp_path: Path
) -> None:
    want = expected(catalogue_library, text="a gold watch", k=12)
    out = tmp_path / "gen"
    with GeminiStub() as stub:
        app_env.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)
        at = start(app_env, catalogue_library, out)
        at.text_input(key="gemini_key").input("AIza-pasted-but-wrong-77").run()
        assert not any("Generation is off" in i.value for i in at.info)
        at.text_input(key="query").input("a gold watch").run()
        at.checkbox(key=f"ref-{want[0].id}").check().run()
        at.checkbox(key=f"ref-{want[2].id}").check().run()
        assert "2 picked as references" in at.caption[0].value
        assert [b.key for b in at.button if b.key and b.key.startswith("drop-")] == [
            f"drop-{want[0].id}",
            f"drop-{want[2].id}",
        ]
        at.selectbox(key="template").select("Product promo").run()
        assert at.text_area(key="prompt").value == TEMPLATES["Product promo"]
        at.selectbox(key="aspect").select("4:3").run()
        at.checkbox(key="add_generated").check().run()
        at.button(key="generate").click().run()
        assert literal(at.error[0].value).startswith("Gemini rejected the API key (400 INVALID_ARGUMENT")
        assert "AIza-pasted-but-wrong-77" not in shown_text(at)
        at.text_input(key="gemini_key").input(STUB_KEY).run()
        at.button(key="generate").click().run()
        assert not at.error, [e.value for e in at.error]
        wrong, sent = stub.requests
    assert wrong.api_key == "AIza-pasted-but-wrong-77"
    assert sent.api_key == STUB_KEY and sent.prompt == TEMPLATES["Product promo"]
    assert len(sent.images) == 2 and sent.generation_config["imageConfig"] == {"aspectRatio": "4:3"}
    [gen] = load_gallery(out)
    assert [r.path for r in gen.references] == [want[0].path, want[2].path]
    assert [round(r.score or 0, 3) for r in gen.references] == [round(want[0].score, 3), round(want[2].score, 3)]
    assert [d.label for d in at.get("download_button")] == ["Download 2 reference(s) as zip", "Download PNG"]
    assert any(gen.prompt[:40].replace(",", "") in c.value.replace(",", "") for c in at.caption)  # the gallery
    assert STUB_KEY not in shown_text(at)
    # added to the library as a generated image
    results = expected(catalogue_library, like=want[0].path, k=61)
    [mine] = [r for r in results if r.path == str(gen.image)]
    assert mine.origin == "generated"
    with Library(catalogue_library, device="cpu") as lib:
        lib.remove([gen.image])


def test_generation_error_keeps_prompt_and_references(
    app_env: pytest.MonkeyPatch, catalogue_library: Path, tmp_path: Path
) -> None:
    want = expected(catalogue_library, text="a red mug", k=3)
    out = tmp_path / "gen"
    with GeminiStub() as stub:
        app_env.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)
        app_env.setenv("GEMINI_API_KEY", STUB_KEY)
        Generator().generate("An earlier promo", [want[1].path], out)
        at = start(app_env, catalogue_library, out)
        assert "API key from GEMINI_API_KEY." in [literal(c.value) for c in at.sidebar.caption]
        at.text_input(key="query").input("a red mug").run()
        at.checkbox(key=f"ref-{want[0].id}").check().run()
        at.text_area(key="prompt").input("A winter promo of this mug").run()
        stub.script("blocked")
        at.button(key="generate").click().run()
        assert "Gemini blocked the prompt (block reason SAFETY)" in literal(at.error[0].value)
        assert at.text_area(key="prompt").value == "A winter promo of this mug"
        assert [b.key for b in at.button if b.key and b.key.startswith("drop-")] == [f"drop-{want[0].id}"]
        stub.script("403")
        at.button(key="generate").click().run()
        assert literal(at.error[0].value).startswith("Gemini rejected the API key (403 PERMISSION_DENIED")
    [earlier] = load_gallery(out)  # untouched, and still in the gallery
    assert earlier.prompt == "An earlier promo"
    assert any(c.value.startswith("An earlier promo") for c in at.caption)
    at.button(key=f"drop-{want[0].id}").click().run()
    assert not [b for b in at.button if b.key and b.key.startswith("drop-")]
    assert at.checkbox(key=f"ref-{want[0].id}").value is False


class Gate:
    """Holds the indexer inside its ``n``-th batch encoding until released (or makes that call crash)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int, crash: bool = False) -> None:
        self.n, self.crash, self.calls = n, crash, 0
        self.entered, self.release = threading.Event(), threading.Event()
        original = Encoder.encode_pixels

        def encode_pixels(encoder: Encoder, pixels: Any) -> Any:
            self.calls += 1
            if self.calls == self.n:
                self.entered.set()
                assert self.release.wait(300)
                if self.crash:
                    raise RuntimeError("the encoder crashed")
            return original(encoder, pixels)

        monkeypatch.setattr(Encoder, "encode_pixels", encode_pixels)


def start_indexing(at: AppTest, folder: Path, gate: Gate) -> None:
    at.text_input(key="index_folder").input(str(folder)).run()
    at.button(key="index_go").click().run()
    assert gate.entered.wait(300)


def indexed_names(db: Path) -> set[str]:
    st.cache_resource.clear()
    with Library(db, device="cpu") as lib:
        return {row.filename for row in lib.store.rows()}


def test_indexing_goes_on_in_the_background_through_reruns(
    app_env: pytest.MonkeyPatch, tmp_path: Path, catalogue_dir: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    db = tmp_path / "bg.db"
    gate = Gate(app_env, n=2)  # inside the second batch of 32
    at = start(app_env, db, tmp_path / "gen")
    start_indexing(at, catalogue_dir, gate)
    at.text_input(key="query").input("a gold watch").run()  # a rerun while the index run goes on
    assert not at.exception
    [bar] = at.get("progress")
    assert literal(str(bar.text)) == f"Indexing {catalogue_dir}: 32 of {len(catalogue)} new or changed files"
    assert at.button(key="index_stop") and at.button(key="index_go").disabled
    gate.release.set()
    finish_indexing()
    at.run()
    assert not at.get("progress")
    assert literal(at.success[0].value).startswith(f"{catalogue_dir}: {len(catalogue)} indexed, 0 unchanged")
    assert {m.label: m.value for m in at.metric}["Images"] == str(len(catalogue))
    assert len(card_captions(at)) == 12
    assert indexed_names(db) == {path.name for path, _ in catalogue}


def test_stop_keeps_what_was_indexed_and_the_app_finds_it(
    app_env: pytest.MonkeyPatch, tmp_path: Path, catalogue_dir: Path, catalogue: list[tuple[Path, Item]]
) -> None:
    db = tmp_path / "stop.db"
    gate = Gate(app_env, n=1)
    at = start(app_env, db, tmp_path / "gen")
    start_indexing(at, catalogue_dir, gate)
    at.button(key="index_stop").click().run()
    assert "Stopping after the batch in progress" in literal(" ".join(c.value for c in at.caption))
    gate.release.set()
    finish_indexing()
    at.run()
    left = len(catalogue) - 32
    assert literal(at.warning[0].value).startswith(f"{catalogue_dir}: 32 indexed, 0 unchanged")
    assert f"stopped with {left} file(s) left" in literal(at.warning[0].value)
    assert {m.label: m.value for m in at.metric}["Images"] == "32"
    assert not at.button(key="index_go").disabled
    at.text_input(key="query").input("a gold watch").run()
    shown = card_names(at)
    names = indexed_names(db)
    assert len(shown) == 12 and set(shown) <= names and len(names) == 32


def test_a_crash_mid_run_keeps_every_row_written_searchable_in_the_app(
    app_env: pytest.MonkeyPatch, tmp_path: Path, catalogue_dir: Path
) -> None:
    db = tmp_path / "crash.db"
    gate = Gate(app_env, n=2, crash=True)
    at = start(app_env, db, tmp_path / "gen")
    at.text_input(key="query").input("a gold watch").run()  # the app's search copy, before any row
    start_indexing(at, catalogue_dir, gate)
    gate.release.set()
    finish_indexing()
    at.run()
    assert "RuntimeError: the encoder crashed" in literal(at.error[0].value)
    assert "the images indexed before it are kept" in literal(at.error[0].value)
    assert {m.label: m.value for m in at.metric}["Images"] == "32"
    shown = card_names(at)  # the query is still typed: this run searched again
    names = indexed_names(db)
    assert len(shown) == 12 and set(shown) <= names and len(names) == 32
