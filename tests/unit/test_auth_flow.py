"""Authentication through the core and the Chalice app: challenges, the token flow, failures, and what is logged."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest

from chalicelib.adapters.apigateway import event_for, response_body
from chalicelib.config.schema import Config
from tests.conftest import error_code, make_request
from tests.unit.authsetup import KEY, USERS, As, Setup, auth_config, basic, bearer, body, challenge, service_for, token_for


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return auth_config(tmp_path, fail_delay="2s")


@pytest.fixture
def slept(service, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records sleeps: failDelay is not slept, a failed login must never hold the handler."""
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


def test_base_without_credentials_is_a_bearer_challenge_with_an_absolute_realm(service):
    response = As(service)("GET", "/v2/", headers={"Host": "registry.example.com", "X-Forwarded-Proto": "https"})
    assert response.status == 401 and error_code(response) == "UNAUTHORIZED"
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert challenge(response) == ("Bearer", {"realm": "https://registry.example.com/auth/token", "service": "zotless"})
    behind_nothing = As(service)("GET", "/v2/", headers={"Host": "127.0.0.1:5000"})
    assert challenge(behind_nothing)[1]["realm"] == "http://127.0.0.1:5000/auth/token"
    forged_host = As(service)("GET", "/v2/", headers={"Host": 'evil"host'})
    assert challenge(forged_host)[1]["realm"] == "http://127.0.0.1:8000/auth/token"  # from http.address and http.port


def test_configured_realm_wins(tmp_path: Path, aws: None):
    config = auth_config(tmp_path)
    config.http.auth.bearer.realm = "https://auth.example.com/token"
    response = As(service_for(config))("GET", "/v2/", headers={"Host": "elsewhere"})
    assert challenge(response)[1]["realm"] == "https://auth.example.com/token"


def test_token_flow_end_to_end(service):
    """What docker, podman, skopeo and oras do: ping, read the challenge, fetch a token for the scope, retry with it."""
    user = As(service, basic("alice"))
    assert user("GET", "/v2/").status == 200  # Basic still works on every request
    refused = As(service)("POST", "/v2/public/app/blobs/uploads/", headers={"Host": "localhost:9999"})
    scheme, params = challenge(refused)
    assert scheme == "Bearer"
    realm = urlsplit(params["realm"])
    assert (realm.scheme, realm.netloc, realm.path) == ("http", "localhost:9999", "/auth/token")
    issued = user("GET", f"{realm.path}?service={params['service']}&scope={params['scope']}")
    assert issued.status == 200 and issued.headers["Cache-Control"] == "no-store"
    document = body(issued)
    assert set(document) == {"token", "access_token", "expires_in", "issued_at"} and document["expires_in"] == 300
    holder = As(service, bearer(document["token"]))
    assert holder("GET", "/v2/").status == 200
    assert holder.push_image("public/app", "1.0", [b"layer"])[0]
    assert holder("GET", "/v2/public/app/manifests/1.0").status == 200


