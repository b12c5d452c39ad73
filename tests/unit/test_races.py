"""Interleavings that decide data integrity, forced at the exact AWS call where another client's request lands.

Each test lets one operation read, then runs a second client's request through the real core, then
lets the first operation write: its write must be conditional on what it read, so the outcome is
the one a serial order would give. The interleaving is injected at the AWS client (tests/faults.py).
"""

from __future__ import annotations

import json
import time

import pytest

from chalicelib.lifecycle.gc import GarbageCollector
from chalicelib.storage import uploads
from tests.conftest import OCI_MANIFEST, Client, sha256
from tests.faults import Faults
from tests.unit.authsetup import As, Setup, auth_config, basic, service_for

HOUR = 3600


@pytest.fixture
def faults(service) -> Faults:
    return Faults().attach(service.index.table.client, service.store.client)


def holds(parsed: dict, key: str) -> bool:
    return any(item.get("key", {}).get("S") == key for item in parsed.get("Items", []))


def put(client: Client, repo: str, reference: str, body: bytes):
    return client("PUT", f"/v2/{repo}/manifests/{reference}", body, {"Content-Type": OCI_MANIFEST})


def test_gc_spares_a_manifest_tagged_after_it_decided(client, service, faults):
    """GC reads the repository, a client tags the untagged manifest (201), GC deletes what it decided: the new tag must survive."""
    digest, body = client.push_image("team/app", "old", [b"layer"])
    assert client("DELETE", "/v2/team/app/manifests/old").status == 202  # now untagged: retention's candidate

    def tag_it(parsed: dict) -> bool:
        if not holds(parsed, f"m#{digest}"):
            return False
        assert put(client, "team/app", "rescued", body).status == 201
        return True

    faults.after("Query", tag_it)
    GarbageCollector(service, clock=lambda: time.time() + 48 * HOUR).run()
    assert client("GET", "/v2/team/app/manifests/rescued").body_bytes() == body
    assert client("GET", f"/v2/team/app/manifests/{digest}").status == 200


def test_gc_does_not_remove_a_tag_a_client_moved_after_it_decided(aws, config, faults_for):
    policies = [{"repositories": ["**"], "deleteUntagged": True, "keepTags": [{"patterns": ["keep.*"]}]}]
    config.storage.retention = config.storage.retention.model_validate({"policies": policies})
    service = service_for(config)
    faults = faults_for(service)
    client = Setup(service)
    client.push_image("team/app", "moving", [b"old layer"])
    _, new = client.push_image("team/app", "keep-new", [b"new layer"])
    decided_at = int(time.time()) + 1  # GC's "now" less the retention delay: the moved tag is pushed after it

    def move_tag(parsed: dict) -> bool:
        if not holds(parsed, "t#moving"):
            return False
        time.sleep(decided_at - time.time() + 0.05)
        assert put(client, "team/app", "moving", new).status == 201  # the tag GC is about to drop now names another image
        return True

    faults.after("Query", move_tag)
    GarbageCollector(service, clock=lambda: decided_at + 24 * HOUR).run()
    assert client("GET", "/v2/team/app/manifests/moving").body_bytes() == new


@pytest.fixture
def faults_for():
    return lambda service: Faults().attach(service.index.table.client, service.store.client)


def test_a_create_only_user_cannot_move_a_tag_created_while_its_push_was_in_flight(aws, tmp_path, faults_for):
    """The permission check and the tag write are one decision: the tag's absence is the write's condition."""
    service = service_for(auth_config(tmp_path))
    faults = faults_for(service)
    admin, creator = As(service, basic("admin")), As(service, basic("creator"))
    _, admins = admin.push_image("team/app", "base", [b"admin layer"])
    _, creators = creator.push_image("team/app", "mine", [b"creator layer"])

    def admin_creates_the_tag(parsed: dict) -> bool:
        assert put(admin, "team/app", "contested", admins).status == 201
        return True

    faults.after("BatchGetItem", admin_creates_the_tag)  # the creator's push has read its blobs and not yet written
    response = put(creator, "team/app", "contested", creators)
    assert response.status == 403
    assert admin("GET", "/v2/team/app/manifests/contested").body_bytes() == admins


