"""Running the real ``assetlens`` command in a subprocess, the way a person's shell does.

When the tests run as root (CI does), the command runs without the two capabilities that let root
read and write whatever it likes (``setpriv``, util-linux): a chmod 000 file or a read-only folder
then stops it exactly as it stops any other user.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETPRIV = shutil.which("setpriv")
AS_ROOT = os.geteuid() == 0
DROP_DAC = [SETPRIV, "--bounding-set", "-dac_override,-dac_read_search", "--"] if AS_ROOT and SETPRIV else []

#: For tests that need file permissions to hold: skipped, saying why, where root cannot be held to them.
needs_permissions = pytest.mark.skipif(
    AS_ROOT and SETPRIV is None,
    reason="running as root without setpriv: file modes do not stop root, so unreadable files cannot be made",
)


@dataclass(frozen=True)
class Backend:
    """Where a test's library lives: a Milvus Lite file or a collection on the session's Milvus server."""

    name: str  # "lite" or "server"
    uri: str  # what MilvusStore and Library take
    args: tuple[str, ...]  # what the CLI takes: --db PATH or --uri URI


def cli_env() -> dict[str, str]:
    """The environment for a subprocess: no ASSETLENS_* variables from the caller, this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLENS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def run_cli(*argv: str | os.PathLike[str], cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``assetlens ARGV`` in a subprocess, output captured."""
    return subprocess.run(
        [*DROP_DAC, sys.executable, "-m", "assetlens", *map(os.fspath, argv)],
        cwd=cwd,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )


def warnings_in(stderr: str) -> list[str]:
    """The warning lines, wherever the progress bar's carriage returns put them."""
    return [part.strip() for part in re.split(r"[\r\n]", stderr) if part.strip().startswith("warning: ")]


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout and "Traceback" not in result.stderr, result.stderr


def assert_one_sentence(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    """Exit ``code`` and exactly one line on stderr: ``error: ...`` containing ``message``."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert_no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
