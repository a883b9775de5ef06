"""Which items get drawn: all of them, the train/held-out split, seeded samples, a catalogue folder."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from assetlens.catalogue.render import render, stable_seed
from assetlens.catalogue.vocabulary import BACKGROUNDS, COLORS, INVISIBLE, OBJECTS, Item

#: The catalogue ``assetlens demo`` writes (and the tag measures score): its size and seed.
DEMO_IMAGES, DEMO_SEED = 200, 0


def all_items(pairs: Iterable[tuple[str, str]] | None = None) -> list[Item]:
    """Every drawable item, optionally only for the given (colour, object) pairs."""
    keep = None if pairs is None else set(pairs)
    return [
        Item(obj, color, bg)
        for obj in OBJECTS
        for color in COLORS
        for bg in BACKGROUNDS
        if (color, bg) not in INVISIBLE and (keep is None or (color, obj) in keep)
    ]


def split() -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """(train pairs, held-out pairs) of (colour, object) combinations.

    Fixed, not random: object ``i`` is held out in colours ``i+3`` and ``i+7``
    (mod the number of colours), so every colour and every object is held out
    exactly twice and still appears in nine training combinations. The two
    sets are disjoint and cover all combinations.
    """
    colors = list(COLORS)
    held = set()
    for i, obj in enumerate(OBJECTS):
        for shift in (3, 7):
            held.add((colors[(i + shift) % len(colors)], obj))
    everything = {(c, o) for c in colors for o in OBJECTS}
    return frozenset(everything - held), frozenset(held)


def sample_items(n: int, seed: int = 0, pairs: Iterable[tuple[str, str]] | None = None) -> list[Item]:
    """``n`` items spread evenly over all (or the given pairs') items, in a seeded order."""
    pool = all_items(pairs)
    if not pool:
        raise ValueError("No drawable items for these pairs.")
    r = np.random.default_rng(stable_seed("sample", seed))
    out: list[Item] = []
    while len(out) < n:
        out.extend(pool[i] for i in r.permutation(len(pool)))
    return out[:n]


def catalogue_items(n: int, seed: int = 0) -> list[Item]:
    """The items ``write_catalogue`` draws: every (colour, object) pair once per round, in a
    seeded order, each on a background chosen in turn, so that with ``n >= 121`` every
    colour of every object kind is there at least once."""
    r = np.random.default_rng(stable_seed("catalogue-items", seed))
    pairs = [(c, o) for o in OBJECTS for c in COLORS]
    offsets = r.integers(0, len(BACKGROUNDS), size=len(pairs))
    out: list[Item] = []
    round_ = 0
    while len(out) < n:
        for k in r.permutation(len(pairs)):
            color, obj = pairs[k]
            backgrounds = [b for b in BACKGROUNDS if (color, b) not in INVISIBLE]
            # each round puts a pair on the next of its backgrounds
            out.append(Item(obj, color, backgrounds[(offsets[k] + round_) % len(backgrounds)]))
        round_ += 1
    return out[:n]


def write_catalogue(
    folder: Path | str,
    n: int = 200,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    size: int = 256,
) -> list[tuple[Path, Item]]:
    """Write ``n`` product shots under ``folder``, one sub-folder per object kind.

    Files are named after what they show (``mug/red-mug-on-wooden-table-007.jpg``);
    about two in three are JPEG, the rest PNG. ``progress(done, total)`` is
    called after each file. Deterministic given ``seed``. Returns
    ``(path, item)`` for every file written, in order.
    """
    if n < 0:
        raise ValueError("n must not be negative.")
    folder = Path(folder)
    r = np.random.default_rng(stable_seed("catalogue", seed))
    written: list[tuple[Path, Item]] = []
    for i, item in enumerate(catalogue_items(n, seed)):
        fmt = "png" if r.random() < 1 / 3 else "jpg"
        sub = folder / item.object
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{item.slug}-{i:03d}.{fmt}"
        img = render(item, size=size, seed=stable_seed(seed, i))
        if fmt == "jpg":
            img.save(path, "JPEG", quality=int(r.integers(82, 96)))
        else:
            img.save(path, "PNG")
        written.append((path, item))
        if progress is not None:
            progress(i + 1, n)
    return written
