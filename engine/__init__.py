"""AssetLens runtime: torch-free CLIP encoders (onnxruntime), Milvus store, indexing and search."""

from assetlens.engine.errors import AssetLensError
from assetlens.engine.library import Library, LibraryStats
from assetlens.engine.search import SearchResult

__all__ = ["AssetLensError", "Library", "LibraryStats", "SearchResult"]
__version__ = "0.1.0"
