"""The benchmark suite end to end at toy size: structure of the JSON, sane figures, report and plots written.

Benchmarks are not tests: nothing here asserts a speed, only that every
figure exists and is a positive, finite number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from assetlens.cli import build_parser

pytestmark = [pytest.mark.store]

pytest.importorskip("matplotlib")
pytest.importorskip("torch")

SECTIONS = ("environment", "encoders", "text_queries", "indexing", "search", "quality")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from assetlens.benchmarks.suite import run

    out = tmp_path_factory.mktemp("bench")
    path = run("toy", out, device="cpu", cache=tmp_path_factory.mktemp("cache"), progress=False)
    return out, json.loads(path.read_text())


def _timings(node: Any) -> list[dict[str, Any]]:
    """Every latency record (a dict with p50_ms) anywhere in the results."""
    if isinstance(node, dict):
        found = [node] if "p50_ms" in node else []
        return found + [t for v in node.values() for t in _timings(v)]
    if isinstance(node, list):
        return [t for v in node for t in _timings(v)]
    return []


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_structure_and_environment(run: tuple[Path, dict[str, Any]]) -> None:
    _, res = run
    assert res["schema"] == "assetlens-bench/1" and res["profile"] == "toy"
    assert res["failures"] == []
    for section in SECTIONS:
        assert res[section], section
    env = res["environment"]
    assert env["cpu"]["model"] and env["threads"] >= 1 and env["onnxruntime_providers"]
    assert {"torch", "numpy", "pymilvus"} <= set(env["versions"])
    assert "OPENBLAS_CORETYPE" in env["env"]
    assert _positive(env["limits"]["fp32_gflops"])
    assert len(res["load"]["start"]) == 3 and len(res["load"]["end"]) == 3


@pytest.mark.slow
def test_figures_are_positive_and_finite(run: tuple[Path, dict[str, Any]]) -> None:
    _, res = run
    timings = _timings(res)
    assert len(timings) > 20
    for t in timings:
        assert t["n"] >= 1 and all(_positive(t[k]) for k in ("p50_ms", "p99_ms", "per_s")), t
    enc = res["encoders"]
    assert set(enc["image"]) >= {"pytorch", "onnx-fp32", "onnx-int8"}
    for name, parity in enc["parity"].items():
        assert all(0.9 < v <= 1.0001 for k, v in parity.items() if "cosine" in k), name
    for rows in enc["ratios"].values():
        assert all(_positive(r["vs_pytorch"]) for r in rows.values())
    for rows in res["indexing"]["library"].values():
        for row in rows.values():
            assert row["images"] > 0 and row["failed"] == 0
            assert all(
                _positive(row[k])
                for k in ("images_per_s", "vs_encoder_only", "vs_torch_one_at_a_time", "vs_cpu_bound", "rss_peak_mib")
            )
    stores = res["search"]["stores"]
    assert {"numpy exact", "Milvus Lite FLAT"} <= set(stores)
    for by_size in stores.values():
        for row in by_size.values():
            assert 0 < row["recall_at_10"] <= 1 and _positive(row["batch"]["qps"])
    for row in res["search"]["library"].values():
        assert row["recall_at_10"] > 0.9
        for state in ("same_process", "fresh_process"):
            assert all(_positive(row[state][k]["p50_ms"]) for k in ("end_to_end", "store_search", "encode_text"))
    for row in res["text_queries"].values():
        assert row["mean_tokens"] < row["context_length"] and _positive(row["speedup"])


@pytest.mark.slow
def test_goals_report_and_plots(run: tuple[Path, dict[str, Any]]) -> None:
    out, res = run
    assert res["goals"] and all(g["status"] in ("met", "MISSED", "not measured") for g in res["goals"])
    report = (out / "bench-toy.md").read_text()
    assert "## Goals" in report and "| goal | measured | target | status |" in report
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == [
        "bench-toy-encoders.png",
        "bench-toy-recall-latency.png",
        "bench-toy-search-latency.png",
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"({png.name})" in report


@pytest.mark.unit
def test_cli_parses_bench() -> None:
    args = build_parser().parse_args(["bench", "--full", "--device", "cpu", "--out", "x"])
    assert (args.profile, args.device, args.out) == ("full", "cpu", "x")
    assert build_parser().parse_args(["bench"]).profile == "quick"
