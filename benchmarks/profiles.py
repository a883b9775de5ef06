"""How big a run is: ``quick`` (under 10 minutes on 2 cores), ``full`` (to 1M vectors), ``toy`` (the smoke test)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    model: str  # a key of benchmarks.models.CONFIGS
    image_batches: tuple[int, ...]
    text_batches: tuple[int, ...]
    budget_s: float  # wall-clock budget of one latency measurement
    max_reps: int
    jpegs: int  # 2-4 MP photos in the indexing folder
    jpeg_megapixels: tuple[float, float]
    pngs: int  # small PNGs in the second indexing folder
    png_side: int
    torch_path_images: int  # images sent through the one-at-a-time PyTorch path (it is slow)
    index_precisions: tuple[str, ...]
    search_sizes: tuple[int, ...]
    index_types: tuple[str, ...]  # Milvus Lite vector indexes measured at every size
    small_only_index_types: tuple[str, ...]  # ... and those only up to 10k (slow to build); the server likewise
    queries: int  # single queries timed per store
    query_batch: int  # queries per call for the batch QPS figure
    int8_static: bool  # also measure a static QDQ int8 image tower beside the exported (dynamic) int8
    server: bool
    raw_store_max: int  # Milvus Lite's and the server's own collections are measured up to this many vectors
    int8_library_max: int  # Library.search with the int8 text tower, on the same fp32 library, up to this many
    duplicate_sizes: tuple[int, ...]  # synthetic libraries grouped into near-duplicates
    duplicate_exact_max: int  # ... and compared with the exact all-pairs search up to this size
    families: tuple[str, ...] = ()  # keys of benchmarks.models.FAMILIES whose encoder costs are measured


QUICK = Profile(
    name="quick",
    model="vit-b-32",
    image_batches=(1, 8, 32),
    text_batches=(1, 8, 32),
    budget_s=3.0,
    max_reps=50,
    jpegs=192,  # six batches: two would measure mostly the pipeline's fill and drain, not its steady state
    jpeg_megapixels=(2.0, 4.0),
    pngs=128,
    png_side=384,
    torch_path_images=16,
    index_precisions=("fp32", "int8"),
    search_sizes=(10_000, 100_000),
    index_types=("FLAT", "IVF_FLAT"),
    small_only_index_types=("HNSW", "IVF_SQ8", "HNSW_SQ"),  # HNSW takes minutes to build at 100k on 2 cores
    queries=40,
    query_batch=32,
    int8_static=True,
    server=True,
    raw_store_max=100_000,
    int8_library_max=100_000,
    duplicate_sizes=(100_000,),
    duplicate_exact_max=100_000,
)

FULL = Profile(
    name="full",
    model="vit-b-32",
    image_batches=(1, 8, 32, 64),
    text_batches=(1, 8, 32, 64),
    budget_s=10.0,
    max_reps=200,
    jpegs=400,
    jpeg_megapixels=(2.0, 4.0),
    pngs=400,
    png_side=384,
    torch_path_images=48,
    index_precisions=("fp32", "int8"),
    search_sizes=(10_000, 100_000, 1_000_000),
    index_types=("FLAT", "IVF_FLAT", "IVF_SQ8"),
    small_only_index_types=("HNSW", "HNSW_SQ"),  # Milvus Lite builds HNSW at 30k rows in 80 s on 2 cores
    queries=200,
    query_batch=64,
    int8_static=True,
    server=True,
    # Milvus Lite takes minutes per index at 1M (HNSW: far longer on 2 cores); the engine's own path is what
    # the 1M figures are for.
    raw_store_max=100_000,
    int8_library_max=1_000_000,
    duplicate_sizes=(100_000, 1_000_000),
    duplicate_exact_max=100_000,
    families=("clip-b32-224", "siglip-b16-224", "siglip2-b32-256"),
)

TOY = Profile(
    name="toy",
    model="toy",
    image_batches=(1, 4),
    text_batches=(1, 4),
    budget_s=0.2,
    max_reps=5,
    jpegs=4,
    jpeg_megapixels=(0.3, 0.5),
    pngs=4,
    png_side=128,
    torch_path_images=2,
    index_precisions=("int8",),
    search_sizes=(300,),
    index_types=("FLAT", "HNSW"),
    small_only_index_types=(),
    queries=5,
    query_batch=4,
    int8_static=False,
    server=False,
    raw_store_max=300,
    int8_library_max=300,
    duplicate_sizes=(12_000,),  # above CELLS_MIN_ROWS: the cell search runs
    duplicate_exact_max=12_000,
    families=("toy-siglip",),
)

PROFILES = {p.name: p for p in (QUICK, FULL, TOY)}
