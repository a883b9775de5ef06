"""``assetlens models pull``: pre-exported ONNX towers from the Hugging Face Hub, pinned and verified.

A registry entry's ``sources`` (``engine.registry.Source``) say where the towers are published and how
to run them; ``engine.sources`` knows each layout's files. A pull:

1. asks the Hub for each repository at its pinned commit (``/api/models/{repo}/revision/{rev}``) and
   refuses a commit or a published sha256 that is not the pin, before downloading anything;
2. downloads the files with ``huggingface_hub`` (``HF_ENDPOINT``, ``HF_HOME``, ``HF_TOKEN`` and the
   token file honoured) into ``.pull/`` inside the model's cache folder, where an interrupted download
   is resumed by the next pull;
3. checks each file's sha256 against the pin, the repository's preprocessing file against the registry,
   and the graphs' inputs and outputs against the source's;
4. lays the towers out as an export does (``image.onnx``, ``text.onnx``, ``tokenizer.json`` and the
   same ``manifest.json``) in a staging folder, runs the self-check there, and renames it into place,
   so the cache holds a whole verified model or none.

An entry whose pins were not recorded is refused unless the caller trusts the Hub's current files
(``trust_unpinned``): they are then downloaded at the commit the Hub names now, and the report carries
the pins seen, to be recorded in the registry.

The self-check runs both towers on a fixed image and two captions: shapes, finite values, unit norms
where the source says its graphs normalise, and, where the entry has a ``Reference``, the vectors the
reference gives (cosine at least 0.9999 at fp32, 0.99 for fp16 and int8, the export's floors).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, ImageDraw

from assetlens.engine import onnx_proto
from assetlens.engine.cpu import this_cpu
from assetlens.engine.encoders import Encoder, normalize
from assetlens.engine.errors import ModelDownloadError, ModelNotFoundError, ModelVerificationError
from assetlens.engine.manifest import MANIFEST_FILE, ImageFacts, ModelManifest, Parity, TextFacts, file_sha256
from assetlens.engine.models import load_facts, model_root, resolve_model_dir, slug
from assetlens.engine.preprocess import model_batch
from assetlens.engine.registry import ModelSpec, RepoPin, Source, find_model
from assetlens.engine.sources import (
    RepoFile,
    SourceFiles,
    check_context_length,
    check_preprocessing,
    pinned,
    source_files,
)
from assetlens.engine.tokens import canonicalize_file

IMAGE_FILE = "image.onnx"
TEXT_FILE = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"
PULL_DIR = ".pull"
SELF_CHECK_CAPTIONS = ("a photo of a cat", "a red chair in an empty room")
# The export's parity floors (export/onnx_export.py), against the registry's reference vectors.
FP32_MIN_COSINE = 0.9999
REDUCED_MIN_COSINE = 0.99
NORM_TOLERANCE = 1e-3
NO_NETWORK = (
    "Cannot reach the Hub ({endpoint}); run once with network, or copy the model folder, "
    "or export from a local checkpoint."
)

Progress = Callable[[int, int], None]
"""Bytes downloaded so far, bytes in all."""


@dataclass(frozen=True)
class PullReport:
    """What a pull did: the folder, the source used, and the pins of the files it installed (those of the
    registry, or, for a trusted unpinned entry, those seen on the Hub)."""

    folder: Path
    source: Source
    pins: tuple[RepoPin, ...]
    downloaded_bytes: int
    pinned: bool
    reference_checked: bool
    already_here: bool = False


def hub_offline() -> bool:
    """Hugging Face's offline mode (``HF_HUB_OFFLINE``), read now rather than when huggingface_hub loaded."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def pick_source(spec: ModelSpec, precision: str) -> Source:
    """The first source of ``spec`` that publishes ``precision``."""
    if not spec.sources:
        raise ModelNotFoundError(
            f"{spec.name} has no pre-exported ONNX source in the registry; export it with: "
            f"assetlens export --model {spec.name} --precision {precision}"
        )
    for source in spec.sources:
        if precision in source.precisions:
            return source
    offered = sorted({p for s in spec.sources for p in s.precisions})
    raise ModelNotFoundError(
        f"The Hub sources of {spec.name} publish {', '.join(offered)}, not {precision}; pull one of those, or "
        f"export {precision} with: assetlens export --model {spec.name} --precision {precision}"
    )


