"""`zotless serve --lambda`: real clients through API Gateway proxy events into app.py, within Lambda's limits."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from oras.client import OrasClient

from chalicelib.api.limits import CHUNK_MAX_LENGTH, CHUNK_MIN_LENGTH, MAX_LAMBDA_BODY
from tests.integration.conftest import OCI_MANIFEST, MiB, RunningRegistry, _registry, run_skopeo, sha256
from tests.integration.images import make_layout
from tests.integration.test_skopeo import layout_blobs, layout_manifest, push_layout

pytestmark = pytest.mark.integration
SECRET = "lambda-s3cr3t"


@pytest.fixture(scope="module")
def lambda_streaming_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """Lambda emulation with storage.redirect off: blob bytes come back through the function's response."""
    yield from _registry(tmp_path_factory, "lambda-streaming", {"storage": {"redirect": False}}, "--lambda")


def start_upload(registry: RunningRegistry, repo: str) -> str:
    started = registry("POST", f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    return started.headers["Location"]


def push_chunked(registry: RunningRegistry, repo: str, data: bytes, chunk: int = CHUNK_MAX_LENGTH) -> str:
    location = start_upload(registry, repo)
    for offset in range(0, len(data), chunk):
        part = data[offset : offset + chunk]
        patched = registry("PATCH", location, data=part, headers={"Content-Range": f"{offset}-{offset + len(part) - 1}"})
        assert patched.status_code == 202, patched.text
        location = patched.headers["Location"]
    done = registry("PUT", location, params={"digest": sha256(data)})
    assert done.status_code == 201, done.text
    return sha256(data)


def assert_too_large(response) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "SIZE_INVALID"
    assert f"chunks of at most {CHUNK_MAX_LENGTH} bytes" in error["message"]


def test_oras_pushes_50_mib_in_chunks_and_pulls_it_back(lambda_registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    content = random.Random(50).randbytes(50 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    target = f"{lambda_registry.host}/{repo}:big"
    client = OrasClient(hostname=lambda_registry.host, insecure=True, tls_verify=False)

    pushed = client.push(target=target, files=[str(path)], disable_path_validation=True, do_chunked=True, chunk_size=CHUNK_MAX_LENGTH, quiet=True)
    assert pushed.status_code == 201

    patches = lambda_registry.requests_logged("PATCH", f"/v2/{repo}/blobs/uploads/")
    assert [status for _, status in patches] == [202] * -(-50 * MiB // CHUNK_MAX_LENGTH), patches  # full chunks and a short last one, each one event
    paths = client.pull(target=target, outdir=str(tmp_path / "download"))
    assert len(paths) == 1
    assert hashlib.sha256(Path(paths[0]).read_bytes()).digest() == hashlib.sha256(content).digest()


def test_monolithic_50_mib_patch_gets_413_and_the_session_survives(lambda_registry: RunningRegistry, repo: str) -> None:
    location = start_upload(lambda_registry, repo)
    assert_too_large(lambda_registry("PATCH", location, data=random.Random(1).randbytes(50 * MiB)))

    small = b"still usable"
    patched = lambda_registry("PATCH", location, data=small, headers={"Content-Range": f"0-{len(small) - 1}"})
    assert patched.status_code == 202, patched.text  # the function never saw the refused request
    assert lambda_registry("PUT", patched.headers["Location"], params={"digest": sha256(small)}).status_code == 201


def test_oversize_monolithic_post_and_put_get_413(lambda_registry: RunningRegistry, repo: str) -> None:
    blob = bytes(MAX_LAMBDA_BODY + 1)
    assert_too_large(lambda_registry("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, data=blob))
    assert_too_large(lambda_registry("PUT", start_upload(lambda_registry, repo), params={"digest": sha256(blob)}, data=blob))
    fits = bytes(MAX_LAMBDA_BODY)
    created = lambda_registry("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(fits)}, data=fits)
    assert created.status_code == 201, created.text  # the largest body Lambda can carry still goes through


def test_expect_continue_client_is_refused_before_sending(lambda_registry: RunningRegistry, repo: str) -> None:
    location = start_upload(lambda_registry, repo)
    host, port = urlsplit(lambda_registry.url).hostname, urlsplit(lambda_registry.url).port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {50 * MiB}\r\nExpect: 100-continue\r\n\r\n".encode())
        head = sock.recv(65536).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413 "), head


def test_skopeo_pushes_small_layers_and_pulls_them_back(skopeo: str, lambda_registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    pushed_digest = make_layout(source, "1.0", [3 * MiB, MiB, 1000])
    push_layout(skopeo, lambda_registry, source, "1.0", repo, "1.0")
    pulled = tmp_path / "pulled"
    run_skopeo(skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{lambda_registry.host}/{repo}:1.0", f"oci:{pulled}:1.0")
    assert layout_manifest(pulled) == layout_manifest(source)
    assert layout_manifest(pulled)[0] == pushed_digest
    assert layout_blobs(pulled) == layout_blobs(source)


def test_skopeo_cannot_push_a_layer_over_the_limit(skopeo: str, lambda_registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    """skopeo sends each layer in one PATCH: through API Gateway + Lambda it gets our 413 and says why."""
    source = tmp_path / "source"
    make_layout(source, "big", [6 * MiB])
    destination = f"docker://{lambda_registry.host}/{repo}:big"
    command = [skopeo, "--insecure-policy", "copy", "--retry-times", "0", "--dest-tls-verify=false", f"oci:{source}:big", destination]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert f"chunks of at most {CHUNK_MAX_LENGTH} bytes" in result.stderr, result.stderr


def test_headers_survive_the_proxy_round_trip(lambda_registry: RunningRegistry, repo: str) -> None:
    started = lambda_registry("POST", f"/v2/{repo}/blobs/uploads/")
    assert started.headers["Range"] == "0-0" and started.headers["Docker-Upload-UUID"]
    assert started.headers["OCI-Chunk-Min-Length"] == str(CHUNK_MIN_LENGTH)
    assert started.headers["OCI-Chunk-Max-Length"] == str(CHUNK_MAX_LENGTH)
    blob = bytes(range(256)) * 4096  # 1 MiB of every byte value: base64 both ways must be exact
    patched = lambda_registry("PATCH", started.headers["Location"], data=blob, headers={"Content-Range": f"0-{len(blob) - 1}"})
    assert patched.headers["Range"] == f"0-{len(blob) - 1}"
    assert patched.headers["OCI-Chunk-Max-Length"] == str(CHUNK_MAX_LENGTH)
    done = lambda_registry("PUT", patched.headers["Location"], params={"digest": sha256(blob)})
    assert done.headers["Location"] == f"/v2/{repo}/blobs/{sha256(blob)}"
    assert done.headers["Docker-Content-Digest"] == sha256(blob)

    head = lambda_registry("HEAD", f"/v2/{repo}/blobs/{sha256(blob)}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(blob)) and head.content == b""
    assert head.headers["Docker-Content-Digest"] == sha256(blob)
    assert lambda_registry.pull_blob(repo, sha256(blob)).content == blob  # 307 to the presigned URL

    for tag in ("a", "b"):
        digest, _ = lambda_registry.push_image(repo, tag)
    manifest_head = lambda_registry("HEAD", f"/v2/{repo}/manifests/b")
    assert manifest_head.headers["Docker-Content-Digest"] == digest
    assert int(manifest_head.headers["Content-Length"]) == len(lambda_registry("GET", f"/v2/{repo}/manifests/b").content)
    assert manifest_head.headers["Content-Type"] == OCI_MANIFEST
    listed = lambda_registry("GET", f"/v2/{repo}/tags/list", params={"n": "1"})
    assert listed.json()["tags"] == ["a"] and listed.headers["Link"] == f'</v2/{repo}/tags/list?n=1&last=a>; rel="next"'


def test_blob_responses_over_6_mb_are_a_502(lambda_streaming_registry: RunningRegistry, repo: str) -> None:
    small = random.Random(2).randbytes(100_000)
    digest = lambda_streaming_registry.push_blob(repo, small)
    got = lambda_streaming_registry("GET", f"/v2/{repo}/blobs/{digest}")
    assert got.status_code == 200 and got.content == small  # streamed through the function's base64 body

    big = random.Random(3).randbytes(5 * MiB)
    big_digest = push_chunked(lambda_streaming_registry, repo, big)
    too_big = lambda_streaming_registry("GET", f"/v2/{repo}/blobs/{big_digest}")
    assert too_big.status_code == 502
    assert "response too large for AWS Lambda" in too_big.json()["errors"][0]["message"]
    ranged = lambda_streaming_registry("GET", f"/v2/{repo}/blobs/{big_digest}", headers={"Range": f"bytes=0-{MiB - 1}"})
    assert ranged.status_code == 206 and ranged.content == big[:MiB]


def test_log_lines_are_json_without_credentials(lambda_registry: RunningRegistry, repo: str) -> None:
    headers = {"Authorization": f"Bearer {SECRET}"}
    response = lambda_registry("GET", f"/v2/{repo}/tags/list", params={"token": SECRET}, headers=headers)
    assert response.status_code == 404
    deadline = time.monotonic() + 10  # the access log line is written after the response went out
    while True:
        served = [e for e in lambda_registry.log_entries() if e["path"] == f"/v2/{repo}/tags/list"]
        invoked = [e for e in lambda_registry.log_entries("zotless.app") if e["path"] == f"/v2/{repo}/tags/list"]
        if (served and invoked) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    text = lambda_registry.log_path.read_text()
    assert SECRET not in text
    assert [e["status"] for e in served] == [404] and [e["status"] for e in invoked] == [404]
    assert served[0]["requestId"] == invoked[0]["requestId"]  # one id from the edge to the function
    for entry in (served[0], invoked[0]):
        assert entry["route"] == "/v2/{name}/tags/list" and entry["repository"] == repo and entry["method"] == "GET"
        assert entry["sourceIp"] == "127.0.0.1" and entry["latencyMs"] >= 0
    assert all(json.loads(line) for line in text.splitlines() if line.startswith("{"))
