"""Sub-path storage locations with a real client: skopeo pushes into two locations; the bytes land in each one's bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest

from tests.integration.conftest import ROOT, RunningRegistry, _registry, run_skopeo
from tests.integration.images import make_layout

pytestmark = [pytest.mark.integration, pytest.mark.emulator]  # asserts the emulator's bucket names


@pytest.fixture(scope="module")
def multi_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    config = json.loads((ROOT / "examples" / "config-multiple.json").read_text())
    yield from _registry(tmp_path_factory, "multi", config)


def _where(registry: RunningRegistry, repo: str, digest: str) -> tuple[str, str, str]:
    """(emulator endpoint, bucket, key) from the presigned redirect of a blob GET."""
    location = urlsplit(registry("GET", f"/v2/{repo}/blobs/{digest}").headers["Location"])
    bucket, _, key = location.path.lstrip("/").partition("/")
    return f"{location.scheme}://{location.netloc}", bucket, key


def test_skopeo_pushes_into_two_locations(multi_registry: RunningRegistry, skopeo: str, tmp_path: Path) -> None:
    host = multi_registry.host
    digests = {}
    for repo, size in (("infra/base", 3 << 20), ("team/app", 2 << 20)):
        layout = tmp_path / repo.replace("/", "-")
        digests[repo] = make_layout(layout, "1", [size, 4096])
        run_skopeo(skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{host}/{repo}:1")
    placements = {}
    for repo in digests:
        manifest = json.loads(multi_registry("GET", f"/v2/{repo}/manifests/1").content)
        placements[repo] = {_where(multi_registry, repo, layer["digest"])[1:] for layer in manifest["layers"]}
    assert {(bucket, key.split("/")[0]) for bucket, key in placements["infra/base"]} == {("zotless-infra", "infra")}
    assert {(bucket, key.split("/")[0]) for bucket, key in placements["team/app"]} == {("zotless", "main")}

    endpoint = _where(multi_registry, "team/app", json.loads(multi_registry("GET", "/v2/team/app/manifests/1").content)["layers"][0]["digest"])[0]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="zotless", aws_secret_access_key="zotless")
    infra_keys = {o["Key"] for o in s3.list_objects_v2(Bucket="zotless-infra").get("Contents", [])}
    assert {key for _, key in placements["infra/base"]} <= infra_keys
    assert not {key for _, key in placements["team/app"]} & infra_keys

    pulled = tmp_path / "pulled"
    run_skopeo(skopeo, "copy", "--src-tls-verify=false", f"docker://{host}/infra/base:1", f"oci:{pulled}:1")
    assert json.loads((pulled / "index.json").read_text())["manifests"][0]["digest"] == digests["infra/base"]
    catalog = multi_registry("GET", "/v2/_catalog").json()["repositories"]
    assert {"infra/base", "team/app"} <= set(catalog)


def test_copy_across_locations_and_read_only_archive(multi_registry: RunningRegistry, skopeo: str, tmp_path: Path) -> None:
    host = multi_registry.host
    layout = tmp_path / "img"
    digest = make_layout(layout, "1", [1 << 20])
    run_skopeo(skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{host}/team/source:1")
    run_skopeo(skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{host}/team/source:1", f"docker://{host}/infra/copied:1")
    assert multi_registry("HEAD", "/v2/infra/copied/manifests/1").headers["Docker-Content-Digest"] == digest
    refused = multi_registry("POST", "/v2/archive/old/blobs/uploads/")
    assert refused.status_code == 405 and refused.json()["errors"][0]["code"] == "DENIED"
