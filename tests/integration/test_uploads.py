"""Blob uploads over the wire: chunked transfer encoding, Content-Range chunks, sha512, cross-repository mount."""

from __future__ import annotations

import hashlib
import http.client
import random
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import MiB, RunningRegistry, sha256

pytestmark = pytest.mark.integration


def start_session(registry: RunningRegistry, repo: str, **params: str) -> str:
    response = registry("POST", f"/v2/{repo}/blobs/uploads/", params=params, headers={"Content-Length": "0"})
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == "0-0"
    return response.headers["Location"]


def test_sixty_mib_in_one_chunked_transfer_patch(registry: RunningRegistry, repo: str) -> None:
    """One PATCH with Transfer-Encoding: chunked and no Content-Length, then PUT ?digest=; pulled back through the 307."""
    pieces, hasher = 60, hashlib.sha256()
    rng = random.Random(60)

    def body() -> Iterator[bytes]:
        for _ in range(pieces):
            piece = rng.randbytes(MiB)
            hasher.update(piece)
            yield piece

    location = start_session(registry, repo)
    host, port = registry.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    try:
        connection.request(
            "PATCH", location, body=body(), headers={"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}, encode_chunked=True
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 202
        assert response.getheader("Range") == f"0-{pieces * MiB - 1}"
        location = response.getheader("Location")
    finally:
        connection.close()
    digest = "sha256:" + hasher.hexdigest()

    done = registry("PUT", location, params={"digest": digest})
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    assert done.headers["Location"] == f"/v2/{repo}/blobs/{digest}"

    head = registry("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(pieces * MiB))
    redirect = registry("GET", f"/v2/{repo}/blobs/{digest}")
    assert redirect.status_code == 307
    assert urlsplit(redirect.headers["Location"]).hostname == "127.0.0.1"
    pulled, size = hashlib.sha256(), 0
    with registry.session.get(registry.url + f"/v2/{repo}/blobs/{digest}", stream=True, timeout=300) as streamed:
        assert streamed.status_code == 200
        assert [r.status_code for r in streamed.history] == [307]
        for chunk in streamed.iter_content(MiB):
            pulled.update(chunk)
            size += len(chunk)
    assert size == pieces * MiB
    assert "sha256:" + pulled.hexdigest() == digest


def test_chunks_under_and_over_five_mib(each_registry: RunningRegistry, repo: str) -> None:
    """Content-Range chunks of mixed sizes; Range after each; an out-of-order chunk is 416 and harms nothing."""
    registry = each_registry
    rng = random.Random(5)
    sizes = [1 * MiB, 2 * MiB, 6 * MiB, 512 * 1024, 7 * MiB]
    chunks = [rng.randbytes(size) for size in sizes]
    last = rng.randbytes(3 * MiB + 17)
    content = b"".join([*chunks, last])
    digest = sha256(content)

    location = start_session(registry, repo)
    offset = 0
    for n, chunk in enumerate(chunks):
        if n == 3:  # a chunk that skips ahead, then one that repeats what is stored: both out of order
            for start in (offset + 1, offset - 10):
                stray = registry(
                    "PATCH", location, data=b"x" * 10, headers={"Content-Range": f"{start}-{start + 9}", "Content-Type": "application/octet-stream"}
                )
                assert stray.status_code == 416, stray.text
                assert stray.headers["Range"] == f"0-{offset - 1}"
                assert stray.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
        response = registry(
            "PATCH", location, data=chunk, headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}", "Content-Type": "application/octet-stream"}
        )
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]
        status = registry("GET", location)
        assert (status.status_code, status.headers["Range"]) == (204, f"0-{offset - 1}")

    wrong = registry("PUT", location, params={"digest": digest}, data=last, headers={"Content-Range": f"{offset + 5}-{offset + 4 + len(last)}"})
    assert wrong.status_code == 416
    done = registry(
        "PUT",
        location,
        params={"digest": digest},
        data=last,
        headers={"Content-Range": f"{offset}-{offset + len(last) - 1}", "Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest
    assert registry("GET", location).status_code == 404  # the session is gone

    pulled = registry.pull_blob(repo, digest)
    assert pulled.status_code == 200
    assert len(pulled.content) == len(content)
    assert sha256(pulled.content) == digest


def test_sha512_blob_upload(each_registry: RunningRegistry, repo: str) -> None:
    registry = each_registry
    content = random.Random(512).randbytes(MiB + 3)
    digest = "sha512:" + hashlib.sha512(content).hexdigest()

    location = start_session(registry, repo, **{"digest-algorithm": "sha512"})
    response = registry("PATCH", location, data=content, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{len(content) - 1}"
    done = registry("PUT", response.headers["Location"], params={"digest": digest})
    assert done.status_code == 201, done.text
    assert done.headers["Docker-Content-Digest"] == digest

    head = registry("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(content))
    assert head.headers["Docker-Content-Digest"] == digest
    pulled = registry.pull_blob(repo, digest)
    assert pulled.status_code == 200
    assert pulled.content == content
    # The same bytes are not known under their sha256 digest.
    assert registry("HEAD", f"/v2/{repo}/blobs/{sha256(content)}").status_code == 404


def test_sha512_digest_that_does_not_match(registry: RunningRegistry, repo: str) -> None:
    location = start_session(registry, repo, **{"digest-algorithm": "sha512"})
    wrong = "sha512:" + hashlib.sha512(b"something else").hexdigest()
    done = registry("PUT", location, params={"digest": wrong}, data=b"payload")
    assert done.status_code == 400
    assert done.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert registry("HEAD", f"/v2/{repo}/blobs/{wrong}").status_code == 404


def test_mount_from_another_repository(each_registry: RunningRegistry, repo: str) -> None:
    registry = each_registry
    source, target, unrelated = f"{repo}/a", f"{repo}/b", f"{repo}/c"
    content = random.Random(11).randbytes(200_000)
    digest = registry.push_blob(source, content)

    mounted = registry("POST", f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source}, headers={"Content-Length": "0"})
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["Location"] == f"/v2/{target}/blobs/{digest}"
    assert mounted.headers["Docker-Content-Digest"] == digest
    head = registry("HEAD", f"/v2/{target}/blobs/{digest}")
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(content)))
    assert registry.pull_blob(target, digest).content == content

    # Deleting the source's copy leaves the mounted one intact.
    assert registry("DELETE", f"/v2/{source}/blobs/{digest}").status_code == 202
    assert registry("HEAD", f"/v2/{source}/blobs/{digest}").status_code == 404
    assert registry.pull_blob(target, digest).content == content

    # A mount the source cannot satisfy falls back to a new upload session, as the spec says.
    fallback = registry("POST", f"/v2/{unrelated}/blobs/uploads/", params={"mount": sha256(b"never pushed"), "from": target}, headers={"Content-Length": "0"})
    assert fallback.status_code == 202
    assert fallback.headers["Location"].startswith(f"/v2/{unrelated}/blobs/uploads/")
