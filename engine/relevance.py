"""Scores that mean the same on every model: how far a hit stands above the library's typical score.

A cosine score is model-specific: CLIP's matching text-image pairs sit around 0.3, SigLIP's far lower,
and a fixed ``--min-score`` keeps most hits on one model and none on another. What carries across
models is how a hit compares with the rest of the library for the same query. ``Baseline`` is the
mean and spread of the query's cosine against a fixed sample of the library's own vectors; a hit's
*relevance* is its score in those units (standard deviations above the library's average), so
"relevance 3" is equally strict on CLIP and SigLIP, and "within 1 of the best" keeps hits that are
nearly as good as the top one whatever the model's score range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from assetlens.engine.errors import UsageError

#: Library vectors the baseline is measured on: enough for a stable mean and spread (their standard
#: error is about 2 % of the spread), few enough to cost well under a millisecond per query.
SAMPLE_ROWS = 2048
#: Below this many sampled rows a spread is not a measurement.
MIN_SAMPLE_ROWS = 8


def sample_positions(total: int, n: int = SAMPLE_ROWS) -> np.ndarray:
    """``n`` evenly spaced positions out of ``total`` (all of them when there are fewer): the same
    sample for every query, so a score's relevance does not change between two searches."""
    if total <= n:
        return np.arange(total)
    positions: np.ndarray = np.linspace(0, total - 1, n).round().astype(np.int64)
    return positions


def check_relevance(option: str, value: float) -> None:
    """Refuse a relevance bound that is NaN or infinite (negative ones are meaningful: below average)."""
    if not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, not {value:g}.")


def check_margin(option: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{option} must be a finite number of at least 0, not {value:g}.")


@dataclass(frozen=True)
class Baseline:
    """The library's score distribution for one query: mean and standard deviation of its cosine
    against a sample of the library's vectors."""

    mean: float
    spread: float

    @classmethod
    def measure(cls, sample: np.ndarray, query: np.ndarray) -> Baseline | None:
        """The baseline of ``query`` (unit vector) over ``sample`` (rows of unit vectors); None when the
        library is too small, or too uniform, for a spread to mean anything."""
        if len(sample) < MIN_SAMPLE_ROWS:
            return None
        scores = np.asarray(sample, dtype=np.float32) @ np.asarray(query, dtype=np.float32)
        spread = float(scores.std())
        if not spread > 1e-6:
            return None
        return cls(float(scores.mean()), spread)

    def relevance(self, score: float) -> float:
        """``score`` in standard deviations above the library's average score for this query."""
        return (score - self.mean) / self.spread

    def score_at(self, relevance: float) -> float:
        """The cosine score that has ``relevance``."""
        return self.mean + relevance * self.spread
