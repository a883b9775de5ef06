"""AssetLens in the browser: search the library, index folders, generate grounded images with Gemini.

Run with ``assetlens ui``, which sets the access token (``ui/access.py``), or with
``streamlit run ui/app.py -- --db assetlens.db``, which leaves the app open. The library, its ONNX
sessions and its background indexer (``ui/worker.py``) are opened once per server process
(``st.cache_resource``) and shared by every rerun and session; this file only turns widgets into
``engine`` calls and results into widgets, every user-derived text through ``plain``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from assetlens.engine.duplicates import Collapsed, DuplicateReport
from assetlens.engine.encoders import DEVICES
from assetlens.engine.errors import AssetLensError, UsageError
from assetlens.engine.gemini_models import DEFAULT_MODEL as GEMINI_MODEL
from assetlens.engine.gemini_models import IMAGE_SIZES, known_model, model_name, offered_models
from assetlens.engine.generate import (
    ASPECT_RATIOS,
    DEFAULT_OUT_DIR,
    MAX_VARIANTS,
    TEMPLATES,
    Generation,
    Generator,
    Reference,
    api_key_source,
    load_gallery,
    resolve_api_key,
)
from assetlens.engine.grid import thumbnail
from assetlens.engine.handoff import Pick, zip_picks
from assetlens.engine.library import Library
from assetlens.engine.preprocess import decode
from assetlens.engine.scan import IMAGE_EXTENSIONS
from assetlens.engine.search import FILE_TYPE_NAMES, ORIENTATIONS, SearchResult
from assetlens.engine.store import DEFAULT_COLLECTION, path_id
from assetlens.ui.access import TOKEN_PARAMETER, TOKEN_VARIABLE, token_matches
from assetlens.ui.markdown import plain
from assetlens.ui.worker import IndexJob, Worker

PAGE_SIZE = 12
COLUMNS = 4
THUMB_SIDE = 320
#: What the example-image upload accepts: every format a folder is indexed in.
UPLOAD_TYPES = sorted(ext.removeprefix(".") for ext in IMAGE_EXTENSIONS)
GALLERY_SIZE = 12
MAX_GROUPS = 50  # duplicate groups shown at once, largest first
NO_TEMPLATE = "Write my own"
MODEL_ASPECT = "Model default"
PROGRESS_EVERY_S = 1.0
MODEL_SIZE = "Model default"
T = TypeVar("T")


def config(argv: list[str]) -> argparse.Namespace:
    """The app's arguments (after ``--`` on the streamlit command line); unknown ones are ignored."""
    p = argparse.ArgumentParser(prog="assetlens ui", allow_abbrev=False)
    p.add_argument("--db", default=None, help="Milvus Lite file (default: $ASSETLENS_DB or ./assetlens.db)")
    p.add_argument("--uri", default=None, help="Milvus server URI (token: $ASSETLENS_MILVUS_TOKEN)")
    p.add_argument("--collection", default=DEFAULT_COLLECTION)
    p.add_argument("--model", default=None, help="CLIP model for a new collection")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--out", default=DEFAULT_OUT_DIR, help="folder for generated images and their sidecars")
    p.add_argument("--gemini-model", default=GEMINI_MODEL)
    return p.parse_known_args(argv)[0]


@st.cache_resource(show_spinner="Opening the library…", on_release=lambda worker: worker.close())
def open_library(db: str | None, uri: str | None, collection: str, model: str | None, device: str) -> Worker:
    """The library and its background indexer, one pair per server process (Milvus Lite allows one)."""
    library = Library(
        db,
        uri=uri,
        token=os.environ.get("ASSETLENS_MILVUS_TOKEN"),
        collection=collection,
        model=model,
        device=device,
        create=True,
    )
    return Worker(library)


@st.cache_data(max_entries=4096, show_spinner=False)
def thumbnail_jpeg(path: bytes, mtime: float) -> bytes | None:
    """A small JPEG of an image file, or None when it cannot be read.

    The path comes as bytes, which any file name is (a name that is not UTF-8 cannot be hashed as
    ``str`` by the cache); ``mtime`` keys the cache.
    """
    img = thumbnail(os.fsdecode(path), THUMB_SIDE)
    if img is None:
        return None
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def show_image(path: str | Path, caption: str | None = None) -> None:
    try:
        data = thumbnail_jpeg(os.fsencode(path), os.stat(path).st_mtime)
    except OSError:
        data = None
    if data is None:
        st.warning(f"{plain(Path(path).name)} is missing or unreadable.")
    else:
        st.image(data, caption=None if caption is None else plain(caption), width="stretch")


