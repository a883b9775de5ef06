"""The runtime never imports torch, transformers or optimum: index + search with them made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.store]

BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'optimum'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, _Block())
"""


def test_index_and_search_without_torch(tmp_path: Path, catalogue_dir: Path) -> None:
    code = (
        BLOCKER
        + f"""
import json
from assetlens.engine import Library
with Library({str(tmp_path / "l.db")!r}, model='demo', device='cpu') as lib:
    report = lib.index({str(catalogue_dir)!r})
    hits = [h.path for h in lib.search('a red mug', k=3)]
print('REPORT', report.encoded, len(report.failed))
print('HITS', json.dumps(hits))
print('MODULES', json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'optimum'))))
"""
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert json.loads(lines["MODULES"]) == []
    assert lines["REPORT"] == "60 0"
    hits = json.loads(lines["HITS"])
    assert len(hits) == 3 and all(h.startswith(str(catalogue_dir)) for h in hits)
