"""Builders and readers the tests share: the command run in this process, library rows and vectors made up
for a store, a library read back whole, a write by a program that is not AssetLens, CLIP's image
preprocessing facts, and a Gemini generator that does not sleep."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from milvus_lite.server_manager import server_manager_instance
from pymilvus import MilvusClient

from assetlens.cli import main
from assetlens.engine.generate import Generator
from assetlens.engine.models import ImageFacts
from assetlens.engine.registry import OPENAI_MEAN, OPENAI_STD
from assetlens.engine.store import DEFAULT_COLLECTION, AssetRow, MilvusStore, path_id

DIM = 16

#: Every row of a library and its vector, by path.
Snapshot = dict[str, tuple[AssetRow, np.ndarray]]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``assetlens ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def asset_row(
    path: str, *, size: int = 1, mtime: float = 1.0, digest: str = "h", width: int = 1, height: int = 1
) -> AssetRow:
    """The row of the image at ``path``: id, folder and file name derived from the path as the indexer does."""
    folder, _, filename = path.rpartition("/")
    return AssetRow(path_id(path), path, folder, filename, size, mtime, digest, width, height)


def make_rows(n: int, folder: str = "/photos", *, groups: int = 3, suffix: str = ".jpg") -> list[AssetRow]:
    """``n`` rows ``FOLDER/subG/img_I.SUFFIX`` over ``groups`` sub-folders, each with its own size, time and hash."""
    return [
        asset_row(
            f"{folder}/sub{i % groups}/img_{i}{suffix}",
            size=1000 + i,
            mtime=1.5 * i,
            digest=f"{i:064x}",
            width=640,
            height=480,
        )
        for i in range(n)
    ]


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """``n`` random vectors of length one."""
    vecs = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def rows_and_vectors(n: int, folder: str = "/photos", seed: int = 0) -> tuple[list[AssetRow], np.ndarray]:
    """``make_rows(n, folder)`` and a ``DIM``-d unit vector for each."""
    return make_rows(n, folder), unit_vectors(n, DIM, seed)


def library_snapshot(uri: str | os.PathLike[str]) -> Snapshot:
    """Every row and vector of the library at ``uri`` by path, after checking that Milvus counts as many
    rows as it returns and that no path is there twice."""
    with MilvusStore(os.fspath(uri), create=False) as store:
        rows = list(store.rows())
        assert store.count() == len(rows) == len({r.path for r in rows})
        found = store.get([r.id for r in rows], with_vectors=True) if rows else []
    return {row.path: (row, vec) for row, vec in found}  # type: ignore[misc]


def write_as_another_program(
    db: Path, rows: Sequence[AssetRow], vectors: np.ndarray, collection: str = DEFAULT_COLLECTION
) -> None:
    """Upsert rows into a closed Milvus Lite library with plain pymilvus, as a program that is not AssetLens
    would: no write generation is changed. Its Milvus Lite server is stopped after, as at a process's end."""
    client = MilvusClient(str(db))
    client.load_collection(collection)
    client.upsert(collection, [{**asdict(r), "vector": v.tolist()} for r, v in zip(rows, vectors, strict=True)])
    client.flush(collection)
    client.close()
    server_manager_instance.release_server(str(db.resolve()))


def clip_image_facts(size: int = 224) -> ImageFacts:
    """CLIP's image preprocessing (OpenAI's mean and deviation) at ``size`` pixels."""
    return ImageFacts("image.onnx", "pixel_values", "image_embeds", size, size, OPENAI_MEAN, OPENAI_STD)


def quick(**kwargs: object) -> Generator:
    """A Gemini generator that skips its backoff sleeps."""
    return Generator(sleep=lambda s: None, **kwargs)  # type: ignore[arg-type]


@contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """A new folder at ``path`` that cannot be written while the block runs (writable again after it)."""
    path.mkdir()
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)
