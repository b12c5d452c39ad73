"""The local server's HTTP framing as a client meets it: raw bytes on a socket, and docker's CLI.

Requests a parser must refuse (RFC 9112) are answered with an HTTP/1.1 status line, the spec's JSON
error body and `Connection: close`, and the connection really is closed afterwards.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass

import pytest

from tests.integration.conftest import RunningRegistry

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


@dataclass
class Reply:
    raw: bytes
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool

    def error_code(self) -> str:
        return str(json.loads(self.body)["errors"][0]["code"])


def exchange(registry: RunningRegistry, data: bytes, wait_for_close: bool = True) -> Reply:
    """Send bytes, read one response; `closed` says whether the server then ended the connection (waited for only if asked)."""
    host, _, port = registry.host.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a complete response head: {raw[:200]!r}"
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert status_line.startswith("HTTP/1.1 "), f"no HTTP/1.1 status line: {raw[:200]!r}"
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
        closed = False
        if wait_for_close:
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
    return Reply(raw, int(status_line.split()[1]), headers, body[:length], closed)


def assert_refused(reply: Reply, status: int = 400) -> None:
    """The status, the spec's JSON error body, Connection: close, and the socket closed."""
    assert reply.status == status, reply.raw[:300]
    assert reply.headers.get("content-type") == "application/json"
    assert reply.error_code() == "UNSUPPORTED"
    assert reply.headers.get("connection") == "close"
    assert reply.closed


def client_hello() -> bytes:
    """The bytes a TLS client sends first, as docker's HTTPS probe of an --insecure registry does."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="registry.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"  # a TLS handshake record
    return hello


# 1. docker's plain-HTTP fallback


def test_tls_client_hello_gets_an_http_400(registry: RunningRegistry) -> None:
    reply = exchange(registry, client_hello())
    assert reply.raw.startswith(b"HTTP/1.1 400 ")  # Go's TLS client looks for "HTTP/" to fall back to plain HTTP
    assert_refused(reply)


@pytest.mark.parametrize(
    "request_line",
    [b"GARBAGE", b"GET / HTTP/1.1 extra", b"GET / HTTX/1.1", b"GET /v2/", b"\x00\x01\x02 / HTTP/1.1"],
    ids=["one-word", "four-words", "bad-version", "http-0.9", "binary"],
)
def test_malformed_request_line_gets_an_http_400(registry: RunningRegistry, request_line: bytes) -> None:
    assert_refused(exchange(registry, request_line + b"\r\nHost: x\r\n\r\n"))


def test_docker_manifest_inspect_falls_back_to_plain_http(registry: RunningRegistry, repo: str) -> None:
    """docker probes HTTPS first; the CLI reads the registry itself, so no daemon is needed."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI is not on PATH")
    registry.push_image(repo, "1.0")
    command = [docker, "manifest", "inspect", "--insecure", f"{registry.host}/{repo}:1.0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schemaVersion"] == 2


# 2. request smuggling and framing (RFC 9112)

SMUGGLED = b"GET /v2/_catalog HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "fields",
    [
        b"Content-Length: 0\r\nContent-Length: 38\r\n",
        b"Content-Length: 38\r\nContent-Length: 38\r\n",  # identical values are refused too: no client sends two
        b"Content-Length: 38\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"Content-Length : 38\r\n",
        b"X-Folded: a\r\n b\r\nContent-Length: 38\r\n",
        b"Content-Length: 38\r\n\tX-Folded: b\r\n",
        b"Content-Length: +38\r\n",
        b"Content-Length: 0x26\r\n",
        b"Content-Length: 38, 38\r\n",
    ],
    ids=[
        "two-lengths", "same-length-twice", "length-and-chunked", "two-encodings", "space-before-colon",
        "folded", "folded-after-length", "plus-sign", "hex", "list",
    ],
)
def test_ambiguous_framing_is_refused_and_closed(registry: RunningRegistry, fields: bytes) -> None:
    assert len(SMUGGLED) == 38
    assert_refused(exchange(registry, b"POST /v2/ HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n" + SMUGGLED))


def test_too_many_header_fields(registry: RunningRegistry) -> None:
    fields = b"".join(b"X-Field-%d: %d\r\n" % (i, i) for i in range(101))
    assert_refused(exchange(registry, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"), 431)


def test_header_section_over_64_kib(registry: RunningRegistry) -> None:
    fields = b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 30000) for i in range(3))
    assert_refused(exchange(registry, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"), 431)


def test_a_plain_request_still_keeps_the_connection(registry: RunningRegistry) -> None:
    host, _, port = registry.host.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        sockets, statuses = [], []
        for _ in range(2):
            connection.request("GET", "/v2/", headers={"Content-Length": "0"})
            response = connection.getresponse()
            response.read()
            sockets.append(connection.sock)
            statuses.append(response.status)
        assert statuses == [200, 200] and sockets[0] is sockets[1] is not None
    finally:
        connection.close()


# 3. numbers are ASCII digits (header bytes arrive as Latin-1: 0xB2 is '²', which isdigit() accepts)


@pytest.mark.parametrize("length", [b"\xb2", b"\xb9", b"9" * 5000], ids=["superscript-two", "superscript-one", "5000-digits"])
def test_content_length_must_be_ascii_digits(registry: RunningRegistry, length: bytes) -> None:
    assert_refused(exchange(registry, b"PUT /v2/it/x/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"))


@pytest.mark.parametrize("n", ["%C2%B2", "%D9%A3", "9" * 5000], ids=["superscript-two", "arabic-indic-three", "5000-digits"])
def test_page_size_must_be_ascii_digits(registry: RunningRegistry, repo: str, n: str) -> None:
    registry.push_image(repo, "1.0")
    for path in ("/v2/_catalog", f"/v2/{repo}/tags/list"):
        reply = exchange(registry, f"GET {path}?n={n} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), wait_for_close=False)
        assert (reply.status, reply.error_code()) == (400, "PAGINATION_NUMBER_INVALID"), reply.raw[:300]


def test_ranges_must_be_ascii_digits(registry: RunningRegistry, repo: str) -> None:
    digest = registry.push_blob(repo, b"0123456789")
    for value in (b"bytes=0-\xb2", b"bytes=0-" + b"9" * 5000):
        request = b"GET /v2/%s/blobs/%s HTTP/1.1\r\nHost: x\r\nRange: %s\r\n\r\n" % (repo.encode(), digest.encode(), value)
        reply = exchange(registry, request, wait_for_close=False)
        assert reply.status == 416, reply.raw[:300]
    location = registry("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    for value in (b"0-\xb2", b"0-" + b"9" * 5000):
        request = b"PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Range: %s\r\nContent-Length: 4\r\n\r\nabcd" % (location.encode(), value)
        reply = exchange(registry, request, wait_for_close=False)
        assert reply.status == 416, reply.raw[:300]
