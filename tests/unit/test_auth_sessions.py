"""zot's web-UI sessions: a signed cookie issued on zui's Basic login, accepted from zui, expired, tampered, cleared by logout.

The requests are zui's own (src/components/Login/SignIn.jsx, src/api.js): the X-ZOT-API-CLIENT header,
Basic on GET /v2/ to log in, the cookie alone afterwards, POST /zot/auth/logout to leave.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest

from chalicelib.adapters.apigateway import event_for, url_event_for
from chalicelib.config.schema import Config
from chalicelib.spec.http import Response
from tests.unit.authsetup import KEY, USERS, As, Setup, auth_config, basic, service_for

UI = {"X-ZOT-API-CLIENT": "zot-ui", "Accept": "application/json"}
SEARCH = "/v2/_zot/ext/search?query=" + "%7BGlobalSearch(query:%22%22)%7BRepos%7BName%7D%7D%7D"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return auth_config(tmp_path)


@pytest.fixture
def setup(service) -> Setup:
    setup = Setup(service)
    setup.push_image("public/app", "1.0", [b"public layer"])
    setup.push_image("private/app", "1.0", [b"private layer"])
    return setup


def cookies(response: Response) -> dict[str, str]:
    """name -> the full Set-Cookie value, from every Set-Cookie the response carries."""
    return {value.split("=", 1)[0]: value for value in response.cookies}


def session_of(response: Response) -> str:
    """The Cookie header a browser sends back after this response."""
    value = cookies(response)["session"]
    return value.split(";", 1)[0]


def login(service, user: str = "alice") -> str:
    response = As(service)("GET", "/v2/", headers={**UI, **basic(user)})
    assert response.status == 200
    return session_of(response)


def names(response: Response) -> list[str]:
    assert response.status == 200, response.body_bytes()
    return sorted(repo["Name"] for repo in json.loads(response.body_bytes())["data"]["GlobalSearch"]["Repos"])


def test_a_login_from_zui_sets_an_httponly_session_and_zots_readable_user_cookie(service):
    response = As(service)("GET", "/v2/", headers={**UI, **basic("alice")})
    assert response.status == 200
    set_cookies = cookies(response)
    assert set(set_cookies) == {"session", "user"}
    session = [part.strip() for part in set_cookies["session"].split(";")]
    assert {"HttpOnly", "Path=/", "SameSite=Strict"} <= set(session) and "Secure" not in session
    assert set_cookies["user"].startswith("user=alice;") and "HttpOnly" not in set_cookies["user"]
    behind_https = As(service)("GET", "/v2/", headers={**UI, **basic("alice"), "X-Forwarded-Proto": "https"})
    assert "Secure" in cookies(behind_https)["session"]


def test_no_session_for_clients_other_than_zui(service):
    """docker, skopeo and zli send Basic on every request: zot gives them no cookie, nor does zotless."""
    assert As(service)("GET", "/v2/", headers=basic("alice")).cookies == []


def test_the_cookie_alone_is_alice_with_her_access(service, setup):
    cookie = login(service)
    assert names(As(service)("GET", SEARCH, headers={**UI, "Cookie": f"theme=dark; {cookie}"})) == ["private/app", "public/app"]
    assert names(As(service)("GET", SEARCH, headers=UI)) == ["public/app"]  # anonymous
    pulled = As(service)("GET", "/v2/private/app/manifests/1.0", headers={**UI, "Cookie": cookie})
    assert pulled.status == 200


def test_the_cookie_counts_only_from_zui(service, setup):
    """zot reads the session only when the UI header is there; a cross-site request from elsewhere carries no header."""
    cookie = login(service)
    response = As(service)("GET", "/v2/private/app/manifests/1.0", headers={"Cookie": cookie})
    assert response.status == 401


def test_the_cookie_grants_what_the_policy_grants_and_nothing_more(service, setup):
    cookie = login(service, "bob")
    assert names(As(service)("GET", SEARCH, headers={**UI, "Cookie": cookie})) == ["public/app"]
    refused = As(service)("GET", "/v2/private/app/manifests/1.0", headers={**UI, "Cookie": cookie})
    assert refused.status == 403


def test_an_expired_cookie_is_anonymous_and_cleared(service, setup, monkeypatch: pytest.MonkeyPatch):
    cookie = login(service)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 8 * 3600 + 1)
    response = As(service)("GET", SEARCH, headers={**UI, "Cookie": cookie})
    assert names(response) == ["public/app"]
    assert cookies(response)["session"].startswith("session=;") and "Max-Age=0" in cookies(response)["session"]


@pytest.mark.parametrize("change", ["user", "expiry", "signature", "garbage"])
def test_a_tampered_cookie_is_anonymous_and_cleared(service, setup, change: str):
    cookie = login(service, "bob")
    payload, signature = cookie.removeprefix("session=").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if change == "user":
        claims["u"] = "alice"
    elif change == "expiry":
        claims["e"] += 10**6
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    value = {"signature": f"{payload}.{signature[:-2]}AA", "garbage": "not-a-session"}.get(change, f"{forged}.{signature}")
    response = As(service)("GET", SEARCH, headers={**UI, "Cookie": f"session={value}"})
    assert names(response) == ["public/app"]
    assert cookies(response)["session"].startswith("session=;")


def test_a_cookie_signed_with_another_key_is_refused(service, setup):
    from chalicelib.auth.sessions import Sessions

    other = Sessions("another-signing-key-0123456789abcdef", lambda user: service.api.auth.passwords.users().get(user))
    cookie = other.issue("alice", secure=False)[0].split(";", 1)[0]
    assert names(As(service)("GET", SEARCH, headers={**UI, "Cookie": cookie})) == ["public/app"]


def test_a_changed_password_ends_the_session(service, setup):
    cookie = login(service)
    users = service.api.auth.passwords.users()
    users["alice"] = users["bob"]  # the htpasswd file now holds another hash for alice
    assert names(As(service)("GET", SEARCH, headers={**UI, "Cookie": cookie})) == ["public/app"]


def test_logout_clears_both_cookies(service):
    response = As(service)("POST", "/zot/auth/logout", headers={**UI, "Cookie": login(service)})
    assert response.status == 200
    cleared = cookies(response)
    assert cleared["session"].startswith("session=;") and "Max-Age=0" in cleared["session"]
    assert cleared["user"].startswith("user=;") and "Max-Age=0" in cleared["user"]


@pytest.mark.parametrize("door", ["api-gateway", "function-url"])
def test_logout_through_the_lambda_app_sends_two_set_cookie_headers(service, monkeypatch: pytest.MonkeyPatch, door: str):
    """Both cookies survive Chalice (multiValueHeaders) and the function URL's 2.0 result (its `cookies` list)."""
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    if door == "api-gateway":
        result = app_module.app(event_for("POST", "/zot/auth/logout", headers=UI), None)
        sent = result["multiValueHeaders"]["Set-Cookie"]
    else:
        result = app_module.app(url_event_for("POST", "/zot/auth/logout", headers=UI), None)
        sent = result["cookies"]
    assert result["statusCode"] == 200
    assert sorted(value.split("=", 1)[0] for value in sent) == ["session", "user"]


