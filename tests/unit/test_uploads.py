"""Upload sessions: chunked, streamed and monolithic pushes, races and failures."""

from __future__ import annotations

import hashlib
import os

import pytest

from chalicelib.spec.errors import RangeInvalid
from tests.conftest import at_once, error_code, sha256

MiB = 1 << 20


def start(client, repo: str = "team/app", query: str = "") -> str:
    response = client("POST", f"/v2/{repo}/blobs/uploads/{query}")
    assert response.status == 202
    assert int(response.headers["OCI-Chunk-Min-Length"]) > 0
    return response.headers["Location"]


def patch(client, location: str, data: bytes, offset: int | None):
    headers = {"Content-Type": "application/octet-stream"}
    if offset is not None:
        headers["Content-Range"] = f"{offset}-{offset + len(data) - 1}"
    return client("PATCH", location, data, headers)


def leftovers(service) -> tuple[list[str], list[dict]]:
    """Staged pieces and multipart uploads still in the bucket."""
    pieces = [o.key for o in service.store.list("_uploads/")]
    uploads = service.store.client.list_multipart_uploads(Bucket=service.store.bucket).get("Uploads", [])
    return pieces, uploads


def pull(client, repo: str, digest: str) -> bytes:
    import requests

    response = client("GET", f"/v2/{repo}/blobs/{digest}")
    assert response.status == 307
    return requests.get(response.headers["Location"], timeout=10).content


def test_chunks_under_and_over_five_mib_join_into_parts(client, service):
    chunks = [os.urandom(size) for size in (1 * MiB, 1 * MiB, 2 * MiB, 6 * MiB, 3 * MiB, 9 * MiB, 512)]
    blob = b"".join(chunks)
    location = start(client)
    offset = 0
    for chunk in chunks[:-1]:
        response = patch(client, location, chunk, offset)
        assert response.status == 202, response.body_bytes()
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
    status = client("GET", location)
    assert status.status == 204 and status.headers["Range"] == f"0-{offset - 1}"
    done = client("PUT", f"{location}?digest={sha256(blob)}", chunks[-1], {"Content-Range": f"{offset}-{offset + 511}"})
    assert done.status == 201, done.body_bytes()
    assert done.headers["Docker-Content-Digest"] == sha256(blob)
    assert pull(client, "team/app", sha256(blob)) == blob
    assert leftovers(service) == ([], [])


def test_streamed_patch_without_range_then_empty_put(client, service):
    blob = os.urandom(21 * MiB + 17)
    location = start(client)
    response = patch(client, location, blob, None)
    assert response.status == 202
    assert response.headers["Range"] == f"0-{len(blob) - 1}"
    assert client("PUT", f"{location}?digest={sha256(blob)}").status == 201
    head = client("HEAD", f"/v2/team/app/blobs/{sha256(blob)}")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(blob))
    assert pull(client, "team/app", sha256(blob)) == blob


def test_post_then_put_with_the_whole_body(client):
    blob = b"hello world"
    location = start(client)
    assert client("PUT", f"{location}?digest={sha256(blob)}", blob).status == 201
    assert client("HEAD", f"/v2/team/app/blobs/{sha256(blob)}").status == 200


def test_empty_blob(client):
    assert client("POST", f"/v2/team/app/blobs/uploads/?digest={sha256(b'')}").status == 201
    head = client("HEAD", f"/v2/team/app/blobs/{sha256(b'')}")
    assert head.status == 200 and head.headers["Content-Length"] == "0"
    assert client("GET", f"/v2/team/app/blobs/{sha256(b'')}").status == 200


def test_out_of_order_chunk_is_416_and_session_survives(client):
    location = start(client)
    assert patch(client, location, b"a" * 100, 0).status == 202
    wrong = patch(client, location, b"b" * 100, 50)
    assert wrong.status == 416
    assert wrong.headers["Range"] == "0-99"
    assert patch(client, location, b"b" * 100, 100).status == 202
    assert client("PUT", f"{location}?digest={sha256(b'a' * 100 + b'b' * 100)}").status == 201


@pytest.mark.parametrize("content_range", ["abc", "10-5", "bytes=x-y"])
def test_malformed_content_range_is_416(client, content_range):
    location = start(client)
    response = client("PATCH", location, b"data", {"Content-Range": content_range})
    assert response.status == 416
    assert error_code(response) == "BLOB_UPLOAD_INVALID"


def test_digest_mismatch_leaves_nothing_visible(client, service):
    location = start(client)
    patch(client, location, os.urandom(6 * MiB), 0)
    wrong = sha256(b"something else")
    response = client("PUT", f"{location}?digest={wrong}", b"tail")
    assert response.status == 400 and error_code(response) == "DIGEST_INVALID"
    assert client("HEAD", f"/v2/team/app/blobs/{wrong}").status == 404
    assert client("GET", location).status == 404
    assert leftovers(service) == ([], [])
    assert list(service.store.list("_data/")) == []