def grid(items: Sequence[T]) -> Iterator[tuple[DeltaGenerator, T]]:
    """Each item with its cell, in rows of ``COLUMNS``."""
    for row in range(0, len(items), COLUMNS):
        yield from zip(st.columns(COLUMNS), items[row : row + COLUMNS], strict=False)


# -- state changes (widget callbacks) ------------------------------------------------


def new_query() -> None:
    st.session_state.like = None
    st.session_state.page = 0


def first_page() -> None:
    st.session_state.page = 0


def more_like(path: str) -> None:
    st.session_state.like = path
    st.session_state.page = 0


def turn_page(step: int) -> None:
    st.session_state.page = max(0, st.session_state.page + step)


def toggle_reference(result: SearchResult) -> None:
    refs: dict[str, Reference] = st.session_state.refs
    if st.session_state[f"ref-{result.id}"]:
        refs[result.path] = Reference.from_result(result)
    else:
        refs.pop(result.path, None)


def drop_reference(path: str) -> None:
    st.session_state.refs.pop(path, None)
    st.session_state.pop(f"ref-{path_id(path)}", None)


def apply_template() -> None:
    if st.session_state.template in TEMPLATES:
        st.session_state.prompt = TEMPLATES[st.session_state.template]


# -- panels ---------------------------------------------------------------------------


def search_panel(lib: Library) -> None:
    left, right = st.columns([3, 2])
    text = left.text_input("Search", key="query", placeholder="a golden watch", on_change=new_query)
    upload = right.file_uploader("…or query by example image", type=UPLOAD_TYPES, key="upload", on_change=new_query)
    strict, near = st.columns(2)
    min_relevance = strict.slider(
        "Minimum relevance",
        0.0,
        6.0,
        0.0,
        0.5,
        key="min_relevance",
        on_change=first_page,
        help="Hide results less than this many standard deviations above this library's average score for your "
        "query (0: off). It means the same on every model: 3 is strict, 1 loose.",
    )
    within = near.slider(
        "Close to the best",
        0.0,
        4.0,
        0.0,
        0.5,
        key="within",
        on_change=first_page,
        help="Hide results more than this many standard deviations below the best result (0: off).",
    )
    collapse = st.checkbox(
        "Collapse near-duplicates",
        key="collapse",
        on_change=first_page,
        help="One card per group of near-identical images, with how many others are like it.",
    )
    filters = search_filters(lib)
    like = st.session_state.like
    if like:
        note, clear = st.columns([5, 1])
        note.markdown(f"More like **{plain(Path(like).name)}**")
        clear.button("Back to my query", key="clear_like", on_click=new_query)
    elif not text.strip() and upload is None:
        st.info("Type what you are looking for, upload an example image, or both.")
        return
    page = st.session_state.page
    try:
        image = decode(upload.getvalue(), name=upload.name).image if upload is not None and not like else None
        query = None if like else text.strip() or None
        options: dict[str, Any] = {
            "image": image,
            "like": like,
            "k": PAGE_SIZE + 1,
            "offset": page * PAGE_SIZE,
            "min_relevance": min_relevance or None,
            "within": within or None,
            **filters,
        }
        found = lib.search_collapsed(query, **options) if collapse else map(Collapsed, lib.search(query, **options))
        entries = list(found)
    except AssetLensError as exc:
        st.warning(plain(str(exc)))
        return
    has_more, entries = len(entries) > PAGE_SIZE, entries[:PAGE_SIZE]
    results = [e.hit for e in entries]
    if not results:
        st.info("No results" + (" above the minimum relevance." if min_relevance or within else "."))
    else:
        first = page * PAGE_SIZE + 1
        st.caption(
            f"Results {first}–{first + len(results) - 1}"
            + (f" · {len(st.session_state.refs)} picked as references" if st.session_state.refs else "")
        )
    for col, entry in grid(entries):
        with col, st.container(border=True, key=f"card-{entry.hit.id}"):
            result_card(entry.hit, len(entry.similar))
    if not results and page == 0:
        return
    prev, where, nxt = st.columns([1, 4, 1])
    prev.button("◀ Previous", key="page_prev", disabled=page == 0, on_click=turn_page, args=(-1,))
    where.caption(f"Page {page + 1}")
    nxt.button("Next ▶", key="page_next", disabled=not has_more, on_click=turn_page, args=(1,))


