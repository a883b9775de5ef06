"""Image generation with Gemini, grounded on reference photos from the library.

"Shoot once, reuse forever": the prompt goes to Gemini's image model
together with real product photos (picked by hand or retrieved by a
search), so the generated image keeps the product true to life.

    gen = Generator()                      # key from GEMINI_API_KEY / GOOGLE_API_KEY
    refs = references_from_search(lib, "a golden watch", k=2)
    for out in gen.generate(TEMPLATES["Product promo"], refs, "generated/"):
        print(out.image)

Each output is a PNG with a JSON sidecar beside it (prompt, model, the
references with their scores, time, the model's text), so a gallery can be
rebuilt from the folder alone. Nothing is ever overwritten: a failure keeps
every earlier output, and the caller keeps the prompt and references.

The API key lives only in memory: it is never written to disk or logged,
and every message this module raises is scrubbed of it, and of any proxy
credentials in the base URL. The SDK honours ``GOOGLE_GEMINI_BASE_URL`` (a
proxy, or the test stub); ``base_url`` overrides it.

Which models exist is the service's answer (``Generator.image_models``);
``engine.gemini_models`` supplies the default and each model's limits.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from PIL import Image

from assetlens.engine.errors import AssetLensError, GenerationError, ImageDecodeError, UsageError
from assetlens.engine.gemini_models import (
    DEFAULT_MODEL,
    check_limits,
    image_models_in,
    known_model,
    model_name,
    spoken_date,
)
from assetlens.engine.preprocess import decode

if TYPE_CHECKING:
    from assetlens.engine.indexer import IndexReport
    from assetlens.engine.library import Library
    from assetlens.engine.search import SearchResult

log = logging.getLogger(__name__)

DEFAULT_OUT_DIR = "generated"
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
BASE_URL_VARIABLE = "GOOGLE_GEMINI_BASE_URL"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
MAX_VARIANTS = 4
# References larger than this (longest side, or file size) are downscaled and re-encoded
# before sending: the model sees about 1K pixels anyway, and a request carries 20 MB at most.
MAX_REFERENCE_SIDE = 1536
MAX_REFERENCE_BYTES = 4 * 1024 * 1024
_SENT_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

TEMPLATES: dict[str, str] = {
    "Product promo": (
        "Create a polished promotional photo of the exact product shown in the reference images, "
        "in a bright, modern studio scene with soft shadows and room for a headline. Keep the product's "
        "shape, colours, materials and details exactly as in the references."
    ),
    "Avatar outfit": (
        "Create a full-body game avatar wearing the outfit and accessories shown in the reference images, "
        "standing in a neutral pose on a plain background. Keep every garment's cut, colours and patterns "
        "faithful to the references."
    ),
    "Brand asset": (
        "Create a clean, wide brand banner that features the item from the reference images on a simple "
        "background in matching colours, with generous empty space on one side for text. Keep the item "
        "exactly as it appears in the references."
    ),
}


@dataclass(frozen=True)
class Reference:
    """A reference photo sent with the prompt; ``score`` when it came from a search."""

    path: str
    score: float | None = None

    @classmethod
    def from_result(cls, result: SearchResult) -> Reference:
        return cls(result.path, round(float(result.score), 6))


@dataclass(frozen=True)
class Generation:
    """One generated image on disk and the facts its sidecar records."""

    image: Path
    prompt: str
    model: str
    references: tuple[Reference, ...]
    created: str
    text: str = ""
    finish_reason: str = ""
    aspect_ratio: str | None = None
    variant: int = 1
    image_size: str | None = None

    @property
    def sidecar(self) -> Path:
        return self.image.with_suffix(".json")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image"] = self.image.name
        data["references"] = [asdict(r) for r in self.references]
        return data

    @classmethod
    def load(cls, sidecar: Path) -> Generation:
        """Read a sidecar; raises ``GenerationError`` when it is not one of ours."""
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            return cls(
                image=sidecar.with_name(data["image"]),
                prompt=data["prompt"],
                model=data["model"],
                references=tuple(Reference(**r) for r in data["references"]),
                created=data["created"],
                text=data.get("text", ""),
                finish_reason=data.get("finish_reason", ""),
                aspect_ratio=data.get("aspect_ratio"),
                variant=data.get("variant", 1),
                image_size=data.get("image_size"),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GenerationError(f"{sidecar} is not a readable generation sidecar ({exc}).") from None


def load_gallery(folder: str | os.PathLike[str]) -> list[Generation]:
    """Past generations in ``folder`` whose image still exists, newest first; stray files are skipped."""
    found: list[Generation] = []
    for sidecar in Path(folder).glob("*.json"):
        try:
            generation = Generation.load(sidecar)
        except GenerationError as exc:
            log.debug("%s", exc)
            continue
        if generation.image.is_file():
            found.append(generation)
    return sorted(found, key=lambda g: (g.created, g.image.name), reverse=True)


@dataclass(frozen=True)
class GenerationBatch:
    """The images one ``Generator.generate_and_add`` call saved, and what adding them to the library did."""

    outputs: list[Generation]
    added: IndexReport | None = None


def api_key_source() -> str | None:
    """The variable the key comes from: ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``; None when neither is set."""
    return next((name for name in KEY_VARIABLES if os.environ.get(name, "").strip()), None)


def resolve_api_key(given: str | None = None) -> str | None:
    """The key to use: ``given`` (e.g. pasted in the app) when not blank, else the environment's."""
    source = api_key_source()
    return (given or "").strip() or (os.environ[source].strip() if source else None)


