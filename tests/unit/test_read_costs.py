"""Fewer and cheaper DynamoDB reads where they cost: each registry request's calls and read modes.

Pulls read eventually consistent (half the read units) and re-read strongly only on a miss, so a
201 is never followed by a 404; listings read eventually; a pusher's HEAD reads strongly, in one call.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, sha256


class Reads:
    """(operation, ConsistentRead) of every DynamoDB call the service makes."""

    def __init__(self, service: Any) -> None:
        self.seen: list[tuple[str, bool]] = []
        clients = {id(c): c for c in (service.index.table.client, service.blobs.table.client, service.registry.sessions.table.client)}
        for client in clients.values():
            client.meta.events.register("provide-client-params.dynamodb.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.seen.append((model.name, bool(params.get("ConsistentRead"))))

    def during(self, action: Any) -> list[tuple[str, bool]]:
        self.seen.clear()
        action()
        return list(self.seen)


@pytest.fixture
def pushed(client: Client) -> tuple[str, bytes]:
    layer = b"layer bytes"
    client.push_image("team/app", "v1", [layer])
    return "team/app", layer


def test_a_pull_reads_eventually_and_once(client: Client, service, pushed) -> None:
    repo, layer = pushed
    reads = Reads(service)
    assert reads.during(lambda: client("HEAD", f"/v2/{repo}/manifests/v1")) == [("GetItem", False)]
    assert reads.during(lambda: client("GET", f"/v2/{repo}/manifests/v1")) == [("GetItem", False)]
    assert reads.during(lambda: client("GET", f"/v2/{repo}/blobs/{sha256(layer)}")) == [("GetItem", False)]


def test_a_pull_that_misses_reads_again_strongly(client: Client, service, pushed) -> None:
    repo, _ = pushed
    reads = Reads(service)
    missing = reads.during(lambda: client("GET", f"/v2/{repo}/manifests/v2"))
    assert missing == [("GetItem", False), ("GetItem", True)]
    assert client("GET", f"/v2/{repo}/manifests/v2").status == 404


def test_a_tag_list_is_one_eventual_query_unless_it_is_empty(client: Client, service, pushed) -> None:
    repo, _ = pushed
    reads = Reads(service)
    assert reads.during(lambda: client("GET", f"/v2/{repo}/tags/list")) == [("Query", False)]
    unknown = reads.during(lambda: client("GET", "/v2/nobody/here/tags/list"))
    assert unknown == [("Query", False), ("GetItem", True)]  # the 404 NAME_UNKNOWN is decided on a strong read
    assert client("GET", "/v2/nobody/here/tags/list").status == 404


def test_a_pushers_head_of_a_new_blob_is_one_strong_query(client: Client, service, pushed) -> None:
    repo, layer = pushed
    reads = Reads(service)
    assert reads.during(lambda: client("HEAD", f"/v2/{repo}/blobs/{sha256(b'new bytes')}")) == [("Query", True)]
    assert reads.during(lambda: client("HEAD", f"/v2/{repo}/blobs/{sha256(layer)}")) == [("Query", True)]
    linked = reads.during(lambda: client("HEAD", f"/v2/other/app/blobs/{sha256(layer)}"))  # zot's implicit link still happens
    assert linked == [("Query", True), ("TransactWriteItems", False)]
    assert client("HEAD", f"/v2/other/app/blobs/{sha256(layer)}").status == 200


def test_a_one_layer_push_makes_fewer_dynamodb_calls(client: Client, service) -> None:
    """HEAD (missing), POST, PATCH, PUT per blob and the manifest PUT: 16 DynamoDB calls, 18 before the HEAD needed one."""
    reads = Reads(service)
    layer, config = b"some layer", b'{"architecture":"amd64","os":"linux"}'

    def push() -> None:
        for data in (layer, config):
            assert client("HEAD", f"/v2/a/b/blobs/{sha256(data)}").status == 404
            location = client("POST", "/v2/a/b/blobs/uploads/").headers["Location"]
            location = client("PATCH", location, data, {"Content-Type": "application/octet-stream"}).headers["Location"]
            assert client("PUT", f"{location}?digest={sha256(data)}").status == 201
        manifest = (
            '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{sha256(config)}","size":{len(config)}}},'
            f'"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{sha256(layer)}","size":{len(layer)}}}]}}'
        ).encode()
        assert client("PUT", "/v2/a/b/manifests/v1", manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status == 201

    assert len(reads.during(push)) == 16


def test_the_retention_walk_reads_eventually(client: Client, service, pushed) -> None:
    """GC's deletes are conditional on what the walk saw (a tag's digest, a manifest's tag count), so the walk may lag."""
    import time

    from chalicelib.lifecycle.gc import GarbageCollector

    repo, _ = pushed
    partitions: list[tuple[str, bool]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "Query" and "IndexName" not in params:
            partitions.append((params["ExpressionAttributeValues"][":h"]["S"], bool(params.get("ConsistentRead"))))

    service.index.table.client.meta.events.register("provide-client-params.dynamodb.Query", record)
    GarbageCollector(service, clock=lambda: time.time() + 7200).run()
    assert (repo, False) in partitions and (repo, True) not in partitions
