"""A local stand-in for the Hugging Face Hub's download protocol (and for plain file URLs).

The real ``huggingface_hub`` client talks to it through ``HF_ENDPOINT``. It speaks what
``hf_hub_download`` needs: ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` answered with
``ETag``, ``X-Repo-Commit``, ``X-Linked-Etag``/``X-Linked-Size`` and ``Content-Length``; errors carry
the ``X-Error-Code`` header the client maps to its exceptions (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``). Paths under ``/files/`` are plain
downloads for URL entries. Every request is logged so tests can count them.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class _Repo:
    commit: str
    files: dict[str, bytes] = field(default_factory=dict)
    revisions: tuple[str, ...] = ("main",)
    token: str | None = None  # gated: only this bearer token gets the files


@dataclass
class _Plain:
    data: bytes
    content_type: str = "application/octet-stream"
    status: int = 200


class HubStub:
    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.plain: dict[str, _Plain] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- content ---------------------------------------------------------------------------------

    def add_file(
        self, repo_id: str, filename: str, data: bytes, *, token: str | None = None
    ) -> str:
        """Serve ``data`` as ``repo_id/filename`` at revision main; returns its sha256."""
        repo = self.repos.get(repo_id)
        if repo is None:
            commit = hashlib.sha1(repo_id.encode()).hexdigest()
            repo = self.repos[repo_id] = _Repo(commit=commit, token=token)
        repo.files[filename] = data
        return hashlib.sha256(data).hexdigest()

    def add_url(
        self, path: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> str:
        """Serve ``data`` at ``/files/<path>``; returns the full URL."""
        self.plain[f"/files/{path}"] = _Plain(data, content_type)
        return f"{self.url}/files/{path}"

    # --- bookkeeping -----------------------------------------------------------------------------

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self._lock:
            return sum(
                1 for m, p in self.requests if (method is None or m == method) and contains in p
            )

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - http.server API
                stub._serve(self, head=True)

            def do_GET(self) -> None:  # noqa: N802
                stub._serve(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- protocol --------------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = unquote(urlparse(h.path).path)
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", path))
        if path in self.plain:
            item = self.plain[path]
            self._send(h, item.status, item.data, {"Content-Type": item.content_type}, head)
            return
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            self._send(h, 404, b"not found", {"Content-Type": "text/plain"}, head)
            return
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(h, 401, "RepoNotFound", "Repository not found", head)
            return
        if repo.token is not None and h.headers.get("Authorization") != f"Bearer {repo.token}":
            self._error(h, 401, "GatedRepo", "Access to this model is restricted", head, repo.commit)
            return
        if revision not in repo.revisions and revision != repo.commit:
            self._error(h, 404, "RevisionNotFound", "Invalid rev id", head)
            return
        data = repo.files.get(filename)
        if data is None:
            self._error(h, 404, "EntryNotFound", "Entry not found", head, repo.commit)
            return
        digest = hashlib.sha256(data).hexdigest()
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{digest}"',
            "X-Linked-Etag": f'"{digest}"',  # LFS files: the etag is the file's sha256
            "X-Linked-Size": str(len(data)),
            "X-Repo-Commit": repo.commit,
            "Accept-Ranges": "bytes",
        }
        self._send(h, 200, data, headers, head)

    @staticmethod
    def _error(
        h: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        head: bool,
        commit: str | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        HubStub._send(h, status, f'{{"error": "{message}"}}'.encode(), headers, head)

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str], head: bool
    ) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)


# --- fixtures and helpers shared by the weights tests ---------------------------------------------

import json  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStub]:
    """A running stub; HF_ENDPOINT points at it, HF_HOME and HYPERNST_CACHE live in tmp_path."""
    stub = HubStub().start()
    monkeypatch.setenv("HF_ENDPOINT", stub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HYPERNST_CACHE", str(tmp_path / "hypernst-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "5")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    # huggingface_hub reads these at import; an earlier import in this process must not leak in.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    try:
        yield stub
    finally:
        stub.stop()


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_registry(
    path: Path, entries: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch | None = None
) -> Path:
    """A test weights.toml; with ``monkeypatch``, HYPERNST_WEIGHTS_TOML points at it."""
    blocks = []
    for entry in entries:
        lines = ["[[weights]]"] + [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    if monkeypatch is not None:
        monkeypatch.setenv("HYPERNST_WEIGHTS_TOML", str(path))
    return path
