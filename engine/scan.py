"""Which files in a folder are images to index, and which are junk to skip.

Hidden files and folders (``.*``), macOS resource forks (``._*``) and
``__MACOSX`` folders are skipped unless asked for; directory symlinks are not
followed (no loops); file symlinks are followed, and broken ones are
reported as failures by the indexer (their images are gone: ``--prune`` drops their rows).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: What is indexed (``engine.formats`` reads what Pillow alone does not).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
    | {".heic", ".heif", ".avif", ".svg", ".psd", ".psb"}
)
JUNK_DIRS = frozenset({"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information"})


def is_junk(name: str, include_hidden: bool = False) -> bool:
    if name.startswith("._"):
        return True
    return not include_hidden and name.startswith(".")


def _unreadable(err: OSError) -> None:
    """os.walk would skip a folder it cannot list without a word."""
    log.warning(f"{err.filename} cannot be read ({err.strerror}); the images in it are skipped.")


def iter_images(
    folder: Path, include_hidden: bool = False, on_skip: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Image paths under ``folder`` (absolute, not symlink-resolved), in a stable order.

    ``on_skip`` is told of each hidden or system file and folder left out.
    """
    root = Path(os.path.abspath(folder))
    skip = on_skip or (lambda _path: None)
    for dirpath, dirnames, filenames in os.walk(root, onerror=_unreadable, followlinks=False):
        kept = []
        for d in sorted(dirnames):
            if d in JUNK_DIRS or is_junk(d, include_hidden):
                skip(Path(dirpath, d))
            else:
                kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            if is_junk(name, include_hidden):
                skip(Path(dirpath, name))
            elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath, name)
