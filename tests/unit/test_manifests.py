"""Manifests: validation, tags, deletes, indexes, Docker types, referrers."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.conftest import LAYER, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, error_code, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def put(client, repo: str, reference: str, document: dict | bytes, media_type: str = OCI_MANIFEST):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client("PUT", f"/v2/{repo}/manifests/{reference}", body, {"Content-Type": media_type})


def image(client, repo: str, layer: bytes = b"layer", **extra: object) -> dict:
    config = b'{"architecture":"amd64","os":"linux"}'
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": client.push_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": client.push_blob(repo, layer), "size": len(layer)}],
        **extra,
    }


def test_get_and_head_by_tag_and_digest(client):
    digest, body = client.push_image("team/app", "1.0", [b"a", b"b"])
    for reference in ("1.0", digest):
        got = client("GET", f"/v2/team/app/manifests/{reference}")
        assert got.status == 200 and got.body_bytes() == body
        assert got.headers["Content-Type"] == OCI_MANIFEST
        head = client("HEAD", f"/v2/team/app/manifests/{reference}")
        assert head.status == 200 and head.body == b""
        assert head.headers["Content-Length"] == str(len(body))
        assert head.headers["Docker-Content-Digest"] == digest


def test_missing_blobs_are_refused(client):
    document = image(client, "team/app")
    document["layers"].append({"mediaType": LAYER, "digest": sha256(b"never pushed"), "size": 12})
    response = put(client, "team/app", "1.0", document)
    assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert client("GET", "/v2/team/app/manifests/1.0").status == 404


def test_blob_in_another_repository_does_not_count(client):
    document = image(client, "team/app")
    response = put(client, "other/app", "1.0", document)
    assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize(
    ("body", "media_type", "status", "code"),
    [
        (b"not json", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        (b"[]", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 2, "layers": []}', OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 1}', "application/vnd.docker.distribution.manifest.v1+json", 400, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": []}', OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 2, "manifests": "x"}', OCI_INDEX, 400, "MANIFEST_INVALID"),
        (b"\xff\xfe", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
    ],
)
def test_invalid_manifests(client, body, media_type, status, code):
    response = put(client, "team/app", "bad", body, media_type)
    assert response.status == status
    assert error_code(response) == code


def test_descriptor_with_bad_digest_is_invalid(client):
    document = image(client, "team/app")
    document["layers"][0]["digest"] = "sha256:../../etc/passwd"
    assert error_code(put(client, "team/app", "1", document)) == "MANIFEST_INVALID"


def test_oversized_manifest_is_413(client):
    document = image(client, "team/app", annotations={"padding": "x" * (4 << 20)})
    response = put(client, "team/app", "big", document)
    assert response.status == 413 and error_code(response) == "SIZE_INVALID"


def test_large_manifest_is_served_from_s3(client):
    document = image(client, "team/app", annotations={"padding": "x" * (400 << 10)})
    assert put(client, "team/app", "large", document).status == 201
    assert json.loads(client("GET", "/v2/team/app/manifests/large").body_bytes()) == document


def test_put_by_digest_checks_the_content(client):
    body = json.dumps(image(client, "team/app")).encode()
    assert put(client, "team/app", sha256(body + b" "), body).status == 400
    assert error_code(put(client, "team/app", sha256(body + b" "), body)) == "DIGEST_INVALID"
    created = put(client, "team/app", sha256(body), body)
    assert created.status == 201
    assert created.headers["Location"] == f"/v2/team/app/manifests/{sha256(body)}"


def test_sha512_manifest_reference(client):
    body = json.dumps(image(client, "team/app")).encode()
    digest = "sha512:" + hashlib.sha512(body).hexdigest()
    created = put(client, "team/app", digest, body)
    assert created.status == 201
    assert created.headers["Docker-Content-Digest"] == digest
    pulled = client("GET", f"/v2/team/app/manifests/{digest}")
    assert pulled.status == 200 and pulled.body_bytes() == body
    assert pulled.headers["Docker-Content-Digest"] == digest
    assert client("DELETE", f"/v2/team/app/manifests/{digest}").status == 202


def test_delete_by_digest_removes_every_tag(client):
    digest, _ = client.push_image("team/app", "1.0", [b"x"])
    client.push_image("team/app", "latest", [b"x"])
    client.push_image("team/app", "2.0", [b"y"])
    assert client("DELETE", f"/v2/team/app/manifests/{digest}").status == 202
    assert client("GET", "/v2/team/app/manifests/1.0").status == 404
    assert client("GET", "/v2/team/app/manifests/latest").status == 404
    assert client("GET", f"/v2/team/app/manifests/{digest}").status == 404
    assert json.loads(client("GET", "/v2/team/app/tags/list").body_bytes())["tags"] == ["2.0"]
    assert client("DELETE", f"/v2/team/app/manifests/{digest}").status == 404


def test_delete_by_tag_removes_only_that_tag(client):
    digest, _ = client.push_image("team/app", "1.0", [b"x"])
    client.push_image("team/app", "latest", [b"x"])
    assert client("DELETE", "/v2/team/app/manifests/latest").status == 202
    assert client("GET", "/v2/team/app/manifests/1.0").status == 200
    assert client("GET", f"/v2/team/app/manifests/{digest}").status == 200
    assert error_code(client("DELETE", "/v2/team/app/manifests/latest")) == "MANIFEST_UNKNOWN"


def test_retagging_moves_the_tag(client):
    client.push_image("team/app", "latest", [b"one"])
    second, body = client.push_image("team/app", "latest", [b"two"])
    got = client("GET", "/v2/team/app/manifests/latest")
    assert got.headers["Docker-Content-Digest"] == second and got.body_bytes() == body


def test_index_requires_its_children(client):
    child, body = client.push_image("team/app", "amd64", [b"x"])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": len(body), "platform": {"os": "linux", "architecture": "amd64"}}],
    }
    assert put(client, "team/app", "multi", index, OCI_INDEX).status == 201
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": sha256(b"absent"), "size": 3})
    response = put(client, "team/app", "broken", index, OCI_INDEX)
    assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"


def test_docker_manifest_and_list(client):
    document = image(client, "team/app")
    document["mediaType"] = DOCKER_MANIFEST
    document["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    document["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    document["layers"].append({"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": sha256(b"windows"), "size": 7})
    response = put(client, "team/app", "docker", document, DOCKER_MANIFEST)
    assert response.status == 201, response.body_bytes()
    child = response.headers["Docker-Content-Digest"]
    listing = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": child, "size": 1}]}
    assert put(client, "team/app", "list", listing, DOCKER_LIST).status == 201
    assert client("GET", "/v2/team/app/manifests/list").headers["Content-Type"] == DOCKER_LIST


def test_index_records_platforms_for_search(client, service):
    digest, _ = client.push_image("team/app", "1.0", [b"x"], config={"os": "linux", "architecture": "arm64", "variant": "v8"})
    details = service.index.manifest_details("team/app", digest)
    assert details["platforms"] == [{"os": "linux", "architecture": "arm64", "variant": "v8"}]
    assert details["totalSize"] > 0 and details["pushed"] > 0
    assert details["layers"][0]["digest"] == sha256(b"x")


def referrer(client, repo: str, subject: str, subject_size: int, artifact_type: str, annotations: dict | None = None) -> str:
    empty = b"{}"
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": client.push_blob(repo, empty), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": client.push_blob(repo, artifact_type.encode()), "size": len(artifact_type)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
        "annotations": annotations or {"org.example": "yes"},
    }
    response = put(client, repo, sha256(json.dumps(document).encode()), document)
    assert response.status == 201, response.body_bytes()
    assert response.headers["OCI-Subject"] == subject
    return response.headers["Docker-Content-Digest"]


def test_referrers_with_filter(client):
    subject, body = client.push_image("team/app", "1.0", [b"x"])
    sbom = referrer(client, "team/app", subject, len(body), "application/spdx+json")
    signature = referrer(client, "team/app", subject, len(body), "application/vnd.dev.cosign.artifact.sig.v1+json")
    listing = client("GET", f"/v2/team/app/referrers/{subject}")
    assert listing.status == 200
    assert listing.headers["Content-Type"] == OCI_INDEX
    index = json.loads(listing.body_bytes())
    assert index["mediaType"] == OCI_INDEX
    assert {m["digest"] for m in index["manifests"]} == {sbom, signature}
    assert all(m["annotations"] == {"org.example": "yes"} for m in index["manifests"])
    filtered = client("GET", f"/v2/team/app/referrers/{subject}?artifactType=application/spdx%2Bjson")
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in json.loads(filtered.body_bytes())["manifests"]] == [sbom]
    assert client("DELETE", f"/v2/team/app/manifests/{sbom}").status == 202
    assert [m["digest"] for m in json.loads(client("GET", f"/v2/team/app/referrers/{subject}").body_bytes())["manifests"]] == [signature]


def test_referrers_of_unknown_subject_is_an_empty_index(client):
    response = client("GET", f"/v2/team/app/referrers/{sha256(b'nothing')}")
    assert response.status == 200
    assert json.loads(response.body_bytes())["manifests"] == []
    assert "OCI-Filters-Applied" not in response.headers


def test_referrer_artifact_type_falls_back_to_config_media_type(client):
    subject, body = client.push_image("team/app", "1.0", [b"x"])
    document = image(client, "team/app", subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": len(body)})
    document["config"]["mediaType"] = "application/vnd.example.config+json"
    assert put(client, "team/app", "sig", document).status == 201
    manifests = json.loads(client("GET", f"/v2/team/app/referrers/{subject}").body_bytes())["manifests"]
    assert manifests[0]["artifactType"] == "application/vnd.example.config+json"
