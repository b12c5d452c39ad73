"""API Gateway proxy events to and from the core's Request: plain dicts, no web framework.

The Chalice app uses the decoding half; tests and the local Lambda-emulation mode use the
encoding half to produce exactly what the deployed function receives.
"""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Mapping
from typing import Any

from chalicelib.spec.http import Headers, Request

PROXY_RESOURCE = "/v2/{proxy+}"
BASE_RESOURCE = "/v2"
# The deployment's API Gateway stage is named "v2", so on the bare execute-api URL a client's
# "/v2/<name>/..." arrives as stage "v2" plus "/<name>/...": these routes put "/v2" back.
STAGE_ROOT_RESOURCES = {"/", "/{proxy+}"}


def request_from_event(event: Mapping[str, Any], body: bytes) -> Request:
    """The core's Request from a REST API proxy event; body is already base64-decoded by the caller."""
    headers = Headers()
    for key, values in (event.get("multiValueHeaders") or {}).items():
        headers[key] = ",".join(values) if isinstance(values, list) else str(values)
    for key, value in (event.get("headers") or {}).items():
        if key not in headers:
            headers[key] = value
    path = str(event.get("path") or "/")
    if event.get("resource") in STAGE_ROOT_RESOURCES:
        path = BASE_RESOURCE + path
    if path == BASE_RESOURCE:
        path = "/v2/"
    query = {k: list(v) for k, v in (event.get("multiValueQueryStringParameters") or {}).items()}
    source = (event.get("requestContext") or {}).get("identity", {}).get("sourceIp", "")
    return Request(str(event.get("httpMethod", "GET")), path, query, headers, io.BytesIO(body), source)


def event_for(method: str, path: str, query: dict[str, list[str]] | None = None, headers: Mapping[str, str] | None = None, body: bytes = b"") -> dict[str, Any]:
    """A REST API proxy event as API Gateway builds it: /v2, the greedy /v2/{proxy+}, or a fixed route (/auth/token)."""
    query = query or {}
    headers = dict(headers or {})
    is_base = path.rstrip("/") == BASE_RESOURCE
    is_proxy = not is_base and path.startswith(BASE_RESOURCE + "/")
    resource = BASE_RESOURCE if is_base else PROXY_RESOURCE if is_proxy else path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path[len("/v2/") :]} if is_proxy else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def response_body(result: Mapping[str, Any]) -> bytes:
    """The bytes of a proxy response dict, decoding base64 where Lambda encoded it."""
    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
