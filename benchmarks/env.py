"""The machine a run measured: hardware, software versions, load, and its compute ceiling.

``machine_limits`` measures what the CPU can do at all (a large sgemm in
numpy for fp32, a large ``MatMulInteger`` in onnxruntime for int8) so the
encoder figures can be read as a fraction of the hardware, not just as a
ratio to another framework.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from assetlens.benchmarks.timing import measure

PACKAGES = (
    "onnxruntime-gpu",
    "onnxruntime",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "numpy",
    "pillow",
    "pymilvus",
    "milvus-lite",
    "milvus",
    "faiss-cpu",
    "tokenizers",
    "matplotlib",
)
ENV_VARS = ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ASSETLENS_CACHE")
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16", "f16c")


def _cpuinfo() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "flags": [f for f in CPU_FLAGS if f in flags]}


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_snapshot() -> tuple[float, float, float, float]:
    """(busy jiffies of all CPUs, total jiffies, this process's CPU seconds, wall time)."""
    busy = total = 0.0
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        total = sum(fields[:8])
        busy = total - fields[3] - fields[4]  # minus idle and iowait
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return busy, total, t.user + t.system + t.children_user + t.children_system, time.monotonic()


def others_cpu_share(start: tuple[float, float, float, float], end: tuple[float, float, float, float]) -> float:
    """Share of all CPUs' time that other processes used between two snapshots (noise indicator)."""
    busy, total = end[0] - start[0], end[1] - start[1]
    if total <= 0:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    own = (end[2] - start[2]) * ticks
    return max(0.0, min(1.0, (busy - own) / total))


def environment(threads: int, device: str) -> dict[str, Any]:
    """Everything about the machine and software that a figure depends on."""
    import onnxruntime as ort

    from assetlens.engine.encoders import cuda_available

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 1
    return {
        "cpu": _cpuinfo(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "threads": threads,
        "memory_gib": round(_memory_gib(), 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": _versions(),
        "onnxruntime_providers": ort.get_available_providers(),
        "cuda_available": cuda_available(),
        "device": device,
        "env": {k: os.environ.get(k) for k in ENV_VARS},
    }


def sgemm_gflops(n: int, budget_s: float) -> float:
    """fp32 GFLOP/s of numpy's BLAS on an n x n x n matrix product."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    s = measure(lambda: np.matmul(a, b, out=out), budget_s=budget_s, min_reps=3)
    return 2 * n**3 / (s["p50_ms"] / 1e3) / 1e9


def int8_gops(n: int, threads: int, budget_s: float) -> float | None:
    """u8 x s8 GOP/s of onnxruntime's ``MatMulInteger`` (the kernel dynamic int8 models run), if onnx is there."""
    try:
        from onnx import TensorProto, helper
    except ImportError:
        return None
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    weight = helper.make_tensor(
        "B", TensorProto.INT8, [n, n], rng.integers(-127, 128, (n, n), dtype=np.int8).tobytes(), raw=True
    )
    node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    graph = helper.make_graph(
        [node],
        "int8",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    s = measure(lambda: session.run(None, {"A": a}), budget_s=budget_s, min_reps=3)
    return 2 * n**3 / (s["p50_ms"] / 1e3) / 1e9


def machine_limits(threads: int, n: int = 2048, budget_s: float = 2.0) -> dict[str, Any]:
    """Measured compute ceilings: numpy sgemm (fp32) and onnxruntime MatMulInteger (int8)."""
    return {
        "gemm_size": n,
        "fp32_gflops": sgemm_gflops(n, budget_s),
        "int8_gops": int8_gops(n, threads, budget_s),
    }
