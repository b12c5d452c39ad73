"""API Gateway proxy events (and function URL events) to and from the core's Request: plain dicts, no web framework.

The Chalice app uses the decoding half; tests and the local Lambda-emulation mode use the
encoding half to produce exactly what the deployed function receives.
"""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Collection, Mapping
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, unquote, urlencode

from chalicelib.adapters.eventbody import encode_body
from chalicelib.api.limits import body_fits, too_large
from chalicelib.spec.http import Headers, Request

PROXY_RESOURCE = "/v2/{proxy+}"
BASE_RESOURCE = "/v2"
# The deployment's API Gateway stage is named "v2", so on the bare execute-api URL a client's
# "/v2/<name>/..." arrives as stage "v2" plus "/<name>/...": these routes put "/v2" back.
STAGE_ROOT_RESOURCES = {"/", "/{proxy+}"}


def request_from_event(event: Mapping[str, Any], body: bytes | BinaryIO) -> Request:
    """The core's Request from a REST API proxy event; body is already base64-decoded (or being decoded) by the caller."""
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
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    return Request(str(event.get("httpMethod", "GET")), path, query, headers, stream, source)


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
        "body": encode_body(body) if body else None,
        "isBase64Encoded": bool(body),
    }


def response_body(result: Mapping[str, Any]) -> bytes:
    """The bytes of a proxy response dict, decoding base64 where Lambda encoded it."""
    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()


# Lambda function URLs send payload format 2.0; Chalice routes only REST API (1.0) proxy events, so a
# 2.0 event is rewritten as the 1.0 event API Gateway would have sent, and the result back again.

URL_EVENT_VERSION = "2.0"


def is_function_url_event(event: Mapping[str, Any]) -> bool:
    """A function URL (payload 2.0) event: it has `rawPath` and `requestContext.http`, never `httpMethod`."""
    return event.get("version") == URL_EVENT_VERSION and "rawPath" in event and "http" in (event.get("requestContext") or {})


def url_body_length(event: Mapping[str, Any]) -> int:
    """The decoded body's length, without decoding it: base64 carries 3 bytes in 4 characters."""
    body = str(event.get("body") or "")
    if not event.get("isBase64Encoded"):
        return len(body.encode())
    return len(body) // 4 * 3 - body[-2:].count("=")


Routes = Mapping[str, Collection[str]]  # resource path -> its methods, as Chalice's app.routes holds them


def declared_resource(resource: str, method: str, routes: Routes | None) -> bool:
    """A fixed resource the app declares for this method (/livez, /auth/token): a URL event keeps it.

    The stage-root resources are the bare execute-api URL's, never a URL's own paths.
    """
    return routes is not None and resource not in STAGE_ROOT_RESOURCES and method in routes.get(resource, ())


def rest_event_from_url_event(event: Mapping[str, Any], routes: Routes | None = None) -> dict[str, Any]:
    """The REST API proxy event for a function URL event: same path, query, headers, body, requestId and source IP.

    The path is percent-decoded, as API Gateway decodes it; query values come from rawQueryString
    (2.0's queryStringParameters comma-join repeats); the
    cookies 2.0 moves out of the headers go back into a Cookie header; the body is passed on as sent.
    A path that is one of the app's own `routes` for its method keeps its resource; every other goes to /v2/{proxy+}.
    """
    http = event["requestContext"]["http"]
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(str(event.get("rawQueryString") or ""), keep_blank_values=True):
        query.setdefault(key, []).append(value)
    headers = {str(k): str(v) for k, v in (event.get("headers") or {}).items()}
    if event.get("cookies"):
        headers["cookie"] = "; ".join(str(c) for c in event["cookies"])
    path = unquote(str(event.get("rawPath") or "/"))  # as sent (sha256%3A...); API Gateway's `path` is decoded
    method = str(http.get("method", "GET")).upper()
    rest = event_for(method, path, query, headers)
    if rest["resource"] != BASE_RESOURCE and not declared_resource(rest["resource"], method, routes):
        # a URL has no resources: the core's router answers every other path (404s included)
        rest.update(resource=PROXY_RESOURCE, pathParameters={"proxy": path.lstrip("/")})
        rest["requestContext"]["resourcePath"] = PROXY_RESOURCE
    rest["body"] = event.get("body")
    rest["isBase64Encoded"] = bool(event.get("isBase64Encoded"))
    context = rest["requestContext"]
    context.update(stage="$default", path=rest["path"], requestId=str(event["requestContext"].get("requestId") or context["requestId"]))
    context["identity"]["sourceIp"] = str(http.get("sourceIp", ""))
    return rest


def fold_headers(result: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """A proxy result's headers, one value each (multi-value ones joined with ", "), and its Set-Cookie values apart.

    Joined with commas, several cookies would be one broken cookie: every door sends each on its own.
    """
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    cookies: list[str] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if str(name).lower() == "set-cookie":
            cookies.extend(str(v) for v in values)
        else:
            headers[str(name)] = ", ".join(str(v) for v in values)
    for name in [k for k in headers if k.lower() == "set-cookie"]:
        cookies.append(headers.pop(name))
    return headers, cookies


def url_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.0 response from Chalice's 1.0 result: 2.0 ignores multiValueHeaders, and Set-Cookie goes in `cookies`."""
    headers, cookies = fold_headers(result)
    converted = {
        "statusCode": result["statusCode"],
        "headers": headers,
        "body": result.get("body") or "",
        "isBase64Encoded": bool(result.get("isBase64Encoded")),
    }
    return converted | ({"cookies": cookies} if cookies else {})


def url_too_large(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The 413 SIZE_INVALID (chunk hint included) for a function URL body API Gateway would have refused, else None.

    Bodies whose event exceeds Lambda's 6 MB never reach the function: the URL answers them itself.
    """
    if body_fits(url_body_length(event)):
        return None
    response = too_large()
    return {"statusCode": response.status, "headers": dict(response.headers.items()), "body": response.body_bytes().decode(), "isBase64Encoded": False}


def url_event_for(
    method: str,
    path: str,
    query: dict[str, list[str]] | None = None,
    headers: Mapping[str, str | list[str]] | None = None,
    body: bytes = b"",
    cookies: list[str] | None = None,
) -> dict[str, Any]:
    """A function URL event as Lambda builds it: lower-cased, comma-joined headers, cookies apart, base64 binary bodies."""
    query = query or {}
    joined = {k.lower(): ",".join(v) if isinstance(v, list) else v for k, v in (headers or {}).items()}
    raw_query = urlencode([(k, v) for k, values in query.items() for v in values])
    text = joined.get("content-type", "").startswith(("text/", "application/json"))
    return {
        "version": URL_EVENT_VERSION,
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        **({"cookies": list(cookies)} if cookies else {}),
        "headers": {"host": "abcdefghij.lambda-url.us-east-1.on.aws", "x-forwarded-proto": "https", **joined},
        **({"queryStringParameters": {k: ",".join(v) for k, v in query.items()}} if query else {}),
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": joined.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "30/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1796040000000,
        },
        **({"body": body.decode() if text else base64.b64encode(body).decode()} if body else {}),
        "isBase64Encoded": bool(body) and not text,
    }
