"""Handing hits on: files copied as RANK-NAME (never overwriting) with a manifest, or packed in a zip."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from app_driver import start
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from assetlens.catalogue import Item
from assetlens.cli import main
from assetlens.engine.errors import UsageError
from assetlens.engine.handoff import Pick, copy_picks, zip_picks
from assetlens.engine.library import Library

pytestmark = [pytest.mark.store]


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "src"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    files = [folder / "a" / "watch.jpg", folder / "b" / "watch.jpg", folder / "a" / "bag.png"]
    for n, path in enumerate(files):
        path.write_bytes(bytes([n]) * (100 + n))
    return files


def manifest(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.unit
def test_copies_are_named_by_rank_and_listed_in_the_manifest(sources: list[Path], tmp_path: Path) -> None:
    picks = [
        Pick(1, str(sources[0]), 0.91, ("watch", "gold")),
        Pick(2, str(sources[1]), 0.8),
        Pick(12, str(sources[2]), 0.5, ("handbag",)),
    ]
    out = tmp_path / "out" / "new"
    report = copy_picks(picks, out)
    assert sorted(p.name for p in out.iterdir()) == ["001-watch.jpg", "002-watch.jpg", "012-bag.png", "manifest.csv"]
    assert (out / "002-watch.jpg").read_bytes() == sources[1].read_bytes()
    assert (out / "012-bag.png").stat().st_mtime == sources[2].stat().st_mtime  # copy2-like: times kept
    assert manifest((out / "manifest.csv").read_text()) == [
        {"rank": "1", "score": "0.910000", "file": "001-watch.jpg", "source": str(sources[0]), "size": "100"}
        | {"tags": "watch; gold"},
        {"rank": "2", "score": "0.800000", "file": "002-watch.jpg", "source": str(sources[1]), "size": "101"}
        | {"tags": ""},
        {"rank": "12", "score": "0.500000", "file": "012-bag.png", "source": str(sources[2]), "size": "102"}
        | {"tags": "handbag"},
    ]
    assert (report.manifest, report.missing, len(report.copied)) == (out / "manifest.csv", (), 3)


@pytest.mark.unit
def test_a_second_copy_never_overwrites(sources: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "001-watch.jpg").write_bytes(b"mine")
    (out / "manifest.csv").write_text("mine\n")
    picks = [Pick(1, str(sources[0]), 0.9), Pick(1, str(sources[1]), 0.9)]  # one name twice as well
    report = copy_picks(picks, out)
    assert [h.name for h in report.copied] == ["001-watch-1.jpg", "001-watch-2.jpg"]
    assert (out / "001-watch.jpg").read_bytes() == b"mine" and (out / "manifest.csv").read_text() == "mine\n"
    assert report.manifest == out / "manifest-1.csv"
    assert [r["file"] for r in manifest(report.manifest.read_text())] == ["001-watch-1.jpg", "001-watch-2.jpg"]


@pytest.mark.unit
def test_a_missing_source_is_skipped_with_a_warning_and_counted(
    sources: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = tmp_path / "src" / "gone.jpg"
    caplog.set_level(logging.WARNING, "assetlens")
    report = copy_picks([Pick(1, str(gone), 0.9), Pick(2, str(sources[2]), 0.8)], tmp_path / "out")
    assert report.missing == (str(gone),)
    assert [h.name for h in report.copied] == ["002-bag.png"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{gone} is missing or unreadable (No such file or directory); skipped."
    ]
    assert "1 missing or unreadable file(s) skipped" in report.summary()
    assert [r["file"] for r in manifest(report.manifest.read_text())] == ["002-bag.png"]  # type: ignore[union-attr]


@pytest.mark.unit
def test_a_file_where_the_folder_should_be_is_refused(sources: list[Path]) -> None:
    with pytest.raises(UsageError, match="is a file, not a folder"):
        copy_picks([Pick(1, str(sources[0]))], sources[2])


@pytest.mark.unit
def test_the_zip_holds_the_same_names_and_manifest(sources: list[Path], tmp_path: Path) -> None:
    picks = [Pick(1, str(sources[0]), 0.9), Pick(2, str(tmp_path / "gone.png")), Pick(3, str(sources[0]))]
    report = zip_picks(picks)
    with zipfile.ZipFile(io.BytesIO(report.data)) as archive:
        assert archive.namelist() == ["001-watch.jpg", "003-watch.jpg", "manifest.csv"]
        assert archive.read("003-watch.jpg") == sources[0].read_bytes()
        rows = manifest(archive.read("manifest.csv").decode())
    assert rows == [
        {
            "rank": "1",
            "score": "0.900000",
            "file": "001-watch.jpg",
            "source": str(sources[0]),
            "size": "100",
            "tags": "",
        },
        {"rank": "3", "score": "", "file": "003-watch.jpg", "source": str(sources[0]), "size": "100", "tags": ""},
    ]
    assert report.missing == (str(tmp_path / "gone.png"),)


@pytest.mark.unit
def test_a_name_that_is_not_utf8_is_copied_byte_for_byte(tmp_path: Path) -> None:
    raw = tmp_path / os.fsdecode(b"caf\xe9.jpg")
    raw.write_bytes(b"x")
    report = copy_picks([Pick(4, str(raw), 0.5)], tmp_path / "out")
    assert os.fsencode(report.copied[0].name) == b"004-caf\xe9.jpg"
    assert b"004-caf\xe9.jpg" in (tmp_path / "out" / "manifest.csv").read_bytes()
    with zipfile.ZipFile(io.BytesIO(zip_picks([Pick(4, str(raw))]).data)) as archive:
        assert archive.namelist() == ["004-caf\ufffd.jpg", "manifest.csv"]


def test_search_copy_to_copies_the_hits_it_prints(
    capsys: pytest.CaptureFixture[str], catalogue: list[tuple[Path, Item]], tmp_path: Path
) -> None:
    db = str(tmp_path / "lib.db")
    with Library(db, model="demo", device="cpu") as lib:
        lib.add([p for p, _ in catalogue[:8]])
    out = tmp_path / "picked"
    code = main(["search", "a gold watch", "--db", db, "-k", "3", "--json", "--copy-to", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0
    hits = json.loads(stdout)
    rows = manifest((out / "manifest.csv").read_text())
    assert [(r["rank"], r["file"], r["source"]) for r in rows] == [
        (str(h["rank"]), f"{h['rank']:03d}-{h['filename']}", h["path"]) for h in hits
    ]
    assert [float(r["score"]) for r in rows] == [pytest.approx(h["score"], abs=1e-6) for h in hits]
    assert f"copied 3 file(s) to {out}" in err

    code = main(["search", "a gold watch", "--db", db, "--copy-to", str(out / "manifest.csv")])
    _, err = capsys.readouterr()
    assert (
        code == 2
        and err == f"error: --copy-to {out / 'manifest.csv'} is a file; give a folder to copy the hits into.\n"
    )


@pytest.mark.slow
def test_the_app_offers_the_picked_references_as_one_zip(
    monkeypatch: pytest.MonkeyPatch, catalogue: list[tuple[Path, Item]], tmp_path: Path
) -> None:
    db = tmp_path / "lib.db"
    with Library(db, model="demo", device="cpu") as lib:
        lib.add([p for p, _ in catalogue[:8]])
        want = lib.search("a gold watch", k=12)
    served: list[bytes] = []  # what Streamlit is handed to serve for download
    serve = MemoryMediaFileStorage.load_and_get_id

    def keep(self: MemoryMediaFileStorage, data: str | bytes, mimetype: str, *args: object, **kw: object) -> str:
        if mimetype == "application/zip":
            served.append(bytes(data, "utf-8") if isinstance(data, str) else data)
        return serve(self, data, mimetype, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    try:
        at = start(monkeypatch, db, tmp_path / "gen")
        assert not at.get("download_button")  # nothing picked yet
        at.text_input(key="query").input("a gold watch").run()
        at.checkbox(key=f"ref-{want[2].id}").check().run()
        at.checkbox(key=f"ref-{want[0].id}").check().run()
        [button] = at.get("download_button")
        assert button.label == "Download 2 reference(s) as zip"
        with zipfile.ZipFile(io.BytesIO(served[-1])) as archive:
            assert archive.namelist() == [f"001-{want[2].filename}", f"002-{want[0].filename}", "manifest.csv"]
            assert archive.read(f"002-{want[0].filename}") == Path(want[0].path).read_bytes()
            rows = manifest(archive.read("manifest.csv").decode())
        assert [(r["file"], r["source"], float(r["score"])) for r in rows] == [
            (f"001-{want[2].filename}", want[2].path, pytest.approx(want[2].score, abs=1e-6)),
            (f"002-{want[0].filename}", want[0].path, pytest.approx(want[0].score, abs=1e-6)),
        ]
    finally:
        st.cache_resource.clear()  # the app's library, released
