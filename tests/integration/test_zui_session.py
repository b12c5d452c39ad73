"""zot's web-UI session over real HTTP: the login, the cookie alone, logout, as zui's browser sends them to `zotless serve`."""

from __future__ import annotations

import base64
import http.client
from urllib.parse import urlsplit

from tests.integration.authconfig import creds
from tests.integration.conftest import RunningRegistry

UI = {"X-ZOT-API-CLIENT": "zot-ui", "Accept": "application/json"}


def raw(registry: RunningRegistry, method: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """One request over a fresh connection, so every Set-Cookie header can be read as sent."""
    parts = urlsplit(registry.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    connection.request(method, path, headers={**headers, "Content-Length": "0"} if method == "POST" else headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def set_cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    return {value.split("=", 1)[0]: value for value in response.headers.get_all("Set-Cookie") or []}


def test_login_browse_with_the_cookie_and_logout(token_registry: RunningRegistry) -> None:
    basic = "Basic " + base64.b64encode(creds("alice").encode()).decode()
    login = raw(token_registry, "GET", "/v2/", {**UI, "Authorization": basic})
    assert login.status == 200
    issued = set_cookies(login)
    assert set(issued) == {"session", "user"} and "HttpOnly" in issued["session"]
    cookie = issued["session"].split(";", 1)[0]
    private = "/v2/private/nothing-here/tags/list"  # alice may read private/**: past auth, the repository is unknown
    assert raw(token_registry, "GET", private, {**UI, "Cookie": cookie}).status == 404
    assert raw(token_registry, "GET", private, UI).status == 401
    logout = raw(token_registry, "POST", "/zot/auth/logout", {**UI, "Cookie": cookie})
    assert logout.status == 200
    assert all("Max-Age=0" in value for value in set_cookies(logout).values()) and set(set_cookies(logout)) == {"session", "user"}
    assert cookie.split("=", 1)[1] not in token_registry.log_path.read_text(errors="replace")
