"""AssetLens: offline multimodal search for image libraries.

The layers, lowest first (each imports only those below it):
``assetlens.engine`` (the runtime: models, store, search; no torch),
``assetlens.export`` (export, quantisation, demo-model training; torch),
``assetlens.benchmarks`` and ``assetlens.ui`` (callers of the engine API),
and ``assetlens.cli``, the command line that stands above them all.
"""

import os

__version__ = "0.1.0"

#: Milvus Lite's write buffer, in bytes (its own default is 128 MiB). When it seals the buffer it turns every
#: buffered row into Python objects at once, about 16 kB a row at 512 dimensions: a 128 MiB buffer (58,000
#: rows) peaked 1.3 GB above the writer's steady memory. Milvus Lite reads the setting when it is first
#: imported, which any AssetLens module may do, so it is set here, where every one of them starts; a value
#: already in the environment is kept.
MILVUS_LITE_WRITE_BUFFER = 32 * 2**20
os.environ.setdefault("MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES", str(MILVUS_LITE_WRITE_BUFFER))
