"""Digests from a registry or a layout are checked before they become file paths: a `../` digest never escapes a layout.

A stub registry answers with crafted digests (the real server would refuse them), and crafted layouts are read from disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.clienthelpers import Client, serving, write_blob

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EVIL = "sha256:../../../escaped"


class Stub(ThreadingHTTPServer):
    """manifest: the bytes served for any manifest; header: the Docker-Content-Digest sent with them."""

    manifest: bytes
    header: str | None


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if "/manifests/" in self.path:
            headers = {"Content-Type": OCI_MANIFEST, **({"Docker-Content-Digest": self.server.header} if self.server.header else {})}
            self._send(200, self.server.manifest, headers)
        elif "/blobs/" in self.path:
            self._send(200, b"{}", {"Content-Type": "application/octet-stream"})
        else:
            self._send(404 if "/referrers/" not in self.path else 200, b'{"manifests": []}', {"Content-Type": "application/json"})


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub(("127.0.0.1", 0), Handler)
    server.manifest, server.header = b"{}", None
    with serving(server):
        yield server


def _manifest(config_digest: str) -> bytes:
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2}
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}).encode()


def _pull(client: Client, stub: Stub, dest: Path, reference: str = ":v1") -> str:
    """Pull from the stub into a layout; returns stderr, which must be one line."""
    result = client.run("pull", f"127.0.0.1:{stub.server_address[1]}/evil{reference}", f"oci:{dest}:v1", expect=1)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def _escaped(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("escaped*")]


def test_a_dot_dot_docker_content_digest_is_refused(stub: Stub, tmp_path: Path) -> None:
    stub.manifest, stub.header = _manifest("sha256:" + hashlib.sha256(b"{}").hexdigest()), EVIL
    dest = tmp_path / "a" / "b" / "c" / "layout"
    assert "invalid digest" in _pull(Client(tmp_path), stub, dest)
    assert _escaped(tmp_path) == []


def test_a_dot_dot_descriptor_digest_from_a_registry_is_refused(stub: Stub, tmp_path: Path) -> None:
    stub.manifest = _manifest(EVIL)
    dest = tmp_path / "a" / "b" / "c" / "layout"
    assert "invalid digest" in _pull(Client(tmp_path), stub, dest)
    assert _escaped(tmp_path) == []


def test_a_manifest_that_does_not_match_the_requested_digest_is_refused(stub: Stub, tmp_path: Path) -> None:
    stub.manifest = _manifest("sha256:" + hashlib.sha256(b"{}").hexdigest())
    wanted = "sha256:" + "0" * 64
    assert "does not match" in _pull(Client(tmp_path), stub, tmp_path / "layout", f"@{wanted}")
    assert not (tmp_path / "layout" / "index.json").exists()


def test_a_registry_answering_bad_json_is_a_one_line_error(stub: Stub, tmp_path: Path) -> None:
    stub.manifest = b"{not json"
    assert "not valid JSON" in _pull(Client(tmp_path), stub, tmp_path / "layout")


def _layout(root: Path, index: object) -> Path:
    root.mkdir(parents=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    return root


def _copy(client: Client, source: Path, dest: Path) -> str:
    result = client.run("copy", f"oci:{source}", f"oci:{dest}:v1", expect=1)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_layout_whose_index_names_a_dot_dot_digest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "escaped").write_bytes(_manifest("sha256:" + hashlib.sha256(b"{}").hexdigest()))
    entry = {"mediaType": OCI_MANIFEST, "digest": "sha256:../../../../escaped", "size": 1}
    source = _layout(tmp_path / "x" / "y" / "src", {"schemaVersion": 2, "manifests": [entry]})
    assert "invalid digest" in _copy(Client(tmp_path), source, tmp_path / "x" / "y" / "dest")
    assert not (tmp_path / "x" / "y" / "dest" / "index.json").exists()


def test_a_layout_whose_manifest_names_a_dot_dot_blob_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "x" / "y" / "src"
    _layout(source, {"schemaVersion": 2, "manifests": []})
    descriptor = write_blob(source, _manifest(EVIL))
    (source / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, **descriptor}]}))
    assert "invalid digest" in _copy(Client(tmp_path), source, tmp_path / "x" / "y" / "dest")
    assert _escaped(tmp_path / "x") == []


@pytest.mark.parametrize("index", ["{not json", '{"manifests": [{"mediaType": "x"}]}', "[1]"])
def test_a_layout_with_a_bad_index_is_a_one_line_error(tmp_path: Path, index: str) -> None:
    source = _layout(tmp_path / "src", index)
    _copy(Client(tmp_path), source, tmp_path / "dest")
