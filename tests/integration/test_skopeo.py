"""skopeo, a real containers/image client: push, pull, inspect, list-tags, cross-repository copy, delete."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.integration.conftest import MiB, RunningRegistry, run_skopeo, sha256
from tests.integration.images import make_layout

pytestmark = pytest.mark.integration


def layout_manifest(layout: Path) -> tuple[str, bytes]:
    """The single manifest of an OCI layout: (digest, raw bytes)."""
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 1, index
    digest = index["manifests"][0]["digest"]
    return digest, (layout / "blobs" / Path(*digest.split(":"))).read_bytes()


def layout_blobs(layout: Path) -> dict[str, int]:
    """digest -> size of every blob file, checking each file's sha256 against its name."""
    found = {}
    for path in sorted((layout / "blobs" / "sha256").iterdir()):
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == path.name, f"{path} does not hash to its name"
        found[f"sha256:{path.name}"] = len(data)
    return found


def referenced_blobs(manifest: bytes) -> dict[str, int]:
    document = json.loads(manifest)
    return {d["digest"]: d["size"] for d in [document["config"], *document["layers"]]}


def push_layout(skopeo: str, registry: RunningRegistry, layout: Path, tag: str, repo: str, dest_tag: str) -> None:
    run_skopeo(skopeo, "copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{registry.host}/{repo}:{dest_tag}")


def test_push_pull_multilayer_image(skopeo: str, registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    pushed_digest = make_layout(source, "1.0", [3 * MiB, 12 * MiB, 1000])
    _, pushed_manifest = layout_manifest(source)
    push_layout(skopeo, registry, source, "1.0", repo, "1.0")
    push_layout(skopeo, registry, source, "1.0", repo, "stable")

    pulled = tmp_path / "pulled"
    run_skopeo(skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{registry.host}/{repo}:1.0", f"oci:{pulled}:1.0")
    pulled_digest, pulled_manifest = layout_manifest(pulled)
    assert pulled_digest == pushed_digest
    assert pulled_manifest == pushed_manifest
    blobs = layout_blobs(pulled)
    expected = referenced_blobs(pushed_manifest)
    assert {d: blobs.get(d) for d in expected} == expected
    assert sorted(blobs) == sorted(layout_blobs(source))

    raw = run_skopeo(skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repo}:stable")
    assert sha256(raw.encode()) == pushed_digest
    details = json.loads(run_skopeo(skopeo, "inspect", "--tls-verify=false", f"docker://{registry.host}/{repo}@{pushed_digest}"))
    assert details["Digest"] == pushed_digest
    assert details["Architecture"] == "amd64"
    assert details["Layers"] == [layer["digest"] for layer in json.loads(pushed_manifest)["layers"]]

    listed = json.loads(run_skopeo(skopeo, "list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}"))
    assert listed["Tags"] == ["1.0", "stable"]


@pytest.mark.parametrize("variant", ["registry", "plain_registry"], ids=["dedupe-redirect", "no-dedupe-no-redirect"])
def test_copy_between_repositories(variant: str, skopeo: str, repo: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """docker:// to docker:// on one registry: layers reach the target by mount (or dedupe link), never re-uploaded."""
    registry: RunningRegistry = request.getfixturevalue(variant)
    source_repo, target_repo = f"{repo}/source", f"{repo}/target"
    layout = tmp_path / "layout"
    digest = make_layout(layout, "v1", [2 * MiB, 6 * MiB, 1000], architecture="arm64")
    push_layout(skopeo, registry, layout, "v1", source_repo, "v1")

    run_skopeo(
        skopeo,
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{registry.host}/{source_repo}:v1",
        f"docker://{registry.host}/{target_repo}:copied",
    )

    raw = run_skopeo(skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{target_repo}:copied")
    assert sha256(raw.encode()) == digest
    for blob_digest, size in referenced_blobs(raw.encode()).items():
        response = registry.pull_blob(target_repo, blob_digest)
        assert response.status_code == 200
        assert len(response.content) == size
        assert sha256(response.content) == blob_digest
    pulled = tmp_path / "pulled"
    run_skopeo(skopeo, "copy", "--src-tls-verify=false", f"docker://{registry.host}/{target_repo}:copied", f"oci:{pulled}:x")
    assert layout_manifest(pulled)[0] == digest
    assert sorted(layout_blobs(pulled)) == sorted(layout_blobs(layout))

    target_uploads = f"/v2/{target_repo}/blobs/uploads/"
    started = registry.requests_logged("POST", target_uploads)
    if variant == "registry":  # dedupe: the HEAD links what another repository holds, so nothing is sent at all
        assert started == []
        assert registry.requests_logged("PATCH", target_uploads) == []
    else:  # no dedupe: HEAD finds nothing, so each layer is mounted (POST ?mount= answered 201); skopeo 1.9 re-uploads only the config
        statuses = [status for _, status in started]
        assert statuses.count(201) >= 3 and statuses.count(202) <= 1 and len(statuses) <= 4, started
        assert len(registry.requests_logged("PATCH", target_uploads)) == statuses.count(202)


def test_delete_removes_every_tag(skopeo: str, registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    """`skopeo delete` resolves the tag and deletes by digest: every tag of that manifest goes."""
    layout = tmp_path / "layout"
    digest = make_layout(layout, "v1", [1000])
    other = make_layout(tmp_path / "other", "v1", [2000])
    for tag in ("one", "two"):
        push_layout(skopeo, registry, layout, "v1", repo, tag)
    push_layout(skopeo, registry, tmp_path / "other", "v1", repo, "other")

    run_skopeo(skopeo, "delete", "--tls-verify=false", f"docker://{registry.host}/{repo}:one")

    for reference in ("one", "two", digest):
        assert registry("GET", f"/v2/{repo}/manifests/{reference}").status_code == 404
    assert registry("GET", f"/v2/{repo}/manifests/other").headers["Docker-Content-Digest"] == other
    listed = json.loads(run_skopeo(skopeo, "list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}"))
    assert listed["Tags"] == ["other"]
