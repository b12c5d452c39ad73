"""The deployed path: API Gateway proxy events, and function URL events, through the Chalice app into the core."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.apigateway import event_for, response_body, url_event_for
from tests.conftest import OCI_MANIFEST, sha256

DOORS = {"api-gateway": event_for, "function-url": url_event_for}  # the same tests through both front doors


@pytest.fixture(params=list(DOORS))
def lambda_app(service, monkeypatch, request):
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    monkeypatch.setattr(app_module.app, "door", request.param, raising=False)
    return app_module.app


def invoke(app, method: str, path: str, query=None, headers=None, body: bytes = b"") -> dict:
    return app(DOORS[getattr(app, "door", "api-gateway")](method, path, query, headers, body), None)


def header(result: dict, name: str) -> str | None:
    for key, value in (result.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return values[0]
    return None


def test_base_endpoint_with_and_without_slash(lambda_app):
    for path in ("/v2", "/v2/"):
        result = invoke(lambda_app, "GET", path)
        assert result["statusCode"] == 200
        assert header(result, "Docker-Distribution-API-Version") == "registry/2.0"


def test_push_and_pull_through_proxy_events(lambda_app):
    layer = bytes(range(256)) * 64  # binary bytes that base64 must carry intact
    digest = sha256(layer)
    repo = "org/team/app"
    started = invoke(lambda_app, "POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Type": "application/octet-stream"})
    assert started["statusCode"] == 202
    location = header(started, "Location")
    assert location.startswith(f"/v2/{repo}/blobs/uploads/")
    patched = invoke(lambda_app, "PATCH", location, headers={"Content-Type": "application/octet-stream"}, body=layer)
    assert patched["statusCode"] == 202
    assert header(patched, "Range") == f"0-{len(layer) - 1}"
    done = invoke(lambda_app, "PUT", location, query={"digest": [digest]})
    assert done["statusCode"] == 201, response_body(done)

    config = b'{"architecture":"arm64","os":"linux"}'
    config_digest = sha256(config)
    assert invoke(lambda_app, "POST", f"/v2/{repo}/blobs/uploads/", query={"digest": [config_digest]}, body=config)["statusCode"] == 201
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": len(layer)}],
        }
    ).encode()
    put = invoke(lambda_app, "PUT", f"/v2/{repo}/manifests/v1", headers={"Content-Type": OCI_MANIFEST}, body=manifest)
    assert put["statusCode"] == 201, response_body(put)

    pulled = invoke(lambda_app, "GET", f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert pulled["statusCode"] == 200
    assert response_body(pulled) == manifest
    assert header(pulled, "Docker-Content-Digest") == sha256(manifest)

    no_accept = invoke(lambda_app, "GET", f"/v2/{repo}/manifests/v1")
    assert no_accept["statusCode"] == 200

    blob = invoke(lambda_app, "GET", f"/v2/{repo}/blobs/{digest}")
    assert blob["statusCode"] == 307
    assert header(blob, "Location").startswith("http")


def test_errors_keep_the_spec_body(lambda_app):
    result = invoke(lambda_app, "GET", "/v2/Bad_Name/tags/list")
    assert result["statusCode"] == 400
    assert json.loads(response_body(result))["errors"][0]["code"] == "NAME_INVALID"
    unknown = invoke(lambda_app, "GET", "/v2/nobody/manifests/latest")
    assert unknown["statusCode"] == 404
    assert json.loads(response_body(unknown))["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def stage_root_event(method: str, client_path: str, query=None, headers=None, body: bytes = b"") -> dict:
    """What API Gateway sends for the bare execute-api URL, whose stage is named v2: the stage is cut off the path."""
    event = event_for(method, client_path, query, headers, body)
    inner = client_path[len("/v2") :] or "/"
    resource = "/" if inner == "/" else "/{proxy+}"
    event.update(resource=resource, path=inner, pathParameters=None if inner == "/" else {"proxy": inner.lstrip("/")})
    event["requestContext"].update(resourcePath=resource, path=client_path, stage="v2")
    return event


def test_the_bare_execute_api_url_works_as_a_registry_host(lambda_app):
    base = lambda_app(stage_root_event("GET", "/v2/"), None)
    assert base["statusCode"] == 200 and header(base, "Docker-Distribution-API-Version") == "registry/2.0"
    blob = b"through the stage root"
    event = stage_root_event("POST", "/v2/team/app/blobs/uploads/", {"digest": [sha256(blob)]}, {"Content-Type": "application/octet-stream"}, blob)
    pushed = lambda_app(event, None)
    assert pushed["statusCode"] == 201, response_body(pushed)
    assert header(pushed, "Location") == f"/v2/team/app/blobs/{sha256(blob)}"
    head = lambda_app(stage_root_event("HEAD", f"/v2/team/app/blobs/{sha256(blob)}"), None)
    assert head["statusCode"] == 200
    missing = lambda_app(stage_root_event("GET", "/v2/team/app/tags/list"), None)
    assert json.loads(response_body(missing))["errors"][0]["code"] == "NAME_UNKNOWN"
