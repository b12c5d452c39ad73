"""What DynamoDB and S3 answer under contention, injected at the AWS client: the registry retries or refuses truthfully.

moto never cancels a transaction for a conflict, throttles, leaves keys unprocessed or answers S3's
409; real services do all of these whenever two Lambda instances touch one item. Each test drives a
conditional write path through one of those answers and then checks what clients see and what the
tables hold: success, or a refusal that is true, with nothing half-written.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.spec.references import Digest
from chalicelib.storage import retries
from tests.conftest import LAYER, OCI_CONFIG, OCI_MANIFEST, Client, error_code, sha256
from tests.faults import Faults, cancelled, dynamo_error, s3_error


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(retries, "BACKOFF_BASE", 0.0)


@pytest.fixture
def faults(service) -> Faults:
    return Faults().attach(service.index.table.client, service.store.client)


def manifest_for(client: Client, repo: str, layer: bytes) -> bytes:
    config = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    descriptors = [{"mediaType": m, "digest": client.push_blob(repo, b), "size": len(b)} for b, m in [(config, OCI_CONFIG), (layer, LAYER)]]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0], "layers": descriptors[1:]}).encode()


def put(client: Client, repo: str, tag: str, body: bytes):
    return client("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST})


def uses(service, repo: str, blob: bytes) -> int:
    return int(service.blobs.table.get(sha256(blob), repo).get("uses", 0))


def test_a_transaction_conflict_on_a_manifest_put_is_retried(client, service, faults):
    body = manifest_for(client, "team/app", b"layer")
    faults.add("TransactWriteItems", cancelled("TransactionConflict", "None", "None", "None", "None"))
    response = put(client, "team/app", "1", body)
    assert response.status == 201, response.body_bytes()
    assert client("GET", "/v2/team/app/manifests/1").body_bytes() == body
    assert uses(service, "team/app", b"layer") == 1


def test_a_conflict_on_a_blob_link_is_retried_not_taken_for_already_linked(client, service, faults):
    digest = client.push_blob("src/app", b"shared layer")
    faults.add("TransactWriteItems", cancelled("None", "TransactionConflict"))
    response = client("POST", f"/v2/dst/app/blobs/uploads/?mount={digest}&from=src/app")
    assert response.status == 201
    assert service.blobs.stat("dst/app", Digest.parse(digest)) is not None
    assert int(service.blobs.table.get(digest, "#")["refs"]) == 2


def test_conflicts_that_never_end_are_429_and_write_nothing(client, service, faults):
    body = manifest_for(client, "team/app", b"layer")
    faults.add("TransactWriteItems", cancelled("TransactionConflict", "None", "None", "None", "None"), times=1000)
    response = put(client, "team/app", "1", body)
    assert response.status == 429 and error_code(response) == "TOOMANYREQUESTS" and response.headers["Retry-After"] == "1"
    assert service.index.manifest("team/app", sha256(body)) is None
    assert list(service.store.list("repositories/team/app/_manifests/")) == []


def test_a_single_write_refused_for_a_transaction_in_progress_is_retried(client, faults):
    session = client("POST", "/v2/team/app/blobs/uploads/").headers["Location"]
    faults.add("UpdateItem", dynamo_error("TransactionConflictException"), times=2)
    response = client("PUT", f"{session}?digest={sha256(b'data')}", b"data")
    assert response.status == 201, response.body_bytes()


def test_throttled_reads_are_retried_by_the_sdk(client, faults):
    client.push_image("team/app", "1", [b"x"])
    faults.add("GetItem", dynamo_error("ProvisionedThroughputExceededException"), times=2)
    assert client("GET", "/v2/team/app/manifests/1").status == 200
    assert faults.rules[0].fired == 2


def test_unprocessed_keys_are_read_again(client, faults):
    body = manifest_for(client, "team/app", b"layer")

    def nothing_processed(request: dict) -> object:
        from tests.faults import response

        document = {"Responses": {}, "UnprocessedKeys": request["RequestItems"]}
        return response(200, json.dumps(document).encode(), "application/x-amz-json-1.0")

    faults.add("BatchGetItem", nothing_processed, times=2)
    assert put(client, "team/app", "1", body).status == 201
    assert faults.rules[0].fired == 2


def test_s3_409_on_a_conditional_write_is_tried_again_until_s3_decides(client, service, faults):
    faults.add("PutObject", s3_error(409, "ConditionalRequestConflict"), times=2, when=lambda _body: True)
    digest = client.push_blob("team/app", b"conflicted bytes")
    location = service.blobs.require("team/app", Digest.parse(digest))
    assert service.store.get(location.data_key) == b"conflicted bytes"
    assert faults.rules[0].fired == 2


def test_a_lost_answer_to_a_manifest_transaction_counts_its_uses_once(client, service, faults):
    """The write succeeded, the answer timed out, the SDK sent it again: the second attempt must change nothing."""
    body = manifest_for(client, "team/app", b"layer")
    faults.lose_answer("TransactWriteItems")
    assert put(client, "team/app", "1", body).status == 201
    assert uses(service, "team/app", b"layer") == 1
    assert json.loads(client("GET", "/v2/team/app/tags/list").body_bytes())["tags"] == ["1"]


@pytest.mark.parametrize("position", [3, 4])
def test_a_use_refused_at_any_position_refuses_the_push_with_nothing_written(client, service, faults, position):
    """Items 0-2 are manifest, catalog and tag; from 3 on each blob's use: a gone link is a true 400."""
    body = manifest_for(client, "team/app", b"layer")
    reasons = ["None"] * 5
    reasons[position] = "ConditionalCheckFailed"
    faults.add("TransactWriteItems", cancelled(*reasons))
    response = put(client, "team/app", "1", body)
    assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert service.index.manifest("team/app", sha256(body)) is None
    assert service.index.tagged("team/app", "1") is None
    assert list(service.store.list("repositories/team/app/_manifests/")) == []


def test_a_manifest_stored_meanwhile_only_moves_the_tag(client, service, faults):
    """Item 0 (the manifest's absence) failing means another push stored it: the tag is then written on its own."""
    body = manifest_for(client, "team/app", b"layer")
    assert put(client, "team/app", "1", body).status == 201
    faults.add("TransactWriteItems", cancelled("ConditionalCheckFailed", "None", "None", "None", "None"))
    assert put(client, "team/app", "2", body).status == 201
    assert json.loads(client("GET", "/v2/team/app/tags/list").body_bytes())["tags"] == ["1", "2"]
    assert uses(service, "team/app", b"layer") == 1
