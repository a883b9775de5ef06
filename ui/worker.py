"""Indexing in the background: a thread owned by the server process, not by a script run.

A Streamlit script run ends at every interaction (a query typed, a result clicked, a tab closed), and
work done inside it ends with it. So the app hands a folder to the ``Worker`` that the server keeps
beside the open library (``st.cache_resource``); every session and rerun reads the same progress from
it, and any of them can stop it. Searches go on meanwhile: the engine's search copy takes turns with
the writes.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from assetlens.engine.errors import AssetLensError, UsageError
from assetlens.engine.indexer import Indexer, IndexReport
from assetlens.engine.library import Library
from assetlens.engine.watch import WatchBatch

log = logging.getLogger(__name__)


@dataclass
class IndexJob:
    """One index run: its progress while it runs, then its report or the sentence that ended it. A run that
    ``watch``es goes on after its report, applying changes (``batches`` of them so far) until stopped."""

    folder: str
    prune: bool
    watch: bool = False
    batches: int = 0
    last_batch: WatchBatch | None = None
    done: int = 0
    total: int | None = None  # None while the folder is being scanned
    report: IndexReport | None = None
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    @property
    def watching(self) -> bool:
        return self.running and self.report is not None

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def ready(self, report: IndexReport) -> None:
        self.report = report

    def applied(self, batch: WatchBatch) -> None:
        self.batches, self.last_batch = self.batches + 1, batch


class Worker:
    """Runs ``Library.index`` for the app, one folder at a time, on a thread of its own."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.job: IndexJob | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, folder: str, prune: bool, watch: bool = False) -> IndexJob:
        """Start indexing ``folder`` (then watching it, with ``watch``); a bad folder or a run already going
        raise ``UsageError`` at once."""
        with self._lock:
            if self.job is not None and self.job.running:
                raise UsageError(f"{self.job.folder} is being indexed; wait for it to finish or stop it first.")
            Indexer.check_folder(Path(folder))
            job = IndexJob(folder, prune, watch)
            self.job = job
            self._thread = threading.Thread(target=self._run, args=(job,), name="assetlens-index", daemon=True)
            self._thread.start()
            return job

    def _run(self, job: IndexJob) -> None:
        try:
            if job.watch:
                self.library.watch(
                    job.folder,
                    stop=job.stop,
                    on_batch=job.applied,
                    on_ready=job.ready,
                    prune=job.prune,
                    progress=job.progress,
                )
            else:
                job.report = self.library.index(job.folder, prune=job.prune, progress=job.progress, stop=job.stop)
        except AssetLensError as exc:
            job.error = str(exc)
        except Exception as exc:  # the thread is the last place to catch it: the app shows the sentence
            log.exception("Indexing %s failed", job.folder)
            job.error = (
                f"Indexing {job.folder} stopped on an unexpected error ({type(exc).__name__}: {exc}); "
                "the images indexed before it are kept."
            )
        finally:
            job.finished.set()

    def stop(self) -> None:
        """Ask the run in progress to end after its current batch (what it wrote is kept)."""
        if self.job is not None:
            self.job.stop.set()

    def close(self) -> None:
        """Stop the run in progress, wait for it, then close the library."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
        self.library.close()
