"""Seeded random requests over real HTTP, through the local server and through `--lambda` (app.py as Lambda runs it).

Whatever a client sends, the answer is below 500, errors carry the spec's JSON body, and the
server's log holds no traceback: every failure a client can cause is one the registry names.
"""

from __future__ import annotations

import http.client
import json
import random

import pytest

from tests.integration.conftest import RunningRegistry, sha256

SEGMENTS = ["v2", "team", "app", "blobs", "uploads", "manifests", "tags", "list", "referrers", "_catalog", "..", "%2F", "", "A", sha256(b"x"), "latest"]
QUERIES = ["", "?n=x", "?n=5&last=", "?n=\u00b2", "?digest=sha256:1", f"?digest={sha256(b'')}", "?mount=a&from=b", "?digest-algorithm=sha1"]
QUERIES += ["?n=99999999999999999999", "?last=\u00e9"]
HEADERS = ["Content-Range", "Range", "Content-Type", "Authorization", "Accept", "Docker-Content-Digest"]
VALUES = ["", "0-0", "bytes=0-", "bytes=5-1", "Basic \u00e9\u00e9", "Bearer x.y.z", "application/json", "*/*", "0-99999999999999999999", "sha256:zz"]
CASES = 120


def random_request(rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
    method = rng.choice(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    path = "/" + "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(1, 7))) + rng.choice(QUERIES)
    headers = {rng.choice(HEADERS): rng.choice(VALUES) for _ in range(rng.randint(0, 3))}
    body = rng.randbytes(rng.choice([0, 0, 7, 64, 300]))
    if rng.random() < 0.2:
        body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [[] for _ in range(3)]}).encode()
    return method, path, headers, body


class RawConnection(http.client.HTTPConnection):
    """Sends the request line as UTF-8 bytes, as a careless client would; http.client insists on ASCII."""

    def _encode_request(self, request: str) -> bytes:
        return request.encode("utf-8")


def send(registry: RunningRegistry, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    connection = RawConnection(registry.host, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value.encode("utf-8"))
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("server", ["registry", "lambda_registry"])
def test_seeded_random_requests_never_make_a_server_error_or_a_traceback(server: str, request: pytest.FixtureRequest) -> None:
    registry: RunningRegistry = request.getfixturevalue(server)
    registry.push_image("team/app", "latest")
    rng = random.Random(20261130)
    for _ in range(CASES):
        method, path, headers, body = random_request(rng)
        status, answer = send(registry, method, path, headers, body)
        assert status < 500, (method, path, headers, body[:80], answer[:300])
        if status >= 400 and method != "HEAD" and answer:
            document = json.loads(answer)
            gateway = server == "lambda_registry" and set(document) == {"message"}  # API Gateway's own answer to a route it lacks
            assert gateway or document["errors"][0]["code"], (method, path, answer[:300])
    tracebacks = [line for line in registry.log_lines() if "Traceback" in line]
    assert tracebacks == [], "\n".join(registry.log_lines()[-60:])
