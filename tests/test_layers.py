"""The layers import downwards only: the runtime core never reaches the code that stands above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each layer's folder, and what its modules may import of assetlens.*, besides themselves. The modules
# directly in assetlens/ (the CLI, the demo) stand on top and may import anything.
FOLDERS = {
    "engine": "engine",
    "catalogue": "assetlens/catalogue",
    "export": "export",
    "ui": "ui",
    "benchmarks": "benchmarks",
}
ALLOWED = {
    "engine": {"engine"},
    "catalogue": {"catalogue"},
    "export": {"engine", "catalogue", "export"},
    "ui": {"engine", "ui"},
    "benchmarks": {"engine", "export", "catalogue", "benchmarks"},
}
HEAVY = ("torch", "transformers", "optimum")
TORCH_FREE = ("engine", "catalogue")

pytestmark = pytest.mark.unit


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "assetlens" and node.level == 0:
            names += [f"assetlens.{a.name}" for a in node.names]  # from assetlens import catalogue
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _layer_imports(layer: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / FOLDERS[layer]).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] in ALLOWED:
                pytest.fail(f"{path.relative_to(ROOT)} imports {name}; write assetlens.{name}")
            if parts[0] == "assetlens" and len(parts) > 1:
                found.setdefault(str(path.relative_to(ROOT)), set()).add(parts[1])
            elif parts[0] == "assetlens":
                found.setdefault(str(path.relative_to(ROOT)), set()).add("assetlens")
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_lies_below(layer: str) -> None:
    wrong = {f: sorted(used - ALLOWED[layer]) for f, used in _layer_imports(layer).items() if used - ALLOWED[layer]}
    assert wrong == {}


@pytest.mark.parametrize("layer", TORCH_FREE)
def test_runtime_core_and_catalogue_never_import_torch_transformers_or_optimum(layer: str) -> None:
    heavy = {
        str(p.relative_to(ROOT)): name
        for p in (ROOT / FOLDERS[layer]).rglob("*.py")
        for name in _imports(p)
        if name.split(".")[0] in HEAVY
    }
    assert heavy == {}


def test_every_package_folder_is_a_scanned_layer() -> None:
    """A new sub-package of assetlens/ must be given a layer here, or the scan above would miss it."""
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "assetlens").glob("*/__init__.py")}
    assert packages <= set(FOLDERS.values())


def _milvus_clients_made(path: Path) -> list[str]:
    """The functions of ``path`` that construct a ``MilvusClient`` (``<module>`` outside any function)."""
    tree = ast.parse(path.read_text(), str(path))
    owner = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name != "MilvusClient":
            continue
        up: ast.AST = node
        while up in owner and not isinstance(up, ast.FunctionDef | ast.AsyncFunctionDef):
            up = owner[up]
        found.append(up.name if isinstance(up, ast.FunctionDef | ast.AsyncFunctionDef) else "<module>")
    return found


def test_every_milvus_client_is_made_with_the_stores_grpc_options() -> None:
    """Only ``engine.store.milvus_client`` constructs a pymilvus client: one made on pymilvus' defaults pings
    its server every 10 s, which Milvus Lite answers with raw ``GOAWAY too_many_pings`` lines on stderr
    (the benchmark's one-at-a-time indexing loop printed them into the full run's terminal)."""
    files = [p for folder in FOLDERS.values() for p in (ROOT / folder).rglob("*.py")]
    files += list((ROOT / "assetlens").glob("*.py"))
    made = {str(p.relative_to(ROOT)): fns for p in files if (fns := _milvus_clients_made(p))}
    assert made == {"engine/store.py": ["milvus_client"]}
