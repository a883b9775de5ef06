"""AssetLens runtime: torch-free CLIP encoders (onnxruntime), Milvus store, indexing and search."""

from engine.errors import AssetLensError
from engine.library import Library, LibraryStats
from engine.search import SearchResult

__all__ = ["AssetLensError", "Library", "LibraryStats", "SearchResult"]
__version__ = "0.1.0"
