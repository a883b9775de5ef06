"""Timing and memory helpers shared by every benchmark module.

Latencies are wall-clock (``time.perf_counter``); a figure is the median of
repeated calls after warm-up, so a neighbour's burst of CPU on a shared
machine moves p99 but rarely p50. Each measurement is bounded by a time
budget as well as a repetition count, so slow backends cost seconds, not
minutes, and ``n`` records how many samples a percentile rests on.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def stats(samples_s: list[float], items_per_call: int = 1) -> dict[str, Any]:
    """p50/p99/mean latency in ms and throughput (items per second at the median)."""
    arr = np.asarray(samples_s, dtype=np.float64)
    p50 = float(np.percentile(arr, 50))
    return {
        "n": int(arr.size),
        "p50_ms": p50 * 1e3,
        "p99_ms": float(np.percentile(arr, 99)) * 1e3,
        "mean_ms": float(arr.mean()) * 1e3,
        "min_ms": float(arr.min()) * 1e3,
        "per_s": items_per_call / p50 if p50 > 0 else math.inf,
    }


def measure(
    fn: Callable[[], object],
    *,
    items: int = 1,
    warmup: int = 1,
    min_reps: int = 3,
    max_reps: int = 200,
    budget_s: float = 5.0,
) -> dict[str, Any]:
    """Call ``fn`` ``warmup`` times, then until ``max_reps`` or the budget is spent (at least ``min_reps``)."""
    for _ in range(warmup):
        fn()
    return stats(_samples({"fn": fn}, max_reps, budget_s, min_reps)["fn"], items)


def measure_alternating(
    fns: dict[str, Callable[[], object]], *, max_reps: int = 200, budget_s: float = 5.0, min_reps: int = 3
) -> dict[str, dict[str, Any]]:
    """Call each of ``fns`` in turn, round after round, until ``max_reps`` rounds or the budget is spent; the
    stats of each name's samples. For a ratio of two of them: each sample of one is taken next to one of the
    other, so a change in the machine's speed over the run moves both (two loops one after the other gave
    ratios from 0.95x to 1.59x on one library; alternating, within 7 %: benchmarks/results/FINDINGS.md)."""
    return {name: stats(taken) for name, taken in _samples(fns, max_reps, budget_s, min_reps).items()}


def _samples(
    fns: dict[str, Callable[[], object]], max_reps: int, budget_s: float, min_reps: int
) -> dict[str, list[float]]:
    """Seconds per call of each of ``fns``, called in turn round after round (``measure_alternating``)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while rounds < max_reps and (rounds < min_reps or time.perf_counter() < deadline):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        rounds += 1
    return samples


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class PeakRss:
    """Samples RSS every ``interval_s`` in a thread: ``with PeakRss() as p: ...; p.peak``."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="peak-rss")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    def to_dict(self) -> dict[str, float]:
        return {"rss_start_mib": self.start / 2**20, "rss_peak_mib": self.peak / 2**20}


class Clock:
    """Seconds spent per named section, for the JSON's ``section_seconds``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str) -> _Section:
        return _Section(self, name)


class _Section:
    def __init__(self, clock: Clock, name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.clock.seconds[self.name] = self.clock.seconds.get(self.name, 0.0) + time.perf_counter() - self.t0
