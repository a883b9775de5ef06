"""A local stand-in for the Gemini API's ``generateContent`` and model listing, for offline tests.

It listens on 127.0.0.1, speaks the REST shape the google-genai SDK sends
(``POST /{version}/models/{model}:generateContent``), decodes the reference
images of every request so tests can check what was really sent, and
answers from a script: by default a PNG that lays the received references
out under the prompt (so screenshots show something plausible), or, one
request at a time, an error status, a text-only or safety-blocked answer,
or a hang past the client's timeout.

``GET /{version}/models`` lists ``models`` in pages as the service does
(``pageSize``, default 50, at most ``max_page_size``; ``nextPageToken``), and
``generateContent`` on a model the listing lacks (or that cannot generate
content) answers 404 NOT_FOUND with the service's wording.

    with GeminiStub() as stub:
        stub.script("429", "image")          # first request rate-limited, then an image
        os.environ["GOOGLE_GEMINI_BASE_URL"] = stub.url
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from PIL import Image, ImageDraw, ImageFont

STUB_KEY = "stub-key-0123456789"

STUB_MODELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gemini-3-flash", ("generateContent", "countTokens", "createCachedContent")),
    ("gemini-3-pro-image", ("generateContent", "countTokens")),
    ("gemini-3.1-flash-image", ("generateContent", "countTokens")),
    ("gemini-embedding-001", ("embedContent",)),
    ("imagen-4.0-generate-001", ("predict",)),
)
"""(name, supported generation methods) the stub lists by default: two image models among others."""

_ERRORS: dict[str, tuple[int, str, str]] = {
    "401": (401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
    "403": (403, "PERMISSION_DENIED", "The caller does not have permission."),
    "429": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "500": (500, "INTERNAL", "An internal error has occurred."),
    "503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}


@dataclass
class StubRequest:
    """One request as the stub understood it."""

    model: str
    api_key: str
    prompt: str
    images: list[Image.Image]
    mime_types: list[str]
    generation_config: dict[str, Any] = field(default_factory=dict)
    authorization: str = ""


def _error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": details or []}}


_BAD_KEY = (  # what the service answers a request with a key it does not know
    400,
    _error_body(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    ),
)


def render_output(prompt: str, references: list[Image.Image], size: tuple[int, int] = (768, 512)) -> bytes:
    """A PNG that shows the references on a studio backdrop under the prompt: the stub's "generation"."""
    w, h = size
    canvas = Image.new("RGB", size, (236, 230, 222))
    draw = ImageDraw.Draw(canvas)
    for y in range(h):  # a soft vertical gradient, like a photo backdrop
        shade = int(250 - 40 * y / h)
        draw.line([(0, y), (w, y)], fill=(shade, shade - 6, shade - 14))
    band = 64
    draw.rectangle([0, 0, w, band], fill=(24, 28, 38))
    font = ImageFont.load_default(size=22)
    text = prompt if len(prompt) <= 60 else prompt[:57] + "..."
    draw.text((20, band // 2), text, fill=(255, 255, 255), font=font, anchor="lm")
    refs = references or [Image.new("RGB", (256, 256), (180, 180, 180))]
    slot = (w - 40) // len(refs)
    side = min(slot - 20, h - band - 60)
    for i, ref in enumerate(refs):
        thumb = ref.convert("RGB")
        thumb.thumbnail((side, side))
        x = 20 + i * slot + (slot - thumb.width) // 2
        y = band + 30 + (h - band - 60 - thumb.height) // 2
        draw.rectangle([x + 8, y + 8, x + thumb.width + 8, y + thumb.height + 8], fill=(190, 182, 170))
        canvas.paste(thumb, (x, y))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


class GeminiStub:
    """The stub server; ``script()`` queues one behaviour per coming request, then "image" is the default.

    Behaviours: "image", "text-only", "safety" (no content, finish reason IMAGE_SAFETY),
    "blocked" (prompt feedback SAFETY), "hang" (answers after ``hang_s``), and the error
    statuses "401", "403", "429", "500", "503". A request with a key other than ``key``
    gets 400 API_KEY_INVALID, as the real service answers.
    """

    def __init__(self, key: str = STUB_KEY, hang_s: float = 5.0, max_page_size: int = 1000) -> None:
        self.key = key
        self.hang_s = hang_s
        self.max_page_size = max_page_size
        self.models: list[tuple[str, tuple[str, ...]]] = list(STUB_MODELS)
        self.requests: list[StubRequest] = []
        self.listings: list[dict[str, str]] = []  # the query of every model-listing request
        self.listing_error: str | None = None  # an error status ("503") every listing request gets
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # shutdown() waits for the serving loop's next poll: a short interval keeps each stop quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *behaviours: str) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def __enter__(self) -> GeminiStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else "image"

    def _list(self, path: str, query: dict[str, str], key: str) -> tuple[int, dict[str, Any]]:
        """One page of the model listing."""
        if not re.fullmatch(r"/[^/]+/models", path):
            return 404, _error_body(404, "NOT_FOUND", f"No route for {path}.")
        with self._lock:
            self.listings.append(query)
        if key != self.key:
            return _BAD_KEY
        if self.listing_error:
            code, status, message = _ERRORS[self.listing_error]
            return code, _error_body(code, status, message)
        try:
            size = min(int(query.get("pageSize") or 50), self.max_page_size)
            start = int(query.get("pageToken") or 0)
        except ValueError:
            return 400, _error_body(400, "INVALID_ARGUMENT", "Invalid page size or page token.")
        page = [
            {"name": f"models/{name}", "displayName": name, "supportedGenerationMethods": list(methods)}
            for name, methods in self.models[start : start + size]
        ]
        body: dict[str, Any] = {"models": page}
        if start + size < len(self.models):
            body["nextPageToken"] = str(start + size)
        return 200, body

    def _answer(self, path: str, key: str, body: dict[str, Any], authorization: str) -> tuple[int, dict[str, Any]]:
        match = re.fullmatch(r"/([^/]+)/models/([^/:]+):generateContent", path)
        if not match:
            return 404, _error_body(404, "NOT_FOUND", f"No route for {path}.")
        version, model = match.groups()
        parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
        blobs = [p.get("inlineData") or p.get("inline_data") for p in parts]
        blobs = [b for b in blobs if b]
        try:  # the SDK sends URL-safe base64; the service accepts both alphabets
            images: list[Image.Image] = [Image.open(io.BytesIO(base64.urlsafe_b64decode(b["data"]))) for b in blobs]
            for image in images:
                image.load()
        except (OSError, ValueError):
            return 400, _error_body(400, "INVALID_ARGUMENT", "Unable to process input image.")
        request = StubRequest(
            model=model,
            api_key=key,
            prompt=" ".join(p["text"] for p in parts if "text" in p),
            images=images,
            mime_types=[b.get("mimeType") or b.get("mime_type") for b in blobs],
            generation_config=body.get("generationConfig", {}),
            authorization=authorization,
        )
        with self._lock:
            self.requests.append(request)
        if key != self.key:
            return _BAD_KEY
        if not any(name == model and "generateContent" in methods for name, methods in self.models):
            message = (
                f"models/{model} is not found for API version {version}, or is not supported for generateContent. "
                "Call ListModels to see the list of available models and their supported methods."
            )
            return 404, _error_body(404, "NOT_FOUND", message)
        behaviour = self._next()
        if behaviour in _ERRORS:
            code, status, message = _ERRORS[behaviour]
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}] if code == 429 else []
            return code, _error_body(code, status, message, details)
        if behaviour == "hang":
            threading.Event().wait(self.hang_s)
        if behaviour == "text-only":
            text = "I can describe the product, but I did not draw it this time."
            return 200, {
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}]
            }
        if behaviour == "safety":
            return 200, {"candidates": [{"finishReason": "IMAGE_SAFETY"}]}
        if behaviour == "blocked":
            return 200, {"promptFeedback": {"blockReason": "SAFETY"}}
        png = render_output(request.prompt, request.images)
        return 200, {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": f"Here is your image, made from {len(request.images)} reference(s)."},
                            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode("ascii")}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "modelVersion": request.model,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                self._send(*stub._list(url.path, query, self.headers.get("x-goog-api-key", "")))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                key = self.headers.get("x-goog-api-key", "")
                auth = self.headers.get("Authorization", "")
                self._send(*stub._answer(self.path.split("?")[0], key, body, auth))

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        return Handler