def ensure_model(name: str | os.PathLike[str] | None, precision: str, progress: Progress | None = None) -> Path:
    """``resolve_model_dir``, pulling a registry model with a Hub source that is not here yet (``pull``
    refuses, in a sentence, an entry without recorded pins and Hugging Face's offline mode)."""
    try:
        return resolve_model_dir(name, precision)
    except ModelNotFoundError:
        spec = find_model(str(name)) if name is not None else None
        if spec is None or spec.shipped or not any(precision in s.precisions for s in spec.sources):
            raise
    return pull(str(name), precision, progress=progress).folder


def pull(
    name: str, precision: str = "fp32", *, trust_unpinned: bool = False, progress: Progress | None = None
) -> PullReport:
    """Install the registry model ``name`` at ``precision`` from its Hub source; see the module docstring.
    Every failure is one sentence (``ModelDownloadError``, ``ModelVerificationError``) and installs nothing."""
    spec = find_model(name)
    if spec is None or spec.shipped:
        raise ModelNotFoundError(
            f"{name!r} is not a registry model with a Hub source; run assetlens models to list the known models."
        )
    source = pick_source(spec, precision)
    root = model_root(spec)
    final = root / precision
    recorded = pinned(source, precision)
    if (final / MANIFEST_FILE).is_file():
        return PullReport(final, source, source.repos, 0, recorded, False, already_here=True)
    if not recorded and not trust_unpinned:
        raise ModelVerificationError(
            f"{name} ({precision}) is not here yet, and the registry has no recorded pins (commit and sha256) for "
            f"its files in {source.repo.repo}; take the Hub's current files and print their pins with: "
            f"assetlens models pull {name} --precision {precision} --trust-unpinned (on a machine with network), "
            f"or export it with: assetlens export --model {name} --precision {precision}."
        )
    files = source_files(source, precision)
    if hub_offline():
        raise ModelDownloadError(
            f"Hugging Face's offline mode (HF_HUB_OFFLINE) is on, so {spec.name} cannot be downloaded; "
            "run once with network, or copy the model folder, or export from a local checkpoint."
        )
    with _hub_errors(root), _quiet_hub():
        commits, sizes = _resolve(source, files)
        paths = _download(files, commits, sizes, root, progress)
    seen = _verify_digests(source, files, commits, paths)
    check_preprocessing(source, spec, paths[files.preprocessing])
    check_context_length(source, spec, paths[files.config] if files.config else None)
    with _staging(final) as staging:
        for repo_file, name_here in ((files.image, IMAGE_FILE), (files.text, TEXT_FILE)):
            shutil.copyfile(paths[repo_file], staging / name_here)
        shutil.copyfile(paths[files.tokenizer], staging / TOKENIZER_FILE)
        if spec.text.canonicalize:
            canonicalize_file(staging / TOKENIZER_FILE)
        manifest = _manifest(spec, source, precision, commits, staging)
        manifest.save(staging)
        reference_checked = self_check(staging, source)
    for pin in source.repos:
        shutil.rmtree(_pull_dir(root, pin.repo, commits[pin.repo]), ignore_errors=True)
    with contextlib.suppress(OSError):
        (root / PULL_DIR).rmdir()
    return PullReport(final, source, seen, sum(sizes.values()), recorded, reference_checked)


# ------------------------------------------------------------------------------- Hub


def _api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint())


