"""Security-review findings on authentication and access control, through the core and the Chalice app.

An implicit dedupe link on HEAD is a write; unknown users cost as much bcrypt as known ones; failed logins
are limited by a DynamoDB counter instead of a sleep; credentials that are not ASCII are a 401, not a 500.
"""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest

from chalicelib.adapters.apigateway import event_for
from chalicelib.auth import htpasswd
from chalicelib.auth.htpasswd import Passwords
from chalicelib.config.schema import Config
from tests.conftest import error_code
from tests.unit.authsetup import As, Setup, auth_config, basic, challenge, service_for

# 1. HEAD on a blob links it into a repository only for callers who may push there


def holders(service: object, digest: str) -> dict[str, dict]:
    """The blob table's items for a digest, by holder ("#" is the shared object)."""
    return {item["holder"]: item for item in service.blobs.table.query(digest)}  # type: ignore[attr-defined]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return auth_config(tmp_path)


def test_head_links_only_for_callers_who_may_push(service):
    """anonymous and bob may only read public/**: their HEAD under a new name is a 404 and writes nothing; alice's links."""
    digest = Setup(service).push_blob("public/origin", b"shared layer")
    before = holders(service, digest)
    for caller in (As(service), As(service, basic("bob"))):
        response = caller("HEAD", f"/v2/public/elsewhere/blobs/{digest}")
        assert response.status == 404
        assert holders(service, digest) == before
    assert before["#"]["refs"] == 1
    pushed = As(service, basic("alice"))("HEAD", f"/v2/public/mine/blobs/{digest}")
    assert pushed.status == 200 and pushed.headers["Docker-Content-Digest"] == digest
    after = holders(service, digest)
    assert "public/mine" in after and after["#"]["refs"] == 2
    assert As(service)("HEAD", f"/v2/public/mine/blobs/{digest}").status == 200  # now any reader sees what it holds


def test_head_in_read_only_mode_links_nothing(aws: None):
    """storage.readOnly: even a caller who could push everywhere (no auth configured) gets no link."""
    settings = {"storage": {"storageDriver": {"bucket": "zotless-test"}}}
    writable = service_for(Config.model_validate(settings))
    digest = Setup(writable).push_blob("team/origin", b"layer")
    settings["storage"]["readOnly"] = True
    read_only = service_for(Config.model_validate(settings))
    assert As(read_only)("HEAD", f"/v2/team/origin/blobs/{digest}").status == 200
    assert As(read_only)("HEAD", f"/v2/team/other/blobs/{digest}").status == 404
    assert set(holders(read_only, digest)) == {"#", "team/origin"}


# 4. Credentials that are not ASCII, or not UTF-8 once decoded


NOT_ASCII = [
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),  # base64 of invalid UTF-8
    "Basic ÿÿÿÿ",  # the header itself is not ASCII (latin-1 as http.server reads it)
    "Basic \udcff\udcfe",  # lone surrogates, as a JSON event may carry
    "Bearer ÿÿÿ.ÿ.ÿ",
    "Bearer \udcff",
]


def test_non_ascii_credentials_are_a_401_with_the_challenge(service):
    for header in NOT_ASCII:
        response = As(service, {"Authorization": header})("GET", "/v2/public/app/tags/list")
        assert response.status == 401 and error_code(response) == "UNAUTHORIZED", header
        assert challenge(response)[0] == "Bearer"


@pytest.fixture
def lambda_app(service, monkeypatch: pytest.MonkeyPatch):
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    return app_module.app


def test_non_ascii_credentials_through_the_chalice_app(lambda_app):
    for header in NOT_ASCII:
        response = lambda_app(event_for("GET", "/v2/public/app/tags/list", headers={"Authorization": header}), None)
        assert response["statusCode"] == 401, header
        assert response["headers"]["WWW-Authenticate"].startswith("Bearer ")


# 2. An unknown user costs the same bcrypt work as a known one


def htpasswd_file(directory: Path, cost: int, **users: str) -> Path:
    """What `htpasswd -nB` writes ($2y$, cost 5 unless -C says otherwise)."""
    path = directory / f"htpasswd-{cost}"
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(cost)).decode().replace('$2b$', '$2y$', 1)}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def costs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bcrypt cost of every hash a password is checked against (the real check still runs)."""
    seen: list[int] = []
    real = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        seen.append(int(hashed[4:6]))
        return real(password, hashed)

    monkeypatch.setattr(htpasswd.bcrypt, "checkpw", recording)
    return seen


@pytest.mark.parametrize("cost", [5, 10])
def test_unknown_and_malformed_users_cost_what_known_ones_do(tmp_path: Path, costs: list[int], cost: int):
    path = htpasswd_file(tmp_path, cost, alice="alice-pw", bob="bob-pw")
    with path.open("a") as file:
        file.write("broken:$2y$05$too-short\n")
    passwords = Passwords.from_path(str(path))
    assert not passwords.check("a", "alice", "wrong")
    assert not passwords.check("b", "mallory", "wrong")
    assert not passwords.check("c", "broken", "wrong")
    assert costs == [cost, cost, cost]


def test_unknown_user_through_the_service_uses_the_file_cost(tmp_path: Path, aws: None, costs: list[int]):
    config = auth_config(tmp_path)
    config.http.auth.htpasswd.path = str(htpasswd_file(tmp_path, 5, alice="alice-pw"))
    client = As(service_for(config), basic("alice", "wrong"))
    assert client("GET", "/v2/").status == 401
    client.auth = {"Authorization": "Basic " + base64.b64encode(b"mallory:guess").decode()}
    assert client("GET", "/v2/").status == 401
    assert costs == [5, 5]
