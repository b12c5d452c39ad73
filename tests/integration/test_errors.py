"""Error responses as a client receives them: status, JSON body with the spec's code, and no body on HEAD."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.integration.conftest import RunningRegistry, sha256

pytestmark = pytest.mark.integration

MISSING = sha256(b"never pushed anywhere")


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors
    assert errors[0]["code"] == code, errors
    assert isinstance(errors[0]["message"], str)


def test_base_endpoint(registry: RunningRegistry) -> None:
    response = registry("GET", "/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v2/Bad/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/bad..name/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/it/nobody-here/tags/list", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/it/nobody-here/manifests/latest", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/it/nobody-here/blobs/{MISSING}", 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/it/nobody-here/blobs/sha256:abc", 400, "DIGEST_INVALID"),
        ("GET", "/v2/it/nobody-here/blobs/uploads/0123456789abcdef0123456789abcdef", 404, "BLOB_UPLOAD_UNKNOWN"),
        ("GET", "/v2/_catalog?n=many", 400, "PAGINATION_NUMBER_INVALID"),
        ("DELETE", f"/v2/it/nobody-here/manifests/{MISSING}", 404, "MANIFEST_UNKNOWN"),
    ],
)
def test_error_bodies(registry: RunningRegistry, method: str, path: str, status: int, code: str) -> None:
    assert_error(registry(method, path), status, code)


def test_head_errors_have_no_body(registry: RunningRegistry) -> None:
    response = registry("HEAD", f"/v2/it/nobody-here/blobs/{MISSING}")
    assert response.status_code == 404
    assert response.content == b""


def test_malformed_content_range(registry: RunningRegistry, repo: str) -> None:
    started = registry("POST", f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202
    location = started.headers["Location"]
    for content_range in ("garbage", "5-2", "0-"):
        response = registry("PATCH", location, data=b"0123456789", headers={"Content-Range": content_range})
        assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    mismatched = registry("PATCH", location, data=b"0123456789", headers={"Content-Range": "0-19"})
    assert_error(mismatched, 416, "BLOB_UPLOAD_INVALID")
    # None of that touched the session: a correct chunk still lands at offset 0.
    good = registry("PATCH", location, data=b"0123456789", headers={"Content-Range": "0-9"})
    assert (good.status_code, good.headers["Range"]) == (202, "0-9")


def test_upload_errors(registry: RunningRegistry, repo: str) -> None:
    location = registry("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert_error(registry("PUT", location, data=b"abc"), 400, "DIGEST_INVALID")  # no ?digest=
    location = registry("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert_error(registry("PUT", location, params={"digest": sha256(b"abd")}, data=b"abc"), 400, "DIGEST_INVALID")
    assert registry("HEAD", f"/v2/{repo}/blobs/{sha256(b'abc')}").status_code == 404
    assert_error(registry("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(b"x")}, data=b"y"), 400, "DIGEST_INVALID")
    cancelled = registry("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert registry("DELETE", cancelled).status_code == 204
    assert_error(registry("PATCH", cancelled, data=b"late"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_manifest_errors(registry: RunningRegistry, repo: str) -> None:
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    assert_error(registry("PUT", f"/v2/{repo}/manifests/v1", data=b"{not json", headers=headers), 400, "MANIFEST_INVALID")
    dangling = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"' + MISSING.encode() + b'","size":2},"layers":[]}'
    )
    assert_error(registry("PUT", f"/v2/{repo}/manifests/v1", data=dangling, headers=headers), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(registry("PUT", f"/v2/{repo}/manifests/{MISSING}", data=dangling, headers=headers), 400, "DIGEST_INVALID")


@pytest.mark.parametrize(
    ("body", "half_close"),
    [(b"10\r\n" + b"x" * 16 + b"zz\r\n", False), (b"100\r\n" + b"x" * 16, True), (b"nothex\r\n", False)],
    ids=["chunk-not-followed-by-crlf", "broken-off-mid-chunk", "bad-chunk-size"],
)
def test_broken_chunked_body_is_a_client_error(registry: RunningRegistry, repo: str, body: bytes, half_close: bool) -> None:
    """A PATCH whose chunked framing is wrong or breaks off: 400, the session is unusable, the server stays up."""
    location = registry("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    host, port = registry.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"PATCH {location} HTTP/1.1\r\nHost: {registry.host}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
        sock.sendall(head.encode() + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    text = reply.decode(errors="replace")
    assert text.startswith("HTTP/1.1 400"), text[:300]
    assert "BLOB_UPLOAD_INVALID" in text
    assert "connection: close" in text.lower()
    assert registry("GET", location).status_code == 404  # a failed request ends its session
    assert registry("GET", "/v2/").status_code == 200