def search_filters(lib: Library) -> dict[str, Any]:
    """The filter controls, and what they select as ``Library.search`` takes it."""
    counts = lib.tag_counts()
    picked = st.session_state.get("filter_tags") or []
    st.session_state.filter_tags = [t for t in picked if t in counts]  # tags gone since (re-tagged) drop out
    with st.expander("Filters"):
        shape, wide, high = st.columns(3)
        orientation = shape.selectbox(
            "Orientation", ["any", *ORIENTATIONS], key="filter_orientation", on_change=first_page
        )
        min_width = wide.number_input(
            "Minimum width (px)", 0, 2**31 - 1, 0, 100, key="filter_min_width", on_change=first_page
        )
        min_height = high.number_input(
            "Minimum height (px)", 0, 2**31 - 1, 0, 100, key="filter_min_height", on_change=first_page
        )
        kinds, since_col, before_col = st.columns(3)
        types = kinds.multiselect("File types", sorted(FILE_TYPE_NAMES), key="filter_types", on_change=first_page)
        since = since_col.date_input("Modified on or after", None, key="filter_since", on_change=first_page)
        before = before_col.date_input("Modified before", None, key="filter_before", on_change=first_page)
        tags = st.multiselect(
            "Tags",
            list(counts),
            key="filter_tags",
            format_func=lambda tag: f"{tag} ({counts[tag]})",
            on_change=first_page,
            placeholder="Choose tags" if counts else "No tags yet: tag the images in the Library tab",
            help="Only images carrying every tag chosen.",
        )
    return {
        "orientation": None if orientation == "any" else orientation,
        "min_width": int(min_width) or None,
        "min_height": int(min_height) or None,
        "file_types": types or None,
        "since": since,
        "before": before,
        "tags": tags,
    }


def result_card(result: SearchResult, similar: int = 0) -> None:
    show_image(result.path)
    tag = (" · generated" if result.origin == "generated" else "") + (f" · {similar} similar" if similar else "")
    relevance = f" ({result.relevance:+.1f} sd)" if result.relevance is not None else ""
    st.caption(f"**{result.score:.3f}**{relevance} · {plain(result.filename)}{tag}")
    if result.tags:
        st.caption(" · ".join(plain(t) for t in result.tags), help="Auto-tags (Library tab: Tag images)")
    st.checkbox(
        "Use as reference",
        key=f"ref-{result.id}",
        value=result.path in st.session_state.refs,
        on_change=toggle_reference,
        args=(result,),
    )
    st.button("More like this", key=f"like-{result.id}", on_click=more_like, args=(result.path,))


def start_indexing(worker: Worker) -> None:
    try:
        worker.start(st.session_state.index_folder.strip(), st.session_state.prune, st.session_state.watch)
    except AssetLensError as exc:
        st.session_state.index_error = str(exc)


def library_panel(worker: Worker) -> None:
    busy = worker.job is not None and worker.job.running
    st.fragment(library_status, run_every=PROGRESS_EVERY_S if busy else None)(worker)
    folder = st.text_input(
        "Folder to index",
        key="index_folder",
        placeholder="/photos/catalogue",
        help="A folder on the machine running AssetLens; sub-folders are included.",
    )
    st.checkbox("Also remove images whose files are gone", key="prune")
    st.checkbox(
        "Keep watching the folder",
        key="watch",
        help="After indexing, new, changed, moved and deleted files are indexed as they happen, until stopped.",
    )
    st.button(
        "Index folder",
        key="index_go",
        type="primary",
        disabled=busy or not folder.strip(),
        on_click=start_indexing,
        args=(worker,),
        help="Runs in the background: searching, closing the tab or reloading the page does not stop it.",
    )
    error = st.session_state.pop("index_error", None)
    if error:
        st.error(plain(error))
    tag_images(worker.library, busy)


