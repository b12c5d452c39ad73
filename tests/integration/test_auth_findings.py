"""Security-review findings, over raw HTTP against a real `zotless serve` with auth on (examples/htpasswd users).

A HEAD by a caller who may only read links nothing; failed logins lock out with 429 instead of sleeping;
credentials that are not ASCII are a 401 with the challenge, never a 500.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.authconfig import PASSWORDS, auth_server_config
from tests.integration.conftest import RunningRegistry, _registry

pytestmark = pytest.mark.integration

PER_USER = 3
WINDOW = 600


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """Basic challenges, the shared accessControl, and a low per-user lockout so a test can reach it."""
    config = auth_server_config(bearer=False)
    config["http"]["auth"]["lockout"] = {"perUser": PER_USER, "perSource": 50, "window": f"{WINDOW}s"}
    yield from _registry(tmp_path_factory, "auth-findings", config)


def alice() -> tuple[str, str]:
    return ("alice", PASSWORDS["alice"])


def test_head_by_a_reader_links_nothing(server: RunningRegistry) -> None:
    """Anonymous and bob may only read public/**: HEAD under a new name is 404 and the blob stays absent there."""
    origin, elsewhere, mine = (f"public/{kind}-{uuid.uuid4().hex[:8]}" for kind in ("origin", "elsewhere", "mine"))
    layer = os.urandom(2000)
    server.session.auth = alice()
    try:
        digest = server.push_blob(origin, layer)
    finally:
        server.session.auth = None
    for auth in (None, ("bob", PASSWORDS["bob"])):
        assert server("HEAD", f"/v2/{elsewhere}/blobs/{digest}", auth=auth).status_code == 404
        assert server("GET", f"/v2/{elsewhere}/blobs/{digest}", auth=auth).status_code == 404  # no link was made
    pushed = server("HEAD", f"/v2/{mine}/blobs/{digest}", auth=alice())
    assert pushed.status_code == 200 and pushed.headers["Docker-Content-Digest"] == digest
    assert server("GET", f"/v2/{mine}/blobs/{digest}").status_code in (200, 307)  # alice's HEAD linked it


def test_failed_logins_lock_out_with_429_and_retry_after(server: RunningRegistry) -> None:
    user = f"mallory-{uuid.uuid4().hex[:8]}"
    for _ in range(PER_USER):
        assert server("GET", "/v2/", auth=(user, "guess")).status_code == 401
    locked = server("GET", "/v2/", auth=(user, "guess"))
    assert locked.status_code == 429 and locked.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert 1 <= int(locked.headers["Retry-After"]) <= WINDOW
    assert server("GET", "/v2/", auth=alice()).status_code == 200  # another user, same address: unaffected
    log = server.log_path.read_text()
    assert "guess" not in log and "Authorization" not in log


def raw_get(server: RunningRegistry, authorization: bytes) -> tuple[bytes, bytes]:
    """(status line, header block) of GET /v2/ with these exact header bytes, as no HTTP library would send them."""
    host, port = server.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: " + server.host.encode() + b"\r\nAuthorization: " + authorization + b"\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n", 1)[0], head


NOT_ASCII = [
    b"Basic " + base64.b64encode(b"\xff\xfe:\xff"),  # base64 of bytes that are not UTF-8
    "Basic ÿÿÿÿ".encode("latin-1"),
    "Basic ÿÿ".encode(),
    b"Basic \xff\xfe\x80",
]


def test_non_ascii_credentials_are_a_401_with_the_challenge(server: RunningRegistry) -> None:
    for authorization in NOT_ASCII:
        status, head = raw_get(server, authorization)
        assert status.split(b" ")[1] == b"401", (authorization, status)
        assert b'\r\nWWW-Authenticate: Basic realm="zotless"' in head
    assert "handler failed" not in server.log_path.read_text()
