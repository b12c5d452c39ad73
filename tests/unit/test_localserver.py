"""The local HTTP adapter: body framing, streaming, keep-alive, 100-continue, errors; plus the moto emulator."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import random
import socket
import tracemalloc
from collections.abc import Iterator

import pytest

from chalicelib.adapters.emulator import start_moto
from chalicelib.adapters.localserver import start_in_thread
from chalicelib.spec.http import Headers, Request, Response

MiB = 1024 * 1024


def hash_body(request: Request) -> dict[str, object]:
    digest, total = hashlib.sha256(), 0
    while chunk := request.body.read(MiB):
        digest.update(chunk)
        total += len(chunk)
    return {"sha256": digest.hexdigest(), "bytes": total}


def app(request: Request) -> Response:
    """Tiny core stand-in: the path picks the behaviour under test."""
    if request.path == "/boom":
        raise RuntimeError("kaboom")
    if request.path == "/noread":
        return Response(202, Headers({"Content-Length": "0"}))
    if request.path == "/stream":
        parts = [b"a" * 1000, b"", b"b" * 70000, b"c"]
        headers = Headers({"Content-Length": str(sum(map(len, parts)))} if request.arg("sized") else {})
        return Response(200, headers, iter(parts))
    info = {**hash_body(request), "path": request.path, "query": request.query, "accept": request.headers.get("Accept")}
    return Response(200, Headers({"Content-Type": "application/json"}), json.dumps(info).encode())


@pytest.fixture
def port() -> Iterator[int]:
    server, thread = start_in_thread(app)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def conn(port: int) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    yield connection
    connection.close()


def send_raw(port: int, data: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    """Send bytes http.client cannot produce (bad framing, extensions, trailers, repeated headers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response, response.read()


def read_head(sock: socket.socket) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, "connection closed early"
        head += byte
    return head


def test_content_length_body(conn: http.client.HTTPConnection) -> None:
    body = os.urandom(3 * MiB + 17)
    conn.request("PUT", "/hash", body=body)
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body), "path": "/hash",
                                           "query": {}, "accept": None}


def test_chunked_body_streams_in_bounded_memory(conn: http.client.HTTPConnection) -> None:
    rng, expected, total = random.Random(7), hashlib.sha256(), 0
    sizes = [1, 2, 15, 4096, 65535, 65536, 65537, MiB - 1, MiB, 3 * MiB]
    sizes += [rng.randint(MiB // 2, 3 * MiB) for _ in range(12)]

    def chunks() -> Iterator[bytes]:
        nonlocal total
        for size in sizes:
            chunk = rng.randbytes(size)
            expected.update(chunk)
            total += size
            yield chunk

    tracemalloc.start()
    try:
        conn.request("PATCH", "/hash", body=chunks(), encode_chunked=True)
        result = json.loads(conn.getresponse().read())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total > 20 * MiB
    assert result["bytes"] == total and result["sha256"] == expected.hexdigest()
    assert peak < 16 * MiB


def test_chunk_extensions_and_trailers(port: int) -> None:
    request = (b"PATCH /hash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=value\r\nhello\r\n6 ; a ; b=\"c;d\"\r\n world\r\n0;last\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n")
    response, body = send_raw(port, request)
    assert response.status == 200
    assert json.loads(body)["sha256"] == hashlib.sha256(b"hello world").hexdigest()


def test_malformed_chunk_is_a_client_error_and_closes(port: int) -> None:
    response, body = send_raw(port, b"PATCH /hash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    assert response.status == 400
    assert json.loads(body)["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert response.getheader("Connection") == "close"


@pytest.mark.parametrize("sized", [False, True])
def test_streamed_response(conn: http.client.HTTPConnection, sized: bool) -> None:
    conn.request("GET", "/stream?sized=1" if sized else "/stream")
    response = conn.getresponse()
    assert response.read() == b"a" * 1000 + b"b" * 70000 + b"c"
    assert response.getheader("Transfer-Encoding") == (None if sized else "chunked")
    conn.request("GET", "/hash")  # the connection is still usable after either framing
    assert conn.getresponse().status == 200


def test_head_sends_headers_only(conn: http.client.HTTPConnection) -> None:
    conn.request("HEAD", "/stream?sized=1")
    response = conn.getresponse()
    assert response.getheader("Content-Length") == "71001"
    assert response.read() == b""
    conn.request("GET", "/hash")
    assert conn.getresponse().status == 200


def test_keep_alive_after_unread_body(conn: http.client.HTTPConnection) -> None:
    conn.request("PUT", "/noread", body=b"x" * (2 * MiB))
    assert conn.getresponse().read() == b""
    sock = conn.sock
    conn.request("PUT", "/hash", body=b"abc")
    result = json.loads(conn.getresponse().read())
    assert conn.sock is sock and result["bytes"] == 3


def test_huge_unread_body_closes_instead_of_draining(port: int) -> None:
    response, _ = send_raw(port, b"PUT /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n" + b"x" * 1000)
    assert response.status == 202
    assert response.getheader("Connection") == "close"


def test_expect_100_continue(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PUT /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert json.loads(response.read())["sha256"] == hashlib.sha256(b"hello").hexdigest()
        response.close()


def test_expect_100_not_sent_when_body_is_not_wanted(port: int) -> None:
    response, _ = send_raw(port, b"PUT /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert response.status == 202  # http.client would have skipped a 100; begin() sees the final status directly
    assert response.getheader("Connection") == "close"


def test_handler_exception_is_json_500(conn: http.client.HTTPConnection, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="zotless.localserver"):
        conn.request("POST", "/boom", body=b"data")
        response = conn.getresponse()
        assert response.status == 500
        assert json.loads(response.read()) == {"errors": [{"code": "UNKNOWN", "message": "internal error"}]}
    assert "kaboom" in caplog.text  # traceback logged


def test_path_stays_percent_encoded_and_headers_join(port: int) -> None:
    request = (b"GET /v2/a%2Fb/%2e%2e/blobs?n=%20x&last=&flag HTTP/1.1\r\nHost: x\r\n"
               b"Accept: application/a\r\nAccept: application/b\r\n\r\n")
    result = json.loads(send_raw(port, request)[1])
    assert result["path"] == "/v2/a%2Fb/%2e%2e/blobs"
    assert result["query"] == {"n": [" x"], "last": [""], "flag": [""]}
    assert result["accept"] == "application/a, application/b"


def test_log_line_omits_secrets(conn: http.client.HTTPConnection, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="zotless.localserver"):
        conn.request("PUT", "/hash?token=s3cr3t", body=b"b0dy", headers={"Authorization": "Bearer s3cr3t"})
        conn.getresponse().read()
        conn.request("GET", "/noread")  # same server thread: its answer proves the first line was logged
        conn.getresponse().read()
    assert "PUT /hash 200" in caplog.text
    assert "s3cr3t" not in caplog.text and "b0dy" not in caplog.text


@pytest.mark.process
def test_moto_emulator_serves_s3_and_stops() -> None:
    boto3 = pytest.importorskip("boto3")

    with start_moto() as emulator:
        s3 = boto3.client("s3", endpoint_url=emulator.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="zotless-emulator")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["zotless-emulator"]
        pid = emulator.process.pid
    assert emulator.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
