"""The synthetic product catalogue (``assetlens.catalogue``): fast, torch-free unit tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assetlens import catalogue as cat
from assetlens.catalogue import HeldOut, Item, render, split, tag_accuracy, write_catalogue
from assetlens.catalogue.drawing import paint_object

pytestmark = [pytest.mark.unit]


def test_render_is_deterministic() -> None:
    item = Item("mug", "red", "wooden table")
    a = np.asarray(render(item, size=128, seed=3))
    b = np.asarray(render(item, size=128, seed=3))
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(render(item, size=128, seed=4)))
    # the item takes part in the randomness too: same seed, other item, other picture
    assert not np.array_equal(a, np.asarray(render(Item("mug", "red", "gray background"), size=128, seed=3)))


def test_render_sizes_and_mode() -> None:
    img = render(Item("watch", "gold", "black background"))
    assert img.mode == "RGB" and img.size == (256, 256)
    assert render(Item("hat", "green", "blue background"), size=64).size == (64, 64)
    with pytest.raises(ValueError):
        render(Item("hat", "green", "blue background"), size=8)


@pytest.mark.parametrize("obj", cat.OBJECTS)
def test_product_colours_stay_distinct(obj: str) -> None:
    """Drawn products keep their colour: the median colour of the product's own
    pixels is far apart for every two colour names, and for plain-bodied kinds
    it is nearest to the named colour itself."""
    names = list(cat.COLORS)
    base = np.array([cat.COLORS[c] for c in names], dtype=np.float32)
    medians = {}
    for color in names:
        background = "gray background" if color != "silver" else "white background"
        layer = np.asarray(paint_object(Item(obj, color, background), 128, np.random.default_rng(0)))
        medians[color] = np.median(layer[layer[..., 3] > 250][:, :3].astype(np.float32), axis=0)
        if obj in ("mug", "bottle", "t-shirt"):
            nearest = names[int(np.argmin(((base - medians[color]) ** 2).sum(1)))]
            assert nearest == color, (color, medians[color])
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.linalg.norm(medians[a] - medians[b]) > 25, (a, b)


def test_captions() -> None:
    assert Item("mug", "red", "wooden table").caption() == "a red mug on a wooden table"
    assert Item("hat", "orange", "white background").caption() == "an orange hat on a white background"
    assert Item("sunglasses", "green", "black background").caption() == "green sunglasses on a black background"
    assert Item("watch", "gold", "gray background").short_caption() == "a gold watch"
    assert Item("headphones", "silver", "blue background").short_caption() == "silver headphones"
    item = Item("t-shirt", "blue", "wooden table")
    caps = item.captions()
    assert caps[0] == item.caption() and len(caps) == len(cat.CAPTION_TEMPLATES) == len(set(caps))
    assert all("blue" in c and "t-shirt" in c for c in caps)
    assert sum("wooden table" in c for c in caps) >= len(caps) // 2
    assert item.caption("{object} in {color}") == "a t-shirt in blue"
    assert item.caption(noun="tee", background="wood table") == "a blue tee on a wood table"
    assert item.slug == "blue-t-shirt-on-wooden-table"


def test_items_are_validated() -> None:
    with pytest.raises(ValueError):
        Item("kettle", "red", "wooden table")
    with pytest.raises(ValueError):
        Item("mug", "teal", "wooden table")
    with pytest.raises(ValueError):
        Item("mug", "red", "beach")
    for color, background in cat.INVISIBLE:
        with pytest.raises(ValueError):
            Item("mug", color, background)
    assert len(cat.all_items()) == len(cat.OBJECTS) * (len(cat.COLORS) * len(cat.BACKGROUNDS) - len(cat.INVISIBLE))


def test_split_holds_out_pairs_disjointly() -> None:
    train, held = split()
    assert split() == (train, held)  # fixed
    assert not train & held
    assert train | held == {(c, o) for c in cat.COLORS for o in cat.OBJECTS}
    assert 0.1 < len(held) / (len(train) + len(held)) < 0.3
    # every colour and every object is held out somewhere and still trained with others
    for color in cat.COLORS:
        assert sum(c == color for c, _ in held) == 2 and sum(c == color for c, _ in train) >= 8
    for obj in cat.OBJECTS:
        assert sum(o == obj for _, o in held) == 2 and sum(o == obj for _, o in train) >= 8
    # sampling training items never yields a held-out pair
    assert all(it.pair in train for it in cat.sample_items(500, seed=0, pairs=train))


@pytest.mark.slow
def test_held_out_definition() -> None:
    train, held = split()
    bench = HeldOut.build()
    assert bench == HeldOut.build()  # fixed
    assert {q.pair for q in bench.queries} == held and len(bench.queries) == 102
    assert len(set(bench.texts)) == len(bench.queries) == len(bench.texts)
    assert bench.texts[0] == bench.queries[0].caption()
    assert bench.gallery[: len(bench.queries)] == bench.queries  # each query has exactly one correct picture ...
    assert all(g.pair in train for g in bench.gallery[len(bench.queries) :])  # ... distractors are never correct
    assert len(bench.gallery) == len(bench.seeds) == len(set(bench.seeds)) == 202
    assert np.array_equal(bench.relevant, np.eye(len(bench.queries), len(bench.gallery), dtype=bool))
    # one background-free query per held-out pair; any picture of the pair is a hit
    assert bench.pairs == tuple(sorted(held))
    assert bench.short_texts[bench.pairs.index(("gold", "chair"))] == "a gold chair"
    assert bench.relevant_pair.sum() == len(bench.queries)
    for pair, row in zip(bench.pairs, bench.relevant_pair, strict=True):
        assert {bench.gallery[j].pair for j in np.flatnonzero(row)} == {pair}
    # the pictures are the renders of the gallery's items with their seeds
    assert len(bench.images) == 202 and bench.images is bench.images
    assert np.array_equal(np.asarray(bench.images[5]), np.asarray(render(bench.gallery[5], 256, bench.seeds[5])))
    assert len(HeldOut.build(distractors=10).gallery) == len(bench.queries) + 10


def test_held_out_recall_scores_the_ranking() -> None:
    """Recall on hand-made vectors: gallery picture j is the unit vector e_j, so each text vector says
    exactly which pictures it ranks first."""
    bench = HeldOut.build(distractors=20)
    n, size = len(bench.queries), len(bench.gallery)
    images = np.eye(size, dtype=np.float32)
    texts = np.eye(n, size, dtype=np.float32)
    assert bench.recall(images, texts, ks=(1, 5)) == {1: 1.0, 5: 1.0}
    # ten queries rank a distractor above their own picture, which stays second
    texts[:10, n] = 2.0
    assert bench.recall(images, texts, ks=(1, 2)) == {1: (n - 10) / n, 2: 1.0}
    # a query whose own picture ranks below six distractors misses recall@5 too
    texts[0, n : n + 6] = 3.0
    assert bench.recall(images, texts, ks=(5, 7)) == {5: (n - 1) / n, 7: 1.0}

    # colour+object queries: the pair's picture on another background counts, a distractor does not
    short = np.zeros((len(bench.pairs), size), dtype=np.float32)
    for row, pair in enumerate(bench.pairs):
        short[row, [j for j, g in enumerate(bench.gallery) if g.pair == pair][-1]] = 1.0
    assert bench.pair_recall(images, short, ks=(1,)) == {1: 1.0}
    short[0, n] = 5.0
    assert bench.pair_recall(images, short, ks=(1,)) == {1: (len(bench.pairs) - 1) / len(bench.pairs)}


def test_held_out_recall_refuses_vectors_of_the_wrong_shape() -> None:
    bench = HeldOut.build(distractors=5)
    images = np.eye(len(bench.gallery), dtype=np.float32)
    texts = np.eye(len(bench.queries), len(bench.gallery), dtype=np.float32)
    with pytest.raises(ValueError, match="image vectors"):
        bench.recall(images[:-1], texts)
    with pytest.raises(ValueError, match="text vectors"):
        bench.recall(images, texts[:-1])
    with pytest.raises(ValueError, match="text vectors"):
        bench.pair_recall(images, texts)  # one row per query, not per pair
    with pytest.raises(ValueError, match="dimension"):
        bench.recall(images, texts[:, :-1])


def test_recall_at_k() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1], [0.0, 0.0, 1.0]])
    relevant = np.array([[False, False, True], [False, False, True], [False, False, True]])
    assert cat.recall_at_k(scores, relevant, ks=(1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}


def test_catalogue_items_cover_every_pair() -> None:
    items = cat.catalogue_items(200, seed=0)
    assert items == cat.catalogue_items(200, seed=0) and items[:50] == cat.catalogue_items(50, seed=0)
    pairs = [it.pair for it in items]
    assert set(pairs) == {(c, o) for c in cat.COLORS for o in cat.OBJECTS}
    for pair in set(pairs):  # a pair drawn twice is shown on two backgrounds
        backgrounds = [it.background for it in items if it.pair == pair]
        assert len(backgrounds) == len(set(backgrounds))
    assert len({it.background for it in items}) == len(cat.BACKGROUNDS)


def test_write_catalogue(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    written = write_catalogue(tmp_path / "a", n=24, seed=5, progress=lambda d, t: seen.append((d, t)))
    assert len(written) == 24 and seen[-1] == (24, 24) and len(seen) == 24
    paths = [p for p, _ in written]
    assert len(set(paths)) == 24
    assert sorted(paths) == sorted(p for p in (tmp_path / "a").rglob("*") if p.is_file())
    suffixes = {p.suffix for p in paths}
    assert suffixes == {".jpg", ".png"}
    for path, item in written:
        assert path.parent.name == item.object and path.name.startswith(item.slug)
        with Image.open(path) as img:
            assert img.format == ("JPEG" if path.suffix == ".jpg" else "PNG")
            assert img.size == (256, 256)
    # spread over many object kinds and colours, deterministic given the seed
    assert len({it.object for _, it in written}) >= 8 and len({it.color for _, it in written}) >= 8
    again = write_catalogue(tmp_path / "b", n=24, seed=5)
    assert [p.relative_to(tmp_path / "b") for p, _ in again] == [p.relative_to(tmp_path / "a") for p in paths]
    assert all(a.read_bytes() == b.read_bytes() for (a, _), (b, _) in zip(written, again, strict=True))
    other = write_catalogue(tmp_path / "c", n=24, seed=6)
    assert [it for _, it in other] != [it for _, it in written]
    assert write_catalogue(tmp_path / "d", n=0) == []


@pytest.mark.slow
def test_catalogue_imports_neither_torch_nor_the_engine() -> None:
    """The catalogue is pure numpy and Pillow: export, benchmarks and the CLI all stand on it."""
    code = (
        "import sys, assetlens.catalogue as c; c.render(c.Item('mug','red','wooden table'), 32); c.HeldOut.build();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')"
        " or m.startswith('assetlens.') and not m.startswith('assetlens.catalogue')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_tag_accuracy_scores_the_first_tag_and_the_first_colour() -> None:
    truth = {"a": Item("mug", "red", "white background"), "b": Item("hat", "blue", "wooden table")}
    colours = ("red", "blue")
    assert tag_accuracy({"a": ("mug", "red"), "b": ("mug", "blue")}, truth, colours) == (0.5, 1.0)
    assert tag_accuracy({"a": ("red", "mug"), "b": ("hat",)}, truth, colours) == (0.5, 0.5)  # no colour: wrong
    assert tag_accuracy({"a": (), "b": ("hat", "white background", "red")}, truth, colours) == (0.5, 0.0)
    with pytest.raises(ValueError, match="different pictures"):
        tag_accuracy({"a": ("mug",)}, truth, colours)
