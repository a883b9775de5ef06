"""The ``assetlens`` command: argument parsing and printing around ``engine.Library``.

No logic lives here that the Python API lacks; this module only turns
arguments into API calls, results into text/JSON/PNG, and ``AssetLensError``
into one sentence on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm import tqdm

from assetlens.engine.duplicates import Collapsed
from assetlens.engine.encoders import DEVICES
from assetlens.engine.errors import AssetLensError, UsageError
from assetlens.engine.gemini_models import DEFAULT_MODEL as GEMINI_MODEL
from assetlens.engine.gemini_models import IMAGE_SIZES, model_name, offered_models
from assetlens.engine.generate import ASPECT_RATIOS, DEFAULT_OUT_DIR, MAX_VARIANTS
from assetlens.engine.indexer import IndexReport
from assetlens.engine.library import SAVED_COPY, Library, Runtime
from assetlens.engine.manifest import ModelManifest
from assetlens.engine.models import PRECISIONS, QUERY_PRECISIONS, cache_root, default_model_name, model_rows
from assetlens.engine.preprocess import DEFAULT_MAX_MEGAPIXELS
from assetlens.engine.registry import (
    DEMO_MODEL,
    DEMO_SIGLIP_MODEL,
    DUPLICATE_THRESHOLDS,
    FAMILY_LABELS,
    RECOMMENDATIONS,
)
from assetlens.engine.search import FILE_TYPE_NAMES, ORIENTATIONS, SearchResult
from assetlens.engine.store import DEFAULT_COLLECTION
from assetlens.engine.watch import WatchBatch
from assetlens.ui.access import TOKEN_PARAMETER, TOKEN_VARIABLE, new_token

log = logging.getLogger("assetlens")


def shown(text: object) -> str:
    """A user-derived text as printed to a terminal: control characters (ESC, newlines) and undecodable
    bytes escaped, so that no name can move the cursor, recolour the terminal or forge a line."""
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in str(text))


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode holds it
        return f"\\x{code - 0xDC00:02x}"
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if named:
        return named
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json(value: object) -> str:
    """Exact JSON; a name that is not UTF-8 keeps its bytes as \\udcXX escapes (``json.loads`` gives them back)."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)


#: Loggers of libraries whose records are dropped: decoder chatter that names no file (the engine's own
#: warning names the file when a decode fails).
_DROPPED_LOGGERS = ("PIL", "psd_tools")


class _TqdmHandler(logging.Handler):
    """Log lines that do not tear the progress bar. AssetLens' records keep their level; another library's
    (WARNING and above reach here) read as warnings, since the engine reports what is fatal itself."""

    def emit(self, record: logging.LogRecord) -> None:
        top = record.name.split(".")[0]
        if top in _DROPPED_LOGGERS:
            return
        level = record.levelname.lower() if top == "assetlens" else "warning"
        tqdm.write(f"{level}: {shown(record.getMessage())}", file=sys.stderr)


def _progress(desc: str, unit: str = "img") -> tuple[Callable[[int, int], None], Callable[[], None]]:
    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            # disable=None: no bar when stderr is not a terminal (logs, CI), only the summary.
            bar["bar"] = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=unit == "B",  # downloads in kB, MB
                dynamic_ncols=True,
                file=sys.stderr,
                disable=None,
            )
        bar["bar"].n = done
        bar["bar"].refresh()

    def close() -> None:
        if "bar" in bar:
            bar["bar"].close()

    return update, close


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _family_thresholds() -> str:
    return ", ".join(f"{FAMILY_LABELS[family]} {value:g}" for family, value in DUPLICATE_THRESHOLDS.items())


def _add_store(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("library")
    g.add_argument("--db", help="Milvus Lite file (default: $ASSETLENS_DB or ./assetlens.db)")
    g.add_argument("--uri", help="Milvus server URI instead of a local file, e.g. http://localhost:19530")
    g.add_argument(
        "--token",
        default=os.environ.get("ASSETLENS_MILVUS_TOKEN"),
        help="Milvus server token (default: $ASSETLENS_MILVUS_TOKEN)",
    )
    g.add_argument("--collection", default=DEFAULT_COLLECTION, help="collection name (default: %(default)s)")


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where onnxruntime runs (default: auto = CUDA when usable, else CPU)",
    )
    p.add_argument("--threads", type=_positive_int, help="CPU threads for inference (default: all cores)")


