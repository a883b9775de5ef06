"""Relevance bounds: scores in standard deviations above the library's average, the same through every search path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_main

from assetlens.catalogue import Item
from assetlens.engine.errors import UsageError
from assetlens.engine.library import Library
from assetlens.engine.relevance import SAMPLE_ROWS, Baseline, sample_positions

pytestmark = [pytest.mark.store]


def library_baseline(lib: Library, text: str) -> tuple[np.ndarray, Baseline]:
    """The query vector and its baseline over every vector of a small library, computed here from Milvus itself."""
    query, _ = lib.query_vector(text, None, None, ())
    _, vectors = lib.store.rows_and_vectors()
    scores = vectors @ query
    return query, Baseline(float(scores.mean()), float(scores.std()))


@pytest.mark.parametrize("search_copy", [True, False], ids=["copy", "milvus"])
def test_relevance_is_the_score_in_the_librarys_standard_deviations(catalogue_library: Path, search_copy: bool) -> None:
    with Library(catalogue_library, device="cpu", search_copy=search_copy) as lib:
        _, base = library_baseline(lib, "a red mug")
        every = lib.search("a red mug", k=60, min_relevance=-100.0)
        strict = lib.search("a red mug", k=60, min_relevance=2.0)
        near = lib.search("a red mug", k=60, within=1.5)
        plain = lib.search("a red mug", k=5)
    assert len(every) == 60
    for r in every:
        assert r.relevance == pytest.approx((r.score - base.mean) / base.spread, abs=1e-4)
    assert [r.path for r in strict] == [r.path for r in every if r.relevance is not None and r.relevance >= 2.0]
    assert 0 < len(strict) < 60
    best = every[0].score
    assert [r.path for r in near] == [r.path for r in every if r.score >= best - 1.5 * base.spread - 1e-6]
    assert 0 < len(near) < 60
    assert all(r.relevance is None for r in plain)  # measured only when a bound asks for it


def test_a_relevance_bound_also_applies_with_a_score_bound(catalogue_library: Path) -> None:
    with Library(catalogue_library, device="cpu") as lib:
        every = lib.search("a blue chair", k=60, min_relevance=-100.0)
        both = lib.search("a blue chair", k=60, min_relevance=1.0, min_score=every[2].score)
    assert [r.path for r in both] == [
        r.path for r in every if r.relevance is not None and r.relevance >= 1.0 and r.score >= every[2].score
    ]


def test_sample_positions_are_even_and_fixed() -> None:
    assert sample_positions(5).tolist() == [0, 1, 2, 3, 4]
    picked = sample_positions(100_000)
    assert len(picked) == SAMPLE_ROWS and picked[0] == 0 and picked[-1] == 99_999
    assert np.all(np.diff(picked) >= 48) and np.array_equal(picked, sample_positions(100_000))


def test_no_baseline_for_a_library_too_small_or_too_uniform() -> None:
    q = np.array([1.0, 0.0], np.float32)
    assert Baseline.measure(np.tile(q, (4, 1)), q) is None
    assert Baseline.measure(np.tile(q, (50, 1)), q) is None
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(50, 2)).astype(np.float32)
    base = Baseline.measure(sample, q)
    assert base is not None and base.mean == pytest.approx(float(sample[:, 0].mean()), abs=1e-6)
    assert base.score_at(base.relevance(0.3)) == pytest.approx(0.3)


@pytest.mark.parametrize("option", ["min_relevance", "within"])
def test_bad_relevance_bounds_are_refused(catalogue_library: Path, option: str) -> None:
    with Library(catalogue_library, device="cpu") as lib, pytest.raises(UsageError, match="finite number"):
        lib.search("a mug", **{option: float("nan")})  # type: ignore[arg-type]
    with Library(catalogue_library, device="cpu") as lib, pytest.raises(UsageError, match="at least 0"):
        lib.search("a mug", within=-1.0)


def test_cli_prints_relevance_and_refuses_a_bad_bound(
    catalogue_library: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, "search", "a gold watch", "--db", str(catalogue_library), "--min-relevance", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines and all(line.split()[3] == "sd" and float(line.split()[2]) >= 2.0 for line in lines)
    code, out, err = run_main(capsys, "search", "a gold watch", "--db", str(catalogue_library), "--within", "inf")
    assert code != 0 and err.strip().count("\n") == 0 and "--within must be a finite number" in err


@pytest.mark.slow
@pytest.mark.parametrize("model", ["demo", "demo-siglip"])
def test_relevance_two_keeps_most_matches_and_few_others_on_either_family(
    catalogue: list[tuple[Path, Item]], catalogue_dir: Path, tmp_path: Path, model: str
) -> None:
    """One bound, two model families: at relevance 2 each keeps most pictures of the asked colour and object
    and drops most others (measured figures in the README)."""
    truth = {str(p.resolve()): item.pair for p, item in catalogue}
    pairs = sorted(set(truth.values()))
    kept = relevant = found = 0
    with Library(tmp_path / "lib.db", model=model, device="cpu") as lib:
        lib.index(catalogue_dir)
        for color, thing in pairs:
            got = {r.path for r in lib.search(f"a {color} {thing}", k=60, min_relevance=2.0)}
            want = {p for p, pair in truth.items() if pair == (color, thing)}
            kept += len(got)
            relevant += len(want)
            found += len(got & want)
    recall, precision = found / relevant, found / kept
    print(f"{model}: recall {recall:.2f}, precision {precision:.2f}, {kept / len(pairs):.1f} kept per query")
    assert recall >= 0.8
    assert precision >= 5 * relevant / (len(pairs) * len(truth))  # five times a random pick's
