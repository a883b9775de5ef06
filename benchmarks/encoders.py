"""Encoder throughput and latency: PyTorch eager against the exported ONNX models.

Image and text towers at each batch size, model only (inputs already
preprocessed or tokenised), on the same weights and thread count. Backends
are interleaved per batch size so slow drift in a shared machine's load
affects them alike. Each ONNX backend also reports its minimum cosine
against PyTorch (and against ONNX fp32), on real photos and typical
queries. A second part times a text query end to end (tokenise + encode) with
the sequence as long as the query against padding it to 77 tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from assetlens.benchmarks.context import QUERIES, Context, Task
from assetlens.benchmarks.models import build_static_int8, text_gflops
from assetlens.benchmarks.timing import measure
from assetlens.engine.encoders import Encoder, normalize
from assetlens.export.quantize import int16_pair_sum


class Backend(Protocol):
    def image(self, pixels: np.ndarray) -> np.ndarray: ...

    def text(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


class OnnxBackend:
    def __init__(self, encoder: Encoder) -> None:
        self.enc = encoder

    def image(self, pixels: np.ndarray) -> np.ndarray:
        return self.enc.encode_pixels(pixels)

    def text(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return run_text(self.enc, ids, mask)


class TorchBackend:
    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.model = model.to(device)
        self.device = device

    def image(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=torch.from_numpy(pixels).to(self.device))
        return normalize(out.float().cpu().numpy())

    def text(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model.get_text_features(
                input_ids=torch.from_numpy(ids).to(self.device), attention_mask=torch.from_numpy(mask).to(self.device)
            )
        return normalize(out.float().cpu().numpy())


def run_text(enc: Encoder, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The text tower on given token ids (``Encoder.encode_texts`` without its tokeniser)."""
    names = enc.facts.text.input_names
    feeds = {k: v for k, v in {"input_ids": ids, "attention_mask": mask}.items() if k in names}
    (out,) = enc.text_session.run([enc.facts.text.output_name], feeds)
    return normalize(out)


def pad_to_context(enc: Encoder, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad token ids to the model's full context (77 for CLIP), as a fixed-shape export would need."""
    length = enc.facts.text.context_length
    padded = np.full((ids.shape[0], length), enc.facts.text.pad_token_id, dtype=ids.dtype)
    padded_mask = np.zeros((ids.shape[0], length), dtype=mask.dtype)
    padded[:, : ids.shape[1]] = ids
    padded_mask[:, : mask.shape[1]] = mask
    return padded, padded_mask


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(normalize(a) * normalize(b), axis=1)))


def backends(ctx: Context) -> dict[str, Callable[[], Backend]]:
    """Name -> factory of every backend this run measures (built lazily, inside the tasks)."""
    out: dict[str, Callable[[], Backend]] = {
        "pytorch": lambda: TorchBackend(ctx.torch_model),
        "onnx-fp32": lambda: OnnxBackend(ctx.encoder("fp32")),
        "onnx-int8": lambda: OnnxBackend(ctx.encoder("int8")),
    }
    if ctx.profile.int8_static:
        out["onnx-int8-static"] = lambda: OnnxBackend(ctx.encoder("int8-static"))
    if ctx.cuda:
        out["onnx-fp32-cuda"] = lambda: OnnxBackend(ctx.encoder("fp32", "cuda"))
        out["onnx-fp16-cuda"] = lambda: OnnxBackend(ctx.encoder("fp16", "cuda"))
        import torch

        if torch.cuda.is_available():
            out["pytorch-cuda"] = lambda: TorchBackend(ctx.torch_model, "cuda")
        else:
            ctx.note("PyTorch has no CUDA here (CPU-only build): PyTorch eager is measured on the CPU only.")
    return out


def _limit_kind(name: str) -> str | None:
    if "cuda" in name:
        return None
    return "int8" if "int8" in name else "fp32"


