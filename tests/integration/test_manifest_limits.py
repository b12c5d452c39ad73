"""Manifests the index cannot store are a 400 over the wire, never a 500 after S3 was written."""

from __future__ import annotations

import json

import pytest
import requests

from tests.integration.conftest import OCI_CONFIG, OCI_MANIFEST, RunningRegistry, sha256

pytestmark = pytest.mark.integration


def assert_manifest_invalid(response: requests.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["errors"][0]["code"] == "MANIFEST_INVALID"


def config_descriptor(registry: RunningRegistry, repo: str, config: bytes = b'{"os": "linux", "architecture": "amd64"}') -> dict:
    return {"mediaType": OCI_CONFIG, "digest": registry.push_blob(repo, config), "size": len(config)}


@pytest.mark.parametrize(
    "annotations",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"deep": ' + b"[" * 800 + b"]" * 800 + b"}",
        b'{"n": NaN}',
        b'{"n": 1e400}',
        b'{"n": ' + b"1" * 39 + b"}",
    ],
    ids=["10000-nested-arrays", "800-deep-annotations", "nan", "1e400", "39-digit-integer"],
)
def test_an_unstorable_manifest_is_a_400_and_leaves_nothing_behind(registry: RunningRegistry, repo: str, annotations: bytes) -> None:
    head = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor(registry, repo), "layers": []})
    body = head[:-1].encode() + b', "annotations": ' + annotations + b"}"
    response = registry("PUT", f"/v2/{repo}/manifests/{sha256(body)}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert_manifest_invalid(response)
    assert registry("GET", f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404
    assert registry("GET", f"/v2/{repo}/tags/list").status_code == 404, "the repository never came to exist"


def test_a_hostile_image_config_does_not_fail_the_push(registry: RunningRegistry, repo: str) -> None:
    config = b'{"os": "linux", "architecture": "amd64", "x": NaN, "y": 1e400, "z": ' + b"1" * 5000 + b', "h": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor(registry, repo, config), "layers": []}
    digest, _ = registry.push_manifest(repo, "1.0", manifest)
    assert registry("GET", f"/v2/{repo}/manifests/1.0").headers["Docker-Content-Digest"] == digest