def _resolve(source: Source, files: SourceFiles) -> tuple[dict[str, str], dict[RepoFile, int]]:
    """Each repository's commit (the pin, checked against the Hub, or the Hub's current one) and the size
    of each file; a published LFS sha256 that is not the pin is refused before any download."""
    commits: dict[str, str] = {}
    sizes: dict[RepoFile, int] = {}
    for pin in source.repos:
        info = _api().model_info(pin.repo, revision=pin.revision, files_metadata=True)
        if pin.revision is not None and info.sha != pin.revision:
            raise ModelVerificationError(
                f"The Hub serves {pin.repo} at commit {info.sha} where the registry pins {pin.revision}; "
                "nothing was installed."
            )
        commits[pin.repo] = str(info.sha)
        siblings = {s.rfilename: s for s in info.siblings or ()}
        for repo_file in (f for f in files.all if f.repo.repo == pin.repo):
            sibling = siblings.get(repo_file.path)
            if sibling is None:
                raise ModelVerificationError(
                    f"{pin.repo} has no file {repo_file.path} at commit {info.sha}; nothing was installed."
                )
            published = sibling.lfs.sha256 if sibling.lfs is not None else None
            want = pin.digest(repo_file.path)
            if published is not None and want is not None and published != want:
                raise ModelVerificationError(
                    f"The Hub lists {pin.repo}/{repo_file.path} with sha256 {published}, the registry pins "
                    f"{want}; nothing was installed."
                )
            sizes[repo_file] = int(sibling.size or 0)
    return commits, sizes


def _pull_dir(root: Path, repo: str, commit: str) -> Path:
    return root / PULL_DIR / slug(f"{repo}@{commit}")


def _download(
    files: SourceFiles, commits: dict[str, str], sizes: dict[RepoFile, int], root: Path, progress: Progress | None
) -> dict[RepoFile, Path]:
    """Each file downloaded (or found complete) under ``root/.pull``; partial files stay there to be resumed."""
    from huggingface_hub import hf_hub_download

    total = sum(sizes.values())
    done = 0
    paths: dict[RepoFile, Path] = {}
    for repo_file in files.all:
        if repo_file in paths:
            continue
        where = _pull_dir(root, repo_file.repo.repo, commits[repo_file.repo.repo])
        with _watch_bytes(where, done, total, progress):
            got = hf_hub_download(
                repo_file.repo.repo,
                repo_file.path,
                revision=commits[repo_file.repo.repo],
                local_dir=where,
                endpoint=hub_endpoint(),
            )
        paths[repo_file] = Path(got)
        done += sizes.get(repo_file, 0)
        if progress is not None:
            progress(done, total)
    return paths


@contextlib.contextmanager
def _watch_bytes(folder: Path, before: int, total: int, progress: Progress | None) -> Iterator[None]:
    """Report the bytes of the file being downloaded (huggingface_hub's ``.incomplete`` files under
    ``folder``) every quarter of a second."""
    if progress is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.25):
            partial = sum(p.stat().st_size for p in folder.glob(".cache/huggingface/download/**/*.incomplete"))
            progress(min(before + partial, total), total)

    watcher = threading.Thread(target=poll, name="assetlens-pull-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _verify_digests(
    source: Source, files: SourceFiles, commits: dict[str, str], paths: dict[RepoFile, Path]
) -> tuple[RepoPin, ...]:
    """Each file's sha256 against its pin; a file that is not what the registry says is deleted (the next
    pull fetches it anew) and refused. Returns the pins seen."""
    seen: dict[str, list[tuple[str, str]]] = {pin.repo: [] for pin in source.repos}
    for repo_file, path in paths.items():
        digest = file_sha256(path)
        want = repo_file.repo.digest(repo_file.path)
        if want is not None and digest != want:
            path.unlink(missing_ok=True)
            raise ModelVerificationError(
                f"{repo_file.repo.repo}/{repo_file.path} has sha256 {digest}, not the {want} the registry pins; "
                "it was deleted and nothing was installed."
            )
        seen[repo_file.repo.repo].append((repo_file.path, digest))
    return tuple(RepoPin(pin.repo, commits[pin.repo], tuple(sorted(seen[pin.repo]))) for pin in source.repos)


