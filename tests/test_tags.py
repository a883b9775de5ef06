"""Auto-tags (engine.tags, Library.tag, ``assetlens tag``, ``search --tag``, the app): measured on the demo
catalogue with both demo models at fp32 and int8, stored with the rows, updated only where needed."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_driver import literal, start
from cli_process import Backend
from helpers import make_rows, run_main, unit_vectors
from streamlit.testing.v1 import AppTest

from assetlens.catalogue import DEMO_IMAGES, DEMO_SEED, Item, render, write_catalogue
from assetlens.catalogue.evaluation import tag_accuracy
from assetlens.demo import DEMO_MODELS
from assetlens.engine.errors import UsageError
from assetlens.engine.library import Library
from assetlens.engine.models import load_facts, resolve_model_dir
from assetlens.engine.registry import find_model
from assetlens.engine.search_copy import SearchCopy
from assetlens.engine.store import MAX_TAGS, AssetRow, MilvusStore
from assetlens.engine.tags import USER_CATEGORY, Tagger, Vocabulary, prompt_for

pytestmark = [pytest.mark.store]

#: The figures asked of the demo models: the right object kind first for 90 % of the demo catalogue's
#: images, the right colour first among the colour tags for 80 %. demo-siglip reaches 84 % of object
#: kinds (its issue stays open for that): its floor, with room for other CPUs, guards what it does today.
OBJECT_FLOOR = 0.90
COLOUR_FLOOR = 0.80


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory, catalogue_dir: Path) -> Path:
    """The test catalogue indexed and tagged with the demo model at fp32 (tests may tag it again)."""
    db = tmp_path_factory.mktemp("tagged") / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        lib.index(catalogue_dir)
        report = lib.tag()
    assert report.tagged == 60 and report.unchanged == 0 and report.categories == 3
    return db


def accuracy(db: Path, catalogue: list[tuple[Path, Item]]) -> tuple[float, float]:
    """The share of images whose first tag is their object kind, and whose first colour tag is their colour."""
    with Library(db) as lib:
        tags = {row.path: row.tags for row in lib.store.rows()}
    truth = {str(path): item for path, item in catalogue}
    return tag_accuracy(tags, truth, Vocabulary.default().category("colour"))


@pytest.fixture(scope="module")
def demo_catalogue(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Item]]:
    """The catalogue ``assetlens demo`` writes and searches (200 pictures, every colour of every kind)."""
    return write_catalogue(tmp_path_factory.mktemp("demo-catalogue"), n=DEMO_IMAGES, seed=DEMO_SEED)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_demo_models_tag_the_demo_catalogue_right(
    tmp_path: Path,
    demo_catalogue: list[tuple[Path, Item]],
    model: str,
    precision: str,
    record_property: pytest.RecordProperty,
) -> None:
    """Each shipped model, at each precision, with the default vocabulary (26 kinds, 14 colours, most of
    which the demo models never saw)."""
    db = tmp_path / "lib.db"
    with Library(db, model=model, precision=precision, device="cpu") as lib:
        lib.index(demo_catalogue[0][0].parent.parent)
        assert lib.tag().tagged == DEMO_IMAGES
    objects, colours = accuracy(db, demo_catalogue)
    record_property(f"{model} {precision} top object kind right", objects)
    record_property(f"{model} {precision} top colour right", colours)
    print(f"{model} {precision}: top object kind right for {objects:.1%}, top colour for {colours:.1%}")
    assert objects >= OBJECT_FLOOR and colours >= COLOUR_FLOOR


def test_every_image_gets_one_label_of_each_category(tagged: Path) -> None:
    vocabulary = Vocabulary.default()
    kinds = [set(vocabulary.category(name)) for name in ("object", "colour", "setting")]
    assert {"watch", "mug", "gold", "white background", "wooden table"} <= set(vocabulary.labels)
    with Library(tagged) as lib:
        for row in lib.store.rows():
            assert len(row.tags) == 3 and [t in kind for t, kind in zip(row.tags, kinds, strict=True)] == [True] * 3


def test_tagging_again_writes_only_what_changed(tagged: Path, catalogue_dir: Path, tmp_path: Path) -> None:
    with Library(tagged, device="cpu") as lib:
        assert lib.tag().tagged == 0
        rows = {row.path: row for row in lib.store.rows()}
        touched, changed = sorted(rows)[:2]
        os.utime(touched, (1e9, 1e9))  # the same bytes: the row keeps its vector, and its tags with it
        shutil.copy(touched, tmp_path / "keep")
        render(Item("hat", "green", "white background"), size=128, seed=5).save(changed, format="PNG")
        report = lib.index(catalogue_dir)
        assert (report.touched, report.encoded) == (1, 1)
        after = {row.path: row for row in lib.store.rows()}
        assert after[touched].tags == rows[touched].tags and after[touched].tagged == rows[touched].tagged
        assert after[changed].tags == () and after[changed].tagged == ""
        again = lib.tag()
        assert (again.tagged, again.unchanged) == (1, 59)
        assert rows[changed].tags[0] != "hat" and lib.store.get([after[changed].id])[0][0].tags[0] == "hat"


def test_own_labels_are_added_and_retag_everything(tagged: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("# ours\nbestseller\nsale\n\n[season]\nsummer\nwinter\n", encoding="utf-8")
    with Library(tagged, device="cpu") as lib:
        report = lib.tag(labels)
        assert (report.tagged, report.categories, report.labels) == (60, 5, len(Vocabulary.default().labels) + 4)
        for row in lib.store.rows():
            assert len(row.tags) == 5
            assert row.tags[3] in {"bestseller", "sale"} and row.tags[4] in {"summer", "winter"}
        assert lib.tag(labels).tagged == 0
        two = lib.tag(labels, top=2)
        assert two.tagged == 60 and all(len(row.tags) == 10 for row in lib.store.rows())
        assert lib.tag().tagged == 60  # back to the default vocabulary


@pytest.mark.unit
def test_vocabulary_file_rules(tmp_path: Path) -> None:
    parsed = Vocabulary.parse("red\n[colour]\nteal\nred\n[object]\nkite\nmug\n", "x")
    assert parsed.categories == ((USER_CATEGORY, ("red",)), ("colour", ("teal", "red")), ("object", ("kite", "mug")))
    merged = Vocabulary.default().plus(parsed)
    assert merged.category("object")[-1] == "kite" and merged.category("colour").count("red") == 1
    spec = find_model("demo")
    assert spec is not None and spec.prompt == "a photo of a {}"
    assert find_model("clip-vit-base-patch32").prompt == "a photo of a {}."  # type: ignore[union-attr]
    bad = {
        "missing.txt": None,
        "latin1.txt": "caf\xe9\n".encode("latin-1"),
        "empty.txt": b"# nothing\n\n",
        "control.txt": b"red\x1b[31m\n",
        "long.txt": b"x" * 300 + b"\n",
    }
    said = {
        "missing.txt": "does not exist",
        "latin1.txt": "is not UTF-8 text",
        "empty.txt": "holds no labels",
        "control.txt": "Line 1 of the labels file",
        "long.txt": "longer than 256 bytes",
    }
    for name, data in bad.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(UsageError, match=said[name]):
            Vocabulary.read(tmp_path / name)


@pytest.mark.e2e
def test_cli_tag_and_search_by_tag(capsys: pytest.CaptureFixture[str], tagged: Path, tmp_path: Path) -> None:
    code, out, err = run_main(capsys, "tag", "--db", str(tagged), "--device", "cpu", "--json")
    assert code == 0, err
    assert json.loads(out)["tagged"] == 0 and json.loads(out)["unchanged"] == 60
    with Library(tagged) as lib:
        watches = {row.path for row in lib.store.rows() if "watch" in row.tags}
    assert 3 <= len(watches) < 60
    code, out, err = run_main(
        capsys, "search", "a product", "--db", str(tagged), "--tag", "watch", "-k", "60", "--json"
    )
    assert code == 0, err
    hits = json.loads(out)
    assert {h["path"] for h in hits} == watches and all("watch" in h["tags"] for h in hits)
    code, out, err = run_main(capsys, "search", "a product", "--db", str(tagged), "--tag", "watch", "-k", "1")
    assert code == 0 and out.rstrip().endswith("]") and "watch" in out.splitlines()[0]
    code, out, err = run_main(capsys, "tag", "--db", str(tagged), "--labels", str(tmp_path / "none.txt"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "does not exist" in err
    code, out, err = run_main(capsys, "tag", "--db", str(tagged), "--top", str(MAX_TAGS))
    assert code == 2 and "lower --top" in err and err.count("\n") == 1


@pytest.mark.unit
def test_prompt_of_an_unregistered_model_follows_its_preprocessing() -> None:
    facts = load_facts(resolve_model_dir("demo", "fp32"))
    assert prompt_for(facts) == "a photo of a {}"  # the demo's own, from the registry
    mine = dataclasses.replace(facts, name="/models/my-clip")
    assert prompt_for(mine) == "a photo of a {}."
    squashed = dataclasses.replace(mine, image=dataclasses.replace(facts.image, resize="squash"))
    assert prompt_for(squashed) == "this is a photo of {}."


def test_app_shows_tags_and_filters_by_them(app_env: pytest.MonkeyPatch, tagged: Path, tmp_path: Path) -> None:
    """A page of the app holds 12 cards."""
    with Library(tagged, device="cpu") as lib:
        lib.tag()
        want = lib.search("a gold watch", k=12, tags=["gold"])
        counts = lib.tag_counts()
    assert 0 < len(want) < 12 and counts["gold"] == len(want)
    at = start(app_env, tagged, tmp_path)
    at.text_input(key="query").input("a gold watch").run()
    assert len(tag_lines(at)) == 12 and all(line.count(" · ") == 2 for line in tag_lines(at))
    assert at.multiselect(key="filter_tags").options == [f"{t} ({n})" for t, n in counts.items()]
    at.multiselect(key="filter_tags").select("gold").run()
    assert not at.exception
    names = [literal(c.value.split("·", 1)[1].strip()) for c in at.caption if c.value.startswith("**")]
    assert names == [r.filename for r in want]
    assert all("gold" in line.split(" · ") for line in tag_lines(at)) and len(tag_lines(at)) == len(want)


def tag_lines(at: AppTest) -> list[str]:
    """The tags shown under each card."""
    return [literal(c.value) for c in at.caption if c.proto.help.startswith("Auto-tags")]


def test_tags_on_each_backend(
    backend: Backend, catalogue: list[tuple[Path, Item]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tagging and searching by tag through ``Library`` on Milvus Lite and on a server, a batch at a time: the
    library's rows and vectors are never all read at once."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path, _ in catalogue[:12]:
        shutil.copy(path, folder / path.name)
    with Library(uri=backend.uri, model="demo", device="cpu") as lib:
        lib.index(folder)
        stored, vectors = lib.store.rows_and_vectors()
        expected = Tagger(lib.encoder, Vocabulary.default(), 1, None).tags(vectors)
        want = dict(zip([r.id for r in stored], expected, strict=True))
        batches: list[int] = []
        scored = Tagger.tags

        def counted(self: Tagger, block: np.ndarray) -> list[tuple[str, ...]]:
            batches.append(len(block))
            return scored(self, block)

        def whole(*args: object) -> None:
            raise AssertionError("tagging read every row and vector at once")

        monkeypatch.setattr(Tagger, "tags", counted)
        monkeypatch.setattr(SearchCopy, "snapshot", whole)
        monkeypatch.setattr(MilvusStore, "rows_and_vectors", whole)
        report = lib.tag(batch_size=5)
        assert (report.tagged, report.unchanged) == (12, 0) and batches == [5, 5, 2]
        rows = list(lib.store.rows())
        assert all(len(row.tags) == 3 and row.tagged == report.fingerprint for row in rows)
        assert {row.id: row.tags for row in rows} == want
        first = rows[0].tags[0]
        hits = lib.search("a product photo", k=12, tags=[first])
        assert {h.path for h in hits} == {row.path for row in rows if first in row.tags}
        assert lib.tag().tagged == 0


def test_a_row_gone_between_listing_and_reading_does_not_read_as_a_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Library(tmp_path / "lib.db", model="demo", device="cpu", search_copy=False) as lib:
        lib.prepare_writes()
        rows = make_rows(12)
        lib.write(rows, unit_vectors(12, lib.encoder.dim), new=True)
        lib.flush()
        get = MilvusStore.get

        def one_gone(self: MilvusStore, ids: list[str], with_vectors: bool = False) -> list[tuple[AssetRow, object]]:
            return [hit for hit in get(self, ids, with_vectors) if hit[0].id != rows[0].id]  # deleted meanwhile

        monkeypatch.setattr(MilvusStore, "get", one_gone)
        report = lib.tag(batch_size=5)
        assert (report.tagged, report.stopped) == (11, False)


def test_min_score_keeps_only_labels_that_reach_it(tagged: Path) -> None:
    with Library(tagged, device="cpu") as lib:
        lib.tag()
        scores = {row.path: row.tags for row in lib.store.rows()}
        counts = lib.tag_counts()
        assert sum(counts.values()) == 180 and lib.tag_counts() == counts
        assert lib.tag(min_score=1.0).tagged == 60
        assert all(row.tags == () and row.tagged for row in lib.store.rows())  # tagged: none reaches 1
        assert lib.tag_counts() == {}  # the counts follow the library's writes
        assert lib.tag(min_score=-1.0).tagged == 60
        assert {row.path: row.tags for row in lib.store.rows()} == scores  # every label reaches -1
        with pytest.raises(UsageError, match="--min-score for tags is a cosine from -1 to 1, not 2"):
            lib.tag(min_score=2.0)
        lib.tag()
