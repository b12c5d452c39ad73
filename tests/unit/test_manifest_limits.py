"""Manifests the index can store: bounded nesting and DynamoDB numbers, refused at parse time before S3 is written."""

from __future__ import annotations

import json

import pytest

from chalicelib.spec.manifests import MAX_NESTING
from tests.conftest import OCI_CONFIG, OCI_MANIFEST, Client, error_code, sha256

REPO = "team/app"


def nested(depth: int, leaf: object = "x") -> object:
    """depth containers (maps and lists in turn) around a leaf; built with a loop, not recursion."""
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def image(client: Client, **extra: object) -> dict:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    descriptor = {"mediaType": OCI_CONFIG, "digest": client.push_blob(REPO, config), "size": len(config)}
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor, "layers": [], **extra}


def stored_manifests(service) -> list[str]:
    return [o.key for o in service.store.list(f"repositories/{REPO}/_manifests/")]


def assert_refused(client: Client, service, body: bytes, reference: str = "bad") -> None:
    """400 MANIFEST_INVALID, and neither a manifest nor a tag object was written."""
    response = client("PUT", f"/v2/{REPO}/manifests/{reference}", body, {"Content-Type": OCI_MANIFEST})
    assert response.status == 400, response.body_bytes()
    assert error_code(response) == "MANIFEST_INVALID"
    assert stored_manifests(service) == []


def put(client: Client, body: bytes, reference: str = "good") -> int:
    return client("PUT", f"/v2/{REPO}/manifests/{reference}", body, {"Content-Type": OCI_MANIFEST}).status


