"""Near-duplicate groups: the grouping itself, its default threshold measured on a generated set, the CLI."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from app_driver import literal, start
from helpers import unit_vectors
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from assetlens.catalogue import DEMO_IMAGES, DEMO_SEED, Item, catalogue_items, render, write_catalogue
from assetlens.cli import main
from assetlens.demo import DEMO_MODELS
from assetlens.engine.duplicates import (
    IDENTICAL,
    SIMILAR,
    DuplicateReport,
    cell_pairs,
    collapse,
    components,
    exact_pairs,
    find_duplicates,
    similar_pairs,
)
from assetlens.engine.errors import UsageError
from assetlens.engine.library import Library
from assetlens.engine.registry import DUPLICATE_THRESHOLDS, find_model
from assetlens.engine.search import SearchResult
from assetlens.engine.store import AssetRow

pytestmark = [pytest.mark.store]

CLIP_THRESHOLD = DUPLICATE_THRESHOLDS["clip"]
THRESHOLDS = (0.8, 0.85, 0.86, 0.87, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)
SHOTS, WITH_VARIANTS = 80, 30  # distinct catalogue renders; how many of them get the five variants


def row(i: int, *, width: int = 100, height: int = 100, mtime: float = 0.0, digest: str | None = None) -> AssetRow:
    return AssetRow(f"id{i}", f"/p/{i}.jpg", "/p/", f"{i}.jpg", 1000 + i, mtime, digest or f"h{i}", width, height)


# -- the grouping ------------------------------------------------------------------------


@pytest.mark.unit
def test_planted_groups_among_20k_random_vectors_are_found_exactly() -> None:
    n, dim = 20_000, 64
    vectors = unit_vectors(n, dim, seed=7)
    r = np.random.default_rng(8)
    planted: list[list[int]] = []
    spare = iter(r.permutation(n).tolist())
    for size in [2, 3, 4] * 20:  # 60 groups of near-copies of a random vector, spread over the chunks
        members = sorted(next(spare) for _ in range(size))
        for m in members[1:]:
            noisy = vectors[members[0]] + r.normal(scale=0.02, size=dim).astype(np.float32)
            vectors[m] = noisy / np.linalg.norm(noisy)
        planted.append(members)
    pairs = exact_pairs(vectors, CLIP_THRESHOLD, chunk=3000)
    assert sorted(sorted(g) for g in components(n, pairs)) == sorted(planted)
    assert len(pairs) == sum(len(g) * (len(g) - 1) // 2 for g in planted)  # each pair once, none with itself


def planted_clusters(n: int, dim: int, seed: int) -> tuple[np.ndarray, list[list[int]]]:
    """Unit vectors in tight topical clusters (as photos of one subject embed), a quarter of them replaced by
    near-copies of another row, in groups of 2 to 12, some of whose pairs sit just either side of 0.95."""
    r = np.random.default_rng(seed)
    centres = unit_vectors(int(np.sqrt(n)), dim, seed)
    vectors = centres[r.integers(0, len(centres), n)] + r.normal(scale=0.7 / np.sqrt(dim), size=(n, dim))
    spare = iter(r.permutation(n).tolist())
    planted = []
    while sum(map(len, planted)) < n // 4:
        members = [next(spare) for _ in range(int(r.integers(2, 13)))]
        for m in members[1:]:
            vectors[m] = vectors[members[0]] + r.normal(scale=r.uniform(0.05, 0.3) / np.sqrt(dim), size=dim)
        planted.append(members)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), planted


@pytest.mark.unit
@pytest.mark.parametrize("threshold", [CLIP_THRESHOLD, 0.97])
def test_the_cell_search_finds_the_pairs_and_groups_of_the_exact_search(threshold: float) -> None:
    vectors, planted = planted_clusters(12_000, 64, seed=5)
    exact = exact_pairs(vectors, threshold)
    cells = cell_pairs(vectors, threshold)
    assert len(exact) > len(planted) and len(np.unique(exact[:, 0])) > 1000  # many pairs, several per group
    assert cells.tolist() == sorted(exact.tolist())
    groups = sorted(sorted(g) for g in components(len(vectors), cells))
    assert groups == sorted(sorted(g) for g in components(len(vectors), exact))
    assert np.array_equal(similar_pairs(vectors, threshold), cells)  # 12k rows: the cell search is the one used


@pytest.mark.unit
def test_components_join_chains_and_leave_singletons_out() -> None:
    pairs = np.array([[0, 1], [1, 2], [5, 6], [2, 0]])
    assert sorted(sorted(g) for g in components(8, pairs)) == [[0, 1, 2], [5, 6]]


@pytest.mark.unit
def test_groups_keep_the_most_pixels_then_the_oldest_and_list_the_rest_most_similar_first() -> None:
    vectors = np.eye(16, dtype=np.float32)[:7]
    vectors[1] = vectors[0]
    vectors[2] = 0.96 * vectors[0] + 0.28 * vectors[1 + 1]  # cosine 0.96 with 0 and 1
    vectors[5] = vectors[3]
    rows = [
        row(0, width=100, height=100, mtime=50.0),
        row(1, width=200, height=50, mtime=10.0),  # as many pixels as 0, older: kept
        row(2, width=80, height=80, mtime=1.0),
        row(3, width=10, height=10, mtime=5.0, digest="same"),
        row(4),
        row(5, width=10, height=10, mtime=4.0, digest="same"),
        row(6, digest="same"),  # the same bytes as 3 and 5 (whatever its vector says), and the most pixels
    ]
    report = find_duplicates(rows, vectors, threshold=0.95)
    assert [(g.kind, [m.filename for m in g.members]) for g in report.groups] == [
        (SIMILAR, ["1.jpg", "0.jpg", "2.jpg"]),
        (IDENTICAL, ["6.jpg", "3.jpg", "5.jpg"]),
    ]
    assert [m.keep for m in report.groups[0].members] == [True, False, False]
    assert [m.similarity for m in report.groups[0].members] == [1.0, 1.0, pytest.approx(0.96, abs=1e-6)]
    assert (report.images, report.redundant) == (7, 4)


@pytest.mark.unit
def test_byte_identical_copies_are_a_group_of_their_own_kind() -> None:
    vectors = unit_vectors(4, 8, seed=2)
    vectors[2] = vectors[0]
    rows = [row(0, mtime=9.0, digest="x"), row(1), row(2, mtime=3.0, digest="x"), row(3)]
    report = find_duplicates(rows, vectors, CLIP_THRESHOLD)
    assert [(g.kind, [m.filename for m in g.members]) for g in report.groups] == [(IDENTICAL, ["2.jpg", "0.jpg"])]
    assert report.groups[0].to_dict()["members"][0] == {
        "path": "/p/2.jpg",
        "filename": "2.jpg",
        "size": 1002,
        "width": 100,
        "height": 100,
        "mtime": 3.0,
        "hash": "x",
        "similarity": 1.0,
        "keep": True,
        "modified": "1970-01-01T00:00:03+00:00",
    }


@pytest.mark.unit
def test_collapse_puts_each_hit_under_the_best_ranked_hit_it_is_near() -> None:
    vectors = np.eye(5, dtype=np.float32)
    vectors[2] = vectors[0]
    vectors[4] = vectors[1]
    results = [
        SearchResult(i + 1, 1.0 - i / 10, f"/p/{i}.jpg", f"{i}.jpg", "/p", 1, 1, 1, f"h{i}", "file", f"id{i}")
        for i in range(5)
    ]
    entries = collapse(results, vectors, CLIP_THRESHOLD)
    assert [(e.hit.rank, [r.rank for r in e.similar]) for e in entries] == [(1, [3]), (2, [5]), (4, [])]
    assert entries[0].to_dict()["similar"] == [results[2].to_dict()]


@pytest.mark.unit
@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5, float("nan")])
def test_a_threshold_outside_0_to_1_is_refused(threshold: float) -> None:
    with pytest.raises(UsageError, match="--threshold must be"):
        find_duplicates([row(0)], unit_vectors(1, 4, seed=0), threshold)


# -- the default threshold, measured ---------------------------------------------------------


def variants(img: Image.Image) -> dict[str, tuple[Image.Image, str, dict[str, int]]]:
    """The same shot as an asset bank gets it again: resized, recompressed, cropped, graded, watermarked."""
    w, h = img.size
    marked = img.copy()
    ImageDraw.Draw(marked).text((8, h - 28), "© ACME 2026", fill=(255, 255, 255), font=ImageFont.load_default(size=20))
    return {
        "resize": (img.resize((w * 5 // 8, h * 5 // 8), Image.Resampling.LANCZOS), "PNG", {}),
        "jpeg": (img, "JPEG", {"quality": 35}),
        "crop": (img.crop((w // 20, h // 20, w - w // 20, h - h // 20)), "PNG", {}),  # 90% of each side
        "grade": (ImageEnhance.Brightness(ImageEnhance.Color(img).enhance(1.4)).enhance(1.1), "PNG", {}),
        "mark": (marked, "PNG", {}),
    }


def write_near_duplicate_set(folder: Path) -> dict[str, int]:
    """``SHOTS`` distinct catalogue renders, the first ``WITH_VARIANTS`` with five variants each; path -> shot."""
    folder.mkdir(parents=True, exist_ok=True)
    shot: dict[str, int] = {}
    for i, item in enumerate(catalogue_items(SHOTS, seed=3)):
        img = render(item, 256, seed=i)
        original = folder / f"{i:03d}-original.png"
        img.save(original)
        shot[str(original)] = i
        for name, (variant, fmt, options) in variants(img).items() if i < WITH_VARIANTS else ():
            path = folder / f"{i:03d}-{name}.{fmt.lower()}"
            variant.convert("RGB").save(path, fmt, **options)
            shot[str(path)] = i
    return shot


def pair_scores(report: DuplicateReport, shot: dict[str, int]) -> tuple[float, float]:
    """Pairwise precision and recall of the grouping against the true shots."""
    paths = sorted(shot)
    group = {m.path: n for n, g in enumerate(report.groups) for m in g.members}
    predicted = {(a, b) for i, a in enumerate(paths) for b in paths[i + 1 :] if group.get(a, -1) == group.get(b, -2)}
    true = {(a, b) for i, a in enumerate(paths) for b in paths[i + 1 :] if shot[a] == shot[b]}
    hits = len(predicted & true)
    return hits / max(len(predicted), 1), hits / len(true)


@pytest.fixture(scope="module", params=list(DEMO_MODELS))
def near_duplicates(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Library, dict[str, int]]]:
    """The generated set indexed with each shipped model (one of each family)."""
    root = tmp_path_factory.mktemp("near-duplicates")
    shot = write_near_duplicate_set(root / "images")
    with Library(root / "lib.db", model=request.param, device="cpu") as lib:
        lib.index(root / "images")
        yield lib, shot


@pytest.mark.slow
def test_default_threshold_groups_the_generated_set(near_duplicates: tuple[Library, dict[str, int]]) -> None:
    """Prints the precision / recall table that README quotes (run with -s)."""
    lib, shot = near_duplicates
    print(f"\n{len(shot)} images, {SHOTS} shots, {WITH_VARIANTS} of them with 5 variants; {lib.runtime().model}")
    print("threshold  precision  recall  groups")
    for threshold in THRESHOLDS:
        report = lib.duplicates(threshold)
        precision, recall = pair_scores(report, shot)
        print(f"{threshold:9.2f}  {precision:9.3f}  {recall:6.3f}  {len(report.groups):6d}")
    spec = find_model(lib.runtime().model)
    assert spec is not None
    report = lib.duplicates()
    assert report.threshold == lib.duplicate_threshold() == DUPLICATE_THRESHOLDS[spec.family]
    assert report.images == len(shot) == SHOTS + 5 * WITH_VARIANTS
    precision, recall = pair_scores(report, shot)
    assert precision >= 0.97 and recall >= 0.95  # measured: CLIP demo 0.998 and 0.989, SigLIP demo 1.000 and 0.956
    low_precision, low_recall = pair_scores(lib.duplicates(report.threshold - 0.15), shot)
    assert low_recall == 1.0 and low_precision < 0.7  # distinct shots run together well below the default


@pytest.mark.slow
@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_the_groups_among_distinct_products_join_only_look_alikes(tmp_path: Path, model: str) -> None:
    """The 200 distinct renders of the demo catalogue at the family's threshold: the SigLIP demo groups none
    (at 0.88 it paired a handbag and a mug of one colour on one background); the CLIP demo, 64-d, groups a
    few look-alikes (measured: 6 groups, 13 images), every two of them alike in two of colour, kind and
    background."""
    truth = {path.name: item for path, item in write_catalogue(tmp_path / "images", n=DEMO_IMAGES, seed=DEMO_SEED)}
    with Library(tmp_path / "lib.db", model=model, device="cpu") as lib:
        assert lib.index(tmp_path / "images").encoded == DEMO_IMAGES
        report = lib.duplicates()
    assert report.images == DEMO_IMAGES
    for group in report.groups:
        for a, b in itertools.combinations([truth[Path(m.path).name] for m in group.members], 2):
            assert (a.color == b.color) + (a.object == b.object) + (a.background == b.background) >= 2, group
    if model == "demo-siglip":
        assert report.groups == ()


# -- the library and the command -------------------------------------------------------------


@pytest.fixture
def small_set(tmp_path: Path, catalogue: list[tuple[Path, Item]]) -> Path:
    """Six catalogue shots, a byte-identical copy of one, a half-size copy of another (older than it)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for path, _ in catalogue[:6]:
        shutil.copy2(path, folder / path.name)
    first, second = catalogue[0][0], catalogue[1][0]
    shutil.copy2(first, folder / f"copy of {first.name}")
    with Image.open(second) as img:
        img.convert("RGB").resize((img.width // 2, img.height // 2)).save(folder / "small\nline.png")
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("search_copy", [True, False])
def test_library_groups_copies_with_the_keeper_first(
    small_set: Path, catalogue: list[tuple[Path, Item]], search_copy: bool, tmp_path: Path
) -> None:
    with Library(tmp_path / "lib.db", model="demo", device="cpu", search_copy=search_copy) as lib:
        lib.index(small_set)
        report = lib.duplicates()
    first, second = catalogue[0][0].name, catalogue[1][0].name
    got = sorted((g.kind, [m.filename for m in g.members]) for g in report.groups)
    # equal pixels and times: the first path is kept ("copy of …" sorts before the catalogue's names)
    assert got == sorted([(IDENTICAL, [f"copy of {first}", first]), (SIMILAR, [second, "small\nline.png"])])
    assert report.images == 8 and report.redundant == 2


def test_duplicates_command_json_text_and_grid(
    capsys: pytest.CaptureFixture[str], small_set: Path, catalogue: list[tuple[Path, Item]], tmp_path: Path
) -> None:
    db = str(tmp_path / "lib.db")
    assert main(["index", str(small_set), "--db", db, "--model", "demo", "--device", "cpu"]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "duplicates", "--db", db, "--json")
    assert code == 0
    data = json.loads(out)
    with Library(db) as lib:
        assert data == json.loads(json.dumps(lib.duplicates().to_dict()))
    assert data["threshold"] == CLIP_THRESHOLD and len(data["groups"]) == 2
    assert "2 group(s), 2 image(s) besides the one kept of each, among 8" in err

    grid = tmp_path / "groups.png"
    code, out, err = run(capsys, "duplicates", "--db", db, "--grid", str(grid))
    assert code == 0
    assert str(small_set / "small\\nline.png") in out and "small\nline" not in out  # escaped, on one line
    kept = sorted(line.split("  ")[-1] for line in out.splitlines() if line.strip().startswith("keep"))
    assert kept == sorted([str(small_set / f"copy of {catalogue[0][0].name}"), str(small_set / catalogue[1][0].name)])
    with Image.open(grid) as sheet:
        assert sheet.size == (12 + 2 * 172, 12 + 2 * (30 + 160 + 40 + 12))  # two bands of two tiles


def test_duplicates_command_refuses_bad_input_in_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "duplicates", "--db", str(tmp_path / "none.db"))
    assert code != 0 and err.startswith("error: There is no library") and "Traceback" not in err
    db = str(tmp_path / "empty.db")
    Library(db).close()
    code, _, err = run(capsys, "duplicates", "--db", db)
    assert code == 2 and "has no images yet; run: assetlens index FOLDER." in err
    code, _, err = run(capsys, "duplicates", "--db", db, "--threshold", "1.5")
    assert code == 2 and err == "error: --threshold must be a cosine similarity above 0 and at most 1, not 1.5.\n"


@pytest.mark.slow
def test_the_app_shows_the_groups_as_rows_of_thumbnails(
    monkeypatch: pytest.MonkeyPatch, small_set: Path, catalogue: list[tuple[Path, Item]], tmp_path: Path
) -> None:
    db = tmp_path / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        lib.index(small_set)
    try:
        at = start(monkeypatch, db, tmp_path / "gen")
        assert "Finds copies of one shot" in " ".join(c.value for c in at.caption)
        at.button(key="dup_go").click().run()
        assert not at.exception
        titles = [m.value for m in at.markdown if m.value.startswith("**Group")]
        assert sorted(titles) == ["**Group 1** · identical · 2 images", "**Group 2** · similar · 2 images"]
        captions = [literal(c.value) for c in at.caption if c.value.startswith(("**keep**", "0.", "1."))]
        first, second = catalogue[0][0].name, catalogue[1][0].name
        with Image.open(catalogue[1][0]) as img:
            big, small = f"{img.width}×{img.height}", f"{img.width // 2}×{img.height // 2}"
        assert captions[0].startswith("**keep** · ") and captions[0].endswith(f"copy of {first}")
        assert captions[1].endswith(f" · {first}")
        assert captions[2] == f"**keep** · {big} · {second}"
        assert captions[3].endswith(f" · {small} · small line.png")  # the newline shown as a space
        assert len(at.image) == 4  # every member a thumbnail (nothing else on the page shows one yet)
        at.slider(key="dup_threshold").set_value(0.8).run()
        at.button(key="dup_go").click().run()
        assert "at threshold 0.8" in " ".join(c.value for c in at.caption)
    finally:
        st.cache_resource.clear()  # the app's library, released


def test_collapsed_search_gives_one_hit_per_group_and_k_of_them(
    capsys: pytest.CaptureFixture[str], small_set: Path, catalogue: list[tuple[Path, Item]], tmp_path: Path
) -> None:
    db = str(tmp_path / "lib.db")
    query = catalogue[1][1].caption()
    with Library(db, model="demo", device="cpu") as lib:
        lib.index(small_set)
        flat = lib.search(query, k=10)  # the byte-identical copy is already left out
        entries = lib.search_collapsed(query, k=10)
        top = lib.search_collapsed(query, k=3)
    assert len(flat) == 7 and [e.hit.rank for e in entries] == [1, 2, 3, 4, 5, 6]
    [pair] = [e for e in entries if e.similar]
    assert sorted([pair.hit.filename, *(r.filename for r in pair.similar)]) == sorted(
        [catalogue[1][0].name, "small\nline.png"]
    )
    assert [e.hit.path for e in entries] == [r.path for r in flat if r.path != pair.similar[0].path]
    assert [(e.hit.path, e.hit.rank) for e in top] == [(e.hit.path, e.hit.rank) for e in entries[:3]]

    code, out, _ = run(capsys, "search", query, "--db", db, "--collapse")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6 and [line.endswith("  (1 similar)") for line in lines].count(True) == 1
    code, out, _ = run(capsys, "search", query, "--db", db, "--collapse", "--json", "-k", "2")
    shape = [(e["rank"], e["path"], [r["path"] for r in e["similar"]]) for e in json.loads(out)]
    assert shape == [(e.hit.rank, e.hit.path, [r.path for r in e.similar]) for e in entries[:2]]  # Milvus' scores


@pytest.mark.slow
def test_the_app_collapses_near_duplicates_on_request(
    monkeypatch: pytest.MonkeyPatch, small_set: Path, catalogue: list[tuple[Path, Item]], tmp_path: Path
) -> None:
    db = tmp_path / "lib.db"
    query = catalogue[1][1].caption()
    with Library(db, model="demo", device="cpu") as lib:
        lib.index(small_set)
    try:
        at = start(monkeypatch, db, tmp_path / "gen")
        at.text_input(key="query").input(query).run()
        cards = [c.value for c in at.caption if c.value.startswith("**") and "·" in c.value]
        assert len(cards) == 7 and not any("similar" in c for c in cards)
        at.checkbox(key="collapse").check().run()
        cards = [literal(c.value) for c in at.caption if c.value.startswith("**") and "·" in c.value]
        assert len(cards) == 6 and [c.endswith(" · 1 similar") for c in cards].count(True) == 1
    finally:
        st.cache_resource.clear()  # the app's library, released