def _library(
    args: argparse.Namespace,
    model: str | None = None,
    precision: str | None = None,
    create: bool = False,
    writes: bool = False,
) -> Library:
    """A Library for one command. A command that writes keeps the saved search copy in step with its
    writes; a one-shot search answers from the saved copy when it is current (memory-mapped: cheaper than
    Milvus Lite's first search at every size), else asks Milvus rather than building a copy for one query."""
    return Library(
        args.db,
        uri=args.uri,
        token=args.token,
        collection=args.collection,
        model=model,
        precision=precision,
        device=args.device,
        threads=args.threads,
        create=create,
        search_copy=None if writes else SAVED_COPY,
        download=not getattr(args, "no_download", True),  # only index and search have --no-download
        download_progress=_download_progress(str(model or default_model_name())),
        query_precision=getattr(args, "query_precision", "auto"),  # only search has --query-precision
    )


def _download_progress(model: str) -> Callable[[int, int], None]:
    """Progress of an automatic pull: one line when it starts (a log has it too), then a bar on a terminal."""
    bar, close = _progress(f"downloading {shown(model)}", unit="B")
    started: list[bool] = []

    def update(done: int, total: int) -> None:
        if not started:
            started.append(True)
            print(
                f"{shown(model)} is not here yet; downloading it from the Hugging Face Hub ({total / 1e6:.1f} MB)",
                file=sys.stderr,
            )
        bar(done, total)
        if done >= total:
            close()

    return update


def _import_extra(module: str, extra: str) -> ModuleType:
    """Import a module that needs an optional extra, or say in one sentence how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(
            f"This command needs the {extra} extra ({exc.name} is missing); install it with: "
            f"pip install 'assetlens[{extra}]'"
        ) from None


def cmd_export(args: argparse.Namespace) -> int:
    export_model = _import_extra("assetlens.export.onnx_export", "export").export_model
    out = export_model(args.model, Path(args.out) if args.out else None, args.precision)
    manifest = ModelManifest.load(out)
    parity = manifest.parity
    print(f"exported {shown(args.model)} ({manifest.precision}, {manifest.embedding_dim}-d) to {shown(out)}")
    print(
        f"parity vs {parity.reference}: image min cosine {parity.image_min_cosine:.6f}, "
        f"text min cosine {parity.text_min_cosine:.6f}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    rows = model_rows()
    if args.json:
        from dataclasses import asdict

        print(_json({"models": [r.to_dict() for r in rows], "recommendations": [asdict(r) for r in RECOMMENDATIONS]}))
        return 0
    table = [("model", "dim", "image", "licence", "IN-1k", "COCO R@1", "exported here", "on disk")]
    for row in rows:
        spec, quality = row.spec, row.spec.quality
        table.append(
            (
                spec.name + (" (default)" if spec.default else ""),
                str(spec.dim),
                f"{spec.image.size} px",
                spec.licence,
                f"{quality.imagenet_top1:.1f}" if quality else "-",
                f"{quality.coco_text_to_image_r1:.1f}" if quality else "-",
                ", ".join(row.exported) or "-",
                f"{row.size_bytes / 1e6:.1f} MB" if row.exported else "-",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    left = (0, 3, 6)  # text columns; numbers align right
    for line in table:
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells).rstrip())
    print("IN-1k, COCO R@1: published zero-shot ImageNet-1k top-1 and COCO text-to-image recall@1 (%)")
    print(
        f"exports go to {shown(cache_root() / 'models')}; export a model with: assetlens export --model NAME, "
        "or download a published ONNX export of it with: assetlens models pull NAME"
    )
    for rec in RECOMMENDATIONS:
        print(f"for {rec.machine}: {rec.model} {rec.precision} ({rec.why})")
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    from assetlens.engine.hub import pull

    bar, close = _progress(f"downloading {shown(args.name)}", unit="B")
    try:
        report = pull(args.name, args.precision, trust_unpinned=args.trust_unpinned, progress=bar)
    finally:
        close()
    if report.already_here:
        print(f"{shown(args.name)} ({args.precision}) is already here: {shown(report.folder)}")
        return 0
    source = report.source
    print(
        f"pulled {shown(args.name)} ({args.precision}, {source.layout} layout, {report.downloaded_bytes / 1e6:.1f} MB) "
        f"into {shown(report.folder)}"
    )
    check = "matches the registry's reference" if report.reference_checked else "shapes, values and norms only"
    print(f"checksums verified; self-check: {check}")
    if not report.pinned:
        print("the registry had no pins for these files; the Hub served (record them in engine/registry.py):")
        for pin in report.pins:
            print(f"  RepoPin({pin.repo!r}, {pin.revision!r}, {pin.sha256!r})")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    if args.uri:
        raise UsageError("--rebuild rebuilds a Milvus Lite library (--db); a Milvus server keeps its own files.")
    bar, close = _progress("indexing")
    try:
        rebuilt = Library.rebuild(
            args.folder,
            db=args.db,
            collection=args.collection,
            model=args.model,
            precision=args.precision,
            device=args.device,
            threads=args.threads,
            progress=bar,
            **_index_options(args),
        )
    finally:
        close()
    if rebuilt.aside is not None:
        print(f"the old collection's files are kept in {shown(rebuilt.aside)}", file=sys.stderr)
    for rel in rebuilt.unreadable:
        log.warning("%s could not be read; its rows were encoded again from the images.", rel)
    if rebuilt.aside is not None and not rebuilt.vectors_reused:
        log.warning("The old vectors' model is unknown or another one; every image was encoded again.")
    print(f"restored {rebuilt.restored} rows with their vectors; {rebuilt.index.summary()}")
    return 0


def _index_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Library.index`` options of the ``index`` command."""
    return {
        "batch_size": args.batch_size,
        "prune": args.prune,
        "include_hidden": args.include_hidden,
        "max_megapixels": args.max_megapixels,
    }