def tasks(ctx: Context) -> list[Task]:
    res = ctx.section("encoders")
    p = ctx.profile
    factories = backends(ctx)
    built: dict[str, Backend] = {}

    def backend(name: str) -> Backend:
        if name not in built:
            built[name] = factories[name]()
        return built[name]

    def static_int8() -> None:
        try:
            build_static_int8(ctx.model)
        except Exception as exc:  # a quantiser failure costs this one variant, not the run
            ctx.note(f"static QDQ int8 could not be built ({type(exc).__name__}: {exc}); it is left out.")
            factories.pop("onnx-int8-static", None)

    def image(name: str, batch: int) -> Callable[[], None]:
        def run() -> None:
            if name not in factories:
                return
            b = backend(name)
            pixels = ctx.pixels[:batch]
            res.setdefault("image", {}).setdefault(name, {})[str(batch)] = measure(
                lambda: b.image(pixels), items=batch, budget_s=p.budget_s, max_reps=p.max_reps
            )

        return run

    def text(name: str) -> Callable[[], None]:
        def run() -> None:
            if name not in factories:
                return
            b = backend(name)
            out = res.setdefault("text", {}).setdefault(name, {})
            for batch in p.text_batches:
                ids, mask = ctx.encoder("fp32").tokenize(ctx.queries(batch))
                out[str(batch)] = measure(
                    functools.partial(b.text, ids, mask),
                    items=batch,
                    budget_s=p.budget_s / 2,
                    max_reps=p.max_reps,
                )
                out[str(batch)]["tokens"] = int(ids.shape[1])

        return run

    def parity() -> None:
        pixels = ctx.pixels
        ids, mask = ctx.encoder("fp32").tokenize(list(ctx.queries(len(pixels))))
        ref_image, ref_text = {}, {}
        for name in ("pytorch", "onnx-fp32"):
            ref_image[name], ref_text[name] = backend(name).image(pixels), backend(name).text(ids, mask)
        out = res.setdefault("parity", {})
        for name in factories:
            if name.startswith("pytorch"):
                continue
            b = backend(name)
            img, txt = b.image(pixels), b.text(ids, mask)
            out[name] = {
                "image_min_cosine_vs_pytorch": min_cosine(img, ref_image["pytorch"]),
                "text_min_cosine_vs_pytorch": min_cosine(txt, ref_text["pytorch"]),
                "image_min_cosine_vs_onnx_fp32": min_cosine(img, ref_image["onnx-fp32"]),
                "text_min_cosine_vs_onnx_fp32": min_cosine(txt, ref_text["onnx-fp32"]),
                "samples": len(pixels),
            }
            if isinstance(b, OnnxBackend):
                # What x86 CPUs without VNNI add in int16 (at most 32767: the same figures on every CPU).
                facts = b.enc.facts
                out[name]["int16_pair_sum"] = max(
                    int16_pair_sum(facts.path(facts.image.file)), int16_pair_sum(facts.path(facts.text.file))
                )

    def derive() -> None:
        limits = ctx.results.get("environment", {}).get("limits", {})
        per_image = ctx.model.image_gflops
        ceilings = {
            "fp32": limits.get("fp32_gflops", 0) / per_image,
            "int8": (limits.get("int8_gops") or 0) / per_image,
        }
        res["image_gflops"] = per_image
        res["limit_images_per_s"] = ceilings
        ratios: dict[str, dict[str, dict[str, float | None]]] = {}
        images = res.get("image", {})
        for name, by_batch in images.items():
            for batch, s in by_batch.items():
                torch_s = images.get("pytorch", {}).get(batch)
                kind = _limit_kind(name)
                ratios.setdefault(name, {})[batch] = {
                    "vs_pytorch": s["per_s"] / torch_s["per_s"] if torch_s else None,
                    "vs_limit": s["per_s"] / ceilings[kind] if kind and ceilings[kind] else None,
                    "gflops": s["per_s"] * per_image,
                }
        res["ratios"] = ratios
        built.clear()

    out: list[Task] = []
    if "onnx-int8-static" in factories:
        out.append(("encoders: static int8 calibration", static_int8))
    for batch in p.image_batches:
        out += [(f"encoders: image {name} batch {batch}", image(name, batch)) for name in factories]
    out += [(f"encoders: text {name}", text(name)) for name in factories]
    out += [("encoders: parity", parity), ("encoders: ratios", derive)]
    out += query_tasks(ctx)
    return out


def query_tasks(ctx: Context) -> list[Task]:
    """Single text queries end to end: dynamic sequence length against padding to 77 tokens."""
    res = ctx.section("text_queries")
    p = ctx.profile

    def run(precision: str, device: str) -> Callable[[], None]:
        def go() -> None:
            enc = ctx.encoder(precision, device)
            queries = list(QUERIES)
            rows: dict[str, Any] = {}
            state = {"i": 0}

            def next_query() -> str:
                state["i"] += 1
                return queries[state["i"] % len(queries)]

            def padded() -> np.ndarray:
                ids, mask = enc.tokenize([next_query()])
                return run_text(enc, *pad_to_context(enc, ids, mask))

            rows["tokenize"] = measure(
                lambda: enc.tokenize([next_query()]), budget_s=p.budget_s / 4, max_reps=p.max_reps * 4
            )
            rows["dynamic"] = measure(
                lambda: enc.encode_texts([next_query()]), budget_s=p.budget_s / 2, max_reps=p.max_reps * 2
            )
            rows["padded_77"] = measure(padded, budget_s=p.budget_s / 2, max_reps=p.max_reps * 2)
            lengths = [enc.tokenize([q])[0].shape[1] for q in queries]
            ids, mask = enc.tokenize(queries)
            dyn = enc.encode_texts(queries)
            pad = run_text(enc, *pad_to_context(enc, ids, mask))
            rows["mean_tokens"] = float(np.mean(lengths))
            rows["context_length"] = enc.facts.text.context_length
            rows["gflops_dynamic"] = text_gflops(ctx.model.config, round(float(np.mean(lengths))))
            rows["gflops_padded_77"] = text_gflops(ctx.model.config, enc.facts.text.context_length)
            rows["speedup"] = rows["padded_77"]["p50_ms"] / rows["dynamic"]["p50_ms"]
            rows["min_cosine_dynamic_vs_padded"] = min_cosine(dyn, pad)
            res[f"onnx-{precision}" + ("-cuda" if device == "cuda" else "")] = rows

        return go

    out: list[Task] = [(f"text queries: onnx {prec}", run(prec, "cpu")) for prec in ("fp32", "int8")]
    if ctx.cuda:
        out += [(f"text queries: onnx {prec} cuda", run(prec, "cuda")) for prec in ("fp32", "fp16")]
    return out