def test_anonymous_token_reads_what_anonymous_may(service):
    Setup(service).push_image("public/app", "1", [b"x"])
    Setup(service).push_image("team/app", "1", [b"x"])
    token = token_for(service, ["repository:public/app:pull,push", "repository:team/app:pull"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "" and claims["access"] == [{"type": "repository", "name": "public/app", "actions": ["pull"]}]
    holder = As(service, bearer(token))
    assert holder("GET", "/v2/public/app/manifests/1").status == 200
    assert holder("GET", "/v2/team/app/manifests/1").status == 401  # logging in could help


def test_expired_and_tampered_tokens_are_refused(service, monkeypatch: pytest.MonkeyPatch):
    token = token_for(service, "repository:public/app:pull", basic("alice"))
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"][0]["actions"] = ["pull", "push", "delete"]
    tampered = ".".join([header, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(), signature])
    expired = jwt.encode(claims | {"exp": int(time.time()) - 5}, KEY, algorithm="HS256")
    for bad in (tampered, expired, token[:-2]):
        response = As(service, bearer(bad))("GET", "/v2/public/app/tags/list")
        assert response.status == 401
        assert challenge(response)[1]["error"] == "invalid_token"


def test_wrong_password_is_not_slept_logged_and_leaks_nothing(service, slept, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    for headers in (basic("alice", "wrong"), basic("alice", ""), {"Authorization": "Basic !!!"}, basic("bob", "nope")):
        request_headers = headers | {"Host": "localhost"}
        request = make_request("GET", "/v2/public/app/tags/list", headers=request_headers)
        request.remote_addr = "203.0.113.7"
        response = service.api.handle(request)
        assert response.status == 401 and error_code(response) == "UNAUTHORIZED"
        assert challenge(response)[0] == "Bearer"
    assert slept == []
    failures = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
    assert len(failures) == 4 and all("203.0.113.7" in line for line in failures)
    assert "'alice'" in failures[0]
    assert "wrong" not in caplog.text and "nope" not in caplog.text and "Basic" not in caplog.text


def test_token_endpoint_refusals(service, slept):
    bad = As(service, basic("alice", "wrong"))("GET", "/auth/token?scope=repository:public/app:pull")
    assert bad.status == 401 and challenge(bad) == ("Basic", {"realm": "zotless"}) and slept == []
    token = token_for(service, "repository:public/app:pull", basic("alice"))
    swap = As(service, bearer(token))("GET", "/auth/token?scope=repository:private/x:pull")
    assert swap.status == 401 and challenge(swap)[0] == "Basic"
    assert As(service, basic("alice"))("POST", "/auth/token").status == 405


def test_every_401_carries_a_challenge(service):
    """containers/image decides from WWW-Authenticate which credentials to send; a 401 without it strands clients."""
    Setup(service).push_image("team/app", "1", [b"x"])
    cases = [
        ("GET", "/v2/", {}),
        ("GET", "/v2/_catalog", {"Authorization": "Bearer garbage"}),
        ("GET", "/v2/team/app/manifests/1", {}),
        ("HEAD", "/v2/team/app/manifests/1", {}),
        ("PUT", "/v2/team/app/manifests/2", {}),
        ("DELETE", "/v2/team/app/manifests/1", {}),
        ("GET", "/v2/team/app/tags/list", basic("alice", "wrong")),
        ("GET", "/v2/team/app/tags/list", {"Authorization": "Negotiate abc"}),
        ("GET", "/auth/token", basic("bob", "wrong")),
        ("PATCH", "/v2/team/app/blobs/uploads/abc", bearer(token_for(service, "repository:team/app:pull", basic("bob")))),
    ]
    for method, target, headers in cases:
        response = As(service, headers)(method, target)
        assert response.status == 401, (method, target, response.status)
        challenge(response)


def test_logs_hold_no_password_token_or_authorization(service, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    token = token_for(service, "repository:public/app:pull,push", basic("alice"))
    As(service, bearer(token)).push_image("public/app", "1", [b"x"])
    As(service, bearer(token + "x"))("GET", "/v2/public/app/manifests/1")
    As(service, basic("bob", "bob-wrong"))("GET", "/v2/")
    text = caplog.text
    assert "issued a token to alice" in text and "rejected bearer token" in text
    for secret in [*USERS.values(), "bob-wrong", token, token.split(".")[2], basic("alice")["Authorization"].split()[1]]:
        assert secret not in text


def test_basic_mode_challenge_and_anonymous_empty_credentials(tmp_path: Path, aws: None):
    config = auth_config(tmp_path, bearer=False)
    service = service_for(config)
    Setup(service).push_image("public/app", "1", [b"x"])
    ping = As(service)("GET", "/v2/")
    assert ping.status == 401 and challenge(ping) == ("Basic", {"realm": "zotless"})
    empty = {"Authorization": "Basic " + base64.b64encode(b":").decode()}  # what containers/image sends without credentials
    assert As(service, empty)("GET", "/v2/public/app/manifests/1").status == 200
    assert As(service, empty)("GET", "/v2/").status == 401
    assert As(service, basic("alice"))("GET", "/v2/").status == 200
    assert As(service, basic("alice"))("GET", "/auth/token").status == 404  # no tokens without http.auth.bearer


def test_no_auth_configured_changes_nothing(aws: None):
    config = Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}}})
    client = As(service_for(config))
    assert client("GET", "/v2/").status == 200
    assert client("GET", "/auth/token").status == 404
    assert client("GET", "/v2/", headers={"Authorization": "Bearer whatever"}).status == 200


# The Chalice app: API Gateway proxy events


@pytest.fixture
def lambda_app(service, monkeypatch: pytest.MonkeyPatch):
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    return app_module.app


def _token_event(query: dict[str, list[str]], headers: dict[str, str]) -> dict:
    event = event_for("GET", "/auth/token", query, headers)
    event["resource"] = event["requestContext"]["resourcePath"] = "/auth/token"
    event["pathParameters"] = None
    return event


def test_token_flow_through_the_chalice_app(lambda_app):
    ping = lambda_app(event_for("GET", "/v2", headers={"Host": "abc.execute-api.example.com", "X-Forwarded-Proto": "https"}), None)
    assert ping["statusCode"] == 401
    assert ping["headers"]["WWW-Authenticate"].startswith('Bearer realm="https://abc.execute-api.example.com/auth/token"')
    issued = lambda_app(_token_event({"scope": ["repository:public/app:pull,push"]}, basic("alice")), None)
    assert issued["statusCode"] == 200, issued
    token = json.loads(response_body(issued))["token"]
    started = lambda_app(event_for("POST", "/v2/public/app/blobs/uploads/", headers=bearer(token)), None)
    assert started["statusCode"] == 202
    refused = lambda_app(_token_event({}, basic("alice", "wrong")), None)
    assert refused["statusCode"] == 401 and refused["headers"]["WWW-Authenticate"] == 'Basic realm="zotless"'