def cmd_index(args: argparse.Namespace) -> int:
    if args.rebuild:
        if args.watch:
            raise UsageError("--watch cannot be combined with --rebuild; rebuild first, then watch.")
        return cmd_rebuild(args)
    with _library(args, args.model, args.precision, create=True, writes=True) as lib:
        bar, close = _progress("indexing")
        new = not lib.exists()

        def update(done: int, total: int) -> None:
            if done == 0:  # the folder checked out and was scanned: say what will run
                run = lib.runtime()
                print(f"model {shown(run.model)} ({run.precision}, {run.dim}-d) on {run.provider}", file=sys.stderr)
                if new:
                    _say_nothing_reused(lib, run)
            bar(done, total)

        if args.watch:
            return _watch(args, lib, update, close)
        try:
            report = lib.index(args.folder, progress=update, **_index_options(args))
        finally:
            close()
        _print_index_summary(lib, report)
    return 0


def _say_nothing_reused(lib: Library, run: Runtime) -> None:
    """A new collection beside others of other models: say that every image is encoded afresh."""
    others = lib.other_models()
    if others:
        held = ", ".join(f"{shown(o.name)} ({shown(o.model)} {o.precision}, {o.count} images)" for o in others)
        print(
            f"collection {shown(lib.stats().collection)} is new and bound to {shown(run.model)} ({run.precision}): "
            f"every image is encoded with it; nothing is reused from {held}, which hold another model's vectors.",
            file=sys.stderr,
        )


def _print_index_summary(lib: Library, report: IndexReport) -> None:
    print(report.summary() + (f" ({report.images_per_second:.1f} images/s)" if report.encoded else ""))
    stats = lib.stats()
    print(f"library {shown(stats.uri)}, collection {stats.collection}: {stats.count} images", flush=True)


