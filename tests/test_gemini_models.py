"""Gemini image models: the registry's default and limits, the service's listing, generate-and-add, the app's choice."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from app_driver import start
from gemini_stub import GeminiStub
from helpers import quick
from PIL import Image

from assetlens.cli import main
from assetlens.engine.errors import GenerationError, ModelNotFoundError, UsageError
from assetlens.engine.gemini_models import DEFAULT_MODEL, known_model, model_name, offered_models
from assetlens.engine.generate import Generation, Generator, load_gallery
from assetlens.engine.library import Library

pytestmark = [pytest.mark.unit]


def images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"ref-{i}.png" for i in range(n)]
    for i, path in enumerate(paths):
        Image.new("RGB", (32, 32), (10 * i, 100, 200)).save(path)
    return paths


def test_default_is_the_ga_fast_model_and_shut_down_ones_are_not_offered(gemini: GeminiStub, tmp_path: Path) -> None:
    entry = known_model(DEFAULT_MODEL)
    assert entry is not None and entry.name == "gemini-3.1-flash-image"
    assert entry.status == "GA" and entry.shutdown is None
    assert [m.name for m in offered_models()] == ["gemini-3.1-flash-image", "gemini-3-pro-image"]
    old = known_model("models/gemini-2.5-flash-image")
    assert old is not None and old.status == "retired" and old.shutdown == date(2026, 10, 2)
    assert old.describe() == "gemini-2.5-flash-image (shut down 2 October 2026)"
    [out] = quick().generate("a mug", [], tmp_path)
    assert [r.model for r in gemini.requests] == ["gemini-3.1-flash-image"] and out.model == "gemini-3.1-flash-image"


def test_listing_reads_every_page_and_keeps_only_image_models(gemini: GeminiStub) -> None:
    gemini.max_page_size = 2
    gemini.models.append(("gemini-4-flash-image", ("generateContent", "countTokens")))
    assert quick().image_models() == ["gemini-3-pro-image", "gemini-3.1-flash-image", "gemini-4-flash-image"]
    assert [q.get("pageToken") for q in gemini.listings] == [None, "2", "4"]  # 6 models, 2 a page


def test_unknown_model_lists_the_models_the_key_can_use(
    gemini: GeminiStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gemini.models.append(("gemini-4-flash-image", ("generateContent",)))
    with pytest.raises(GenerationError) as err:
        quick(model="gemini-2.5-flash-image").generate("a mug", [], tmp_path)
    message = str(err.value)
    assert message.startswith("Gemini does not know the model gemini-2.5-flash-image (404 NOT_FOUND: ")
    assert "Google shut it down on 2 October 2026" in message
    assert message.endswith(
        "; image models this key can use: gemini-3-pro-image, gemini-3.1-flash-image, gemini-4-flash-image; "
        "choose one with --model NAME (in the app: the Gemini model box)."
    )
    assert len(gemini.requests) == 1 and len(gemini.listings) == 1 and list(tmp_path.iterdir()) == []
    # the listing is the truth: a model the registry does not know is usable by name
    assert main(["generate", "A promo", "--model", "gemini-4-flash-image", "--out", str(tmp_path)]) == 0
    assert gemini.requests[-1].model == "gemini-4-flash-image"
    assert Path(capsys.readouterr().out.strip()).is_file()

    gemini.models = [("gemini-3-flash", ("generateContent",)), ("imagen-4.0-generate-001", ("predict",))]
    with pytest.raises(
        GenerationError, match=r"\(404 NOT_FOUND: .*; the service lists no image model this key can use"
    ):
        quick().generate("a mug", [], tmp_path)
    gemini.listing_error = "503"
    with pytest.raises(GenerationError, match=r"; the model list could not be read either; try --model gemini-3\.1"):
        quick(model="gemini-4-flash-image").generate("a mug", [], tmp_path)
    assert len(gemini.listings) == 3


def test_too_many_references_are_refused_before_any_request(
    gemini: GeminiStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = images(tmp_path / "refs", 15)
    with pytest.raises(UsageError, match=r"^gemini-3\.1-flash-image takes at most 14 reference images, not 15;"):
        quick().generate("a mug", refs, tmp_path / "out")
    with pytest.raises(UsageError, match=r"^gemini-2\.5-flash-image takes at most 3 reference images, not 4;"):
        quick(model="gemini-2.5-flash-image").generate("a mug", refs[:4], tmp_path / "out")
    args = ["generate", "A promo", "--model", "gemini-2.5-flash-image", "--out", str(tmp_path / "out")]
    assert main([*args, *[a for r in refs[:4] for a in ("--ref", str(r))]]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "error: gemini-2.5-flash-image takes at most 3 reference images, not 4; pick fewer references."
    assert gemini.requests == [] and gemini.listings == [] and not (tmp_path / "out").exists()
    [out] = quick(model="gemini-3-pro-image").generate("a mug", refs[:14], tmp_path / "out")
    assert len(gemini.requests[0].images) == 14 and len(out.references) == 14


def test_image_size_is_sent_recorded_and_checked_against_the_model(
    gemini: GeminiStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [out] = quick().generate("a mug", [], tmp_path, image_size="4K", aspect_ratio="16:9")
    assert gemini.requests[0].generation_config["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "4K"}
    assert json.loads(out.sidecar.read_text())["image_size"] == "4K"
    assert Generation.load(out.sidecar) == out
    code = main(["generate", "A promo", "--model", "gemini-3-pro-image", "--image-size", "2K", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert gemini.requests[1].model == "gemini-3-pro-image"
    assert gemini.requests[1].generation_config["imageConfig"] == {"imageSize": "2K"}

    with pytest.raises(UsageError, match=r"does not offer the output size 2K: it has one fixed output size\."):
        quick(model="gemini-2.5-flash-image").generate("a mug", [], tmp_path, image_size="2K")
    with pytest.raises(UsageError, match=r"^Unknown output size '8K'; choose one of 1K, 2K, 4K\.$"):
        quick().generate("a mug", [], tmp_path, image_size="8K")
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "A promo", "--image-size", "8K"])
    assert exit_.value.code == 2 and "invalid choice: '8K'" in capsys.readouterr().err
    assert len(gemini.requests) == 2


def test_model_names_are_checked_before_any_request(gemini: GeminiStub, capsys: pytest.CaptureFixture[str]) -> None:
    assert model_name(" models/gemini-3-pro-image ") == "gemini-3-pro-image"
    for bad in ("../../x", "", "gemini 3", "models/../../etc"):
        with pytest.raises(UsageError, match=r"is not a Gemini model name; choose one like gemini-3\.1-flash-image"):
            Generator(model=bad)
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "A promo", "--model", "../../x"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "'../../x' is not a Gemini model name" in err and "Traceback" not in err
    assert gemini.requests == [] and gemini.listings == []


@pytest.mark.store
def test_generate_and_add_indexes_the_outputs_or_says_where_they_are(gemini: GeminiStub, tmp_path: Path) -> None:
    with Library(tmp_path / "lib.db", model="demo", device="cpu") as lib:
        batch = quick().generate_and_add("a mug", [], tmp_path / "gen", library=lib)
        assert len(batch.outputs) == 1 and batch.added is not None and batch.added.encoded == 1
        assert [(h.path, h.origin) for h in lib.search("a mug", k=5)] == [(str(batch.outputs[0].image), "generated")]
        alone = quick().generate_and_add("a lamp", [], tmp_path / "gen")
        assert alone.added is None and lib.stats().count == 1
    broken = Library(tmp_path / "other.db", model="no-such-model", device="cpu")
    with pytest.raises(ModelNotFoundError, match=r"The 1 generated image\(s\) are saved in .*gen\.$"):
        quick().generate_and_add("a vase", [], tmp_path / "gen", library=broken)
    broken.close()
    assert sorted(g.prompt for g in load_gallery(tmp_path / "gen")) == ["a lamp", "a mug", "a vase"]


# -- the app's model choice -------------------------------------------------------------


@pytest.mark.store
def test_app_offers_the_models_in_a_selectbox_with_their_sizes(
    gemini: GeminiStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = start(monkeypatch, tmp_path / "lib.db", tmp_path / "gen")
    model = at.selectbox(key="gemini_model")
    assert model.value == "gemini-3.1-flash-image"
    assert model.options == ["gemini-3.1-flash-image (GA)", "gemini-3-pro-image (GA)"]
    assert at.selectbox(key="image_size").options == ["Model default", "1K", "2K", "4K"]
    captions = [c.value for c in at.caption]
    assert "gemini-3.1-flash-image takes up to 14 reference images. " in " ".join(captions)
    assert any("SynthID watermark" in c for c in captions)
    assert not [t for t in at.text_input if t.key == "gemini_model"]
    model.select("gemini-3-pro-image").run()
    at.selectbox(key="image_size").select("2K").run()
    at.text_area(key="prompt").input("A promo").run()
    at.button(key="generate").click().run()
    assert not at.error, [e.value for e in at.error]
    [sent] = gemini.requests
    assert sent.model == "gemini-3-pro-image" and sent.generation_config["imageConfig"] == {"imageSize": "2K"}
    [gen] = load_gallery(tmp_path / "gen")
    assert gen.model == "gemini-3-pro-image" and gen.image_size == "2K"


@pytest.mark.store
@pytest.mark.parametrize(("started", "expected"), [("../../x", DEFAULT_MODEL), ("gemini-4-flash-image", None)])
def test_app_started_with_a_model_name(
    gemini: GeminiStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, started: str, expected: str | None
) -> None:
    gemini.models.append(("gemini-4-flash-image", ("generateContent",)))
    at = start(monkeypatch, tmp_path / "lib.db", tmp_path / "gen", "--gemini-model", started)
    model = at.selectbox(key="gemini_model")
    assert model.value == (expected or started)
    assert started not in model.options[1:]  # a bad name is not offered; a good one is offered once, first
    at.text_area(key="prompt").input("A promo").run()
    at.button(key="generate").click().run()
    assert not at.error, [e.value for e in at.error]
    assert [r.model for r in gemini.requests] == [expected or started]
