"""Shared setup for the auth unit tests: users, an accessControl, and clients that send credentials."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import parse_http_list

import bcrypt

from chalicelib.config.schema import Config
from chalicelib.model.access import ANONYMOUS
from chalicelib.spec.http import Response
from tests.conftest import Client, make_request

KEY = "unit-test-signing-key-0123456789abcdef"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "admin": "admin-pw", "creator": "creator-pw", "updater": "updater-pw"}
ALL = ["read", "create", "update", "delete"]
CONTROL = {
    "groups": {"devs": {"users": ["bob"]}},
    "repositories": {
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"], "policies": [{"users": ["alice"], "actions": ALL}]},
        "team/**": {
            "policies": [
                {"groups": ["devs"], "actions": ALL},
                {"users": ["creator"], "actions": ["read", "create"]},
                {"users": ["updater"], "actions": ["read", "update"]},
            ]
        },
        "private/**": {"policies": [{"users": ["alice"], "actions": ALL}]},
    },
    "adminPolicy": {"users": ["admin"], "actions": ALL},
}


def write_htpasswd(directory: Path) -> Path:
    path = directory / "htpasswd"
    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n" for u, p in USERS.items()))
    return path


def auth_config(directory: Path, bearer: bool = True, fail_delay: str = "0s", control: dict | None = CONTROL) -> Config:
    auth: dict = {"htpasswd": {"path": str(write_htpasswd(directory))}, "failDelay": fail_delay}
    if bearer:
        auth["bearer"] = {"key": KEY}
    http: dict = {"auth": auth}
    if control is not None:
        http["accessControl"] = control
    return Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}}, "http": http})


def basic(user: str, password: str | None = None) -> dict[str, str]:
    value = base64.b64encode(f"{user}:{USERS[user] if password is None else password}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: Response) -> tuple[str, dict[str, str]]:
    """(scheme, params) of the WWW-Authenticate header; fails the test when it is missing."""
    header = response.headers.get("WWW-Authenticate")
    assert header, f"{response.status} without WWW-Authenticate"
    scheme, _, rest = header.partition(" ")
    params = {}
    for item in parse_http_list(rest):
        key, _, value = item.partition("=")
        params[key.strip()] = value.strip().strip('"')
    return scheme, params


def body(response: Response) -> dict:
    return json.loads(response.body_bytes())


@dataclass
class As(Client):
    """A client that sends the same credentials with every request."""

    auth: dict[str, str] = field(default_factory=dict)

    def __call__(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
        request = make_request(method, target, body, {**self.auth, **(headers or {})})
        return self.service.api.handle(request)  # type: ignore[attr-defined]


@dataclass
class Setup(Client):
    """Pushes test content past access control (the allow-all caller), as an operator would."""

    def __call__(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
        return self.service.api.handle(make_request(method, target, body, headers), ANONYMOUS)  # type: ignore[attr-defined]


def service_for(config: Config) -> object:
    """A service on the moto mock that is already active (the `aws` fixture)."""
    from chalicelib.api.service import build_service
    from chalicelib.storage.aws import ensure_resources, make_clients

    clients = make_clients(config)
    ensure_resources(config, clients)
    return build_service(config, clients)


def token_for(service: object, scope: str | list[str], headers: dict[str, str] | None = None) -> str:
    scopes = [scope] if isinstance(scope, str) else scope
    query = "&".join(f"scope={s}" for s in scopes)
    response = As(service, headers or {})("GET", f"/auth/token?service=zotless&{query}")
    assert response.status == 200, response.body_bytes()
    return body(response)["token"]
