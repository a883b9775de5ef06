"""Runs the benchmark sections as one list of tasks under a progress bar, then writes JSON, report and plots."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from milvus_lite.server_manager import server_manager_instance
from tqdm import tqdm

from assetlens.benchmarks import duplicates, encoders, families, indexing, quality, report, search
from assetlens.benchmarks.context import Context, Task
from assetlens.benchmarks.env import cpu_snapshot, environment, load_average, machine_limits, others_cpu_share
from assetlens.benchmarks.models import bench_model, build_checkpoint
from assetlens.benchmarks.profiles import PROFILES, Profile
from assetlens.engine.encoders import pick_providers
from assetlens.engine.models import cache_root

SECTIONS: dict[str, Callable[[Context], list[Task]]] = {
    "encoders": encoders.tasks,
    "families": families.tasks,
    "indexing": indexing.tasks,
    "search": search.tasks,
    "duplicates": duplicates.tasks,
    "quality": quality.tasks,
}
SCHEMA = "assetlens-bench/1"


def _setup_tasks(ctx: Context) -> list[Task]:
    env = ctx.section("environment")

    def limits() -> None:
        env["limits"] = machine_limits(
            ctx.threads, n=512 if ctx.profile.name == "toy" else 2048, budget_s=min(2.0, 4 * ctx.profile.budget_s)
        )

    def export(precision: str) -> Callable[[], object]:
        return lambda: ctx.export_dir(precision)

    out: list[Task] = [
        ("setup: machine limit (sgemm, int8 GEMM)", limits),
        ("setup: random-weight CLIP checkpoint", lambda: build_checkpoint(ctx.model)),
    ]
    out += [(f"setup: export {p}", export(p)) for p in ctx.precisions]
    out.append(("setup: generated image folders", lambda: ctx.folders))
    return out


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run(
    profile: str | Profile = "quick",
    out: Path | str = "assetlens-bench",
    device: str = "cpu",
    threads: int | None = None,
    sections: Sequence[str] | None = None,
    cache: Path | None = None,
    progress: bool = True,
    sizes: Sequence[int] | None = None,
) -> Path:
    """Run the suite and return the JSON's path; the report and plots are written beside it.

    ``sizes`` replaces the profile's library sizes (search and duplicates), for a smoke run of the big
    profile's code. The JSON is rewritten after every step, so a run stopped early keeps what it measured
    (``python -m assetlens.benchmarks.report`` then writes its report)."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    if sizes:
        prof = dataclasses.replace(prof, search_sizes=tuple(sizes), duplicate_sizes=tuple(sizes))
    if device == "auto":
        device = "cuda" if pick_providers("auto")[0].startswith("CUDA") else "cpu"
    pick_providers(device)  # fails fast, in one sentence, on --device cuda without CUDA
    threads = threads or usable_cpus()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = cache or cache_root()
    work = Path(tempfile.mkdtemp(prefix="assetlens-bench-"))
    ctx = Context(prof, bench_model(prof.model, cache / "bench"), device, threads, cache, work)
    chosen = list(sections or SECTIONS)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    ctx.results.update(
        schema=SCHEMA,
        profile=prof.name,
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sections=chosen,
        model={
            "name": prof.model,
            "config": ctx.model.config,
            "image_gflops": ctx.model.image_gflops,
            "weights": "random (seeded); same compute as trained weights",
        },
    )
    ctx.results["environment"] = environment(threads, device)
    ctx.results["load"] = {"start": load_average()}
    before = cpu_snapshot()
    todo = _setup_tasks(ctx) + [t for name in chosen for t in SECTIONS[name](ctx)]
    logging.getLogger("milvus_lite").setLevel(logging.WARNING)
    failures: list[str] = []
    path = out / f"bench-{prof.name}.json"
    try:
        bar = tqdm(todo, desc="bench", unit="step", dynamic_ncols=True, file=sys.stderr, disable=not progress)
        for desc, task in bar:
            bar.set_postfix_str(desc, refresh=True)
            section = desc.split(":", 1)[0]
            try:
                with ctx.clock.time(section):
                    task()
            except Exception as exc:  # one broken measurement must not lose the others
                failures.append(f"{desc}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                ctx.note(f"FAILED {failures[-1]}")
                logging.getLogger("assetlens.bench").debug("%s", traceback.format_exc())
            ctx.results["failures"] = failures
            _write_json(path, ctx.results)
        bar.close()
    finally:
        ctx.release_encoders()
        server_manager_instance.release_all()  # else they flush into the deleted folder at exit
        shutil.rmtree(work, ignore_errors=True)
    ctx.results["load"].update(end=load_average(), others_cpu_share=others_cpu_share(before, cpu_snapshot()))
    ctx.results["section_seconds"] = ctx.clock.seconds
    ctx.results["notes"] = ctx.notes
    ctx.results["failures"] = failures
    ctx.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(path, ctx.results)
    report.write(ctx.results, out, path.stem)  # adds the goals
    _write_json(path, ctx.results)
    return path


def _write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
