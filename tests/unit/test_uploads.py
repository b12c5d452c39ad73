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


def test_chunks_of_lambda_size_join_their_staged_piece_without_reading_it_back(client, service):
    """A 4.4 MiB chunk is staged; the next one joins it into a part from this instance's memory: no GetObject."""
    from chalicelib.api.limits import CHUNK_MAX_LENGTH
    from tests.counting import CallCounter

    counter = CallCounter(service.store.client)
    chunks = [os.urandom(CHUNK_MAX_LENGTH) for _ in range(4)]
    location = start(client)
    for number, chunk in enumerate(chunks):
        assert patch(client, location, chunk, number * CHUNK_MAX_LENGTH).status == 202
    calls = counter.take()
    assert calls.get("s3:GetObject", 0) == 0 and calls["s3:UploadPart"] == 2 and calls["s3:PutObject"] == 2, calls
    assert calls["s3:DeleteObjects"] == 2, calls  # each staged piece goes once its part is written
    blob = b"".join(chunks)
    assert client("PUT", f"{location}?digest={sha256(blob)}").status == 201
    assert pull(client, "team/app", sha256(blob)) == blob
    assert leftovers(service) == ([], [])


def test_another_instance_reads_the_staged_piece_from_s3(client, service):
    """The piece cache is only a shortcut: a chunk served elsewhere finds the piece in the bucket."""
    chunks = [os.urandom(3 * MiB), os.urandom(3 * MiB)]
    location = start(client)
    assert patch(client, location, chunks[0], 0).status == 202
    service.registry.recent_pieces = type(service.registry.recent_pieces)()  # a different (cold) instance
    assert patch(client, location, chunks[1], 3 * MiB).status == 202
    blob = b"".join(chunks)
    assert client("PUT", f"{location}?digest={sha256(blob)}").status == 201
    assert pull(client, "team/app", sha256(blob)) == blob


def test_each_staging_write_has_its_own_key(client, service):
    """A request that lost its lease and staged at the same offset cannot overwrite the winner's piece."""
    location = start(client)
    session_id = location.rsplit("/", 1)[1]
    assert patch(client, location, os.urandom(2 * MiB), 0).status == 202
    (first,) = leftovers(service)[0]
    service.registry.sessions.table.update((session_id, None), "REMOVE pieces, piece_ids SET #o = :zero", {":zero": 0}, None, {"#o": "offset"})
    assert patch(client, location, os.urandom(2 * MiB), 0).status == 202
    assert first in leftovers(service)[0] and len(leftovers(service)[0]) == 2  # a new key; the stray one waits for GC


def test_a_session_staged_before_piece_ids_still_completes(client, service):
    """An upload in flight across an upgrade: its piece keys had no id, and stay readable."""
    from chalicelib.storage.uploads import piece_key

    location = start(client)
    session_id = location.rsplit("/", 1)[1]
    old = os.urandom(2 * MiB)
    assert patch(client, location, old, 0).status == 202
    (key,) = leftovers(service)[0]
    service.store.put(piece_key(session_id, 0), service.store.get(key))  # as the older version named it
    service.store.delete(key)
    service.registry.recent_pieces = type(service.registry.recent_pieces)()  # as if served by an instance of the older version
    service.registry.recent_sessions = type(service.registry.recent_sessions)()
    service.registry.sessions.table.update((session_id, None), "REMOVE piece_ids", {}, None, None)
    more, tail = os.urandom(2 * MiB), os.urandom(2 * MiB)
    assert patch(client, location, more, 2 * MiB).status == 202  # staged beside the old piece: two keys, one without id
    assert patch(client, location, tail, 4 * MiB).status == 202  # joins both into a part
    blob = old + more + tail
    assert client("PUT", f"{location}?digest={sha256(blob)}").status == 201
    assert pull(client, "team/app", sha256(blob)) == blob
    assert leftovers(service) == ([], [])



def test_a_chunk_continued_on_the_instance_that_saved_the_session_costs_one_dynamodb_write(client, service):
    """No lease to take and release: a chunk's state is stored by one conditional write, read from memory here."""
    from tests.counting import CallCounter

    counter = CallCounter(service.registry.sessions.table.client)
    location = start(client)
    counter.take()
    chunks = [os.urandom(3 * MiB) for _ in range(4)]
    calls = []
    for number, chunk in enumerate(chunks):
        assert patch(client, location, chunk, number * 3 * MiB).status == 202
        calls.append(counter.take())
    assert calls[0] == {"dynamodb:GetItem": 1, "dynamodb:UpdateItem": 1}, calls  # the first is read: POST left nothing here
    assert calls[1:] == [{"dynamodb:UpdateItem": 1}] * 3, calls
    blob = b"".join(chunks)
    assert client("PUT", f"{location}?digest={sha256(blob)}").status == 201
    assert pull(client, "team/app", sha256(blob)) == blob
    assert leftovers(service) == ([], [])


