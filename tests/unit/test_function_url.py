"""Lambda function URL events (payload 2.0) through app.py: what differs from API Gateway's events is handled.

The events are built as Lambda builds them: lower-cased headers with repeats comma-joined, cookies
moved out of the headers, the query in rawQueryString, binary bodies base64-encoded, text bodies not.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from chalicelib.adapters.apigateway import response_body, url_event_for
from chalicelib.api.limits import CHUNK_MAX_LENGTH, MAX_LAMBDA_BODY, TOO_LARGE_BODY
from chalicelib.config.schema import Config
from tests.conftest import OCI_MANIFEST, sha256
from tests.unit.authsetup import auth_config, basic


@pytest.fixture
def service(aws: None, config: Config):
    """Built as app.service() builds it: upload responses carry the Lambda chunk limit."""
    from chalicelib.api.service import build_service
    from chalicelib.storage.aws import ensure_resources, make_clients

    clients = make_clients(config)
    ensure_resources(config, clients)
    return build_service(config, clients, chunk_max_length=CHUNK_MAX_LENGTH)


@pytest.fixture
def lambda_app(service, monkeypatch: pytest.MonkeyPatch):
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    return app_module.app


def test_a_binary_chunked_push_with_repeated_query_and_headers(lambda_app) -> None:
    """Base64 bodies arrive intact; a repeated query parameter keeps every value (2.0's queryStringParameters would join them)."""
    layer = bytes(range(256)) * 64
    started = lambda_app(url_event_for("POST", "/v2/team/app/blobs/uploads/"), None)
    assert started["statusCode"] == 202 and "multiValueHeaders" not in started
    assert started["headers"]["OCI-Chunk-Max-Length"] == str(CHUNK_MAX_LENGTH)
    location = started["headers"]["Location"]
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(layer) - 1}", "X-Forwarded-For": ["203.0.113.1", "198.51.100.7"]}
    event = url_event_for("PATCH", location, headers=headers, body=layer)
    assert event["isBase64Encoded"] and event["headers"]["x-forwarded-for"] == "203.0.113.1,198.51.100.7"
    patched = lambda_app(event, None)
    assert patched["statusCode"] == 202, response_body(patched)
    assert patched["headers"]["Range"] == f"0-{len(layer) - 1}"
    done = lambda_app(url_event_for("PUT", location, {"digest": [sha256(layer)]}), None)
    assert done["statusCode"] == 201, response_body(done)
    listed = lambda_app(url_event_for("GET", "/v2/team/app/tags/list", {"n": ["5", "1"]}), None)
    assert listed["statusCode"] == 404  # no manifest yet: NAME_UNKNOWN, whatever n says
    assert json.loads(response_body(listed))["errors"][0]["code"] == "NAME_UNKNOWN"


def test_a_text_manifest_body_and_cookies(lambda_app) -> None:
    """A JSON body is not base64-encoded by Lambda; cookies travel apart from the headers and must not break a request."""
    config = b'{"architecture":"arm64","os":"linux"}'
    pushed = lambda_app(
        url_event_for("POST", "/v2/a/b/blobs/uploads/", {"digest": [sha256(config)]}, {"Content-Type": "application/octet-stream"}, config), None
    )
    assert pushed["statusCode"] == 201, response_body(pushed)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": len(config)},
            "layers": [],
        }
    ).encode()
    event = url_event_for("PUT", "/v2/a/b/manifests/v1", headers={"Content-Type": "application/json"}, body=manifest, cookies=["session=abc", "theme=dark"])
    event["headers"]["content-type"] = OCI_MANIFEST  # a text body as Lambda passes it: not base64
    assert not event["isBase64Encoded"] and "cookie" not in event["headers"]
    put = lambda_app(event, None)
    assert put["statusCode"] == 201, response_body(put)
    pulled = lambda_app(url_event_for("GET", "/v2/a/b/manifests/v1", headers={"Accept": OCI_MANIFEST}), None)
    assert pulled["statusCode"] == 200 and pulled["isBase64Encoded"]
    assert base64.b64decode(pulled["body"]) == manifest
    assert pulled["headers"]["Docker-Content-Digest"] == sha256(manifest)


def test_a_body_api_gateway_would_refuse_gets_the_same_413(lambda_app) -> None:
    """Lambda lets a function URL event reach 6 MB; a body over what the REST door carries gets its 413 with the chunk hint."""
    event = url_event_for("PATCH", "/v2/a/b/blobs/uploads/" + "0" * 32, headers={"Content-Type": "application/octet-stream"}, body=b"x" * (MAX_LAMBDA_BODY + 1))
    result = lambda_app(event, None)
    assert result["statusCode"] == 413
    assert response_body(result) == TOO_LARGE_BODY.encode()
    assert json.loads(response_body(result))["errors"][0]["detail"]["maxChunkLength"] == CHUNK_MAX_LENGTH


