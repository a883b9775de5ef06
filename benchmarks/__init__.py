"""The AssetLens benchmark suite: ``assetlens bench`` or ``python -m assetlens.benchmarks``.

Measures encoders (PyTorch eager vs ONNX fp32/int8, CUDA where present),
each model family's shape (``--full``), text-query encoding, end-to-end
indexing, vector search (Milvus Lite, a Milvus server, exact numpy/faiss,
``Library.search``) with the engine's memory, cold start, write time and
query overhead against library size, near-duplicate grouping, and the demo
model's retrieval quality per precision; writes a JSON of every figure (after
every step), a Markdown report with the goals table, and PNG plots. See
``benchmarks.suite.run``.
"""

from __future__ import annotations

import argparse

from assetlens.benchmarks.profiles import PROFILES
from assetlens.engine.encoders import DEVICES

__all__ = ["PROFILES", "add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``assetlens bench`` and ``python -m assetlens.benchmarks``."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="profile",
        action="store_const",
        const="quick",
        help="ViT-B/32 encoders, 64+64 images, 10k/100k vectors: under 10 minutes on 2 cores (default)",
    )
    size.add_argument(
        "--full",
        dest="profile",
        action="store_const",
        const="full",
        help="bigger folders, longer timings, up to 1M vectors, and the SigLIP and SigLIP 2 shapes' costs (families)",
    )
    size.add_argument("--profile", dest="profile", choices=sorted(PROFILES), help="a named profile (toy: smoke test)")
    parser.set_defaults(profile="quick")
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="cuda adds CUDA (fp32, fp16) variants; auto = cuda when usable (default)",
    )
    parser.add_argument("--threads", type=int, help="CPU threads for onnxruntime and PyTorch (default: usable CPUs)")
    parser.add_argument("--out", default="assetlens-bench", help="folder for the JSON, report and plots")
    parser.add_argument(
        "--only",
        action="append",
        choices=("encoders", "families", "indexing", "search", "duplicates", "quality"),
        help="run only this section (repeatable; in the order given)",
    )
    parser.add_argument(  # a smoke run of a big profile's code at small sizes
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run the suite for parsed ``args`` and print where the results went."""
    from assetlens.benchmarks.suite import run

    path = run(
        args.profile, args.out, args.device, args.threads, args.only, progress=not args.no_progress, sizes=args.sizes
    )
    print(f"results: {path}")
    print(f"report:  {path.with_suffix('.md')}")
    return 0
