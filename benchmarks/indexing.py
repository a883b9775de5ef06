"""End-to-end indexing of generated folders against the encoder alone and the naive PyTorch path.

- ``Library.index``: scan, read + hash, decode, preprocess, encode, upsert,
  exactly as ``assetlens index`` runs it, into a fresh Milvus Lite file (the
  model load and the new collection's creation are timed apart).
- encoder only: ``encode_pixels`` on preprocessed batches of the same size and
  precision; index / encoder is the pipeline's efficiency.
- the one-image-at-a-time PyTorch path of Milvus's multimodal RAG tutorial:
  PIL open, ``CLIPProcessor``, ``model.get_image_features``, one
  ``MilvusClient.insert`` per image.
Peak RSS is sampled through each run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.benchmarks.context import Context, Task
from assetlens.benchmarks.timing import PeakRss, measure
from assetlens.engine.indexer import load_file
from assetlens.engine.library import Library
from assetlens.engine.store import milvus_client

BATCH = 32


def library_index(ctx: Context, precision: str, device: str, folder: Path, db: Path) -> dict[str, Any]:
    with (
        PeakRss() as rss,
        Library(db, model=ctx.export_dir(precision), precision=precision, device=device, threads=ctx.threads) as lib,
    ):
        t0 = time.perf_counter()
        lib.runtime()  # the model load is reported apart from the indexing rate
        load_s = time.perf_counter() - t0
        lib.prepare_writes()  # a new collection's setup, likewise
        t0 = time.perf_counter()
        report = lib.index(folder, batch_size=BATCH)
        seconds = time.perf_counter() - t0
    return {
        "images": report.encoded,
        "failed": len(report.failed),
        "model_load_s": load_s,
        "seconds": seconds,
        "indexer_seconds": report.seconds,
        "images_per_s": report.encoded / seconds,
        **rss.to_dict(),
    }


def read_decode_cost(ctx: Context, files: list[Path]) -> dict[str, float]:
    """CPU time per file of the indexer's own per-file work (read, hash, decode, preprocess), on one thread."""
    facts = ctx.encoder("fp32").facts.image
    cpu0, t0 = time.thread_time(), time.perf_counter()
    for path in files:
        load_file(path, facts)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - t0
    n = len(files)
    return {"files": n, "cpu_ms_per_image": 1e3 * cpu / n, "wall_ms_per_image": 1e3 * wall / n}


def torch_one_at_a_time(ctx: Context, files: list[Path], db: Path) -> dict[str, Any]:
    """The tutorial's loop: no batching, full-size decode, CLIPProcessor, one insert per image."""
    import torch
    from PIL import Image
    from transformers import CLIPProcessor

    from assetlens.benchmarks.models import build_checkpoint

    model = ctx.torch_model
    processor = CLIPProcessor.from_pretrained(build_checkpoint(ctx.model))
    client = milvus_client(str(db))  # the tutorial's client, without its 10 s keepalive pings
    dim = ctx.model.config["projection_dim"]
    client.create_collection("images", dimension=dim, auto_id=True, enable_dynamic_field=True)
    try:
        with PeakRss() as rss:
            t0 = time.perf_counter()
            for path in files:
                image = Image.open(path).convert("RGB")
                inputs = processor(images=image, return_tensors="pt")
                with torch.no_grad():
                    features = model.get_image_features(**inputs)
                features = features / features.norm(dim=-1, keepdim=True)
                client.insert("images", {"vector": features[0].tolist(), "filepath": str(path)})
            seconds = time.perf_counter() - t0
    finally:
        client.close()
    return {"images": len(files), "seconds": seconds, "images_per_s": len(files) / seconds, **rss.to_dict()}


