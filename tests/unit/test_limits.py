"""Lambda's payload limits: the numbers, the 413 a client sees, and the chunk hints upload responses carry."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.adapters.apigateway import event_for
from chalicelib.api.limits import (
    CHUNK_MAX_LENGTH,
    CHUNK_MIN_LENGTH,
    EVENT_ENVELOPE_ALLOWANCE,
    INVOKE_FAILED_BODY,
    LAMBDA_REQUEST_LIMIT,
    LAMBDA_RESPONSE_LIMIT,
    MAX_LAMBDA_BODY,
    TOO_LARGE_BODY,
    body_fits,
    chunk_headers,
    payload_size,
    response_too_large,
    too_large,
)
from tests.conftest import Client


def test_numbers_fit_together() -> None:
    assert LAMBDA_REQUEST_LIMIT == 6_291_456 and LAMBDA_RESPONSE_LIMIT == 6_291_556
    assert MAX_LAMBDA_BODY == 4_669_440  # ~4.45 MiB of raw bytes
    assert len(base64.b64encode(bytes(MAX_LAMBDA_BODY))) + EVENT_ENVELOPE_ALLOWANCE <= LAMBDA_REQUEST_LIMIT
    assert CHUNK_MIN_LENGTH <= CHUNK_MAX_LENGTH <= MAX_LAMBDA_BODY
    assert body_fits(MAX_LAMBDA_BODY) and not body_fits(MAX_LAMBDA_BODY + 1)


def test_largest_body_with_big_headers_still_fits_in_an_event() -> None:
    headers = {f"X-Header-{n}": "v" * 100 for n in range(90)}  # ~10 KB: API Gateway's header limit
    headers["Authorization"] = "Bearer " + "t" * 4000
    event = event_for("PATCH", "/v2/" + "a/" * 100 + "app/blobs/uploads/" + "u" * 36, headers=headers, body=bytes(MAX_LAMBDA_BODY))
    assert payload_size(event) <= LAMBDA_REQUEST_LIMIT


def test_too_large_is_the_oci_error_the_gateway_template_uses() -> None:
    response = too_large()
    assert response.status == 413
    assert response.body_bytes() == TOO_LARGE_BODY.encode()
    assert response.headers["Content-Length"] == str(len(TOO_LARGE_BODY))
    error = json.loads(TOO_LARGE_BODY)["errors"][0]
    assert error["code"] == "SIZE_INVALID"
    assert f"at most {CHUNK_MAX_LENGTH} bytes" in error["message"]
    assert error["detail"] == {"maxChunkLength": CHUNK_MAX_LENGTH}
    for template in (TOO_LARGE_BODY, INVOKE_FAILED_BODY):
        assert "$" not in template and "#" not in template  # static text in an API Gateway (VTL) template
    assert f"at most {CHUNK_MAX_LENGTH} bytes" in json.loads(INVOKE_FAILED_BODY)["errors"][0]["message"]


def test_response_too_large_is_a_json_502() -> None:
    response = response_too_large()
    assert response.status == 502
    assert json.loads(response.body_bytes())["errors"][0]["message"].startswith("response too large for AWS Lambda")


def test_chunk_headers() -> None:
    assert chunk_headers(None) == {"OCI-Chunk-Min-Length": str(CHUNK_MIN_LENGTH)}
    assert chunk_headers(CHUNK_MAX_LENGTH) == {"OCI-Chunk-Min-Length": str(CHUNK_MIN_LENGTH), "OCI-Chunk-Max-Length": str(CHUNK_MAX_LENGTH)}


@pytest.fixture
def lambda_client(aws: None, config) -> Client:
    """The core as app.py builds it: behind Lambda, so it knows the chunk limit."""
    from chalicelib.api.service import build_service
    from chalicelib.storage.aws import ensure_resources, make_clients

    clients = make_clients(config)
    ensure_resources(config, clients)
    return Client(build_service(config, clients, chunk_max_length=CHUNK_MAX_LENGTH))


def test_behind_lambda_post_and_patch_advertise_both_lengths(lambda_client: Client) -> None:
    started = lambda_client("POST", "/v2/team/app/blobs/uploads/")
    assert started.status == 202
    assert started.headers["OCI-Chunk-Min-Length"] == str(CHUNK_MIN_LENGTH)
    assert started.headers["OCI-Chunk-Max-Length"] == str(CHUNK_MAX_LENGTH)
    patched = lambda_client("PATCH", started.headers["Location"], b"x" * 1000, {"Content-Range": "0-999"})
    assert patched.status == 202
    assert patched.headers["OCI-Chunk-Max-Length"] == str(CHUNK_MAX_LENGTH)
    assert patched.headers["OCI-Chunk-Min-Length"] == str(CHUNK_MIN_LENGTH)


def test_elsewhere_only_the_minimum_on_post(client: Client) -> None:
    started = client("POST", "/v2/team/app/blobs/uploads/")
    assert started.headers["OCI-Chunk-Min-Length"] == str(CHUNK_MIN_LENGTH)
    assert "OCI-Chunk-Max-Length" not in started.headers
    patched = client("PATCH", started.headers["Location"], b"x" * 10)
    assert patched.status == 202
    assert "OCI-Chunk-Max-Length" not in patched.headers and "OCI-Chunk-Min-Length" not in patched.headers
