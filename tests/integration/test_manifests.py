"""Manifests over raw HTTP: delete by digest, referrers with a filter, sha512 references, tag pagination."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urljoin

import pytest
import requests

from tests.integration.conftest import OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, RunningRegistry, sha256

pytestmark = pytest.mark.integration

SBOM = "application/vnd.example.sbom.v1+json"
SIGNATURE = "application/vnd.example.signature.v1"


def test_delete_by_digest_removes_all_tags(registry: RunningRegistry, repo: str) -> None:
    digest, manifest = registry.push_image(repo, "first")
    registry.push_manifest(repo, "second", manifest)
    other, _ = registry.push_image(repo, "other", architecture="arm64")
    assert registry("GET", f"/v2/{repo}/tags/list").json()["tags"] == ["first", "other", "second"]

    deleted = registry("DELETE", f"/v2/{repo}/manifests/{digest}")
    assert deleted.status_code == 202, deleted.text

    for reference in ("first", "second", digest):
        gone = registry("GET", f"/v2/{repo}/manifests/{reference}")
        assert gone.status_code == 404
        assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        assert registry("HEAD", f"/v2/{repo}/manifests/{reference}").status_code == 404
    assert registry("GET", f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": ["other"]}
    assert registry("GET", f"/v2/{repo}/manifests/other").headers["Docker-Content-Digest"] == other
    assert registry("DELETE", f"/v2/{repo}/manifests/{digest}").status_code == 404


def test_delete_by_tag_keeps_the_manifest(registry: RunningRegistry, repo: str) -> None:
    digest, manifest = registry.push_image(repo, "first")
    registry.push_manifest(repo, "second", manifest)
    assert registry("DELETE", f"/v2/{repo}/manifests/first").status_code == 202
    assert registry("GET", f"/v2/{repo}/manifests/first").status_code == 404
    assert registry("GET", f"/v2/{repo}/manifests/second").headers["Docker-Content-Digest"] == digest
    assert registry("GET", f"/v2/{repo}/manifests/{digest}").status_code == 200
    assert registry("GET", f"/v2/{repo}/tags/list").json()["tags"] == ["second"]


def push_artifact(registry: RunningRegistry, repo: str, subject: str, subject_size: int, artifact_type: str, payload: bytes) -> tuple[str, int]:
    empty = registry.push_blob(repo, b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": registry.push_blob(repo, payload), "size": len(payload)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
        "annotations": {"org.example.kind": artifact_type.rsplit(".", 2)[-2]},
    }
    body = json.dumps(manifest).encode()
    response = registry("PUT", f"/v2/{repo}/manifests/{sha256(body)}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == subject
    assert response.headers["Docker-Content-Digest"] == sha256(body)
    return sha256(body), len(body)


def test_referrers_with_artifact_type_filter(registry: RunningRegistry, repo: str) -> None:
    subject, _ = registry.push_image(repo, "v1")
    subject_size = len(registry("GET", f"/v2/{repo}/manifests/v1").content)
    sbom = push_artifact(registry, repo, subject, subject_size, SBOM, b"sbom contents")
    signature = push_artifact(registry, repo, subject, subject_size, SIGNATURE, b"signature bytes")

    def descriptor(found: tuple[str, int], artifact_type: str) -> dict:
        return {
            "mediaType": OCI_MANIFEST,
            "digest": found[0],
            "size": found[1],
            "artifactType": artifact_type,
            "annotations": {"org.example.kind": artifact_type.rsplit(".", 2)[-2]},
        }

    filtered = registry("GET", f"/v2/{repo}/referrers/{subject}", params={"artifactType": SBOM})
    assert filtered.status_code == 200
    assert filtered.headers["Content-Type"] == OCI_INDEX
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    index = filtered.json()
    assert (index["schemaVersion"], index["mediaType"]) == (2, OCI_INDEX)
    assert index["manifests"] == [descriptor(sbom, SBOM)]

    everything = registry("GET", f"/v2/{repo}/referrers/{subject}")
    assert everything.status_code == 200
    assert "OCI-Filters-Applied" not in everything.headers
    found = sorted(everything.json()["manifests"], key=lambda d: d["artifactType"])
    assert found == sorted([descriptor(sbom, SBOM), descriptor(signature, SIGNATURE)], key=lambda d: d["artifactType"])

    none = registry("GET", f"/v2/{repo}/referrers/{subject}", params={"artifactType": "application/vnd.example.absent"})
    assert (none.status_code, none.json()["manifests"]) == (200, [])
    unknown = registry("GET", f"/v2/{repo}/referrers/{sha256(b'no such manifest')}")
    assert (unknown.status_code, unknown.json()["manifests"]) == (200, [])

    # Deleting a referrer takes it out of the list.
    assert registry("DELETE", f"/v2/{repo}/manifests/{sbom[0]}").status_code == 202
    assert [d["digest"] for d in registry("GET", f"/v2/{repo}/referrers/{subject}").json()["manifests"]] == [signature[0]]


def put_by_sha512(registry: RunningRegistry, repo: str) -> tuple[str, bytes, requests.Response]:
    _, manifest = registry.push_image(repo, "v1")
    manifest["annotations"] = {"org.example.variant": "sha512"}
    body = json.dumps(manifest).encode()
    reference = "sha512:" + hashlib.sha512(body).hexdigest()
    response = registry("PUT", f"/v2/{repo}/manifests/{reference}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return reference, body, response


def test_manifest_put_by_sha512_digest(registry: RunningRegistry, repo: str) -> None:
    """The content is checked against the sha512 reference, stored byte for byte and pullable at Location."""
    _, body, response = put_by_sha512(registry, repo)
    pulled = registry("GET", response.headers["Location"])
    assert pulled.status_code == 200
    assert pulled.content == body
    assert pulled.headers["Content-Type"] == OCI_MANIFEST


def test_manifest_pulled_by_its_sha512_reference(registry: RunningRegistry, repo: str) -> None:
    """The spec: Docker-Content-Digest MUST equal the client-provided digest, and that reference must then pull."""
    reference, body, response = put_by_sha512(registry, repo)
    by_reference = registry("GET", f"/v2/{repo}/manifests/{reference}")
    assert (by_reference.status_code, by_reference.content) == (200, body)
    assert registry("HEAD", f"/v2/{repo}/manifests/{reference}").status_code == 200
    assert response.headers["Docker-Content-Digest"] == reference


def test_manifest_put_with_wrong_sha512_digest(registry: RunningRegistry, repo: str) -> None:
    _, manifest = registry.push_image(repo, "v1")
    body = json.dumps(manifest).encode()
    wrong = "sha512:" + hashlib.sha512(body + b" ").hexdigest()
    response = registry("PUT", f"/v2/{repo}/manifests/{wrong}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"


def follow_pages(registry: RunningRegistry, path: str, field: str, n: int) -> list[list[str]]:
    """Every page of a paginated listing, following Link rel="next" until there is none."""
    pages: list[list[str]] = []
    url = f"{registry.url}{path}?n={n}"
    while url:
        response = registry("GET", url)
        assert response.status_code == 200, response.text
        page = response.json()[field]
        assert len(page) <= n
        pages.append(page)
        assert len(pages) < 100, "pagination does not end"
        link = response.links.get("next")
        url = urljoin(registry.url, link["url"]) if link else ""
    return pages


def test_tag_pagination(registry: RunningRegistry, repo: str) -> None:
    _, manifest = registry.push_image(repo, "latest")
    tags = ["latest", "v1", "v1.1", "v10", "v2", "alpha", "beta"]
    for tag in tags[1:]:
        registry.push_manifest(repo, tag, manifest)

    first = registry("GET", f"/v2/{repo}/tags/list", params={"n": "2"})
    assert first.json() == {"name": repo, "tags": ["alpha", "beta"]}
    assert first.links["next"]["url"].startswith(f"/v2/{repo}/tags/list?")
    pages = follow_pages(registry, f"/v2/{repo}/tags/list", "tags", 2)
    assert pages == [["alpha", "beta"], ["latest", "v1"], ["v1.1", "v10"], ["v2"]]

    exact = follow_pages(registry, f"/v2/{repo}/tags/list", "tags", 7)
    assert [t for page in exact for t in page] == sorted(tags)
    after = registry("GET", f"/v2/{repo}/tags/list", params={"last": "v1"})
    assert after.json()["tags"] == ["v1.1", "v10", "v2"]
    assert "Link" not in after.headers


def test_catalog_pagination(registry: RunningRegistry, repo: str) -> None:
    names = [f"{repo}/{suffix}" for suffix in ("one", "three", "two")]
    for name in names:
        registry.push_image(name, "v1")
    pages = follow_pages(registry, "/v2/_catalog", "repositories", 2)
    listed = [r for page in pages for r in page]
    assert listed == sorted(set(listed))
    assert [r for r in listed if r.startswith(f"{repo}/")] == names


def test_referrer_artifact_type_falls_back_to_config_media_type(registry: RunningRegistry, repo: str) -> None:
    """The spec: without artifactType, a referrer's artifactType is its config's mediaType, and filters match on it."""
    subject, _ = registry.push_image(repo, "v1")
    config_type = "application/vnd.example.legacy.config.v1+json"
    config = b'{"legacy": true}'
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": registry.push_blob(repo, config), "size": len(config)},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(registry("GET", f"/v2/{repo}/manifests/v1").content)},
    }
    digest, response = registry.push_manifest(repo, "legacy-signature", manifest)
    assert response.headers["OCI-Subject"] == subject
    filtered = registry("GET", f"/v2/{repo}/referrers/{subject}", params={"artifactType": config_type})
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [(d["digest"], d["artifactType"]) for d in filtered.json()["manifests"]] == [(digest, config_type)]