def _watch(
    args: argparse.Namespace, lib: Library, progress: Callable[[int, int], None], close: Callable[[], None]
) -> int:
    """``index --watch``: the first pass, then one line per batch of changes, until Ctrl-C."""
    stop = threading.Event()

    def interrupted(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C does not wait for the batch

    def ready(report: IndexReport) -> None:
        close()
        _print_index_summary(lib, report)
        if not stop.is_set():
            print(f"watching {shown(args.folder)} for changes; Ctrl-C stops.", file=sys.stderr, flush=True)

    def batch(done: WatchBatch) -> None:
        print(_batch_line(done, args.folder), flush=True)

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        lib.watch(args.folder, stop=stop, on_batch=batch, on_ready=ready, progress=progress, **_index_options(args))
    finally:
        close()
        signal.signal(signal.SIGINT, previous)
    print("stopped watching; everything indexed so far is kept.", file=sys.stderr)
    return 130


def _batch_line(batch: WatchBatch, folder: Path, names: int = 3) -> str:
    """One batch of changes: each kind's count and its first few paths, relative to the watched folder."""

    def name(path: str) -> str:
        return shown(os.path.relpath(path, folder))

    def listed(kind: str, items: Sequence[str]) -> str | None:
        if not items:
            return None
        more = f" and {len(items) - names} more" if len(items) > names else ""
        return f"{kind} {len(items)}: {', '.join(items[:names])}{more}"

    parts = [
        listed("added", [name(p) for p in batch.added]),
        listed("updated", [name(p) for p in batch.updated]),
        listed("moved", [f"{name(old)} -> {name(new)}" for old, new in batch.moved]),
        listed("removed", [name(p) for p in batch.removed]),
        listed("failed", [name(p) for p, _ in batch.failed]),
    ]
    return "; ".join(part for part in parts if part) + f" ({batch.encoded} encoded)"


def _print_results(results: Sequence[SearchResult], as_json: bool) -> None:
    if as_json:
        print(_json([r.to_dict() for r in results]))
        return
    if not results:
        print("no results")
    for r in results:
        print(f"{r.rank:>3}  {_scores(r)}  {shown(r.path)}{_tags(r)}")


def _tags(r: SearchResult) -> str:
    return f"  [{', '.join(shown(t) for t in r.tags)}]" if r.tags else ""


def _scores(r: SearchResult) -> str:
    """The cosine score, and the relevance (standard deviations above the library's average) when measured."""
    return f"{r.score:.4f}" + (f"  {r.relevance:+5.1f} sd" if r.relevance is not None else "")


def _print_collapsed(entries: Sequence[Collapsed], as_json: bool) -> None:
    if as_json:
        print(_json([e.to_dict() for e in entries]))
        return
    if not entries:
        print("no results")
    for e in entries:
        similar = f"  ({len(e.similar)} similar)" if e.similar else ""
        print(f"{e.hit.rank:>3}  {_scores(e.hit)}  {shown(e.hit.path)}{similar}")


def _grid_path(text: str) -> Path:
    """Where ``--grid`` writes: checked before the search runs."""
    from PIL import Image

    path = Path(text)
    if path.is_dir():
        raise UsageError(f"--grid {text} is a folder; give a file name such as {path / 'hits.png'}.")
    if Image.registered_extensions().get(path.suffix.lower()) not in Image.SAVE:
        raise UsageError(f"--grid {text} needs a picture file name ending in .png, .jpg or .webp.")
    parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise UsageError(f"--grid {text} cannot be written: permission denied.")
    return path


def cmd_search(args: argparse.Namespace) -> int:
    grid = _grid_path(args.grid) if args.grid else None
    copy_to = _copy_folder(args.copy_to) if args.copy_to else None
    query = {
        "image": args.image,
        "like": args.like,
        "minus": args.minus or (),
        "k": args.k,
        "offset": args.offset,
        "min_score": args.min_score,
        "min_relevance": args.min_relevance,
        "within": args.within,
        "folder": args.folder,
        "filename": args.filename,
        "orientation": args.orientation,
        "min_width": args.min_width,
        "min_height": args.min_height,
        "file_types": args.type,
        "since": args.since,
        "before": args.before,
        "tags": args.tag or (),
        "show_duplicates": args.show_duplicates,
        "text_weight": args.text_weight,
        "image_weight": args.image_weight,
        "minus_weight": args.minus_weight,
    }
    with _library(args) as lib:
        if args.collapse:
            entries = lib.search_collapsed(args.query, **query)
            results = [e.hit for e in entries]
            _print_collapsed(entries, args.json)
        else:
            results = lib.search(args.query, **query)
            _print_results(results, args.json)
        if grid is not None:
            from assetlens.engine.grid import contact_sheet

            title = " + ".join(
                filter(None, [args.query, args.image and f"image {args.image}", args.like and f"like {args.like}"])
            )
            title += "".join(f" - {m}" for m in args.minus or ())
            try:
                out = contact_sheet([(title, results)], grid)
            except OSError as exc:
                raise UsageError(f"The contact sheet {grid} cannot be written ({exc.strerror or exc}).") from None
            print(f"contact sheet: {shown(out)}", file=sys.stderr)
    if copy_to is not None:
        print(shown(lib.copy_hits(results, copy_to).summary()), file=sys.stderr)
    return 0


def _copy_folder(text: str) -> Path:
    """Where ``--copy-to`` copies: checked before the search runs."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--copy-to {text} is a file; give a folder to copy the hits into.")
    return path


def _format_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def cmd_tag(args: argparse.Namespace) -> int:
    bar, close = _progress("tagging")
    with _library(args, writes=True) as lib:
        try:
            report = lib.tag(args.labels, top=args.top, min_score=args.min_score, progress=bar)
        finally:
            close()
    if args.json:
        print(_json(report.to_dict()))
        return 0
    print(
        f"tagged {report.tagged} images, {report.unchanged} already had these tags "
        f"({report.labels} labels in {report.categories} categories, {report.seconds:.1f} s)"
    )
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    grid = _grid_path(args.grid) if args.grid else None
    with _library(args) as lib:
        report = lib.duplicates(args.threshold)
    summary = (
        f"{len(report.groups)} group(s), {report.redundant} image(s) besides the one kept of each, "
        f"among {report.images} (threshold {report.threshold:g})"
    )
    if args.json:
        print(_json(report.to_dict()))
        print(summary, file=sys.stderr)
    else:
        for n, group in enumerate(report.groups, 1):
            print(f"group {n}: {group.kind}, {len(group.members)} images")
            for m in group.members:
                mark, dims = "keep" if m.keep else f"{m.similarity:.3f}", f"{m.width}x{m.height}"
                print(f"  {mark:>5}  {dims:>11}  {_format_size(m.size):>8}  {m.modified[:16]}  {shown(m.path)}")
        print(summary)
    if grid is not None:
        from assetlens.engine.grid import duplicate_sheet

        try:
            out = duplicate_sheet(report, grid)
        except OSError as exc:
            raise UsageError(f"The contact sheet {grid} cannot be written ({exc.strerror or exc}).") from None
        print(f"contact sheet: {shown(out)}", file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _library(args) as lib:
        stats = lib.stats()
    if args.json:
        from dataclasses import asdict

        print(json.dumps(asdict(stats), indent=2))
    else:
        print("\n".join(shown(line) for line in stats.lines()))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    checkup = Library.check(args.db, uri=args.uri, token=args.token, collection=args.collection)
    for finding in checkup.findings:
        print(f"{'ok' if finding.ok else 'DAMAGED'}: {shown(finding.text)}")
    print(
        f"library {shown(checkup.uri)}, collection {shown(checkup.collection)}: "
        f"{'damaged' if checkup.damaged else 'healthy'}"
    )
    return 1 if checkup.damaged else 0


def cmd_remove(args: argparse.Namespace) -> int:
    with _library(args, writes=True) as lib:
        removed = lib.remove(args.paths)
    print(f"removed {removed} image(s) from the library (files untouched)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from assetlens.demo import run_demo

    update, close = _progress("rendering catalogue")
    try:
        run_demo(
            Path(args.out),
            count=args.count,
            model=args.model,
            precision=args.precision,
            device=args.device,
            progress=update,
            echo=print,
            index_progress=_progress,
        )
    finally:
        close()
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from assetlens.engine.generate import Generator, Reference, references_from_search

    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, not {args.timeout:g}.")
    generator = Generator(model=args.model, timeout_s=args.timeout)  # no key: fail before any search
    refs = [Reference(os.path.abspath(p)) for p in args.ref or ()]
    with ExitStack() as stack:
        lib = (
            stack.enter_context(_library(args, create=args.add_to_library, writes=args.add_to_library))
            if args.ref_query or args.add_to_library
            else None
        )
        if args.ref_query and lib is not None:
            refs += references_from_search(lib, args.ref_query, args.k)
        for ref in refs:
            print(f"reference  {'' if ref.score is None else f'{ref.score:.4f}  '}{shown(ref.path)}", file=sys.stderr)
        print(f"generating with {generator.model} from {len(refs) or 'no'} reference(s)...", file=sys.stderr)
        batch = generator.generate_and_add(
            args.prompt,
            refs,
            args.out,
            library=lib if args.add_to_library else None,
            variants=args.variants,
            aspect_ratio=args.aspect_ratio,
            image_size=args.image_size,
        )
        for out in batch.outputs:
            print(shown(out.image))
            if out.text:
                print(f"the model said: {shown(out.text)}", file=sys.stderr)
        if batch.added is not None:
            print(f"added to the library: {batch.added.summary()}", file=sys.stderr)
    return 0


def _gemini_model(text: str) -> str:
    try:
        return model_name(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_GEMINI_MODEL_HELP = (
    f"Gemini image model (default: {GEMINI_MODEL}; known: {', '.join(m.describe() for m in offered_models())}; "
    "any other image model the key may use also works)"
)


def cmd_ui(args: argparse.Namespace) -> int:
    """Becomes ``streamlit run <assetlens/ui/app.py>`` (exec: signals reach the server, no orphan is left behind)."""
    from importlib.util import find_spec

    spec = find_spec("assetlens.ui.app")
    app = Path(spec.origin) if spec is not None and spec.origin else None
    if app is None or not app.is_file():
        raise UsageError(f"The Streamlit app is missing ({app}); reinstall AssetLens.")
    if find_spec("streamlit") is None:
        raise UsageError("assetlens ui needs Streamlit; install it with: pip install streamlit")
    app_args = [
        f"--{name}={value}"
        for name, value in (
            ("db", args.db),
            ("uri", args.uri),
            ("collection", args.collection),
            ("model", args.model),
            ("device", args.device),
            ("out", args.out),
            ("gemini-model", args.gemini_model),
        )
        if value is not None
    ]
    env = dict(os.environ)
    if args.token:  # through the environment, not argv, which any local user can read
        env["ASSETLENS_MILVUS_TOKEN"] = args.token
    host = shown(f"[{args.host}]" if ":" in args.host else args.host)
    env.pop(TOKEN_VARIABLE, None)
    if args.no_token:
        print(f"AssetLens: http://{host}:{args.port}/ (no access token: anyone who can reach the port can use it)")
    else:
        env[TOKEN_VARIABLE] = new_token()  # the environment again: argv would show it to every local user
        print(f"AssetLens: open http://{host}:{args.port}/?{TOKEN_PARAMETER}={env[TOKEN_VARIABLE]}")
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--",
        *app_args,
    ]
    sys.stdout.flush()
    os.execve(sys.executable, command, env)


def cmd_bench(args: argparse.Namespace) -> int:
    return int(_import_extra("assetlens.benchmarks", "bench").main(args))


def _add_bench_arguments(p: argparse.ArgumentParser) -> None:
    try:
        from assetlens.benchmarks import add_arguments
    except ImportError:  # not installed: the command explains that when it runs
        return
    add_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assetlens", description="Offline multimodal search for image libraries.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("export", help="export a CLIP model to ONNX (needs the export extra)")
    p.add_argument(
        "--model",
        default=default_model_name(),
        help="short name (see: assetlens models), HF id or local HF directory (default: %(default)s)",
    )
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--out", help="output folder (default: the model cache, where index/search find it by name)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("models", help="the known models, which are exported here, and which suits which machine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)
    pulls = p.add_subparsers(dest="models_command", metavar="pull")
    q = pulls.add_parser("pull", help="download a model's pre-exported ONNX towers from the Hugging Face Hub")
    q.add_argument("name", help="a registry name (see: assetlens models)")
    q.add_argument("--precision", choices=PRECISIONS, default="fp32")
    q.add_argument(
        "--trust-unpinned",
        action="store_true",
        help="for an entry whose pins were not recorded: take the Hub's current files and print their pins",
    )
    q.set_defaults(func=cmd_models_pull)

    p = sub.add_parser("index", help="index (or update) a folder of images")
    p.add_argument("folder", type=Path)
    _add_store(p)
    _add_runtime(p)
    p.add_argument(
        "--model",
        help="model name, HF id or exported folder (default: the collection's, "
        f"else $ASSETLENS_MODEL or {default_model_name()})",
    )
    p.add_argument("--precision", choices=PRECISIONS, help="model precision (default: the collection's, else fp32)")
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--prune", action="store_true", help="remove images whose files are gone")
    p.add_argument("--include-hidden", action="store_true", help="also index hidden files and folders")
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help="skip images declaring more pixels than this (default: %(default)g)",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild the collection into a fresh one from its readable rows and FOLDER (see: assetlens doctor)",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="after indexing, keep the library in step with FOLDER as files are added, changed, moved or deleted "
        "(Ctrl-C stops)",
    )
    p.add_argument(
        "--no-download",
        action="store_true",
        help="never download a registry model that is not here yet (nor in Hugging Face's offline mode)",
    )
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search by text, example image, or both")
    p.add_argument("query", nargs="?", help="what to look for, e.g. 'a golden watch'")
    _add_store(p)
    _add_runtime(p)
    p.add_argument(
        "--query-precision",
        choices=QUERY_PRECISIONS,
        default="auto",
        help="text tower of text queries (default: auto = on the CPU, an fp32 library's int8 text tower where "
        "it answers as fp32 does, else the library's own)",
    )
    p.add_argument("--image", type=Path, help="query by example image")
    p.add_argument("--like", help="more like this indexed image (path)")
    p.add_argument("--minus", action="append", metavar="TEXT", help="steer away from TEXT (repeatable)")
    p.add_argument("--text-weight", type=float, default=1.0, help="weight of the text query (default: %(default)s)")
    p.add_argument("--image-weight", type=float, default=1.0, help="weight of --image / --like (default: %(default)s)")
    p.add_argument("--minus-weight", type=float, default=0.5, help="weight of each --minus (default: %(default)s)")
    p.add_argument("-k", type=int, default=10, help="number of results (default: %(default)s)")
    p.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    p.add_argument("--min-score", type=float, help="drop results below this cosine score (its range differs per model)")
    p.add_argument(
        "--min-relevance",
        type=float,
        metavar="SD",
        help="drop results less than SD standard deviations above this library's average score for the query "
        "(means the same on every model; 3 is strict, 1 loose)",
    )
    p.add_argument(
        "--within",
        type=float,
        metavar="SD",
        help="drop results more than SD standard deviations below the best one (same units as --min-relevance)",
    )
    p.add_argument("--folder", help="only images under this folder")
    p.add_argument("--filename", help="only images whose file name contains this text")
    p.add_argument("--orientation", choices=ORIENTATIONS, help="only landscape, portrait or square images")
    p.add_argument("--min-width", type=_positive_int, metavar="PX", help="only images at least PX pixels wide")
    p.add_argument("--min-height", type=_positive_int, metavar="PX", help="only images at least PX pixels high")
    p.add_argument(
        "--type",
        metavar="TYPES",
        help=f"only these file types, e.g. jpeg,png (of {', '.join(sorted(FILE_TYPE_NAMES))})",
    )
    p.add_argument("--since", metavar="DATE", help="only images modified on or after DATE (YYYY-MM-DD, local time)")
    p.add_argument("--before", metavar="DATE", help="only images modified before DATE (YYYY-MM-DD, local time)")
    p.add_argument("--tag", action="append", metavar="TAG", help="only images tagged TAG (repeatable: all of them)")
    p.add_argument("--show-duplicates", action="store_true", help="list byte-identical copies separately")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--grid", help="also write a contact sheet PNG of the hits")
    p.add_argument("--copy-to", metavar="DIR", help="copy the hits' files into DIR as RANK-NAME, with a manifest.csv")
    p.add_argument(
        "--collapse",
        action="store_true",
        help="one hit per group of near-identical images and how many are like it (cosine above the model "
        f"family's duplicates threshold: {_family_thresholds()})",
    )
    p.add_argument(
        "--no-download",
        action="store_true",
        help="never download a registry model that is not here yet (nor in Hugging Face's offline mode)",
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("tag", help="auto-tag every image: object kind, colour and setting, and labels of your own")
    _add_store(p)
    _add_runtime(p)
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="labels of your own, one a line (a [category] line starts a category), added to the default ones",
    )
    p.add_argument("--top", type=_positive_int, default=1, help="labels kept per category (default: %(default)s)")
    p.add_argument(
        "--min-score", type=float, help="keep only labels whose cosine score reaches this (its range differs per model)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("duplicates", help="groups of near-identical images and the one to keep of each")
    _add_store(p)
    _add_runtime(p)
    p.add_argument(
        "--threshold",
        type=float,
        help="cosine similarity above which two images are one shot "
        f"(default: the model family's, {_family_thresholds()})",
    )
    p.add_argument("--json", action="store_true", help="print the groups as JSON")
    p.add_argument("--grid", help="also write a contact sheet PNG of the groups")
    p.set_defaults(func=cmd_duplicates)

    p = sub.add_parser("stats", help="what the library holds")
    _add_store(p)
    _add_runtime(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("doctor", help="check the library's files, counts and search copy (exit 1 when damaged)")
    _add_store(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("remove", help="remove images from the library by path")
    p.add_argument("paths", nargs="+")
    _add_store(p)
    _add_runtime(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("demo", help="offline demo on a generated catalogue with the shipped model")
    p.add_argument("--out", default="assetlens-demo", help="folder for images, library and pictures")
    p.add_argument(
        "--model",
        choices=(DEMO_MODEL, DEMO_SIGLIP_MODEL),
        default=DEMO_MODEL,
        help="the shipped CLIP, or the SigLIP that also understands Indonesian",
    )
    p.add_argument("--count", type=_positive_int, default=200)
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("generate", help="generate an image with Gemini from a prompt and reference photos")
    p.add_argument("prompt", help="what to make, e.g. 'a summer promo of this watch on a beach'")
    p.add_argument("--ref", action="append", type=Path, metavar="PATH", help="a reference image (repeatable)")
    p.add_argument("--ref-query", metavar="TEXT", help="also use the top -k library images for TEXT as references")
    p.add_argument("-k", type=_positive_int, default=1, help="how many --ref-query results (default: %(default)s)")
    p.add_argument(
        "--out", default=DEFAULT_OUT_DIR, help="folder for PNGs and their JSON sidecars (default: %(default)s)"
    )
    p.add_argument("--model", type=_gemini_model, default=GEMINI_MODEL, metavar="NAME", help=_GEMINI_MODEL_HELP)
    p.add_argument("--aspect-ratio", choices=ASPECT_RATIOS, help="shape of the image (default: the model's)")
    p.add_argument(
        "--image-size", choices=IMAGE_SIZES, help="output size, for models that offer one (default: the model's)"
    )
    p.add_argument(
        "--variants",
        type=int,
        choices=range(1, MAX_VARIANTS + 1),
        default=1,
        metavar="N",
        help=f"how many images, 1 to {MAX_VARIANTS}, one request each (default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Gemini (default: %(default)g)")
    p.add_argument("--add-to-library", action="store_true", help="index the images, tagged as generated")
    _add_store(p)
    _add_runtime(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("ui", help="start the web app (search, index, generate) on this library")
    _add_store(p)
    p.add_argument("--model", help="CLIP model for a new collection (default: the collection's)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--out", default=DEFAULT_OUT_DIR, help="folder for generated images (default: %(default)s)")
    p.add_argument("--gemini-model", type=_gemini_model, default=GEMINI_MODEL, metavar="NAME", help=_GEMINI_MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8501, help="port (default: %(default)s)")
    p.add_argument(
        "--no-token",
        action="store_true",
        help="let anyone who can reach the port use the app, without the access token in the printed URL",
    )
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("bench", help="benchmark encoders, indexing and search (needs the bench extra)")
    _add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _TqdmHandler()
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a reader that left (BrokenPipeError) is caught, not at exit
        return code
    except AssetLensError as exc:
        print(f"error: {shown(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # the reader (e.g. head) left: stop quietly, as Python's signal docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("interrupted; everything indexed so far is kept.", file=sys.stderr)
        return 130