def references_from_search(lib: Library, query: str, k: int = 1) -> list[Reference]:
    """The top ``k`` images for a text query, as references carrying their scores."""
    results = lib.search(query, k=k)
    if not results:
        raise UsageError(f'No image in the library matches "{query}"; index more images or change the query.')
    return [Reference.from_result(r) for r in results]


def reference_payload(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """(bytes, MIME type) to send for a reference: the file as is when small enough, else downscaled."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"The reference image {path} does not exist.")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            # Only upright files go as is: a rotated JPEG would reach the model sideways.
            as_is = (
                fmt in _SENT_AS_IS
                and max(probe.size) <= MAX_REFERENCE_SIDE
                and len(data) <= MAX_REFERENCE_BYTES
                and probe.getexif().get(0x0112, 1) == 1
            )
        if as_is:
            return data, _SENT_AS_IS[fmt]
        img = decode(data, name=str(path)).image
    except ImageDecodeError as exc:
        raise UsageError(f"Reference image: {exc}") from None
    except (OSError, ValueError):
        raise UsageError(f"The reference {path} is not an image Pillow can read.") from None
    img.thumbnail((MAX_REFERENCE_SIDE, MAX_REFERENCE_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue(), "image/jpeg"


def _slug(text: str, length: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].rstrip("-") or "image"


def _save_png(data: bytes, mime: str, folder: Path, stem: str) -> Path:
    """Write a new PNG under a name no earlier output has; never overwrites."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if mime != "image/png" or img.format != "PNG":
                buf = io.BytesIO()
                img.save(buf, "PNG")
                data = buf.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        raise GenerationError("Gemini returned image data that is not a readable image.") from None
    for n in range(1, 10_000):
        target = folder / f"{stem}-{n}.png"
        try:
            with open(target, "xb") as fh:
                fh.write(data)
            return target
        except FileExistsError:
            continue
    raise GenerationError(f"{folder} already holds too many outputs named {stem}-*.png.")


def _write_sidecar(generation: Generation) -> None:
    tmp = generation.sidecar.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(generation.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, generation.sidecar)


def _retry_delay(details: Any) -> float | None:
    """The server's RetryInfo delay ("37s") in seconds, when a 429 carries one."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in error.get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of whichever HTTP stack the SDK uses (httpx or httpx2)."""
    found: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


def _name(value: Any) -> str:
    """An enum's name; the raw text for a value this SDK version does not know yet."""
    return "" if value is None else str(getattr(value, "name", value))


def _url_credentials(url: str) -> list[tuple[str, str]]:
    """(secret, placeholder) for the user-info of a URL such as ``http://user:pass@host``: all of it, then the
    password as written and percent-decoded."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    password = userinfo.partition(":")[2]
    found = [(userinfo, "[proxy credentials]")] if userinfo else []
    return found + [(text, "[proxy password]") for text in dict.fromkeys((password, unquote(password))) if text]


def _is_timeout(exc: BaseException) -> bool:
    return "Timeout" in type(exc).__name__


class Generator:
    """Calls Gemini's image model with a prompt and reference images, and saves what comes back.

    429 and 5xx answers are retried ``attempts`` times in all, with exponential backoff from
    ``backoff_s`` capped at ``max_backoff_s`` (a 429's own retry delay is honoured up to that cap).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        attempts: int = 4,
        backoff_s: float = 2.0,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        key = resolve_api_key(api_key)
        if not key:
            raise GenerationError(
                "No Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY) to a key from "
                "https://aistudio.google.com/apikey, or paste one in the app's Generate panel."
            )
        if attempts < 1:
            raise UsageError("attempts must be at least 1.")
        try:
            from google import genai
            from google.genai import types
        except ImportError:
            raise UsageError(
                "Generation needs the google-genai package; install it with: pip install google-genai"
            ) from None
        self.model = model_name(model)
        self._types = types
        url = base_url or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL
        self._secrets = [(key, "[API key]"), *_url_credentials(url)]
        self.base_url = self._scrub(url)
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep or time.sleep
        # vertexai=False: a stray GOOGLE_GENAI_USE_VERTEXAI must not send the key elsewhere.
        options = types.HttpOptions(base_url=base_url, timeout=max(1, round(timeout_s * 1000)))
        self._client = genai.Client(api_key=key, vertexai=False, http_options=options)
        self._transport_errors = _transport_errors()

    def __repr__(self) -> str:
        return f"Generator(model={self.model!r}, base_url={self.base_url!r})"

    def _scrub(self, text: str) -> str:
        """``text`` without the API key or the proxy credentials."""
        for secret, label in self._secrets:
            text = text.replace(secret, label)
        return text

    def _fail(self, message: str) -> GenerationError:
        return GenerationError(self._scrub(message))

    def generate(
        self,
        prompt: str,
        references: Sequence[Reference | str | os.PathLike[str]],
        out_dir: str | os.PathLike[str],
        *,
        variants: int = 1,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
    ) -> list[Generation]:
        """Generate ``variants`` images (one request each) and save them with sidecars in ``out_dir``.

        ``image_size`` (1K, 2K, 4K) only for a model that offers a choice; the model's default otherwise.
        """
        prompt = prompt.strip()
        if not prompt:
            raise UsageError("The prompt is empty; describe the image to generate.")
        if not 1 <= variants <= MAX_VARIANTS:
            raise UsageError(f"Ask for 1 to {MAX_VARIANTS} variants, not {variants}.")
        if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
            raise UsageError(f"Unknown aspect ratio {aspect_ratio!r}; choose one of {', '.join(ASPECT_RATIOS)}.")
        refs = tuple(r if isinstance(r, Reference) else Reference(os.fspath(r)) for r in references)
        refs = tuple(Reference(os.path.abspath(r.path), r.score) for r in refs)
        check_limits(self.model, len(refs), image_size)
        parts = [
            self._types.Part.from_bytes(data=data, mime_type=mime)
            for data, mime in (reference_payload(r.path) for r in refs)
        ]
        folder = Path(out_dir).expanduser().resolve()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"Cannot create the output folder {folder} ({exc.strerror}).") from None
        config = self._types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=(
                self._types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size)
                if aspect_ratio or image_size
                else None
            ),
        )
        saved: list[Generation] = []
        for _ in range(variants):
            try:
                images, text, finish = self._request([prompt, *parts], config)
            except GenerationError as exc:
                if not saved:
                    raise
                raise GenerationError(
                    f"{exc} The {len(saved)} image(s) generated before are saved in {folder}."
                ) from None
            created = datetime.now(timezone.utc)
            stem = f"{created:%Y%m%d-%H%M%S}-{_slug(prompt)}"
            for data, mime in images:
                generation = Generation(
                    image=_save_png(data, mime, folder, stem),
                    prompt=prompt,
                    model=self.model,
                    references=refs,
                    created=created.isoformat(timespec="seconds"),
                    text=text,
                    finish_reason=finish,
                    aspect_ratio=aspect_ratio,
                    variant=len(saved) + 1,
                    image_size=image_size,
                )
                _write_sidecar(generation)
                saved.append(generation)
        return saved

    def generate_and_add(
        self,
        prompt: str,
        references: Sequence[Reference | str | os.PathLike[str]],
        out_dir: str | os.PathLike[str],
        *,
        library: Library | None = None,
        variants: int = 1,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
    ) -> GenerationBatch:
        """``generate``, then index the outputs into ``library`` (tagged as generated) when one is given.

        When indexing fails the images stay on disk and the message says where.
        """
        outputs = self.generate(
            prompt, references, out_dir, variants=variants, aspect_ratio=aspect_ratio, image_size=image_size
        )
        if library is None:
            return GenerationBatch(outputs)
        try:
            added = library.add([o.image for o in outputs], origin="generated")
        except AssetLensError as exc:
            folder = outputs[0].image.parent
            raise type(exc)(f"{exc} The {len(outputs)} generated image(s) are saved in {folder}.") from None
        return GenerationBatch(outputs, added)

    def image_models(self) -> list[str] | None:
        """The image models this key may use, from the service's model listing (every page); None when
        the listing itself fails."""
        from google.genai import errors as genai_errors

        failures: tuple[type[BaseException], ...] = (genai_errors.APIError, *self._transport_errors)
        try:
            return image_models_in(self._client.models.list(config={"page_size": 100}))
        except failures as exc:
            log.debug("listing Gemini models failed: %s", self._scrub(str(exc)))
            return None

    def _unknown_model(self, where: str) -> GenerationError:
        entry = known_model(self.model)
        why = f"; Google shut it down on {spoken_date(entry.shutdown)}" if entry and entry.shutdown else ""
        usable = self.image_models()
        if usable:
            offer = (
                f"image models this key can use: {', '.join(usable)}; choose one with --model NAME "
                "(in the app: the Gemini model box)"
            )
        elif usable == []:
            offer = "the service lists no image model this key can use; check the key's project and plan"
        else:
            offer = f"the model list could not be read either; try --model {DEFAULT_MODEL}"
        return self._fail(f"Gemini does not know the model {self.model} ({where}){why}; {offer}.")

    def _request(self, contents: list[Any], config: Any) -> tuple[list[tuple[bytes, str]], str, str]:
        """One generateContent call with bounded retries: (images, the model's text, finish reason)."""
        from google.genai import errors as genai_errors

        for attempt in range(1, self.attempts + 1):
            try:
                response = self._client.models.generate_content(model=self.model, contents=contents, config=config)
            except genai_errors.APIError as exc:
                transient = exc.code == 429 or exc.code == 408 or exc.code >= 500
                if transient and attempt < self.attempts:
                    delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                    if exc.code == 429:
                        delay = min(self.max_backoff_s, max(delay, _retry_delay(exc.details) or 0.0))
                    log.warning(
                        "Gemini answered %s; retrying in %.1f s (attempt %d of %d)",
                        exc.code,
                        delay,
                        attempt + 1,
                        self.attempts,
                    )
                    self._sleep(delay)
                    continue
                raise self._api_failure(exc, attempt) from None
            except self._transport_errors as exc:
                if _is_timeout(exc):
                    raise self._fail(
                        f"Gemini did not answer within {self.timeout_s:g} s; try again, or allow more time "
                        "(assetlens generate --timeout)."
                    ) from None
                reason = str(exc).strip() or type(exc).__name__
                raise self._fail(
                    f"Cannot reach Gemini at {self.base_url} ({reason}); check the network connection "
                    f"or {BASE_URL_VARIABLE}."
                ) from None
            return self._read(response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _api_failure(self, exc: Any, attempts: int) -> GenerationError:
        said = self._scrub(" ".join(str(exc.message or "").split()))[:300]
        where = f"{exc.code} {exc.status or ''}".strip() + (f": {said}" if said else "")
        if (
            exc.code in (401, 403)
            or "API_KEY_INVALID" in json.dumps(exc.details or {}, default=str)
            or (exc.code == 400 and "api key" in said.lower())
        ):
            return self._fail(
                f"Gemini rejected the API key ({where}); check GEMINI_API_KEY or GOOGLE_API_KEY "
                f"and that the key may use {self.model}."
            )
        if exc.code == 429:
            return self._fail(
                f"Gemini's quota or rate limit is used up ({where}) after {attempts} attempts; "
                "wait a minute or check the plan's limits, then try again."
            )
        if exc.code >= 500 or exc.code == 408:
            return self._fail(f"Gemini failed {attempts} times ({where}); try again in a few minutes.")
        if exc.code in (404, 410):
            return self._unknown_model(where)
        return self._fail(f"Gemini refused the request ({where}).")

    def _read(self, response: Any) -> tuple[list[tuple[bytes, str]], str, str]:
        candidate = response.candidates[0] if response.candidates else None
        parts = candidate.content.parts if candidate and candidate.content and candidate.content.parts else []
        images = [
            (p.inline_data.data, p.inline_data.mime_type or "")
            for p in parts
            if p.inline_data and p.inline_data.data and (p.inline_data.mime_type or "").startswith("image/")
        ]
        text = "\n".join(p.text.strip() for p in parts if p.text and not p.thought).strip()
        finish = _name(candidate.finish_reason) if candidate else ""
        if images:
            return images, text, finish
        feedback = response.prompt_feedback
        blocked = _name(feedback.block_reason) if feedback else ""
        what = (
            f"Gemini blocked the prompt (block reason {blocked}) and returned no image."
            if blocked
            else f"Gemini returned no image (finish reason {finish or 'unknown'})."
        )
        said = f' The model said: "{text}"' if text else ""
        raise self._fail(f"{what}{said} Rephrase the prompt or pick other references; nothing was saved.")
