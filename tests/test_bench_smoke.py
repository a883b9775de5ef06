"""The benchmark suite end to end at toy size: structure of the JSON, sane figures, report and plots written.

Benchmarks are not tests: nothing here asserts a speed, only that every
figure exists and is a positive, finite number. The toy run has two library
sizes (the hidden ``--sizes``), so the figures that compare a big library with
a smaller one are computed as in a full run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_process import Backend

from assetlens.catalogue import DEMO_IMAGES
from assetlens.cli import build_parser
from assetlens.demo import DEMO_MODELS

pytestmark = [pytest.mark.store]

pytest.importorskip("matplotlib")
pytest.importorskip("torch")

SECTIONS = ("environment", "encoders", "families", "text_queries", "indexing", "search", "duplicates", "quality")
SIZES = (300, 12_000)  # the larger above engine.duplicates.CELLS_MIN_ROWS: the cell search runs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from assetlens.benchmarks.suite import run

    out = tmp_path_factory.mktemp("bench")
    path = run("toy", out, device="cpu", cache=tmp_path_factory.mktemp("cache"), progress=False, sizes=SIZES)
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
    tags = res["quality"]["tags"]
    assert tags["images"] == DEMO_IMAGES and set(tags["models"]) == set(DEMO_MODELS)
    for model in tags["models"].values():
        assert set(model["precisions"]) == {"fp32", "int8"}
        assert all(0.5 < r["object_right"] <= 1 and 0.5 < r["colour_right"] <= 1 for r in model["precisions"].values())


@pytest.mark.slow
def test_scale_figures_side_by_side(run: tuple[Path, dict[str, Any]]) -> None:
    _, res = run
    lib = res["search"]["library"]
    assert sorted(map(int, lib)) == list(SIZES)
    for n, row in lib.items():
        assert row["raw_vector_mib"] == int(n) * 512 * 4 / 2**20
        assert row["write_rss"]["rss_peak_mib"] > row["raw_vector_mib"] and _positive(row["upsert_s"])
        assert _positive(row["fresh_process"]["rss_peak_mib"]) and _positive(row["fresh_process"]["cold_first_query_s"])
        assert row["cli_search"]["runs"] == 3 and all(_positive(s) for s in row["cli_search"]["seconds"])
        # a watch-sized write after the save: its vectors wait beside the saved index, which is not rewritten
        small = row["small_write"]
        assert small["rows"] == 100 and _positive(small["flush_and_save_s"]) and not small["index_file_rewritten"]
    assert _positive(lib["300"]["fresh_process_int8"]["end_to_end"]["p50_ms"])
    assert "fresh_process_int8" not in lib["12000"]  # an int8 collection only up to the profile's int8_library_max
    goals = {g["name"]: g for g in res["goals"]}
    for name in (
        "Peak RSS writing 12,000 rows vs the raw vector bytes",
        "Peak RSS of a process that only searches 12,000 rows vs the raw vector bytes",
        "Cold start (first answer in a fresh process) at 12,000 vs 300",
        "Write time of 12,000 rows vs 40 x 300",
        "Query latency (end to end p50, fresh process) at 12,000 vs 300",
        "Text query end to end vs the int8 text encoder alone at 300 (p50, fresh process)",
    ):
        assert _positive(goals[name]["measured"]), name
    write = lib["12000"]["upsert_s"] / (40 * lib["300"]["upsert_s"])
    assert goals["Write time of 12,000 rows vs 40 x 300"]["measured"] == pytest.approx(write)


@pytest.mark.slow
def test_duplicates_and_families(run: tuple[Path, dict[str, Any]]) -> None:
    out, res = run
    sizes = res["duplicates"]["sizes"]
    assert [sizes[str(n)]["method"] for n in SIZES] == ["exact", "cells (k-means)"]
    for row in sizes.values():
        assert row["groups"] == row["groups_planted"] and row["same_groups_as_exact"]
        assert row["pair_recall_vs_exact"] == 1.0 and row["pairs_not_in_exact"] == 0
    family = res["families"]["toy-siglip"]
    assert family["family"] == "siglip" and set(family["image"]) == {"pytorch", "onnx-fp32", "onnx-int8"}
    assert all(_positive(t["per_s"]) and t["tokens"] == 64 for t in family["text"].values())  # padded to 64
    for parity in family["parity"].values():
        assert all(0.99 < v <= 1.0001 for v in parity.values()), parity
    report = (out / "bench-toy.md").read_text()
    assert "## What each model family costs" in report and "## Near-duplicate groups" in report


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
        "bench-toy-scale.png",
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


SESSION = """
import json, sys, time
from assetlens.engine import store
store.GRPC_OPTIONS.update(json.loads(sys.argv[2]))
with store.MilvusStore(sys.argv[1]) as s:
    s.exists()
    time.sleep(float(sys.argv[3]))
    s.exists()
"""


def _idle_store_stderr(uri: str, options: dict[str, int], seconds: float) -> str:
    """stderr of a process whose ``MilvusStore`` on ``uri`` stays connected and idle for ``seconds`` (as a
    benchmark's client between its calls), ``options`` added to the store's gRPC options."""
    args = [sys.executable, "-c", SESSION, uri, json.dumps(options), str(seconds)]
    return subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120, check=True).stderr


@pytest.mark.slow
def test_an_idle_store_connection_gets_no_goaway(backend: Backend) -> None:
    """gRPC prints a raw ``GOAWAY ... too_many_pings`` line when a client pings more often than the server
    allows (Milvus Lite's server: one ping per 5 minutes without data). A 1 s keepalive on an idle connection
    shows them within seconds (so this check sees them); the store's own settings show none over an idle
    minute, six of pymilvus' 10 s intervals. Both let pings through without waiting for data
    (``max_pings_without_data`` 0), as a process that keeps its connection while it waits on other work."""
    unlimited = {"grpc.http2.max_pings_without_data": 0}
    every_second = {**unlimited, "grpc.keepalive_time_ms": 1000, "grpc.keepalive_permit_without_calls": 1}
    assert "too_many_pings" in _idle_store_stderr(backend.uri, every_second, 12)
    ours = _idle_store_stderr(backend.uri, unlimited, 65)
    assert "GOAWAY" not in ours and "too_many_pings" not in ours, ours


def test_graph_benchmark_measures_recall_against_exact(capsys: pytest.CaptureFixture[str]) -> None:
    from assetlens.benchmarks import graph

    graph.measure(3000, [160], [16, 128], queries=50)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["rows"] == 3000 and lines[0]["ef_construction"] == 160 and lines[0]["build_s"] >= 0
    recalls = {line["ef_search"]: line["recall@10"] for line in lines[1:]}
    assert set(recalls) == {16, 128} and recalls[128] >= 0.99 and recalls[16] <= recalls[128]


def test_alternating_measurement_takes_each_sample_next_to_the_others() -> None:
    from assetlens.benchmarks.timing import measure_alternating

    calls: list[str] = []
    timed = measure_alternating(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, max_reps=7, budget_s=60.0
    )
    assert calls == ["a", "b"] * 7
    assert timed["a"]["n"] == timed["b"]["n"] == 7
    calls.clear()
    assert measure_alternating({"a": lambda: calls.append("a")}, budget_s=0.0, min_reps=3)["a"]["n"] == 3
    assert calls == ["a"] * 3
