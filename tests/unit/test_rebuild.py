"""The index can be rebuilt from the bucket alone."""

from __future__ import annotations

import hashlib
import json

import pytest

from chalicelib.api.service import build_service
from chalicelib.config.schema import Config
from chalicelib.lifecycle.rebuild import rebuild_index
from chalicelib.storage.aws import ensure_resources, make_clients, table_definitions
from tests.conftest import OCI_MANIFEST, Client, sha256


def wipe_tables(service) -> None:
    dynamodb = service.index.table.client
    for definition in table_definitions(service.config):
        dynamodb.delete_table(TableName=definition["TableName"])
    ensure_resources(service.config, make_clients(service.config))


def snapshot(client: Client, repos: list[str]) -> dict:
    state: dict = {"catalog": json.loads(client("GET", "/v2/_catalog").body_bytes())}
    for repo in repos:
        tags = json.loads(client("GET", f"/v2/{repo}/tags/list").body_bytes())["tags"]
        state[repo] = {tag: client("GET", f"/v2/{repo}/manifests/{tag}").body_bytes() for tag in tags}
    return state


@pytest.mark.slow
@pytest.mark.parametrize("dedupe", [True, False])
def test_rebuild_restores_everything_a_client_sees(aws, config: Config, dedupe: bool):
    config.storage.dedupe = dedupe
    clients = make_clients(config)
    ensure_resources(config, clients)
    service = build_service(config, clients)
    client = Client(service)
    subject, body = client.push_image("team/app", "1.0", [b"base", b"app"])
    client.push_image("team/app", "latest", [b"base", b"app"])
    client.push_image("other/deep/name", "v1", [b"base"], config={"os": "linux", "architecture": "arm64"})
    sig = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": client.push_blob("team/app", b"{}"), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(body)},
    }
    sig_body = json.dumps(sig).encode()
    assert client("PUT", f"/v2/team/app/manifests/{sha256(sig_body)}", sig_body, {"Content-Type": OCI_MANIFEST}).status == 201
    sha512_body = json.dumps({**sig, "artifactType": "application/vnd.example.sha512"}).encode()
    sha512_reference = "sha512:" + hashlib.sha512(sha512_body).hexdigest()
    assert client("PUT", f"/v2/team/app/manifests/{sha512_reference}", sha512_body, {"Content-Type": OCI_MANIFEST}).status == 201
    before = snapshot(client, ["team/app", "other/deep/name"])

    wipe_tables(service)
    assert client("GET", "/v2/team/app/manifests/1.0").status == 404
    report = rebuild_index(service)

    assert report.problems == []
    assert report.tags == 3 and report.manifests == 4
    assert client("GET", f"/v2/team/app/manifests/{sha512_reference}").body_bytes() == sha512_body
    assert snapshot(client, ["team/app", "other/deep/name"]) == before
    assert client("HEAD", f"/v2/team/app/blobs/{sha256(b'app')}").status == 200
    referrers = json.loads(client("GET", f"/v2/team/app/referrers/{subject}").body_bytes())["manifests"]
    assert sorted(r["digest"] for r in referrers) == sorted([sha256(sig_body), sha512_reference])
    assert service.index.manifest_details("other/deep/name", client("HEAD", "/v2/other/deep/name/manifests/v1").headers["Docker-Content-Digest"])[
        "platforms"
    ] == [{"os": "linux", "architecture": "arm64"}]
    if dedupe:
        assert service.blobs.table.get(sha256(b"base"), "#")["refs"] == 2
    again = rebuild_index(service)
    assert again.problems == []
    if dedupe:
        assert service.blobs.table.get(sha256(b"base"), "#")["refs"] == 2, "a second rebuild must not double-count"