def test_cancel_aborts_everything(client, service):
    location = start(client)
    patch(client, location, os.urandom(6 * MiB), 0)
    patch(client, location, b"small piece", 6 * MiB)
    assert client("DELETE", location).status == 204
    assert error_code(client("GET", location)) == "BLOB_UPLOAD_UNKNOWN"
    assert leftovers(service) == ([], [])


def test_unknown_and_foreign_sessions_are_404(client):
    location = start(client, "team/app")
    session_id = location.rsplit("/", 1)[1]
    assert client("GET", f"/v2/other/repo/blobs/uploads/{session_id}").status == 404
    assert client("PATCH", "/v2/team/app/blobs/uploads/not-a-session", b"x").status == 404
    assert client("PUT", f"/v2/team/app/blobs/uploads/{'0' * 32}?digest={sha256(b'x')}", b"x").status == 404


def test_put_without_digest_is_400(client):
    location = start(client)
    response = client("PUT", location, b"abc")
    assert response.status == 400 and error_code(response) == "DIGEST_INVALID"


def test_two_requests_racing_on_one_session(atomic_aws, service):
    """Two requests claim one session at the same instant: exactly one holds the lease, the other gets 416."""
    for _ in range(10):
        session = service.registry.start_upload("team/app", "sha256")
        outcomes = at_once(*[lambda session_id=session.id: service.registry.sessions.claim("team/app", session_id)] * 2)
        assert sorted(type(o).__name__ for o in outcomes) == ["RangeInvalid", "UploadSession"], outcomes
    (claimed,) = [o for o in outcomes if not isinstance(o, RangeInvalid)]
    service.registry.sessions.release(claimed)
    service.registry.sessions.claim("team/app", session.id)


def test_sha512_with_digest_algorithm_and_monolithic(client):
    blob = os.urandom(7 * MiB)
    digest = "sha512:" + hashlib.sha512(blob).hexdigest()
    location = start(client, query="?digest-algorithm=sha512")
    patch(client, location, blob, 0)
    assert client("PUT", f"{location}?digest={digest}").status == 201
    assert client("HEAD", f"/v2/team/app/blobs/{digest}").headers["Content-Length"] == str(len(blob))
    small = b"sha512 monolithic"
    small_digest = "sha512:" + hashlib.sha512(small).hexdigest()
    assert client("POST", f"/v2/team/app/blobs/uploads/?digest={small_digest}", small).status == 201


def test_sha512_digest_on_a_sha256_session_is_verified_by_rereading(client):
    blob = os.urandom(3 * MiB)
    location = start(client)
    patch(client, location, blob, 0)
    digest = "sha512:" + hashlib.sha512(blob).hexdigest()
    assert client("PUT", f"{location}?digest={digest}").status == 201


def test_unsupported_algorithm_is_400(client):
    response = client("POST", "/v2/team/app/blobs/uploads/?digest-algorithm=md5")
    assert response.status == 400 and error_code(response) == "DIGEST_INVALID"


def test_a_streamed_patch_leaves_nothing_staged(client, service):
    """The tail of a streamed body joins the last part instead of becoming a piece object."""
    blob = os.urandom(21 * MiB + 17)
    location = start(client)
    patch(client, location, blob, None)
    assert leftovers(service)[0] == []
    session = service.registry.upload_status("team/app", location.rsplit("/", 1)[1])
    assert session.staged == 0 and session.parts == 3  # 8 MiB, 8 MiB, then 5 MiB + 17 bytes


def test_tiny_writes_stay_in_the_session_item(client, service):
    location = start(client)
    patch(client, location, b"a" * 1000, 0)
    patch(client, location, b"b" * 1000, 1000)
    assert leftovers(service) == ([], [])
    session = service.registry.upload_status("team/app", location.rsplit("/", 1)[1])
    assert session.inline == b"a" * 1000 + b"b" * 1000
    blob = b"a" * 1000 + b"b" * 1000 + b"c"
    assert client("PUT", f"{location}?digest={sha256(blob)}", b"c").status == 201
    assert pull(client, "team/app", sha256(blob)) == blob


def test_a_stray_part_from_a_killed_request_is_never_joined(client, service):
    location = start(client)
    first = os.urandom(6 * MiB)
    patch(client, location, first, 0)
    session = service.registry.upload_status("team/app", location.rsplit("/", 1)[1])
    service.store.put_part(session.data_key, session.upload_id, 3, os.urandom(5 * MiB))
    blob = first + b"tail"
    assert client("PUT", f"{location}?digest={sha256(blob)}", b"tail").status == 201
    assert pull(client, "team/app", sha256(blob)) == blob
