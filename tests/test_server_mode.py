"""The same index, search and incremental behaviour on Milvus Lite and on a real Milvus server.

Every test here that takes ``backend`` runs twice: on a Milvus Lite file (``--db``) and on the
session's Milvus server (``--uri``, started by ``assetlens.benchmarks.milvus_server``), through the same code.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_process import Backend, assert_no_traceback, assert_one_sentence, run_cli
from helpers import asset_row, library_snapshot
from PIL import Image, ImageOps

from assetlens.benchmarks.milvus_server import MilvusServer, infix_like
from assetlens.catalogue import Item
from assetlens.engine.indexer import file_digest
from assetlens.engine.library import Library
from assetlens.engine.store import MilvusStore, contains_filter, prefix_filter

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "demo"
ODD_FOLDER = "sub_dir 100% é"  # "_" and "%" are wildcards of Milvus' like; é is not ASCII


def index(backend: Backend, folder: Path, *options: str) -> str:
    result = run_cli("index", folder, *backend.args, "--model", MODEL, "--device", "cpu", *options)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    return result.stdout


def search(backend: Backend, *argv: str) -> list[dict[str, object]]:
    result = run_cli("search", *argv, *backend.args, "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def library_rows(uri: str) -> dict[str, tuple[object, ...]]:
    """Path -> (size, mtime, hash, width, height) of every row; no duplicates."""
    return {path: (r.size, r.mtime, r.hash, r.width, r.height) for path, (r, _) in library_snapshot(uri).items()}


def test_index_search_and_incremental_runs(
    backend: Backend, catalogue: list[tuple[Path, Item]], catalogue_dir: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(catalogue_dir, photos)
    items = {photos / p.relative_to(catalogue_dir): item for p, item in catalogue}
    out = index(backend, photos)
    assert "60 indexed, 0 unchanged" in out and ": 60 images" in out

    stats = json.loads(run_cli("stats", *backend.args, "--json").stdout)
    assert stats["count"] == 60 and stats["model"] == MODEL
    assert stats["index_type"] == {"lite": "FLAT", "server": "HNSW"}[backend.name]

    target = catalogue[0][1]
    hits = search(backend, target.caption(), "-k", "3")
    assert [h["rank"] for h in hits] == [1, 2, 3]
    top = items[Path(str(hits[0]["path"]))]
    assert (top.object, top.color) == (target.object, target.color)

    assert "0 indexed, 60 unchanged" in index(backend, photos)

    files = sorted(items)
    touched, moved, gone, changed, copied = files[1:6]
    os.utime(touched, (1_000_000_000, 1_000_000_000))
    (photos / ODD_FOLDER).mkdir()
    shutil.copy(copied, photos / ODD_FOLDER / copied.name)
    moved.rename(moved.with_name("renamed-" + moved.name))
    gone.unlink()
    with Image.open(changed) as img:
        ImageOps.mirror(img).save(changed, img.format)
    assert (
        "1 indexed, 56 unchanged, 2 moved or copied (vector reused), 1 touched (metadata updated), 0 failed, "
        "1 missing from disk (--prune removes them)" in index(backend, photos)
    )
    assert (
        "0 indexed, 60 unchanged, 0 moved or copied (vector reused), 0 touched (metadata updated), 0 failed, "
        "1 removed" in index(backend, photos, "--prune")
    )

    on_disk = {str(p): p for p in photos.rglob("*") if p.is_file()}
    rows = library_rows(backend.uri)
    assert set(rows) == set(on_disk)
    for path, (size, mtime, digest, _, _) in rows.items():
        st = on_disk[path].stat()
        assert (size, mtime, digest) == (st.st_size, st.st_mtime, file_digest(on_disk[path].read_bytes()))
    hits = search(backend, "a product", "--folder", str(photos / ODD_FOLDER), "-k", "5")
    assert [h["path"] for h in hits] == [str(photos / ODD_FOLDER / copied.name)]


def test_folder_filter_with_wildcard_characters(backend: Backend, catalogue_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(catalogue_dir, photos)
    odd = sorted((photos / "mug").iterdir())[:2]
    (photos / ODD_FOLDER).mkdir()
    (photos / "subXdir 100% é").mkdir()  # what "sub_dir" would match if "_" stayed a wildcard
    for i, path in enumerate(odd):
        path.rename(photos / (ODD_FOLDER if i == 0 else "subXdir 100% é") / path.name)
    index(backend, photos)
    hits = search(backend, "a mug", "--folder", str(photos / ODD_FOLDER), "-k", "10")
    assert [h["path"] for h in hits] == [str(photos / ODD_FOLDER / odd[0].name)]


def test_filename_filter(backend: Backend, catalogue_dir: Path) -> None:
    index(backend, catalogue_dir)
    if not infix_like(backend.uri):
        result = run_cli("search", "a red mug", *backend.args, "--filename", "mug", "--device", "cpu")
        assert_one_sentence(result, 1, "cannot match text inside file names (--filename); that needs Milvus 2.4")
        return
    hits = search(backend, "a red mug", "--filename", "mug", "-k", "60")
    expected = sorted(str(p) for p in catalogue_dir.rglob("*") if p.is_file() and "mug" in p.name)
    assert sorted(str(h["path"]) for h in hits) == expected


#: Folder names that break naive filter expressions: like-wildcards, escapes, quotes, non-ASCII.
ODD_NAMES = ("my_dir", "myXdir", "100%", "1000", "a\\b", 'q"uote', "q'uote", "café", "日本", "emoji😀", "sp ace")


def test_store_filters_match_odd_names_exactly(backend: Backend) -> None:
    rows = [
        asset_row(f"/lib/{name}/img {name} {i}.jpg", size=i, digest=f"{name}{i}")
        for name in ODD_NAMES
        for i in range(2)
    ]
    vectors = np.random.default_rng(0).normal(size=(len(rows), 4)).astype(np.float32)
    with MilvusStore(backend.uri) as store:
        store.ensure("filters", "filters", "fp32", 4)
        store.upsert(rows, vectors)
        for name in ODD_NAMES:
            expected = sorted(r.path for r in rows if r.folder == f"/lib/{name}")
            assert sorted(r.path for r in store.rows(prefix_filter("path", f"/lib/{name}/"))) == expected
            hits = store.search(vectors[:1], len(rows), prefix_filter("path", f"/lib/{name}/"))[0]
            assert sorted(h.row.path for h in hits) == expected
            # Milvus Lite reads a backslash in a like pattern literally, servers as an escape: not portable.
            if infix_like(backend.uri) and "\\" not in name:
                found = store.search(vectors[:1], len(rows), contains_filter("filename", f" {name} "))[0]
                assert sorted(h.row.path for h in found) == expected


def test_python_api(backend: Backend, catalogue: list[tuple[Path, Item]], catalogue_dir: Path) -> None:
    with Library(uri=backend.uri, model=MODEL, device="cpu") as lib:
        report = lib.index(catalogue_dir)
        assert report.encoded == 60 and not report.failed
        assert lib.stats().count == 60
        first = catalogue[0][0]
        like = lib.similar(first, k=5)
        assert len(like) == 5 and str(first) not in [r.path for r in like]
        assert lib.remove([first]) == 1
        assert lib.stats().count == 59
    assert str(first) not in library_rows(backend.uri)


@pytest.mark.server
def test_same_library_and_answers_on_lite_and_server(
    server_uri: str, catalogue: list[tuple[Path, Item]], catalogue_dir: Path, tmp_path: Path
) -> None:
    lite = str(tmp_path / "lib.db")
    answers = []
    for uri in (lite, server_uri):
        with Library(uri=uri, model=MODEL, device="cpu") as lib:
            lib.index(catalogue_dir)
            answers.append([[(r.path, r.score) for r in lib.search(item.caption(), k=10)] for _, item in catalogue[:8]])
    assert library_rows(lite) == library_rows(server_uri)
    for on_lite, on_server in zip(*answers, strict=True):
        assert [p for p, _ in on_lite] == [p for p, _ in on_server]
        np.testing.assert_allclose([s for _, s in on_lite], [s for _, s in on_server], atol=1e-4)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """A second server, with authorization enabled: every client needs a token."""
    server = MilvusServer.start(tmp_path_factory.mktemp("milvus-auth"), auth=True)
    yield server
    server.stop()


@pytest.mark.server
def test_token(auth_server: MilvusServer, catalogue_dir: Path) -> None:
    uri = auth_server.uri
    result = run_cli("index", catalogue_dir, "--uri", uri, "--token", auth_server.token, "--model", MODEL)
    assert result.returncode == 0, result.stderr
    assert "60 indexed" in result.stdout
    assert_one_sentence(run_cli("stats", "--uri", uri), 1, f"The Milvus server at {uri} refused the login")
    assert_one_sentence(
        run_cli("stats", "--uri", uri, "--token", "root:wrong"), 1, f"The Milvus server at {uri} refused the login"
    )