@contextlib.contextmanager
def _hub_errors(root: Path) -> Iterator[None]:
    """huggingface_hub's and the network's exceptions as one sentence each."""
    import requests
    from huggingface_hub import errors as hub

    endpoint = hub_endpoint()
    try:
        yield
    except ModelDownloadError:
        raise
    except hub.GatedRepoError as exc:
        raise ModelDownloadError(
            f"{_repo_of(exc)} is a gated repository (HTTP {_status(exc)}): accept its terms on the Hub, then set "
            "HF_TOKEN or log in with huggingface-cli login; nothing was installed."
        ) from None
    except hub.RepositoryNotFoundError as exc:
        raise ModelDownloadError(
            f"The Hub at {endpoint} has no repository {_repo_of(exc)}, or it needs a token (HTTP {_status(exc)}); "
            "nothing was installed."
        ) from None
    except hub.RevisionNotFoundError as exc:
        raise ModelVerificationError(
            f"{_repo_of(exc)} has no commit the registry pins (HTTP {_status(exc)}); nothing was installed."
        ) from None
    except hub.LocalEntryNotFoundError:
        raise ModelDownloadError(NO_NETWORK.format(endpoint=endpoint)) from None
    except hub.EntryNotFoundError as exc:
        raise ModelVerificationError(f"A file the registry names is not on the Hub ({_url_of(exc)}).") from None
    except hub.HfHubHTTPError as exc:
        raise ModelDownloadError(
            f"The Hub answered HTTP {_status(exc)} for {_url_of(exc)}; run the pull again later "
            "(what was downloaded is kept and resumed)."
        ) from None
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
        raise ModelDownloadError(
            "The download was interrupted; run the same command again to resume it (nothing was installed)."
        ) from None
    except (requests.ConnectionError, requests.Timeout):
        raise ModelDownloadError(NO_NETWORK.format(endpoint=endpoint)) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelDownloadError(
                f"The disk holding {root} is full; free some space and run the pull again (it resumes)."
            ) from None
        if "Consistency check failed" in str(exc):  # huggingface_hub: fewer bytes than announced
            raise ModelDownloadError(
                "The download was interrupted; run the same command again to resume it (nothing was installed)."
            ) from None
        raise ModelDownloadError(f"Cannot write under {root} ({exc.strerror or exc}); nothing was installed.") from None


def _status(exc: Any) -> str:
    response = getattr(exc, "response", None)
    return str(getattr(response, "status_code", "?"))


def _url_of(exc: Any) -> str:
    response = getattr(exc, "response", None)
    return str(getattr(response, "url", "") or "the Hub")


