"""A loopback stand-in for the Hugging Face Hub, for push and download round trips in tests.

It answers the handful of endpoints that ``huggingface_hub`` uses to create a repository, commit
files (every file uploaded inline, "regular" mode) and download them again, and keeps the files
in a temporary folder. Use the ``fake_hub`` fixture (import it into a test module or conftest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FAKE_TOKEN = "hf_fake_test_token"
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
API_REPO = r"/api/(?P<kind>models|datasets|spaces)/" + REPO


@dataclass
class HubStorage:
    """Repositories held by the server: files on disk under ``root``, one commit id per repository."""

    root: Path
    commits: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def folder(self, repo_id: str) -> Path:
        return self.root / repo_id

    def files(self, repo_id: str) -> list[str]:
        folder = self.folder(repo_id)
        return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())

    def create(self, repo_id: str) -> None:
        with self.lock:
            self.folder(repo_id).mkdir(parents=True, exist_ok=True)
            self.commits.setdefault(repo_id, hashlib.sha1(repo_id.encode()).hexdigest())

    def commit(self, repo_id: str, lines: list[dict]) -> str:
        with self.lock:
            folder = self.folder(repo_id)
            for line in lines:
                value = line.get("value", {})
                if line.get("key") == "file":
                    target = folder / value["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(base64.b64decode(value["content"]))
                elif line.get("key") == "deletedFile":
                    (folder / value["path"]).unlink(missing_ok=True)
            digest = hashlib.sha1((self.commits[repo_id] + json.dumps(lines)).encode()).hexdigest()
            self.commits[repo_id] = digest
            return digest


class HubHandler(BaseHTTPRequestHandler):
    storage: HubStorage  # set on the subclass built per server
    endpoint: str

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: object, status: int = 200) -> None:
        self._reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def _not_found(self, code: str) -> None:
        self._reply(404, json.dumps({"error": code}).encode(), {"X-Error-Code": code})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:
        path, body = self.path.split("?")[0], self._body()
        if path == "/api/repos/create":
            request = json.loads(body or b"{}")
            repo_id = f"{request.get('organization') or 'tester'}/{request['name']}"
            self.storage.create(repo_id)
            return self._json({"url": f"{self.endpoint}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            return self._json({"errors": [], "warnings": []})
        if match := re.fullmatch(API_REPO + r"/preupload/(?P<rev>[^/]+)", path):
            files = json.loads(body).get("files", [])
            return self._json(
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                }
            )
        if match := re.fullmatch(API_REPO + r"/commit/(?P<rev>[^/]+)", path):
            repo_id = match["repo"]
            if repo_id not in self.storage.commits:
                return self._not_found("RepoNotFound")
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            oid = self.storage.commit(repo_id, lines)
            return self._json({"commitUrl": f"{self.endpoint}/{repo_id}/commit/{oid}", "commitOid": oid})
        return self._not_found("EndpointNotFound")

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if match := re.fullmatch(API_REPO + r"(?:/revision/(?P<rev>[^/]+))?", path):
            repo_id = match["repo"]
            if repo_id not in self.storage.commits:
                return self._not_found("RepoNotFound")
            siblings = [{"rfilename": name} for name in self.storage.files(repo_id)]
            sha = self.storage.commits[repo_id]
            return self._json(
                {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False, "siblings": siblings}
            )
        if match := re.fullmatch("/" + REPO + r"/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path):
            return self._resolve(match["repo"], match["file"])
        return self._not_found("EndpointNotFound")

    do_HEAD = do_GET

    def _resolve(self, repo_id: str, filename: str) -> None:
        if repo_id not in self.storage.commits:
            return self._not_found("RepoNotFound")
        target = self.storage.folder(repo_id) / filename
        if not target.is_file():
            return self._not_found("EntryNotFound")
        data = target.read_bytes()
        headers = {
            "X-Repo-Commit": self.storage.commits[repo_id],
            "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
        }
        self._reply(200, data, headers)


class FakeHub:
    """A running loopback Hub: ``endpoint`` (URL), ``storage`` (its repositories), ``stop()``."""

    def __init__(self, root: Path) -> None:
        self.storage = HubStorage(root)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.server.RequestHandlerClass = type(
            "Handler", (HubHandler,), {"storage": self.storage, "endpoint": self.endpoint}
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop answering (later requests fail to connect)."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """Start a fake Hub, point ``huggingface_hub`` at it (online, token ``hf_fake_test_token``,
    a fresh download cache) for the test, and stop it afterwards."""
    from huggingface_hub import constants

    hub = FakeHub(tmp_path / "hub_storage")
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    try:
        yield hub
    finally:
        hub.stop()
