"""Driving the Streamlit app (ui/app.py) through Streamlit's AppTest, without a browser."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "ui" / "app.py")


def start(monkeypatch: pytest.MonkeyPatch, db: Path, out: Path, *extra: str, token: str | None = None) -> AppTest:
    """The app as ``streamlit run ui/app.py -- --db DB --out OUT --model demo --device cpu EXTRA`` starts it,
    opened through a URL carrying ``token`` when one is given."""
    argv = [APP, "--db", str(db), "--out", str(out), "--model", "demo", "--device", "cpu", *extra]
    monkeypatch.setattr(sys, "argv", argv)
    at = AppTest.from_file(APP, default_timeout=120)
    if token is not None:
        at.query_params["token"] = token
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def literal(markdown: str) -> str:
    """What a Markdown string shows, its backslash escapes resolved."""
    return re.sub(r"\\(.)", r"\1", markdown)


def finish_indexing() -> None:
    """Wait for the app's background index run, if one is going."""
    for thread in threading.enumerate():
        if thread.name == "assetlens-index":
            thread.join(timeout=300)
            assert not thread.is_alive()
