"""Security-review findings on authentication and access control, through the core and the Chalice app.

An implicit dedupe link on HEAD is a write; unknown users cost as much bcrypt as known ones; failed logins
are limited by a DynamoDB counter instead of a sleep; credentials that are not ASCII are a 401, not a 500.
"""

from __future__ import annotations

import base64
import contextlib
import time
from pathlib import Path

import bcrypt
import pytest

from chalicelib.adapters.apigateway import event_for
from chalicelib.auth import htpasswd
from chalicelib.auth.htpasswd import Passwords
from chalicelib.config.schema import Config, Lockout
from chalicelib.spec.http import Response
from tests.conftest import at_once, error_code, make_request
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


# 3. Failed logins are counted in DynamoDB and locked out with 429, never slept


@pytest.fixture
def lockout_service(tmp_path: Path, aws: None, monkeypatch: pytest.MonkeyPatch) -> object:
    """3 failures per user, 5 per address, in a 10-minute window; failDelay set, and any sleep fails the test."""

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"a handler slept {seconds}s")

    config = auth_config(tmp_path, fail_delay="2s")
    config.http.auth.lockout = Lockout(perUser=3, perSource=5, window=600)
    service = service_for(config)
    monkeypatch.setattr(time, "sleep", no_sleep)
    return service


def login(service: object, user: str, password: str | None = None, source: str = "203.0.113.7") -> Response:
    request = make_request("GET", "/v2/", headers=basic(user, password))
    request.remote_addr = source
    return service.api.handle(request)  # type: ignore[attr-defined]


def assert_locked(response: Response, window: int) -> None:
    assert response.status == 429 and error_code(response) == "TOOMANYREQUESTS"
    assert 1 <= int(response.headers["Retry-After"]) <= window


def test_failed_logins_lock_the_user_with_429_and_never_sleep(lockout_service, costs: list[int], caplog: pytest.LogCaptureFixture):
    for _ in range(3):
        assert login(lockout_service, "alice", "wrong").status == 401
    checked = len(costs)
    assert_locked(login(lockout_service, "alice"), 600)  # the right password too, while the lock holds
    assert_locked(login(lockout_service, "alice", "wrong", source="198.51.100.9"), 600)  # from anywhere
    assert len(costs) == checked, "no password is checked while locked"
    assert login(lockout_service, "bob", source="198.51.100.9").status == 200  # another user is unaffected
    assert login(lockout_service, "bob").status == 200  # even from the address that failed (3 of its 5)
    assert "wrong" not in caplog.text and "alice-pw" not in caplog.text and "Basic" not in caplog.text


def test_failed_logins_lock_the_address(lockout_service):
    for user in ("alice", "bob", "mallory", "eve", "admin"):
        assert login(lockout_service, user, "wrong").status == 401
    assert_locked(login(lockout_service, "creator"), 600)
    assert login(lockout_service, "creator", source="198.51.100.9").status == 200


def test_failure_counters_expire_and_are_not_upload_sessions(lockout_service):
    """Counters carry the uploads table's TTL attribute and no `created`, so the expired-session sweep skips them."""
    login(lockout_service, "alice", "wrong")
    sessions = lockout_service.registry.sessions  # type: ignore[attr-defined]
    items = list(sessions.table.scan("fails > :zero", {":zero": 0}))
    assert len(items) == 2 and all(i["expires"] > time.time() and "created" not in i for i in items)
    assert list(sessions.expired(time.time() + 10**9)) == []


def test_lockout_config_and_disabling_it(tmp_path: Path, aws: None):
    """`http.auth.lockout` takes durations like the other auth fields; both limits at 0 count nothing."""
    raw = {"htpasswd": {"path": str(htpasswd_file(tmp_path, 4, alice="alice-pw"))}, "lockout": {"perUser": 2, "perSource": 0, "window": "10m"}}
    config = Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}}, "http": {"auth": raw}})
    assert config.http.auth.lockout == Lockout(perUser=2, perSource=0, window=600.0)
    assert service_for(config).api.auth.failures is not None  # type: ignore[attr-defined]
    config.http.auth.lockout = Lockout(perUser=0, perSource=0)
    assert service_for(config).api.auth.failures is None  # type: ignore[attr-defined]


def test_concurrent_guesses_cannot_all_pass_one_read_of_the_lock(atomic_aws, lockout_service, monkeypatch: pytest.MonkeyPatch):
    """The lock and the count are one decision: five guesses at once against a limit of three give three 401s and two 429s.

    Every guess that reaches the password check waits there until three have (a slow bcrypt); with the count
    taken only after the check, all five would have read an unlocked counter and reached it.
    """
    import threading

    gate = threading.Barrier(3, timeout=5)
    original = Passwords._bcrypt

    def slow_bcrypt(self: Passwords, user: str, password: str) -> bool:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()
        return original(self, user, password)

    monkeypatch.setattr(Passwords, "_bcrypt", slow_bcrypt)
    statuses = sorted(r.status for r in at_once(*[lambda n=n: login(lockout_service, "alice", f"guess-{n}") for n in range(5)]))
    assert statuses == [401, 401, 401, 429, 429]
