"""What fits through API Gateway + Lambda, and what a client is told when a request does not fit.

One place for the numbers and the words: the core advertises them, the Lambda-emulation server
enforces them, and the CloudFormation template's GatewayResponse can import the same message, so
a client sees one answer whether the deployed gateway or the local emulation turned it away.
Only the standard library and chalicelib.spec.errors are imported, so templates and tools can use it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.spec.errors import PayloadTooLarge
from chalicelib.spec.http import Headers, Response

# Lambda rejects a synchronous invocation whose JSON payload exceeds these many bytes
# ("Request must be smaller than 6291456 bytes for the InvokeFunction operation"); a response
# may be 100 bytes longer.
LAMBDA_REQUEST_LIMIT = 6 * 1024 * 1024
LAMBDA_RESPONSE_LIMIT = LAMBDA_REQUEST_LIMIT + 100

# Room for everything in a proxy event but the body: headers (twice: headers and
# multiValueHeaders; API Gateway caps them near 10 KB), query, request context, JSON framing.
EVENT_ENVELOPE_ALLOWANCE = 64 * 1024

# The largest raw body that still fits once base64 has inflated it by 4/3: 4,669,440 bytes.
MAX_LAMBDA_BODY = (LAMBDA_REQUEST_LIMIT - EVENT_ENVELOPE_ALLOWANCE) // 4 * 3

# What clients are told to send per request: the largest multiple of 64 KiB whose event still fits beside the
# most API Gateway lets through around it (10,240 bytes of headers, which the event carries twice, plus the
# request context): 4,653,056 bytes. Every request is a fixed cost (an invocation, a session claim and save),
# so a chunk is as large as Lambda allows. Two minimum chunks make an S3 part (5 MiB).
CHUNK_MIN_LENGTH = 4 * 1024 * 1024
CHUNK_MAX_LENGTH = (LAMBDA_REQUEST_LIMIT - 32 * 1024) * 3 // 4 // (64 * 1024) * (64 * 1024)

TOO_LARGE_MESSAGE = (
    f"request body too large for AWS Lambda: push blobs in chunks of at most {CHUNK_MAX_LENGTH} bytes "
    "(PATCH with Content-Range, as OCI-Chunk-Max-Length says); a layer sent in one request must be smaller"
)
TOO_LARGE_ERROR: dict[str, Any] = {"code": "SIZE_INVALID", "message": TOO_LARGE_MESSAGE, "detail": {"maxChunkLength": CHUNK_MAX_LENGTH}}
# The exact 413 body, for API Gateway's GatewayResponse templates (static JSON: no `$` or `#`).
TOO_LARGE_BODY = json.dumps({"errors": [TOO_LARGE_ERROR]})

RESPONSE_TOO_LARGE_MESSAGE = f"response too large for AWS Lambda (over {LAMBDA_RESPONSE_LIMIT} bytes)"

# A body between MAX_LAMBDA_BODY and API Gateway's own 10 MB limit passes the gateway, then Lambda
# refuses the event and the gateway answers 502 INTEGRATION_FAILURE (as others report; it also
# covers crashes). This body for that gateway response still tells a pushing client what to do.
INVOKE_FAILED_MESSAGE = (
    f"the registry function could not be invoked or did not answer; a request body over {MAX_LAMBDA_BODY} bytes "
    f"never reaches it: push blobs in chunks of at most {CHUNK_MAX_LENGTH} bytes"
)
INVOKE_FAILED_BODY = json.dumps({"errors": [{"code": "UNKNOWN", "message": INVOKE_FAILED_MESSAGE}]})


def chunk_headers(max_length: int | None) -> dict[str, str]:
    """The chunk-size hints of an upload response; the maximum only where the transport has one."""
    headers = {"OCI-Chunk-Min-Length": str(CHUNK_MIN_LENGTH)}
    if max_length is not None:
        headers["OCI-Chunk-Max-Length"] = str(max_length)
    return headers


def body_fits(length: int) -> bool:
    return length <= MAX_LAMBDA_BODY


def payload_size(document: Mapping[str, Any]) -> int:
    """Bytes of an event or result as Lambda counts them: its compact JSON."""
    return len(json.dumps(document, separators=(",", ":")).encode())


def too_large() -> Response:
    """The 413 SIZE_INVALID answer to a request body Lambda cannot carry; the same bytes as TOO_LARGE_BODY."""
    response = PayloadTooLarge(TOO_LARGE_MESSAGE, detail=TOO_LARGE_ERROR["detail"]).to_response()
    response.headers["Content-Length"] = str(len(response.body_bytes()))
    return response


def response_too_large() -> Response:
    """What API Gateway answers when the function's result exceeds Lambda's limit: a 502, here with a JSON body."""
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": RESPONSE_TOO_LARGE_MESSAGE}]}).encode()
    return Response(502, Headers({"Content-Type": "application/json", "Content-Length": str(len(body))}), body)