def _repo_of(exc: Any) -> str:
    """The repository in a Hub URL (``/api/models/ORG/NAME/...`` or ``/ORG/NAME/resolve/...``)."""
    parts = urlsplit(_url_of(exc)).path.strip("/").split("/")
    if parts[:2] == ["api", "models"]:
        parts = parts[2:]
    return "/".join(parts[:2]) or "the repository"


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """huggingface_hub's own progress bars off: the caller's progress reports the bytes."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


# ------------------------------------------------------------------------- lay out


def _manifest(spec: ModelSpec, source: Source, precision: str, commits: dict[str, str], folder: Path) -> ModelManifest:
    """The manifest an export would write, from the registry entry and the graphs as they are."""
    import onnxruntime as ort

    image_io = _io(folder / IMAGE_FILE)
    text_io = _io(folder / TEXT_FILE)
    if source.image_input not in image_io.inputs:
        raise ModelVerificationError(
            f"{source.repo.repo}'s image tower takes {', '.join(image_io.inputs)}, not {source.image_input}; "
            "nothing was installed."
        )
    text_inputs = tuple(text_io.inputs)
    if source.text_input not in text_inputs or not set(text_inputs) <= {source.text_input, "attention_mask"}:
        raise ModelVerificationError(
            f"{(source.text_repo or source.repo).repo}'s text tower takes {', '.join(text_inputs)}, not "
            f"{source.text_input} (and an optional attention_mask); nothing was installed."
        )
    dtype = text_io.inputs[source.text_input]
    if dtype != f"tensor({source.token_dtype})":
        raise ModelVerificationError(
            f"The text tower's {source.text_input} is {dtype}, not the {source.token_dtype} the registry says; "
            "nothing was installed."
        )
    image = spec.image
    text = spec.text
    return ModelManifest(
        name=spec.hf_id or spec.name,
        source=" + ".join(f"hf://{repo}@{commit}" for repo, commit in commits.items()) + f" ({source.layout})",
        precision=precision,
        embedding_dim=spec.dim,
        image=ImageFacts.of_spec(
            image,
            file=IMAGE_FILE,
            input_name=source.image_input,
            output_name=_output(image_io.outputs, source.image_output, "image"),
        ),
        text=TextFacts(
            file=TEXT_FILE,
            input_names=text_inputs,
            output_name=_output(text_io.outputs, source.text_output, "text"),
            context_length=text.context_length,
            tokenizer_file=TOKENIZER_FILE,
            pad_token_id=text.pad_token_id,
            padding=source.padding or text.padding,
            padding_side=text.padding_side,
            lowercase=text.lowercase,
            ids_input=source.text_input,
            token_dtype=source.token_dtype,
        ),
        files={file: file_sha256(folder / file) for file in (IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE)},
        opset=onnx_opset(folder / IMAGE_FILE),
        parity=Parity(0.0, 0.0, 0, 0, reference="not yet checked"),
        versions={"huggingface_hub": _version("huggingface_hub"), "onnxruntime": ort.__version__},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


@dataclass(frozen=True)
class _GraphIO:
    inputs: dict[str, str] = field(default_factory=dict)  # name -> ONNX type, e.g. tensor(int32)
    outputs: tuple[str, ...] = ()


def _io(path: Path) -> _GraphIO:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelVerificationError(
            f"onnxruntime cannot load the downloaded {path.name} ({str(exc).splitlines()[0]}); nothing was installed."
        ) from None
    return _GraphIO({i.name: i.type for i in session.get_inputs()}, tuple(o.name for o in session.get_outputs()))


def _output(outputs: tuple[str, ...], wanted: str | None, tower: str) -> str:
    if wanted is None:
        return outputs[0]
    if wanted not in outputs:
        raise ModelVerificationError(
            f"The {tower} tower has no output {wanted} (it has {', '.join(outputs)}); nothing was installed."
        )
    return wanted


# ------------------------------------------------------------------------ self-check


def self_check_image() -> Image.Image:
    """A fixed picture: a colour gradient with a disc and a bar on it."""
    y, x = np.mgrid[0:160, 0:200].astype(np.float32)
    pixels = np.stack([x / 200, y / 160, 1 - x / 200], axis=-1) * 255
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 30, 120, 110), fill=(220, 40, 30))
    draw.rectangle((120, 100, 190, 140), fill=(20, 20, 160))
    return image


def self_check_inputs() -> tuple[list[Image.Image], list[str]]:
    """The fixed image and its mirror, and ``SELF_CHECK_CAPTIONS``: a batch of two of each."""
    image = self_check_image()
    return [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)], list(SELF_CHECK_CAPTIONS)


def raw_vectors(encoder: Encoder) -> dict[str, np.ndarray]:
    """Both towers' outputs for ``self_check_inputs``, as the graphs return them (not normalised here)."""
    facts = encoder.facts
    images, captions = self_check_inputs()
    pixels = {facts.image.input_name: model_batch(images, facts.image)}
    try:
        (image,) = encoder.image_session.run([facts.image.output_name], pixels)
        (text,) = encoder.text_session.run([facts.text.output_name], encoder.text_feeds(captions))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelVerificationError(
            f"The towers do not run on a batch of two ({str(exc).splitlines()[0]}); nothing was installed."
        ) from None
    return {"image": np.asarray(image, dtype=np.float32), "text": np.asarray(text, dtype=np.float32)}


