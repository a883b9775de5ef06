"""Shared fixtures: generated images and libraries on the shipped demo model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import Backend, run_cli
from gemini_stub import STUB_KEY, GeminiStub

from assetlens.benchmarks.milvus_server import MilvusServer, drop_all_collections
from assetlens.catalogue import Item, render, write_catalogue
from assetlens.engine.library import Library

#: What the Gemini SDK reads from the environment: its key, its endpoint, and whether to use Vertex AI.
GEMINI_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI")


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Item]]:
    """60 generated product shots (JPEG and PNG) in one sub-folder per object kind."""
    return write_catalogue(tmp_path_factory.mktemp("catalogue"), n=60, seed=1)


@pytest.fixture(scope="session")
def catalogue_dir(catalogue: list[tuple[Path, Item]]) -> Path:
    return catalogue[0][0].parent.parent


@pytest.fixture(scope="module")
def catalogue_library(tmp_path_factory: pytest.TempPathFactory, catalogue_dir: Path) -> Path:
    """A Milvus Lite library of the catalogue on the demo model, one per test module (tests may add and remove)."""
    db = tmp_path_factory.mktemp("catalogue-library") / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        lib.index(catalogue_dir)
    return db


@pytest.fixture(scope="module")
def mug_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library of three mugs (red, blue, green; ``photos/`` beside it) indexed by the ``assetlens`` command."""
    base = tmp_path_factory.mktemp("mugs")
    (base / "photos").mkdir()
    for i, color in enumerate(("red", "blue", "green")):
        render(Item("mug", color, "wooden table"), size=96, seed=i).save(base / "photos" / f"{color}.png")
    db = base / "lib.db"
    result = run_cli("index", base / "photos", "--db", db, "--model", "demo", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """A real Milvus server (PyPI package ``milvus``) for the session: free port, temporary data, stopped at the end."""
    server = MilvusServer.start(tmp_path_factory.mktemp("milvus-server"))
    yield server
    server.stop()


@pytest.fixture
def server_uri(milvus_server: MilvusServer) -> str:
    """The session's Milvus server, emptied of collections for this test."""
    drop_all_collections(milvus_server.uri)
    return milvus_server.uri


@pytest.fixture(params=["lite", pytest.param("server", marks=[pytest.mark.server, pytest.mark.slow])])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh library on each backend: a Milvus Lite file, then the session's (emptied) Milvus server."""
    if request.param == "server":
        uri = str(request.getfixturevalue("server_uri"))
        return Backend("server", uri, ("--uri", uri))
    db = str(tmp_path / "lib.db")
    return Backend("lite", db, ("--db", db))


@pytest.fixture
def gemini(monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiStub]:
    """A fresh Gemini stub; the environment points the SDK at it with the stub's key, as a user's would."""
    with GeminiStub(hang_s=3.0) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        monkeypatch.setenv("GEMINI_API_KEY", STUB_KEY)
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        yield server


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No Gemini key, endpoint or access token from the caller's environment; the app's cached library
    handle is released after the test."""
    import streamlit as st

    from assetlens.ui.access import TOKEN_VARIABLE

    for name in (*GEMINI_VARIABLES, TOKEN_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    st.cache_resource.clear()  # closes the app's library (on_release)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised CLIP small enough to export in seconds, saved like a Hub checkpoint."""
    pytest.importorskip("transformers")
    from tiny_models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised SiglipModel with a SigLIP 2 style processor and a Gemma-style Unigram tokenizer."""
    pytest.importorskip("transformers")
    from tiny_models import build_tiny_siglip

    return build_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="session")
def tiny_siglip_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised SiglipModel that ships only ``spiece.model`` and the slow SiglipTokenizer."""
    pytest.importorskip("sentencepiece")
    from tiny_models import build_tiny_siglip_v1

    return build_tiny_siglip_v1(tmp_path_factory.mktemp("tiny-siglip-v1"))
