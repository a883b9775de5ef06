"""``python -m assetlens.benchmarks [--quick|--full] [--device cpu|cuda] [--out DIR]``."""

import argparse
import sys

from assetlens.benchmarks import add_arguments, main
from assetlens.engine.errors import AssetLensError

parser = argparse.ArgumentParser(prog="python -m assetlens.benchmarks", description="AssetLens benchmark suite")
add_arguments(parser)
try:
    sys.exit(main(parser.parse_args()))
except AssetLensError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
