"""A failed chunk is retried from the offset the server reports: a stub registry that fails PATCHes on purpose.

The stub speaks just enough of the upload protocol (HEAD, POST, PATCH with Content-Range, GET status, PUT) and
fails two chunks: one it kept but whose answer was lost (500 after storing), one it never took (503).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.clienthelpers import Client, serving

pytestmark = pytest.mark.integration

CHUNK = 256 * 1024


class Stub(ThreadingHTTPServer):
    data: bytearray
    blobs: dict[str, bytes]
    log: list[str]
    patches: int


class Handler(BaseHTTPRequestHandler):
    server: Stub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.server.log.append(f"{self.command} {status}")
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _progress(self, status: int) -> None:
        self._answer(status, {"Location": "/v2/app/blobs/uploads/s1", "Range": f"0-{max(len(self.server.data) - 1, 0)}", "OCI-Chunk-Max-Length": str(CHUNK)})

    def do_HEAD(self) -> None:
        self._answer(404)

    def do_GET(self) -> None:
        self._progress(204)

    def do_POST(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        body = self._body()
        if "digest" in query:
            self.server.blobs[query["digest"][0]] = body
            self._answer(201)
            return
        self.server.data = bytearray()
        self._progress(202)

    def do_PATCH(self) -> None:
        body = self._body()
        start = int(self.headers["Content-Range"].split("-")[0])
        if start != len(self.server.data):
            self._progress(416)
            return
        self.server.patches += 1
        if self.server.patches == 3:  # 503: not taken
            self._answer(503)
            return
        self.server.data += body
        if self.server.patches == 2:  # taken, but the answer is lost
            self._answer(500)
            return
        self._progress(202)

    def do_PUT(self) -> None:
        body = self._body()
        query = parse_qs(urlsplit(self.path).query)
        if "/manifests/" in self.path:
            self._answer(201)
            return
        digest = query["digest"][0]
        data = bytes(self.server.data) + body
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            self._answer(400)
            return
        self.server.blobs[digest] = data
        self._answer(201)


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub(("127.0.0.1", 0), Handler)
    server.data, server.blobs, server.log, server.patches = bytearray(), {}, [], 0
    with serving(server):
        yield server


def test_failed_chunks_are_resent_from_the_servers_offset(stub: Stub, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    payload = os.urandom(5 * CHUNK + 1000)
    (files / "big.bin").write_bytes(payload)
    client = Client(tmp_path / "home")
    client.home.mkdir()
    client.run("push", "-q", "--chunk-size", str(CHUNK), f"dir:{files}", f"127.0.0.1:{stub.server_address[1]}/app:v1")
    assert stub.blobs["sha256:" + hashlib.sha256(payload).hexdigest()] == payload
    patches = [entry for entry in stub.log if entry.startswith(("PATCH", "GET", "PUT"))]
    # chunk 2 was kept though it failed: the status GET says so and it is not sent again; chunk 3 is sent again;
    # the closing PUT carries the last chunk (then the manifest's PUT)
    assert patches == ["PATCH 202", "PATCH 500", "GET 204", "PATCH 503", "GET 204", "PATCH 202", "PATCH 202", "PATCH 202", "PUT 201", "PUT 201"], patches


class LimitHandler(Handler):
    """A server that names no chunk maximum, yet refuses a body over LIMIT with 413 SIZE_INVALID naming it (as a Lambda front does)."""

    LIMIT = 300 * 1024

    def _progress(self, status: int) -> None:
        self._answer(status, {"Location": "/v2/app/blobs/uploads/s1", "Range": f"0-{max(len(self.server.data) - 1, 0)}"})

    def _refuse_large(self, body: bytes) -> bool:
        if len(body) <= self.LIMIT:
            return False
        error = json.dumps({"errors": [{"code": "SIZE_INVALID", "message": "too large", "detail": {"maxChunkLength": self.LIMIT}}]}).encode()
        self.server.log.append(f"{self.command} 413")
        self.send_response(413)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(error)))
        self.end_headers()
        self.wfile.write(error)
        return True

    def do_PATCH(self) -> None:
        body = self._body()
        if not self._refuse_large(body):
            self.server.data += body
            self._progress(202)

    def do_PUT(self) -> None:
        if "/manifests/" in self.path:
            super().do_PUT()
            return
        body = self._body()
        if self._refuse_large(body):
            return
        data = bytes(self.server.data) + body
        self.server.blobs["sha256:" + hashlib.sha256(data).hexdigest()] = data
        self._answer(201)


def test_a_closing_put_refused_as_too_large_sends_the_rest_in_chunks_that_fit(tmp_path: Path) -> None:
    """A 5 MiB blob needs no PATCH at the default chunk size, so its closing PUT carries it all; a 413 naming a limit is heeded."""
    server = Stub(("127.0.0.1", 0), LimitHandler)
    server.data, server.blobs, server.log, server.patches = bytearray(), {}, [], 0
    with serving(server):
        files = tmp_path / "files"
        files.mkdir()
        payload = os.urandom(5 * 1024 * 1024)
        (files / "big.bin").write_bytes(payload)
        client = Client(tmp_path / "home")
        client.home.mkdir()
        client.run("push", "-q", f"dir:{files}", f"127.0.0.1:{server.server_address[1]}/app:v1")
        assert server.blobs["sha256:" + hashlib.sha256(payload).hexdigest()] == payload
        uploads = [entry for entry in server.log if entry.startswith(("PATCH", "PUT"))]
        assert uploads[0] == "PUT 413" and set(uploads[1:-2]) == {"PATCH 202"} and uploads[-2:] == ["PUT 201", "PUT 201"], uploads
