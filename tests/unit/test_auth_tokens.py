"""Registry tokens (scopes, grants, signing, expiry, tampering) and htpasswd users (bcrypt once, then the cache)."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import bcrypt
import jwt
import pytest

from chalicelib.auth import htpasswd
from chalicelib.auth.htpasswd import Passwords, parse_htpasswd
from chalicelib.auth.tokens import Grants, InvalidToken, Scope, TokenIssuer, grant, parse_scopes
from chalicelib.config.schema import ConfigError

KEY = "k" * 40


def test_scopes_parse_as_clients_send_them():
    scopes = parse_scopes(["repository:team/app:pull,push", "repository:a:pull registry:catalog:*", "repository(plugin):p/q:delete"])
    assert [(s.type, s.name, sorted(s.actions)) for s in scopes] == [
        ("repository", "team/app", ["pull", "push"]),
        ("repository", "a", ["pull"]),
        ("registry", "catalog", ["*"]),
        ("repository", "p/q", ["delete"]),
    ]


@pytest.mark.parametrize("text", ["repository", "repository:team/app", "repository:Bad Name:pull", "registry:other:*", "user:x:pull", ":x:pull"])
def test_malformed_scopes_grant_nothing(text: str):
    assert Scope.parse(text) is None


def test_grants_follow_the_policy():
    allowed = {("read", "pub"), ("create", "mine"), ("read", "mine"), ("update", "upd")}
    scopes = parse_scopes(["repository:pub:pull,push,delete", "repository:mine:*", "repository:upd:push", "repository:none:pull"])
    granted = grant(scopes, lambda action, repo: (action, repo) in allowed)
    assert dict(granted.repositories) == {"pub": {"pull"}, "mine": {"pull", "push"}, "upd": {"push"}, "none": frozenset()}
    assert not granted.catalog
    assert granted.permits("read", "pub") and not granted.permits("create", "pub")
    assert granted.permits("create", "mine") and granted.permits("update", "mine")  # push stands for both; the policy still decides
    assert {"type": "repository", "name": "none", "actions": []} not in granted.access()


def test_issue_and_verify_round_trip():
    issuer = TokenIssuer(KEY, "zotless", 300)
    granted = Grants({"team/app": frozenset({"pull", "push"})}, catalog=True)
    document = issuer.issue("alice", granted)
    assert document["token"] == document["access_token"]
    assert document["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["issued_at"])
    subject, verified = issuer.verify(document["token"])
    assert subject == "alice" and verified == granted
    claims = jwt.decode(document["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
                                {"type": "registry", "name": "catalog", "actions": ["*"]}]
    assert claims["aud"] == "zotless" and claims["iss"] == "zotless"


def test_tokens_verify_on_another_instance_with_the_same_key():
    token = TokenIssuer(KEY, "zotless", 60).issue("", Grants())["token"]
    assert TokenIssuer(KEY, "zotless", 60).verify(token) == ("", Grants())


def test_expired_token_is_refused(monkeypatch: pytest.MonkeyPatch):
    issuer = TokenIssuer(KEY, "zotless", 60)
    earlier = time.time() - 61
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: earlier)
        token = issuer.issue("alice", Grants())["token"]
    with pytest.raises(InvalidToken, match="ExpiredSignatureError"):
        issuer.verify(token)


def test_a_verified_token_is_cached_until_it_expires(monkeypatch: pytest.MonkeyPatch):
    issuer = TokenIssuer(KEY, "zotless", 1)
    token = issuer.issue("alice", Grants({"a": frozenset({"pull"})}))["token"]
    calls: list[str] = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append("decode") or real(*a, **k))
    assert issuer.verify(token) == issuer.verify(token) == ("alice", Grants({"a": frozenset({"pull"})}))
    assert calls == ["decode"]
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(expires - time.time(), 0) + 0.05)
    with pytest.raises(InvalidToken, match="Expired"):
        issuer.verify(token)


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"] = [{"type": "repository", "name": "private/x", "actions": ["pull", "push", "delete"]}]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_tampered_wrong_key_wrong_service_and_unsigned_tokens_are_refused():
    issuer = TokenIssuer(KEY, "zotless", 60)
    token = issuer.issue("alice", Grants())["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    refused = [
        _tamper(token),
        TokenIssuer("x" * 40, "zotless", 60).issue("alice", Grants())["token"],
        TokenIssuer(KEY, "elsewhere", 60).issue("alice", Grants())["token"],
        jwt.encode(claims, None, algorithm="none"),
        "not-a-jwt",
    ]
    for bad in refused:
        with pytest.raises(InvalidToken):
            issuer.verify(bad)


# htpasswd


def test_htpasswd_takes_bcrypt_only(caplog: pytest.LogCaptureFixture):
    text = "# comment\nalice:$2y$05$abcdefghijklmnopqrstuu5QkYB6Rtu7xH2UkQ5EwwTUVGUaEdeGm\nold:$apr1$xyz$abc\n\nbob:$2b$04$x\n"
    users = parse_htpasswd(text, "f")
    assert set(users) == {"alice", "bob"}
    assert "old" in caplog.text and "$apr1" not in caplog.text
    with pytest.raises(ConfigError, match="f:1"):
        parse_htpasswd("no-colon-here\n", "f")


def _passwords(tmp_path: Path, **users: str) -> Passwords:
    path = tmp_path / "htpasswd"
    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n" for u, p in users.items()))
    return Passwords.from_path(str(path))


def test_bcrypt_runs_once_per_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    passwords = _passwords(tmp_path, alice="pw", bob="other")
    calls: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(htpasswd.bcrypt, "checkpw", lambda p, h: calls.append(p) or real(p, h))
    value = base64.b64encode(b"alice:pw").decode()
    assert all(passwords.check(value, "alice", "pw") for _ in range(5))
    assert len(calls) == 1
    wrong = base64.b64encode(b"alice:nope").decode()
    assert not passwords.check(wrong, "alice", "nope") and not passwords.check(wrong, "alice", "nope")
    assert len(calls) == 3  # failures are never cached
    assert not passwords.check(value, "bob", "pw")  # a cached credential is bound to its user
    assert b"pw" not in b"".join(repr(v).encode() for v in passwords._cache.values())


def test_unknown_user_costs_a_bcrypt_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    passwords = _passwords(tmp_path, alice="pw")
    calls: list[bytes] = []
    monkeypatch.setattr(htpasswd.bcrypt, "checkpw", lambda p, h: calls.append(h) or False)
    assert not passwords.check("x", "mallory", "pw")
    assert calls == [passwords._dummy]


def test_long_passwords_match_as_htpasswd_truncates_them(tmp_path: Path):
    long = "p" * 100
    passwords = _passwords(tmp_path, alice=long[:72])
    assert passwords.check("a", "alice", long)


def test_missing_local_file_fails_at_startup(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        Passwords.from_path(str(tmp_path / "absent"))


def test_htpasswd_from_s3_is_read_lazily_once(aws: None):
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="secrets-bucket")
    passwords = Passwords.from_path("s3://secrets-bucket/auth/htpasswd", s3)  # not there yet: read at the first login
    s3.put_object(Bucket="secrets-bucket", Key="auth/htpasswd", Body=f"alice:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n".encode())
    assert passwords.check("v", "alice", "pw")
    s3.delete_object(Bucket="secrets-bucket", Key="auth/htpasswd")
    assert passwords.check("w", "alice", "pw")
    with pytest.raises(ConfigError, match="s3://bucket/key"):
        Passwords.from_path("s3://only-bucket", s3).users()