def container_depth(value: dict) -> int:
    """Maps and lists nested in a DynamoDB attribute value (wire format), walked with a stack."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if "M" in node:
            pending += [(child, depth + 1) for child in node["M"].values()]
        elif "L" in node:
            pending += [(child, depth + 1) for child in node["L"]]
        deepest = max(deepest, depth + ("M" in node or "L" in node))
    return deepest


# Nesting


def test_ten_thousand_nested_arrays_are_a_400_not_a_500(client, service):
    assert_refused(client, service, b"[" * 10_000 + b"]" * 10_000)
    assert_refused(client, service, b'{"schemaVersion": 2, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    in_strings = json.dumps(image(client, annotations={"a": "[" * 5000, "b": '\\"{{{{'})).encode()
    assert put(client, in_strings) == 201, "brackets inside strings are not nesting"


def test_annotations_nested_800_deep_are_refused_before_s3_is_written(client, service):
    body = json.dumps(image(client, annotations={"deep": nested(800)})).encode()
    assert_refused(client, service, body, reference=sha256(body))


def test_the_deepest_manifest_accepted_fits_every_index_item_within_dynamodb_limits(client, service):
    """At MAX_NESTING the referrer's descriptor.annotations reaches 31 containers (DynamoDB's most); one more is refused."""
    subject = client.push_image(REPO, "1.0", [b"layer"])[0]
    subject_descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": 10}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": client.push_blob(REPO, b"l"), "size": 1}
    at_limit = image(
        client, subject=subject_descriptor, annotations={"a": nested(MAX_NESTING - 2)}, layers=[{**layer, "annotations": {"a": nested(MAX_NESTING - 4)}}]
    )
    body = json.dumps(at_limit).encode()
    assert put(client, body, sha256(body)) == 201
    items = service.index.table.client.query(
        TableName=service.index.table.name,
        KeyConditionExpression="#r = :r",
        ExpressionAttributeNames={"#r": "repo"},
        ExpressionAttributeValues={":r": {"S": REPO}},
    )["Items"]
    depths = {(item["key"]["S"][:2], name): container_depth(value) for item in items for name, value in item.items()}
    assert depths[("r#", "descriptor")] == 31 and depths[("m#", "layers")] == 30 and depths[("m#", "annotations")] == 30
    assert max(depths.values()) <= 31, "DynamoDB refuses values nested deeper than 32 levels (31 containers)"
    too_deep = json.dumps({**at_limit, "annotations": {"a": nested(MAX_NESTING - 1)}}).encode()
    response = client("PUT", f"/v2/{REPO}/manifests/{sha256(too_deep)}", too_deep, {"Content-Type": OCI_MANIFEST})
    assert (response.status, error_code(response)) == (400, "MANIFEST_INVALID")
    assert service.store.get(f"repositories/{REPO}/_manifests/revisions/sha256/{sha256(too_deep)[7:]}") is None


# Numbers DynamoDB cannot store


@pytest.mark.parametrize(
    "number",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "1e-131",
        "1E+126",
        "9.9999999999999999999999999999999999999E+125",  # rounds up to 1E+126 as a float
        "1" * 39,
        "1" * 5000,  # beyond Python's own int conversion limit
    ],
)
def test_numbers_dynamodb_cannot_store_are_refused_in_annotations(client, service, number):
    document = json.dumps(image(client, annotations={"n": "PLACEHOLDER"}))
    body = document.replace('"PLACEHOLDER"', number).encode()
    assert_refused(client, service, body, reference=sha256(body))


def test_sizes_beyond_64_bits_are_refused_and_storable_numbers_accepted(client, service):
    for size in (2**63, 10**40):
        body = json.dumps(image(client, layers=[{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(b"x"), "size": size}])).encode()
        assert_refused(client, service, body)
    body = json.dumps(image(client, annotations={"n": "PLACEHOLDER"})).replace(
        '"PLACEHOLDER"', "[1e-130, 9.99e125, 0, -0.0, 1.0000000000000000000000000000000000000000001, 1e-400]"
    )
    assert put(client, body.encode()) == 201
    assert put(client, body.replace("[1e-130", "[" + "9" * 38).encode()) == 201


def test_a_lone_surrogate_in_a_manifest_is_refused(client, service):
    body = json.dumps(image(client, annotations={"a": "\ud800"})).encode()
    assert b"\\ud800" in body
    assert_refused(client, service, body)


def test_core_put_manifest_raises_manifest_invalid_before_writing(client, service):
    from chalicelib.spec.errors import ManifestInvalid

    body = json.dumps(image(client)).replace('"layers": []', '"layers": [], "annotations": {"n": NaN}').encode()
    with pytest.raises(ManifestInvalid):
        service.registry.put_manifest(REPO, "v1", body, OCI_MANIFEST)
    assert stored_manifests(service) == []


# Image configs are read for platform strings only: nothing else in them can fail a push


@pytest.mark.parametrize(
    ("config_bytes", "platform"),
    [
        (
            b'{"os": "linux", "architecture": "amd64", "a": NaN, "b": Infinity, "c": 1e400, "d": 1e-400, "e": ' + b"1" * 5000 + b"}",
            {"os": "linux", "architecture": "amd64"},
        ),
        (b'{"os": "linux", "architecture": "amd64", "history": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", None),
        (b'{"os": "linux", "architecture": "\\ud800"}', {"os": "linux"}),
    ],
    ids=["odd-numbers", "deep-nesting", "lone-surrogate"],
)
def test_a_hostile_image_config_never_fails_the_push(client, service, config_bytes, platform):
    descriptor = {"mediaType": OCI_CONFIG, "digest": client.push_blob(REPO, config_bytes), "size": len(config_bytes)}
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor, "layers": []}).encode()
    response = client("PUT", f"/v2/{REPO}/manifests/v1", body, {"Content-Type": OCI_MANIFEST})
    assert response.status == 201, response.body_bytes()
    assert service.index.manifest_details(REPO, sha256(body)).get("platforms") == ([platform] if platform else None)


# Objects already in S3 that the index cannot hold


def test_rebuild_and_scrub_skip_and_report_objects_the_index_cannot_hold(client, service):
    from chalicelib.lifecycle.rebuild import rebuild_index
    from chalicelib.lifecycle.scrub import Scrubber
    from chalicelib.model.registry import manifest_object_key
    from tests.unit.test_rebuild import wipe_tables

    good, _ = client.push_image(REPO, "1.0", [b"layer"])
    deep = json.dumps(image(client, annotations={"deep": nested(800)})).encode()
    bad = {sha256(body): body for body in (deep, b"[" * 10_000 + b"]" * 10_000, json.dumps(image(client)).replace("[]", "[NaN]").encode())}
    for digest, body in bad.items():
        service.store.put(manifest_object_key(REPO, digest), body)
    wipe_tables(service)

    report = rebuild_index(service)

    assert sorted(p.split(": ")[0] for p in report.problems) == sorted(f"{REPO}@{d}" for d in bad)
    assert client("GET", f"/v2/{REPO}/manifests/1.0").headers["Docker-Content-Digest"] == good
    scrubber = Scrubber(service)
    corrupt = {f.digest for f in scrubber.run([REPO]) if f.problem == "corrupt"}
    assert corrupt == set(bad)