def test_a_create_only_user_may_repeat_an_identical_push(aws, tmp_path):
    service = service_for(auth_config(tmp_path))
    creator = As(service, basic("creator"))
    _, body = creator.push_image("team/app", "1.0", [b"layer"])
    assert put(creator, "team/app", "1.0", body).status == 201  # a retry that changes nothing
    _, other = Setup(service).push_image("team/app", "other", [b"other layer"])
    assert put(creator, "team/app", "1.0", other).status == 403  # a retry that would move the tag


def test_a_delete_by_digest_takes_a_tag_written_while_it_ran(client, service, faults):
    """No tag is left naming a deleted manifest: the delete repeats its walk when a tag was written meanwhile."""
    digest, body = client.push_image("team/app", "first", [b"layer"])

    def tag_it(parsed: dict) -> bool:
        if not holds(parsed, "t#first"):
            return False
        assert put(client, "team/app", "late", body).status == 201
        return True

    faults.after("Query", tag_it)
    assert client("DELETE", f"/v2/team/app/manifests/{digest}").status == 202
    late = client("GET", "/v2/team/app/manifests/late")
    assert late.status == client("GET", f"/v2/team/app/manifests/{digest}").status == 404
    assert json.loads(client("GET", "/v2/team/app/tags/list").body_bytes())["tags"] == []
    assert [o.key for o in service.store.list("repositories/team/app/_manifests/")] == []  # S3 agrees: no tag object left


def test_gc_does_not_abort_an_upload_in_progress(client, service):
    """A session past the upload TTL whose lease is held is spared, and so is the multipart upload under it."""
    start = client("POST", "/v2/team/app/blobs/uploads/")
    location = start.headers["Location"]
    first = b"a" * (6 << 20)
    assert client("PATCH", location, first, {"Content-Range": f"0-{len(first) - 1}"}).status == 202
    session_id = location.rsplit("/", 1)[-1]
    session = service.registry.sessions.claim("team/app", session_id)  # a request is writing to it right now
    report = GarbageCollector(service, clock=lambda: time.time() + 48 * HOUR).run()
    assert report.deleted.get("multipart_uploads", 0) == 0
    service.registry.sessions.release(session)
    whole = first + b"b" * 1000
    response = client("PUT", f"{location}?digest={sha256(whole)}", whole[len(first) :], {"Content-Range": f"{len(first)}-{len(whole) - 1}"})
    assert response.status == 201, response.body_bytes()


def test_a_lease_held_by_a_dead_request_lapses_within_a_minute(client, service, monkeypatch):
    """API Gateway gives up on a request at 29 s; its session must not answer 416 to the client's retry for 15 minutes."""
    location = client("POST", "/v2/team/app/blobs/uploads/").headers["Location"]
    service.registry.sessions.claim("team/app", location.rsplit("/", 1)[-1])  # the request that died
    assert client("PATCH", location, b"retry", {"Content-Range": "0-4"}).status == 416
    now = time.time()
    monkeypatch.setattr(uploads.time, "time", lambda: now + 61)
    assert client("PATCH", location, b"retry", {"Content-Range": "0-4"}).status == 202


def test_a_long_request_keeps_its_lease(client, service, monkeypatch):
    """A request streaming longer than the lease renews it, so a racing request still gets 416."""
    monkeypatch.setattr(uploads, "LEASE_SECONDS", 1)
    monkeypatch.setattr(uploads, "RENEW_EVERY", 0.2)
    location = client("POST", "/v2/team/app/blobs/uploads/").headers["Location"]
    outcomes: list[int] = []

    class SlowBody:
        """A client sending slowly: while it streams, another request on the same session is refused."""

        def __init__(self) -> None:
            self.sent = 0

        def read(self, size: int = -1) -> bytes:
            if self.sent >= 3:
                return b""
            time.sleep(0.8)
            self.sent += 1
            if self.sent == 3:
                outcomes.append(client("PATCH", location, b"x", {"Content-Range": "0-0"}).status)
            return b"z"

    session = service.registry.sessions.claim("team/app", location.rsplit("/", 1)[-1])
    service.registry.sessions.release(session)
    service.registry.append_upload("team/app", location.rsplit("/", 1)[-1], SlowBody(), None, None)
    assert outcomes == [416]
