"""Gemini generation (engine.generate and ``assetlens generate``) against the local Gemini stub."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import numpy as np
import pytest
from gemini_stub import STUB_KEY, GeminiStub
from helpers import quick
from PIL import Image

from assetlens.catalogue import Item
from assetlens.cli import main
from assetlens.engine.errors import GenerationError, UsageError
from assetlens.engine.generate import (
    MAX_REFERENCE_SIDE,
    TEMPLATES,
    Generation,
    Generator,
    Reference,
    load_gallery,
    reference_payload,
)
from assetlens.engine.library import Library

pytestmark = [pytest.mark.unit]


@pytest.fixture
def refs(catalogue: list[tuple[Path, Item]]) -> list[Path]:
    return [catalogue[0][0], catalogue[1][0]]


def recording(**kwargs: object) -> tuple[Generator, list[float]]:
    """A generator and the backoff sleeps it asks for (not slept)."""
    sleeps: list[float] = []
    return Generator(sleep=sleeps.append, **kwargs), sleeps  # type: ignore[arg-type]


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_success_sends_prompt_and_references_and_saves_png_with_sidecar(
    gemini: GeminiStub, refs: list[Path], tmp_path: Path
) -> None:
    prompt = TEMPLATES["Product promo"]
    out = quick().generate(prompt, [Reference(str(refs[0]), 0.31), refs[1]], tmp_path / "out", aspect_ratio="16:9")
    assert len(out) == 1 and len(gemini.requests) == 1
    sent = gemini.requests[0]
    assert sent.model == "gemini-3.1-flash-image"
    assert sent.api_key == STUB_KEY
    assert sent.prompt == prompt
    assert sent.generation_config == {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}
    assert len(sent.images) == 2  # the references really went out, pixel for pixel
    for received, path in zip(sent.images, refs, strict=True):
        with Image.open(path) as original:
            assert np.array_equal(pixels(received), pixels(original))
    gen = out[0]
    assert gen.image.parent == (tmp_path / "out").resolve() and gen.image.suffix == ".png"
    with Image.open(gen.image) as img:
        assert img.format == "PNG" and img.size == (768, 512)
    side = json.loads(gen.sidecar.read_text())
    assert side["prompt"] == prompt and side["model"] == "gemini-3.1-flash-image"
    assert side["references"] == [{"path": str(refs[0]), "score": 0.31}, {"path": str(refs[1]), "score": None}]
    assert side["text"] == "Here is your image, made from 2 reference(s)."
    assert side["finish_reason"] == "STOP" and side["aspect_ratio"] == "16:9" and side["image"] == gen.image.name
    assert side["created"].endswith("+00:00")
    assert Generation.load(gen.sidecar) == gen


def test_chosen_model_and_variants_never_overwrite(gemini: GeminiStub, refs: list[Path], tmp_path: Path) -> None:
    gen = quick(model="gemini-3-pro-image")
    first = gen.generate("a watch on a beach", refs[:1], tmp_path, variants=2)
    before = {g.image: g.image.read_bytes() for g in first}
    second = gen.generate("a watch on a beach", refs[:1], tmp_path)
    assert [r.model for r in gemini.requests] == ["gemini-3-pro-image"] * 3
    assert "imageConfig" not in gemini.requests[0].generation_config
    names = [g.image.name for g in first + second]
    assert len(set(names)) == 3
    assert [g.variant for g in first] == [1, 2]
    assert all(path.read_bytes() == data for path, data in before.items())
    assert [g.image for g in load_gallery(tmp_path)] == sorted(
        (g.image for g in first + second), key=lambda p: p.name, reverse=True
    )


def test_no_key_fails_before_any_request(gemini: GeminiStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(GenerationError, match="No Gemini API key: set GEMINI_API_KEY"):
        Generator()
    assert gemini.requests == []


def test_key_comes_from_either_variable(gemini: GeminiStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", STUB_KEY)
    quick().generate("a mug", [], tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-variable-wins")
    with pytest.raises(GenerationError, match="rejected the API key"):
        quick().generate("a mug", [], tmp_path)
    assert [r.api_key for r in gemini.requests] == [STUB_KEY, "gemini-variable-wins"]


@pytest.mark.parametrize("answer", ["401", "403", "wrong-key"])
def test_rejected_key_is_one_clear_message_and_not_retried(
    gemini: GeminiStub, refs: list[Path], tmp_path: Path, answer: str
) -> None:
    if answer == "wrong-key":
        gen, sleeps = recording(api_key="not-the-stub-key")
    else:
        gen, sleeps = recording()
        gemini.script(answer)
    with pytest.raises(GenerationError, match=r"^Gemini rejected the API key \((401|403|400)") as err:
        gen.generate("a mug", refs, tmp_path)
    assert "GEMINI_API_KEY" in str(err.value) and "not-the-stub-key" not in str(err.value)
    assert len(gemini.requests) == 1 and sleeps == []
    assert list(tmp_path.iterdir()) == []


def test_rate_limit_is_retried_with_bounded_backoff(gemini: GeminiStub, refs: list[Path], tmp_path: Path) -> None:
    gemini.script("429", "429")
    gen, sleeps = recording()
    out = gen.generate("a mug", refs, tmp_path)
    assert len(out) == 1 and len(gemini.requests) == 3
    assert sleeps == [2.0, 4.0]

    gemini.script(*["429"] * 4)
    gen, sleeps = recording(backoff_s=0.5, max_backoff_s=15.0)
    with pytest.raises(GenerationError, match=r"rate limit is used up \(429 RESOURCE_EXHAUSTED.*after 4 attempts"):
        gen.generate("a mug", refs, tmp_path)
    assert sleeps == [1.0, 1.0, 2.0]  # the stub's RetryInfo asks for 1 s: more than the first backoff
    assert len(gemini.requests) == 3 + 4
    assert len(list(tmp_path.glob("*.png"))) == 1  # the earlier output is untouched


def test_server_errors_are_retried_then_reported(gemini: GeminiStub, refs: list[Path], tmp_path: Path) -> None:
    gemini.script("500")
    assert len(quick().generate("a mug", refs, tmp_path)) == 1
    gemini.script(*["503"] * 3)
    gen, sleeps = recording(attempts=3, backoff_s=10.0, max_backoff_s=15.0)
    with pytest.raises(GenerationError, match=r"^Gemini failed 3 times \(503 UNAVAILABLE"):
        gen.generate("a mug", refs, tmp_path)
    assert sleeps == [10.0, 15.0]
    assert len(gemini.requests) == 2 + 3


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("text-only", 'finish reason STOP\\). The model said: "I can describe the product, but I did not draw it'),
        ("safety", r"no image \(finish reason IMAGE_SAFETY\)"),
        ("blocked", r"blocked the prompt \(block reason SAFETY\)"),
    ],
)
def test_answer_without_image_shows_text_and_reason(
    gemini: GeminiStub, refs: list[Path], tmp_path: Path, answer: str, expected: str
) -> None:
    gemini.script(answer)
    with pytest.raises(GenerationError, match=expected):
        quick().generate("a mug", refs, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failure_after_a_variant_keeps_it(gemini: GeminiStub, refs: list[Path], tmp_path: Path) -> None:
    gemini.script("image", "safety")
    with pytest.raises(GenerationError, match=r"IMAGE_SAFETY.*The 1 image\(s\) generated before are saved in"):
        quick().generate("a mug", refs, tmp_path, variants=2)
    [kept] = load_gallery(tmp_path)
    assert kept.image.is_file() and kept.variant == 1


def test_unreachable_server_and_timeout(
    gemini: GeminiStub, refs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", closed)
    with pytest.raises(GenerationError, match=f"^Cannot reach Gemini at {closed} "):
        quick().generate("a mug", refs, tmp_path)
    gemini.script("hang")
    with pytest.raises(GenerationError, match=r"^Gemini did not answer within 1 s"):
        quick(base_url=gemini.url, timeout_s=1.0).generate("a mug", refs, tmp_path)
    assert len(gemini.requests) == 1 and list(tmp_path.iterdir()) == []


def test_large_reference_is_downscaled_small_one_sent_as_is(gemini: GeminiStub, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    big = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 255, (2400, 3600, 3), dtype=np.uint8)).save(big)
    small = tmp_path / "small.png"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(small)
    assert reference_payload(small) == (small.read_bytes(), "image/png")
    quick().generate("a promo", [big, small], tmp_path / "out")
    sent = gemini.requests[0]
    assert sent.mime_types == ["image/jpeg", "image/png"]
    assert sent.images[0].size == (MAX_REFERENCE_SIDE, MAX_REFERENCE_SIDE * 2 // 3)
    assert sent.images[1].size == (300, 200)


def test_bad_input_fails_before_any_request(gemini: GeminiStub, refs: list[Path], tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    cases = [
        ("   ", refs, "The prompt is empty"),
        ("a mug", [tmp_path / "gone.jpg"], "does not exist"),
        ("a mug", [tmp_path / "notes.png"], "not an image"),
    ]
    for prompt, references, message in cases:
        with pytest.raises(UsageError, match=message):
            quick().generate(prompt, references, tmp_path / "out")
    with pytest.raises(UsageError, match="aspect ratio"):
        quick().generate("a mug", refs, tmp_path / "out", aspect_ratio="7:5")
    assert gemini.requests == []


def test_gallery_skips_stray_and_orphaned_sidecars(gemini: GeminiStub, refs: list[Path], tmp_path: Path) -> None:
    [kept] = quick().generate("a mug", refs, tmp_path)
    (tmp_path / "notes.json").write_text('{"not": "a sidecar"}')
    [orphan] = quick().generate("a lamp", refs, tmp_path)
    orphan.image.unlink()
    assert load_gallery(tmp_path) == [kept]


# -- the CLI ----------------------------------------------------------------------------


def test_cli_generate_from_search_and_add_to_library(
    gemini: GeminiStub, catalogue_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Library(catalogue_library, device="cpu") as lib:
        expected = [(r.path, r.score) for r in lib.search("a gold watch", k=2)]
        count = lib.stats().count
    out_dir = tmp_path / "gen"
    code = main(
        [
            "generate",
            "A gold watch on a marble counter, studio light",
            "--ref-query",
            "a gold watch",
            "-k",
            "2",
            "--out",
            str(out_dir),
            "--db",
            str(catalogue_library),
            "--add-to-library",
            "--device",
            "cpu",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    [printed] = out.split()
    side = json.loads(Path(printed).with_suffix(".json").read_text())
    assert [(r["path"], r["score"]) for r in side["references"]] == [
        (p, pytest.approx(s, abs=1e-5)) for p, s in expected
    ]
    assert "added to the library: 1 indexed" in err
    assert len(gemini.requests[0].images) == 2
    with Library(catalogue_library, device="cpu") as lib:
        assert lib.stats().count == count + 1
        hits = lib.similar(expected[0][0], k=60)
        [mine] = [h for h in hits if h.path == printed]
        assert mine.origin == "generated"
        lib.remove([printed])


def test_cli_generate_with_explicit_refs_prints_the_path(
    gemini: GeminiStub, refs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "generate",
            "A promo",
            "--ref",
            str(refs[0]),
            "--ref",
            str(refs[1]),
            "--out",
            str(tmp_path),
            "--aspect-ratio",
            "4:5",
            "--variants",
            "2",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    paths = out.split()
    assert len(paths) == 2 and all(Path(p).is_file() for p in paths)
    assert gemini.requests[0].generation_config["imageConfig"] == {"aspectRatio": "4:5"}
    assert "the model said: Here is your image" in err


@pytest.mark.parametrize(
    "answer",
    ["401", "429", "503", "text-only", "blocked", "hang", "wrong-key", "no-key", "unknown-model", "unreachable"],
)
def test_cli_errors_never_show_the_key_or_proxy_credentials(
    gemini: GeminiStub,
    refs: list[Path],
    tmp_path: Path,
    answer: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "AIzaSy-secret-key-4242"
    password = "pr0xy-pa%24%24word"  # "pr0xy-pa$$word", percent-encoded in the URL
    gemini.key = "another-key" if answer == "wrong-key" else secret
    monkeypatch.setenv("GEMINI_API_KEY", "" if answer == "no-key" else secret)
    url = gemini.url
    if answer == "unreachable":
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", url.replace("http://", f"http://proxy-user:{password}@"))
    if answer not in ("wrong-key", "no-key", "unknown-model", "unreachable"):
        gemini.script(*[answer] * 4)
    monkeypatch.setattr("time.sleep", lambda s: None)  # the CLI's backoff, skipped
    caplog.set_level(logging.DEBUG)
    model = ["--model", "gemini-2.5-flash-image"] if answer == "unknown-model" else []
    code = main(
        ["generate", "A promo", "--ref", str(refs[0]), "--out", str(tmp_path / "gen"), "--timeout", "1", *model]
    )
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in err
    everything = out + err + caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for hidden in (secret, password, "pr0xy-pa$$word", f"proxy-user:{password}"):
        assert hidden not in everything
        written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
        assert all(hidden.encode() not in data for data in written)
    if answer == "unreachable":
        assert f"Cannot reach Gemini at http://[proxy credentials]@127.0.0.1:{url.rsplit(':', 1)[1]} " in lines[-1]
    if answer == "unknown-model":
        assert "image models this key can use: gemini-3-pro-image, gemini-3.1-flash-image" in lines[-1]
        assert len(gemini.listings) == 1  # the service was asked which models exist (one page)
    assert len(gemini.requests) == {"no-key": 0, "429": 4, "503": 4, "unreachable": 0}.get(answer, 1)
    assert all(r.api_key == secret for r in gemini.requests)
    # the credentials really went to the "proxy": Basic proxy-user:pr0xy-pa$$word
    assert all(r.authorization == "Basic cHJveHktdXNlcjpwcjB4eS1wYSQkd29yZA==" for r in gemini.requests)


def test_cli_missing_key_says_how_to_set_it(
    gemini: GeminiStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    assert main(["generate", "A promo"]) == 1
    assert "set GEMINI_API_KEY (or GOOGLE_API_KEY)" in capsys.readouterr().err
