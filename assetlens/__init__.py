"""AssetLens: offline multimodal search for image libraries.

The layers, lowest first (each imports only those below it):
``assetlens.engine`` (the runtime: models, store, search; no torch),
``assetlens.export`` (export, quantisation, demo-model training; torch),
``assetlens.benchmarks`` and ``assetlens.ui`` (callers of the engine API),
and ``assetlens.cli``, the command line that stands above them all.
"""

__version__ = "0.1.0"