def self_check(folder: Path, source: Source) -> bool:
    """Run both towers of the model in ``folder`` on the fixed inputs and refuse it, in one sentence, when
    the shapes, values, norms or the registry's reference disagree; records the result in its manifest's
    parity. Returns whether a reference was compared."""
    facts = load_facts(folder)
    raw = raw_vectors(Encoder(facts, device="cpu"))
    reference = source.reference
    wanted = {"image": reference.image, "text": reference.text} if reference else {}
    floor = FP32_MIN_COSINE if facts.precision == "fp32" else REDUCED_MIN_COSINE
    cosines = {"image": 1.0, "text": 1.0}
    for tower, vectors in raw.items():
        if vectors.shape != (2, facts.embedding_dim) or not np.all(np.isfinite(vectors)):
            raise ModelVerificationError(
                f"The {tower} tower returned values of shape {vectors.shape} (finite: {np.all(np.isfinite(vectors))}), "
                f"not two finite {facts.embedding_dim}-d vectors; nothing was installed."
            )
        norms = np.linalg.norm(vectors, axis=-1)
        if source.normalised and not np.allclose(norms, 1.0, atol=NORM_TOLERANCE):
            raise ModelVerificationError(
                f"The {tower} tower's vectors have norms {', '.join(f'{n:.4f}' for n in norms)}, where the "
                "registry says the graph normalises; nothing was installed."
            )
        if tower in wanted:
            expected = np.asarray(wanted[tower], dtype=np.float32)
            if expected.size != vectors.size:
                raise ModelVerificationError(
                    f"The registry's {tower} reference has {expected.size} values, the model's self-check "
                    f"{vectors.size}; nothing was installed."
                )
            cosines[tower] = float(np.min((normalize(vectors) * normalize(expected.reshape(2, -1))).sum(-1)))
            if not cosines[tower] >= floor:
                raise ModelVerificationError(
                    f"The {tower} tower does not reproduce the registry's reference (min cosine "
                    f"{cosines[tower]:.6f}, required {floor}); nothing was installed."
                )
    how = f"registry reference ({reference.how})" if reference else "none published; shapes, values and norms only"
    parity = Parity(cosines["image"], cosines["text"], 2, len(SELF_CHECK_CAPTIONS), how, cpu=this_cpu())
    dataclasses.replace(facts.manifest, parity=parity).save(folder)
    return reference is not None


def self_check_vectors(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The unit vectors a ``Reference`` holds, computed from a model folder (an export's or a pull's)."""
    raw = raw_vectors(Encoder(load_facts(folder), device="cpu"))
    return normalize(raw["image"]), normalize(raw["text"])


# ------------------------------------------------------------------------- plumbing


@contextlib.contextmanager
def _staging(final: Path) -> Iterator[Path]:
    """A fresh folder beside ``final``, renamed into its place if the block succeeds, else removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would make the installed model private
    try:
        yield staging
        if final.exists():  # another pull finished first: replace its folder whole, as an export does
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        staging.rename(final)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelDownloadError(
                f"The disk holding {final.parent} is full; free some space and run the pull again."
            ) from None
        raise ModelDownloadError(f"Cannot write {final} ({exc.strerror or exc}); nothing was installed.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def onnx_opset(path: Path) -> int:
    """The default-domain opset an ONNX file imports (0 if none), read without the ``onnx`` package;
    ``ValueError`` for a file that is not a whole protobuf message."""
    return onnx_proto.default_opset(onnx_proto.mapped(path))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