@pytest.mark.parametrize(
    ("when", "size"),
    [("dynamodb:UpdateItem", 3 * MiB), ("s3:UploadPart", 3 * MiB), ("dynamodb:UpdateItem", MiB), ("s3:PutObject", MiB)],
    ids=["part-before-save", "before-part", "piece-before-save", "beside-piece"],
)
def test_two_chunks_racing_at_one_offset_leave_the_winners_bytes_only(atomic_aws, client, service, when, size):
    """A rival chunk at the same offset runs to its end just before the first one's save, its part or its piece.

    Exactly one advances the session, and the blob it completes is that one's bytes: the loser never
    writes the part its save would have numbered, and its stray piece goes.
    """
    service_name, operation = when.split(":")
    aws = service.registry.sessions.table.client if service_name == "dynamodb" else service.store.client
    first = os.urandom(3 * MiB)
    mine, rival = os.urandom(size), os.urandom(size)
    location = start(client)
    assert patch(client, location, first, 0).status == 202
    rival_status: list[int] = []

    def run_rival(**_: object) -> None:
        if not rival_status:
            rival_status.append(0)
            rival_status[0] = patch(client, location, rival, len(first)).status

    aws.meta.events.register_first(f"before-send.{service_name}.{operation}", run_rival)
    try:
        my_status = patch(client, location, mine, len(first)).status
    finally:
        aws.meta.events.unregister(f"before-send.{service_name}.{operation}", run_rival)
    assert sorted([my_status, rival_status[0]]) == [202, 416], (my_status, rival_status)
    blob = first + (mine if my_status == 202 else rival)
    assert client("PUT", f"{location}?digest={sha256(blob)}").status == 201
    assert pull(client, "team/app", sha256(blob)) == blob
    assert leftovers(service) == ([], [])


def test_a_chunk_while_a_streamed_patch_holds_the_session_is_416(client, service):
    location = start(client)
    session_id = location.rsplit("/", 1)[1]
    assert patch(client, location, b"x" * 1000, 0).status == 202
    held = service.registry.sessions.claim("team/app", session_id)
    response = patch(client, location, b"y" * 1000, 1000)
    assert response.status == 416 and response.headers["Range"] == "0-999"
    service.registry.sessions.release(held)
    assert patch(client, location, b"y" * 1000, 1000).status == 202


@pytest.mark.parametrize(("operation", "size"), [("UploadPart", 3 * MiB), ("PutObject", MiB)], ids=["part", "piece"])
def test_a_write_that_fails_beside_or_after_its_save_ends_the_session_and_leaves_nothing(client, service, operation, size):
    from botocore.exceptions import ClientError

    from tests.faults import Faults, s3_error

    location = start(client)
    assert patch(client, location, os.urandom(3 * MiB), 0).status == 202
    Faults().attach(service.store.client).add(operation, s3_error(500, "InternalError"), times=10)
    with pytest.raises(ClientError):  # the adapters answer it as a 5xx
        patch(client, location, os.urandom(size), 3 * MiB)
    assert error_code(client("GET", location)) == "BLOB_UPLOAD_UNKNOWN"
    assert leftovers(service) == ([], [])


def test_a_chunks_writes_carry_their_crc32_as_a_header_not_an_aws_chunked_trailer(client, service):
    """S3 still checks every piece and part against its CRC32; computed here, botocore need not re-frame the body to append it."""
    import base64
    import zlib

    sent: list[tuple[str, dict[str, str], bytes]] = []

    def capture(request, event_name: str, **_: object) -> None:
        body = request.body if isinstance(request.body, bytes) else request.body.getvalue() if hasattr(request.body, "getvalue") else b""
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        sent.append((event_name.rsplit(".", 1)[-1], headers, body))

    service.store.client.meta.events.register("before-send.s3.PutObject", capture)
    service.store.client.meta.events.register("before-send.s3.UploadPart", capture)
    location = start(client)
    chunks = [os.urandom(3 * MiB), os.urandom(3 * MiB)]
    for number, chunk in enumerate(chunks):
        assert patch(client, location, chunk, number * 3 * MiB).status == 202
    assert [operation for operation, _, _ in sent] == ["PutObject", "UploadPart"]
    for _, headers, body in sent:
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        assert headers.get("x-amz-checksum-crc32") == crc, headers
        assert "x-amz-trailer" not in {k.lower() for k in headers} and "aws-chunked" not in headers.get("Content-Encoding", ""), headers
    assert sent[1][2] == chunks[0] + chunks[1]
