"""Blob reads, ranges, deletes, dedupe and cross-repository mounts."""

from __future__ import annotations

import pytest
import requests

from chalicelib.api.service import build_service
from chalicelib.config.schema import Config
from chalicelib.spec.references import Digest
from chalicelib.storage.aws import ensure_resources, make_clients
from chalicelib.storage.uploads import CommittedBlob
from tests.conftest import Client, at_once, error_code, sha256


def data_objects(service) -> list[str]:
    return [o.key for o in service.store.list("_data/")]


def test_head_and_get_redirect(client):
    digest = client.push_blob("team/app", b"0123456789")
    head = client("HEAD", f"/v2/team/app/blobs/{digest}")
    assert head.status == 200
    assert head.headers["Content-Length"] == "10"
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.body == b""
    get = client("GET", f"/v2/team/app/blobs/{digest}")
    assert get.status == 307
    assert requests.get(get.headers["Location"], timeout=10).content == b"0123456789"
    ranged = requests.get(get.headers["Location"], headers={"Range": "bytes=2-4"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == b"234"


def test_unknown_blob_head_has_no_body(client):
    response = client("HEAD", f"/v2/team/app/blobs/{sha256(b'nope')}")
    assert response.status == 404 and response.body == b""
    response = client("GET", f"/v2/team/app/blobs/{sha256(b'nope')}")
    assert error_code(response) == "BLOB_UNKNOWN"


@pytest.fixture
def streaming(aws, config: Config):
    """A registry that streams blobs itself instead of redirecting to S3."""
    config.storage.redirect = False
    clients = make_clients(config)
    ensure_resources(config, clients)
    return Client(build_service(config, clients))


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-2", 206, b"89", "bytes 8-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        (None, 200, b"0123456789", None),
    ],
)
def test_ranges_when_streaming(streaming, header, status, body, content_range):
    digest = streaming.push_blob("team/app", b"0123456789")
    response = streaming("GET", f"/v2/team/app/blobs/{digest}", headers={"Range": header} if header else {})
    assert response.status == status
    assert response.body_bytes() == body
    assert response.headers.get("Content-Range") == content_range


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=5-2", "bytes=a-b", "items=0-1", "bytes=-"])
def test_unsatisfiable_range_is_416(streaming, header):
    digest = streaming.push_blob("team/app", b"0123456789")
    response = streaming("GET", f"/v2/team/app/blobs/{digest}", headers={"Range": header})
    assert response.status == 416
    assert response.headers["Content-Range"] == "bytes */10"


def test_dedupe_keeps_one_object_for_many_repositories(client, service):
    layer = b"shared base layer" * 1000
    client.push_blob("team/a", layer)
    client.push_blob("team/b", layer)
    assert len(data_objects(service)) == 1
    assert service.blobs.table.get(sha256(layer), "#")["refs"] == 2


def test_implicit_link_on_head_and_not_after_delete(client, service):
    digest = client.push_blob("team/a", b"layer")
    assert client("HEAD", f"/v2/team/b/blobs/{digest}").status == 200
    assert client("GET", f"/v2/team/b/blobs/{digest}").status == 307
    assert client("DELETE", f"/v2/team/b/blobs/{digest}").status == 202
    assert client("HEAD", f"/v2/team/b/blobs/{digest}").status == 404, "a deleted blob must not come back (zot#1733)"
    assert client("HEAD", f"/v2/team/a/blobs/{digest}").status == 200
    client.push_blob("team/b", b"layer")
    assert client("HEAD", f"/v2/team/b/blobs/{digest}").status == 200, "an explicit push restores it"


def test_delete_unknown_blob_is_404(client):
    response = client("DELETE", f"/v2/team/a/blobs/{sha256(b'x')}")
    assert response.status == 404 and error_code(response) == "BLOB_UNKNOWN"


def test_mount_from_repository(client):
    digest = client.push_blob("team/a", b"mount me")
    mounted = client("POST", f"/v2/team/b/blobs/uploads/?mount={digest}&from=team/a")
    assert mounted.status == 201
    assert mounted.headers["Location"] == f"/v2/team/b/blobs/{digest}"
    assert client("HEAD", f"/v2/team/b/blobs/{digest}").status == 200


def test_mount_of_missing_blob_starts_an_upload(client):
    response = client("POST", f"/v2/team/b/blobs/uploads/?mount={sha256(b'absent')}&from=team/a")
    assert response.status == 202
    assert "/blobs/uploads/" in response.headers["Location"]


def test_mount_with_bad_source_name_is_400(client):
    response = client("POST", f"/v2/team/b/blobs/uploads/?mount={sha256(b'x')}&from=../etc")
    assert response.status == 400 and error_code(response) == "NAME_INVALID"


@pytest.fixture
def private(aws, config: Config):
    config.storage.dedupe = False
    clients = make_clients(config)
    ensure_resources(config, clients)
    return build_service(config, clients)


def test_without_dedupe_each_repository_keeps_its_copy(private):
    client = Client(private)
    digest = client.push_blob("team/a", b"copy me")
    client.push_blob("team/b", b"copy me")
    assert client("POST", f"/v2/team/c/blobs/uploads/?mount={digest}&from=team/a").status == 201
    assert len(data_objects(private)) == 3
    assert client("HEAD", f"/v2/team/d/blobs/{digest}").status == 404, "no implicit links without dedupe"
    pointers = [o.key for o in private.store.list("repositories/")]
    assert f"repositories/team/c/_blobs/sha256/{digest[7:]}" in pointers


def test_racing_commits_of_one_digest_keep_one_object(atomic_aws, service):
    """Two uploads of the same bytes commit at the same instant: the S3 conditional write picks one, the other's bytes go."""
    for n in range(10):
        layer = f"same bytes {n}".encode()
        digest = Digest.parse(sha256(layer))
        keys = [f"_data/first-{n}", f"_data/second-{n}"]
        for key in keys:
            service.store.put(key, layer)
        blobs = [CommittedBlob(digest, len(layer), key) for key in keys]
        one, two = at_once(lambda blob=blobs[0]: service.blobs.add("team/a", blob), lambda blob=blobs[1]: service.blobs.add("team/b", blob))
        assert one.data_key == two.data_key and one.data_key in keys, (one, two)
        assert [k for k in data_objects(service) if k in keys] == [one.data_key]