def tag_images(lib: Library, busy: bool) -> None:
    """Auto-tag the library with the default vocabulary, with a progress bar (``Library.tag``)."""
    if not st.button(
        "Tag images",
        key="tag_go",
        disabled=busy,
        help="Zero-shot labels for every image: its object kind, colour and setting from a product-shot vocabulary. "
        "Only images not tagged yet are scored.",
    ):
        return
    bar = st.progress(0.0, text="Tagging")

    def update(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Tagging: {done:,} of {total:,}")

    try:
        report = lib.tag(progress=update)
    except AssetLensError as exc:
        st.error(plain(str(exc)))
        return
    finally:
        bar.empty()
    st.success(
        f"Tagged {report.tagged:,} image(s) from {report.labels} labels"
        + (f"; {report.unchanged:,} already had these tags." if report.unchanged else ".")
    )


def library_status(worker: Worker) -> None:
    """The library's stats and the index run's progress or outcome; reruns on its own while a run goes on."""
    job = worker.job
    if job is not None and not job.running and st.session_state.get("index_watched"):
        st.session_state.index_watched = False
        st.rerun()  # the whole page: the form comes back and the timer stops
    stats_box(worker.library)
    if job is None:
        return
    if job.running:
        st.session_state.index_watched = True
        index_progress(job)
    else:
        index_outcome(job)


def index_progress(job: IndexJob) -> None:
    where = plain(job.folder)
    if job.watching:
        st.caption(f"Watching {where}: {job.batches} batch(es) of changes indexed so far.")
    elif job.total is None:
        st.progress(0.0, text=f"Scanning {where}…")
    else:
        fraction = job.done / job.total if job.total else 1.0
        st.progress(fraction, text=f"Indexing {where}: {job.done} of {job.total} new or changed files")
    if job.stop.is_set():
        st.caption("Stopping after the batch in progress; everything indexed so far is kept.")
    else:
        st.button("Stop", key="index_stop", on_click=job.stop.set)


def index_outcome(job: IndexJob) -> None:
    if job.error is not None:
        st.error(plain(job.error))
        return
    report = job.report
    if report is None:
        return
    (st.warning if report.stopped else st.success)(plain(f"{job.folder}: {report.summary()}"))
    if report.failed:
        with st.expander(f"{len(report.failed)} file(s) skipped"):
            st.dataframe(
                {"file": [p for p, _ in report.failed], "reason": [r for _, r in report.failed]}, hide_index=True
            )


def stats_box(lib: Library) -> None:
    stats = lib.stats()
    try:
        device = lib.runtime().provider.removesuffix("ExecutionProvider") if stats.count else "—"
    except AssetLensError as exc:
        device = "—"
        st.warning(plain(str(exc)))
    shown: list[tuple[str, str | int]] = [
        ("Images", stats.count),
        ("Model", plain(Path(stats.model).name) if stats.model else "—"),
        ("Precision", stats.precision or "—"),
        ("Device", device),
    ]
    for col, (label, value) in zip(st.columns(len(shown)), shown, strict=True):
        col.metric(label, value)
    where = f"Library {stats.uri} · collection {stats.collection} · search copy {stats.search_copy}"
    st.caption(plain(where))


def gemini_models(cfg: argparse.Namespace) -> list[str]:
    """The image models to choose from: the registry's live ones, and the one the app was started with."""
    names = [m.name for m in offered_models()]
    try:
        started = model_name(cfg.gemini_model)
    except UsageError:
        return names
    return names if started in names else [started, *names]


def model_label(name: str) -> str:
    entry = known_model(name)
    return entry.describe() if entry else name


def model_choice(cfg: argparse.Namespace) -> tuple[str, str | None]:
    """The Gemini model and output size boxes: (model, size or None for the model's default)."""
    names = gemini_models(cfg)
    model_col, size_col = st.columns(2)
    model = model_col.selectbox("Gemini model", names, key="gemini_model", format_func=model_label) or names[0]
    entry = known_model(model)
    sizes = [MODEL_SIZE, *(entry.image_sizes if entry else IMAGE_SIZES)]
    size = size_col.selectbox("Output size", sizes, key="image_size", disabled=len(sizes) == 1) or MODEL_SIZE
    limit = f"{entry.name} takes up to {entry.max_references} reference images. " if entry else ""
    st.caption(limit + "Generated images carry Google's invisible SynthID watermark.")
    return model, None if size == MODEL_SIZE else size


def generate_panel(lib: Library, cfg: argparse.Namespace) -> None:
    key = resolve_api_key(st.session_state.get("gemini_key"))
    if not key:
        st.info(
            "Generation is off: no Gemini API key. Set GEMINI_API_KEY (or GOOGLE_API_KEY) before starting "
            "`assetlens ui`, or paste a key in the sidebar (kept for this session only, never saved). "
            "Search and indexing work without it."
        )
    refs: dict[str, Reference] = st.session_state.refs
    st.subheader("References")
    if not refs:
        st.caption("None yet: tick “Use as reference” under search results to ground the image on real photos.")
    for col, ref in grid(list(refs.values())):
        with col:
            score = "" if ref.score is None else f"**{ref.score:.3f}** · "
            show_image(ref.path)
            st.caption(score + plain(Path(ref.path).name))
            st.button("Remove", key=f"drop-{path_id(ref.path)}", on_click=drop_reference, args=(ref.path,))
    if refs:
        packed = zip_picks([Pick(n, ref.path, ref.score) for n, ref in enumerate(refs.values(), 1)])
        st.download_button(
            f"Download {len(packed.packed)} reference(s) as zip",
            packed.data,
            file_name="assetlens-references.zip",
            mime="application/zip",
            key="refs_zip",
            disabled=not packed.packed,
            help="Each file as RANK-NAME (the order they were picked in), with manifest.csv.",
        )
    st.selectbox("Template", [NO_TEMPLATE, *TEMPLATES], key="template", on_change=apply_template)
    prompt = st.text_area(
        "Prompt", key="prompt", height=110, placeholder="A summer promo of this watch on a sunny beach towel"
    )
    model, size = model_choice(cfg)
    aspect_col, variants_col, add_col = st.columns(3)
    aspect = aspect_col.selectbox("Aspect ratio", [MODEL_ASPECT, *ASPECT_RATIOS], key="aspect")
    variants = variants_col.number_input("Variants", 1, MAX_VARIANTS, 1, key="variants")
    add = add_col.checkbox("Add results to the library", key="add_generated")
    if st.button("Generate", key="generate", type="primary", disabled=not key or not prompt.strip()):
        with st.spinner(f"Generating with {plain(model)}…"):
            try:
                batch = Generator(key, model=model).generate_and_add(
                    prompt,
                    list(refs.values()),
                    cfg.out,
                    library=lib if add else None,
                    variants=int(variants),
                    aspect_ratio=None if aspect == MODEL_ASPECT else aspect,
                    image_size=size,
                )
                st.session_state.last_outputs = [str(o.sidecar) for o in batch.outputs]
                if batch.added is not None:
                    st.toast(plain(f"Added to the library: {batch.added.summary()}"))
            except AssetLensError as exc:
                st.error(plain(str(exc)))
    for sidecar in st.session_state.get("last_outputs", []):
        try:
            latest(Generation.load(Path(sidecar)))
        except AssetLensError as exc:
            st.warning(plain(str(exc)))
    gallery(cfg.out)


def latest(gen: Generation) -> None:
    """A fresh output beside the references it was made from."""
    with st.container(border=True, key=f"result-{gen.image.stem}"):
        left, right = st.columns([1, 3])
        with left:
            st.markdown("**References**")
            for ref in gen.references:
                show_image(ref.path, caption=Path(ref.path).name)
            if not gen.references:
                st.caption("none (prompt only)")
        with right:
            st.markdown(f"**Result** · {plain(gen.model)}")
            st.image(str(gen.image), width="stretch")
            if gen.text:
                st.caption(plain(gen.text))
            st.download_button(
                "Download PNG",
                gen.image.read_bytes(),
                file_name=gen.image.name,
                mime="image/png",
                key=f"download-{gen.image.stem}",
            )


def gallery(folder: str) -> None:
    past = load_gallery(folder)
    st.subheader("Past generations")
    if not past:
        st.caption(plain(f"Nothing generated yet; images and their sidecars will be kept in {folder}."))
        return
    st.caption(
        plain(f"{len(past)} in {Path(folder).resolve()}")
        + (f", latest {GALLERY_SIZE} shown" if len(past) > GALLERY_SIZE else "")
    )
    shown = past[:GALLERY_SIZE]
    for col, gen in grid(shown):
        with col:
            show_image(gen.image)
            when = gen.created[:16].replace("T", " ")
            st.caption(f"{plain(gen.prompt[:80])} · {len(gen.references)} reference(s) · {when} UTC")


def duplicates_panel(lib: Library) -> None:
    """Groups of near-identical images, found on request (it reads every vector), as rows of thumbnails."""
    threshold = st.slider(
        "Similarity threshold",
        0.8,
        1.0,
        lib.duplicate_threshold(),
        0.01,
        key="dup_threshold",
        help="Two images are one shot when their cosine similarity is above this.",
    )
    if st.button("Find duplicates", key="dup_go", type="primary"):
        try:
            st.session_state.duplicates = lib.duplicates(threshold)
        except AssetLensError as exc:
            st.warning(plain(str(exc)))
            return
    report: DuplicateReport | None = st.session_state.get("duplicates")
    if report is None:
        st.caption("Finds copies of one shot: resized, recompressed, cropped, colour-graded or watermarked.")
        return
    more = f" · the largest {MAX_GROUPS} shown" if len(report.groups) > MAX_GROUPS else ""
    st.caption(
        f"{len(report.groups)} group(s) · {report.redundant} image(s) besides the one kept of each · "
        f"among {report.images} at threshold {report.threshold:g}{more}"
    )
    for n, group in enumerate(report.groups[:MAX_GROUPS], 1):
        with st.container(border=True, key=f"group-{n}"):
            st.markdown(f"**Group {n}** · {group.kind} · {len(group.members)} images")
            for col, member in grid(group.members):
                with col:
                    show_image(member.path)
                    mark = "**keep**" if member.keep else f"{member.similarity:.3f}"
                    st.caption(f"{mark} · {member.width}×{member.height} · {plain(member.filename)}")


def sidebar(cfg: argparse.Namespace) -> None:
    with st.sidebar:
        st.title("AssetLens")
        st.caption("Search your image library, then generate new images grounded on the best shots.")
        st.subheader("Gemini")
        from_env = api_key_source()
        if from_env:
            st.caption(plain(f"API key from {from_env}."))
        else:
            st.text_input(
                "Gemini API key",
                key="gemini_key",
                type="password",
                help="Kept in this browser session's memory only; never saved or logged.",
            )


def admitted() -> bool:
    """Whether this session may see the app: it opened the URL with the token ``assetlens ui`` printed
    (remembered for the session's reruns), or the app was started without one (``--no-token``)."""
    expected = os.environ.get(TOKEN_VARIABLE)
    if not expected or st.session_state.get("admitted"):
        return True
    given = st.query_params.get(TOKEN_PARAMETER, "")
    if token_matches(given, expected):
        st.session_state.admitted = True
        return True
    return False


def main() -> None:
    st.set_page_config(page_title="AssetLens", page_icon="🔎", layout="wide")
    if not admitted():
        st.info("Open the URL that `assetlens ui` printed in its terminal; it carries this server's access token.")
        st.stop()
    cfg = config(sys.argv[1:])
    for name, value in (("like", None), ("page", 0), ("refs", {}), ("gemini_model", cfg.gemini_model)):
        st.session_state.setdefault(name, value)
    sidebar(cfg)
    try:
        worker = open_library(cfg.db, cfg.uri, cfg.collection, cfg.model, cfg.device)
    except AssetLensError as exc:
        st.error(plain(str(exc)))
        st.stop()
    lib = worker.library
    search_tab, generate_tab, library_tab, duplicates_tab = st.tabs(["Search", "Generate", "Library", "Duplicates"])
    with search_tab:
        search_panel(lib)
    with generate_tab:
        generate_panel(lib, cfg)
    with library_tab:
        library_panel(worker)
    with duplicates_tab:
        duplicates_panel(lib)


main()
