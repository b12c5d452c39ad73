"""Blob reads: byte ranges served by the registry itself, or by the presigned URL a 307 points to."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.conftest import RunningRegistry, sha256

pytestmark = pytest.mark.integration

CONTENT = random.Random(9).randbytes(1000)


def test_range_served_directly(plain_registry: RunningRegistry, repo: str) -> None:
    """storage.redirect false: the registry streams the blob, honouring Range."""
    digest = plain_registry.push_blob(repo, CONTENT)

    whole = plain_registry("GET", f"/v2/{repo}/blobs/{digest}")
    assert whole.status_code == 200
    assert whole.content == CONTENT
    assert whole.headers["Docker-Content-Digest"] == digest

    cases = {"bytes=10-19": (10, 19), "bytes=990-": (990, 999), "bytes=-7": (993, 999), "bytes=995-5000": (995, 999), "bytes=0-0": (0, 0)}
    for header, (first, last) in cases.items():
        part = plain_registry("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == CONTENT[first : last + 1], header
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{len(CONTENT)}", header
        assert part.headers["Content-Length"] == str(last - first + 1), header

    for header in ("bytes=999999999-", "bytes=1000-1005", "bytes=20-10", "lines=1-2"):
        refused = plain_registry("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.headers["Content-Range"] == f"bytes */{len(CONTENT)}", header


def test_range_through_redirect(registry: RunningRegistry, repo: str) -> None:
    """Redirect on: the 307 goes to the emulator, and the Range header sent there gets the same bytes."""
    digest = registry.push_blob(repo, CONTENT)

    redirect = registry("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert redirect.status_code == 307
    assert redirect.headers["Docker-Content-Digest"] == digest
    location = redirect.headers["Location"]
    assert urlsplit(location).netloc != registry.host
    part = requests.get(location, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206
    assert part.content == CONTENT[10:20]

    followed = registry("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=-5"}, allow_redirects=True)
    assert followed.status_code == 206
    assert followed.content == CONTENT[-5:]

    assert registry("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=999999999-"}).status_code == 416
    whole = registry.pull_blob(repo, digest)
    assert (whole.status_code, sha256(whole.content)) == (200, digest)


def test_empty_blob(each_registry: RunningRegistry, repo: str) -> None:
    digest = each_registry.push_blob(repo, b"")
    head = each_registry("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert (head.status_code, head.headers["Content-Length"]) == (200, "0")
    pulled = each_registry.pull_blob(repo, digest)
    assert (pulled.status_code, pulled.content) == (200, b"")