def test_zui_gets_no_basic_challenge_so_its_own_login_page_shows(service):
    """zot leaves WWW-Authenticate out for its UI: a browser would otherwise pop its own password dialog."""
    response = As(service)("GET", "/v2/private/app/tags/list", headers=UI)
    assert response.status == 401 and "WWW-Authenticate" not in response.headers
    assert "WWW-Authenticate" in As(service)("GET", "/v2/private/app/tags/list").headers


def test_zui_guest_gets_200_on_v2_when_anonymous_may_read(service):
    """zui offers "continue as guest" only when GET /v2/ answers 200 (docker clients still get the challenge)."""
    assert As(service)("GET", "/v2/", headers=UI).status == 200
    assert As(service)("GET", "/v2/").status == 401


def test_no_guest_when_anonymous_may_read_nothing(tmp_path: Path, aws: None):
    config = auth_config(tmp_path, control={"repositories": {"**": {"policies": [{"users": ["alice"], "actions": ["read"]}]}}})
    assert As(service_for(config))("GET", "/v2/", headers=UI).status == 401


def test_no_sessions_without_a_signing_key(tmp_path: Path, aws: None):
    """Sessions are signed with http.auth.bearer.key; without it there is nothing to sign with, so none is issued."""
    service = service_for(auth_config(tmp_path, bearer=False))
    assert As(service)("GET", "/v2/", headers={**UI, **basic("alice")}).cookies == []


def test_the_cookie_and_password_are_never_logged(service, setup, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    cookie = login(service)
    As(service)("GET", SEARCH, headers={**UI, "Cookie": cookie})
    As(service)("GET", SEARCH, headers={**UI, "Cookie": cookie[:-3] + "xyz"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert cookie.split("=", 1)[1].split(".")[1] not in logged and cookie[8:40] not in logged
    assert USERS["alice"] not in logged and KEY not in logged