def tasks(ctx: Context) -> list[Task]:
    res = ctx.section("indexing")
    p = ctx.profile

    def encoder_only(precision: str, device: str) -> Callable[[], None]:
        def run() -> None:
            enc = ctx.encoder(precision, device)
            pixels = np.resize(ctx.pixels, (BATCH, *ctx.pixels.shape[1:]))
            res.setdefault("encoder_only", {})[_key(precision, device)] = measure(
                lambda: enc.encode_pixels(pixels), items=BATCH, budget_s=p.budget_s, max_reps=p.max_reps
            )

        return run

    def index(precision: str, device: str, kind: str) -> Callable[[], None]:
        def run() -> None:
            key = _key(precision, device)
            row = library_index(ctx, precision, device, ctx.folders[kind], ctx.work / f"index-{key}-{kind}.db")
            enc = res.get("encoder_only", {}).get(key)
            row["vs_encoder_only"] = row["images_per_s"] / enc["per_s"] if enc else None
            res.setdefault("library", {}).setdefault(key, {})[kind] = row

        return run

    def load_cost(kind: str) -> Callable[[], None]:
        def run() -> None:
            files = sorted(ctx.folders[kind].iterdir())
            res.setdefault("read_decode_preprocess", {})[kind] = read_decode_cost(ctx, files)

        return run

    def naive(kind: str) -> Callable[[], None]:
        def run() -> None:
            files = sorted(ctx.folders[kind].iterdir())[: p.torch_path_images]
            res.setdefault("torch_one_at_a_time", {})[kind] = torch_one_at_a_time(
                ctx, files, ctx.work / f"naive-{kind}.db"
            )

        return run

    def derive() -> None:
        naive_rows = res.get("torch_one_at_a_time", {})
        for precision, rows in res.get("library", {}).items():
            enc = res.get("encoder_only", {}).get(precision)
            for kind, row in rows.items():
                base = naive_rows.get(kind)
                row["vs_torch_one_at_a_time"] = row["images_per_s"] / base["images_per_s"] if base else None
                load = res.get("read_decode_preprocess", {}).get(kind)
                if enc and load and not precision.endswith("cuda"):
                    # Both stages share the same cores: per image, the encoder's CPU time (its wall time on
                    # all cores) plus the file's read + decode + preprocess CPU time, spread over the cores.
                    cpu_s = ctx.threads / enc["per_s"] + load["cpu_ms_per_image"] / 1e3
                    row["cpu_bound_images_per_s"] = ctx.threads / cpu_s
                    row["vs_cpu_bound"] = row["images_per_s"] / row["cpu_bound_images_per_s"]
        res["folders"] = {kind: _folder_facts(path) for kind, path in ctx.folders.items()}
        res["batch_size"] = BATCH

    out: list[Task] = []
    runs = [(precision, "cpu") for precision in p.index_precisions] + ([("fp16", "cuda")] if ctx.cuda else [])
    for precision, device in runs:
        key = _key(precision, device)
        out.append((f"indexing: encoder only {key}", encoder_only(precision, device)))
        out += [(f"indexing: Library.index {key} {kind}", index(precision, device, kind)) for kind in ("jpeg", "png")]
    out += [(f"indexing: read + decode + preprocess {kind}", load_cost(kind)) for kind in ("jpeg", "png")]
    out += [(f"indexing: PyTorch one at a time {kind}", naive(kind)) for kind in ("jpeg", "png")]
    out.append(("indexing: ratios", derive))
    return out


def _key(precision: str, device: str) -> str:
    return precision if device == "cpu" else f"{precision}-{device}"


def _folder_facts(folder: Path) -> dict[str, Any]:
    from PIL import Image

    files = sorted(folder.iterdir())
    pixels = []
    for f in files:
        with Image.open(f) as img:
            pixels.append(img.width * img.height)
    return {
        "files": len(files),
        "mean_megapixels": float(np.mean(pixels)) / 1e6 if pixels else 0.0,
        "mean_file_kib": float(np.mean([f.stat().st_size for f in files])) / 1024 if files else 0.0,
    }