def test_one_log_line_with_the_url_request_id_and_source(lambda_app, captured: io.StringIO) -> None:
    event = url_event_for("GET", "/v2/team/app/tags/list", {"token": ["s3cr3t"]}, {"Authorization": "Bearer s3cr3t"})
    lambda_app(event, None)
    (entry,) = [e for e in map(json.loads, captured.getvalue().splitlines()) if e["logger"] == "zotless.app"]
    assert entry["requestId"] == event["requestContext"]["requestId"] and entry["sourceIp"] == "198.51.100.7"
    assert (entry["method"], entry["path"], entry["route"]) == ("GET", "/v2/team/app/tags/list", "/v2/{name}/tags/list")
    assert "s3cr3t" not in captured.getvalue()


class TestAuth:
    @pytest.fixture
    def config(self, tmp_path: Path) -> Config:
        return auth_config(tmp_path, bearer=False)

    def test_lower_cased_authorization_is_honoured(self, lambda_app) -> None:
        """Lambda lower-cases every header name: Basic auth and its challenge work as through API Gateway."""
        refused = lambda_app(url_event_for("GET", "/v2/private/x/tags/list"), None)
        assert refused["statusCode"] == 401 and refused["headers"]["WWW-Authenticate"].startswith("Basic")
        allowed = lambda_app(url_event_for("GET", "/v2/private/x/tags/list", headers=basic("alice")), None)
        assert allowed["statusCode"] == 404  # authenticated: the repository is simply empty
        assert json.loads(response_body(allowed))["errors"][0]["code"] == "NAME_UNKNOWN"


def test_a_percent_encoded_path_is_decoded_as_api_gateway_decodes_it(lambda_app) -> None:
    """rawPath is the path as the client sent it: a digest with an escaped colon names the same blob."""
    blob = b"escaped"
    digest = sha256(blob)
    pushed = lambda_app(url_event_for("POST", "/v2/a/b/blobs/uploads/", {"digest": [digest]}, {"Content-Type": "application/octet-stream"}, blob), None)
    assert pushed["statusCode"] == 201, response_body(pushed)
    head = lambda_app(url_event_for("HEAD", "/v2/a/b/blobs/" + digest.replace(":", "%3A")), None)
    assert head["statusCode"] == 200 and head["headers"]["Docker-Content-Digest"] == digest


def test_a_path_outside_the_registry_is_a_404_not_a_crash(lambda_app) -> None:
    """A URL answers every path (scanners ask for /favicon.ico); API Gateway would refuse those without invoking."""
    for path in ("/favicon.ico", "/v3/x"):
        result = lambda_app(url_event_for("GET", path), None)
        assert result["statusCode"] == 404, (path, result)
    root = lambda_app(url_event_for("GET", "/"), None)  # the URL's root opens the web page (docs/web.md)
    assert root["statusCode"] == 302 and root["headers"]["Location"] == "/v2/_zot/ui/", root


class TestTokenEndpoint:
    @pytest.fixture
    def config(self, tmp_path: Path) -> Config:
        return auth_config(tmp_path, bearer=True)

    def test_the_token_endpoint_answers_through_the_url(self, lambda_app) -> None:
        """/auth/token is outside /v2: through the URL it reaches the core's router like any path."""
        event = url_event_for("GET", "/auth/token", {"service": ["zotless"], "scope": ["repository:private/x:pull"]}, basic("alice"))
        result = lambda_app(event, None)
        assert result["statusCode"] == 200, response_body(result)
        assert json.loads(response_body(result))["token"]


class TestHealthThroughTheUrl:
    @pytest.fixture
    def lambda_app(self, lambda_app):
        """app.py's health() is cached per process: built here over this test's service."""
        import app as app_module

        app_module.health.cache_clear()
        yield lambda_app
        app_module.health.cache_clear()

    @pytest.mark.parametrize("path", ["/livez", "/readyz", "/startupz"])
    def test_health_routes_answer_through_the_url(self, lambda_app, path: str) -> None:
        """app.py declares the health routes itself; through a URL they must reach them, not the core's router (a 404)."""
        result = lambda_app(url_event_for("GET", path), None)
        assert result["statusCode"] == 200, (path, result)
        assert json.loads(response_body(result))["status"] == "ok"

    def test_an_undeclared_method_on_a_health_path_still_reaches_the_core(self, lambda_app) -> None:
        """Only what app.py declares keeps its resource: a DELETE /livez is the core's 404, as before, not Chalice's 405."""
        result = lambda_app(url_event_for("DELETE", "/livez"), None)
        assert result["statusCode"] == 404, result
