"""A stand-in for the Hugging Face Hub's file endpoints on 127.0.0.1, as ``huggingface_hub`` calls them.

- ``GET /api/models/{repo}/revision/{rev}`` (and ``/api/models/{repo}``, its ``main``): the repository
  at a commit (``sha``) and its files
  (``siblings``: ``rfilename``, ``size``, and ``lfs.sha256`` for the ``.onnx`` files, as the Hub stores
  those in LFS);
- ``HEAD`` and ``GET /{repo}/resolve/{rev}/{path}``: ``ETag`` (the sha256 for an LFS file, else the
  git blob id), ``X-Repo-Commit``, ``Content-Length``, ``Accept-Ranges``; a ``Range: bytes=N-`` GET
  answers 206 with ``Content-Range``.

``rev`` is the full commit or ``main``. Faults: ``cut_once[path] = n`` closes the connection after n
bytes of the next GET of that file; ``gated`` repositories answer 401 with ``X-Error-Code: GatedRepo``
unless the request carries ``Authorization: Bearer TOKEN``. Every request is logged as
(method, path, Range header).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

TOKEN = "hf_stub_token"


@dataclass
class StubRepo:
    name: str
    commit: str
    files: dict[str, bytes]


@dataclass
class HubStub:
    """Start with ``with HubStub() as hub``; ``hub.url`` is the endpoint for ``HF_ENDPOINT``."""

    repos: dict[str, StubRepo] = field(default_factory=dict)
    cut_once: dict[str, int] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)

    def add(self, name: str, files: dict[str, bytes]) -> StubRepo:
        repo = StubRepo(name, hashlib.sha1(name.encode()).hexdigest(), files)
        self.repos[name] = repo
        return repo

    def gets(self, path_end: str) -> list[str | None]:
        """The Range headers of the GETs of files whose URL ends with ``path_end``."""
        return [rng for method, path, rng in self.log if method == "GET" and path.endswith(path_end)]

    def __enter__(self) -> HubStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                stub._answer(self, body=False)

            def do_GET(self) -> None:
                stub._answer(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # ---------------------------------------------------------------- answers

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.log.append((handler.command, path, handler.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and (len(parts) == 4 or (len(parts) == 6 and parts[4] == "revision")):
            repo = self._repo(handler, "/".join(parts[2:4]), parts[5] if len(parts) == 6 else "main")
            if repo is not None:
                self._json(handler, 200, self._info(repo), body)
        elif len(parts) >= 5 and parts[2] == "resolve":
            repo = self._repo(handler, "/".join(parts[:2]), parts[3])
            if repo is not None:
                self._file(handler, repo, "/".join(parts[4:]), body)
        else:
            self._error(handler, 404, "RepoNotFound", body)

    def _repo(self, handler: BaseHTTPRequestHandler, name: str, rev: str) -> StubRepo | None:
        repo = self.repos.get(name)
        if repo is None:
            self._error(handler, 401, "RepoNotFound", handler.command == "GET")
            return None
        if name in self.gated and handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._error(handler, 401, "GatedRepo", handler.command == "GET")
            return None
        if rev not in (repo.commit, "main"):
            self._error(handler, 404, "RevisionNotFound", handler.command == "GET")
            return None
        return repo

    @staticmethod
    def _info(repo: StubRepo) -> dict[str, object]:
        siblings = []
        for path, data in sorted(repo.files.items()):
            entry: dict[str, object] = {"rfilename": path, "size": len(data)}
            if path.endswith(".onnx"):
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        return {
            "_id": repo.commit[:24],
            "id": repo.name,
            "modelId": repo.name,
            "sha": repo.commit,
            "siblings": siblings,
        }

    def _file(self, handler: BaseHTTPRequestHandler, repo: StubRepo, path: str, body: bool) -> None:
        data = repo.files.get(path)
        if data is None:
            self._error(handler, 404, "EntryNotFound", body)
            return
        if path.endswith(".onnx"):
            etag = hashlib.sha256(data).hexdigest()
        else:
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        start = 0
        wanted = handler.headers.get("Range")
        if body and wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes=") : -1])
        handler.send_response(206 if start else 200)
        handler.send_header("ETag", f'"{etag}"')
        handler.send_header("X-Repo-Commit", repo.commit)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        cut = self.cut_once.pop(path, None)
        if cut is not None:
            handler.wfile.write(data[start : start + cut])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        handler.wfile.write(data[start:])

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, status: int, value: object, body: bool) -> None:
        payload = json.dumps(value).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if body:
            handler.wfile.write(payload)

    @staticmethod
    def _error(handler: BaseHTTPRequestHandler, status: int, code: str, body: bool) -> None:
        payload = json.dumps({"error": code}).encode()
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if body:
            handler.wfile.write(payload)
