"""Authentication: the Authorization header to a caller, the challenge to answer with, and the token endpoint.

Passwords, tokens and Authorization headers are never logged; a failed login is logged with the
user name and source address and counted (chalicelib/auth/lockout.py): past `http.auth.lockout`'s
limits, logins are answered 429 with Retry-After. Nothing sleeps, so failures cost no handler time.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.auth.callers import Challenge, PolicyCaller, TokenCaller
from chalicelib.auth.htpasswd import Passwords
from chalicelib.auth.lockout import FailedLogins
from chalicelib.auth.policy import Policy
from chalicelib.auth.sessions import InvalidSession, Sessions, clearing_cookies, from_ui, secure_request, session_cookie
from chalicelib.auth.tokens import InvalidToken, TokenIssuer, grant, parse_scopes
from chalicelib.config.schema import Config, ConfigError, Http
from chalicelib.model.access import Caller
from chalicelib.spec.errors import RegistryError, TooManyRequests
from chalicelib.spec.http import Headers, Request, Response
from chalicelib.storage.dynamo import Table

log = logging.getLogger("zotless.auth")

TOKEN_PATH = "/auth/token"
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


def _basic_credentials(value: str) -> tuple[str, str] | None:
    """(user, password) from a Basic value, or None when it is not base64 of UTF-8 user:password."""
    if not value.isascii():  # base64 is ASCII; b64decode raises a bare ValueError on anything else
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class Authenticator:
    """Turns each request into a caller: anonymous, a Basic user, or a bearer token's holder."""

    def __init__(
        self,
        http: Http,
        policy: Policy,
        passwords: Passwords | None,
        tokens: TokenIssuer | None,
        failures: FailedLogins | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        """failures: None counts nothing (a config check, or `http.auth.lockout` with both limits 0).

        sessions: zot's UI session cookies (chalicelib/auth/sessions.py); None issues and accepts none.
        """
        self.http = http
        self.policy = policy
        self.passwords = passwords
        self.tokens = tokens
        self.failures = failures
        self.sessions = sessions

    def authenticate(self, request: Request) -> Caller:
        """Raises 401 for bad credentials; no credentials at all is an anonymous caller."""
        if self.passwords is None:  # accessControl without logins: everyone is anonymous, refusals are final
            return PolicyCaller(None, self.policy)
        challenge = self.challenge(request)
        header = (request.headers.get("Authorization") or "").strip()
        if not header:
            return self._session(request, challenge)
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            return self._basic(value.strip(), request, challenge)
        if scheme.lower() == "bearer" and self.tokens is not None:
            return self._bearer(value.strip(), request, challenge)
        raise challenge.unauthorized(message="unsupported authorization scheme")

    def _basic(self, value: str, request: Request, challenge: Challenge) -> Caller:
        assert self.passwords is not None
        credentials = _basic_credentials(value)
        user, password = credentials or ("", "")
        if credentials is not None and not user and not password:  # containers/image sends ":" when it has no credentials
            return self._session(request, challenge)
        source = request.remote_addr or "unknown"
        claimed = self._claim_attempt(user, source, known=credentials is not None and self.passwords.verified(value, user))
        if credentials is None or not self.passwords.check(value, user, password):
            raise self._failed(request, user, challenge)
        if claimed:
            self.failures.refund(user, source)  # type: ignore[union-attr]  # claimed only when failures are counted
        cookies = self.sessions.issue(user, secure_request(request)) if self.sessions is not None and from_ui(request) else ()
        return PolicyCaller(user, self.policy, challenge, presented=True, cookies=cookies)

    def _session(self, request: Request, challenge: Challenge) -> Caller:
        """No Authorization header: zot's UI session cookie's user, else anonymous (a stale cookie cleared, guests let in)."""
        guest = from_ui(request) and self.policy.anonymous_reads_anything()  # zot's UI offers "continue as guest" on /v2/'s 200
        anonymous = PolicyCaller(None, self.policy, challenge, presented=guest)
        value = session_cookie(request) if self.sessions is not None and from_ui(request) else None
        if value is None or self.sessions is None:
            return anonymous
        try:
            user = self.sessions.verify(value)
        except InvalidSession as error:
            log.info("ignored a session cookie from %s: %s", request.remote_addr or "unknown", error)
            return replace(anonymous, cookies=clearing_cookies(secure_request(request)))
        return PolicyCaller(user, self.policy, challenge, presented=True)

    def logout(self, request: Request) -> Response:
        """zot's POST /zot/auth/logout: the browser drops its cookie (nothing is stored server-side to delete)."""
        headers = {"Content-Length": "0", "Cache-Control": "no-store"}
        return Response(200, Headers(headers), b"", list(clearing_cookies(secure_request(request))))

    def _claim_attempt(self, user: str, source: str, known: bool) -> bool:
        """429 before any password is checked while the user or the address is locked, so a guess learns nothing.

        A credential this instance verified lately is only checked against the lock (one read). Any other is
        counted as a failure first (atomic adds) and refunded if right, so concurrent guesses cannot all pass
        one read of the lock. True when an attempt was counted.
        """
        if self.failures is None:
            return False
        retry_after = self.failures.locked(user, source) if known else self.failures.claim(user, source)
        if retry_after is not None:
            log.info("login refused while locked: user %r from %s", user[:64], source)
            raise TooManyRequests("too many failed logins; retry later", headers={"Retry-After": str(retry_after)})
        return not known

    def _bearer(self, token: str, request: Request, challenge: Challenge) -> Caller:
        assert self.tokens is not None
        try:
            if not token.isascii():  # a JWT is ASCII; other text (a lone surrogate from an event) would not even encode
                raise InvalidToken("not ASCII")
            subject, grants = self.tokens.verify(token)
        except InvalidToken as error:
            log.info("rejected bearer token from %s: %s", request.remote_addr or "unknown", error)
            raise challenge.unauthorized(error="invalid_token", message="invalid or expired token") from None
        return TokenCaller(subject or None, self.policy, challenge, grants=grants)

    def _failed(self, request: Request, user: str, challenge: Challenge) -> RegistryError:
        source = request.remote_addr or "unknown"
        log.warning("failed login for user %r from %s", user[:64], source, extra={"fields": {"event": "loginFailed", "user": user[:64], "sourceIp": source}})
        return challenge.unauthorized(message="invalid username or password")

    def challenge(self, request: Request) -> Challenge:
        """Bearer when the registry issues tokens (Basic still works), else Basic; the token endpoint itself asks Basic."""
        if self.tokens is None or request.path == TOKEN_PATH:
            return Challenge("Basic", self.http.realm, quiet=from_ui(request))
        return Challenge("Bearer", self.token_realm(request), self.tokens.service, quiet=from_ui(request))

    def token_realm(self, request: Request) -> str:
        """An absolute URL, as clients require: from config, else from the request's Host and X-Forwarded-Proto."""
        configured = self.http.auth.bearer.realm if self.http.auth and self.http.auth.bearer else None
        if configured:
            return configured
        proto = (request.headers.get("X-Forwarded-Proto") or "http").split(",")[0].strip().lower()
        host = (request.headers.get("Host") or "").strip()
        if not _HOST.match(host):
            host = f"{self.http.address}:{self.http.port}"
        return f"{'https' if proto == 'https' else 'http'}://{host}{TOKEN_PATH}"

    def token_endpoint(self, request: Request, caller: Caller) -> Response:
        """Docker's token spec: Basic credentials (or none, for anonymous) and scopes in; a JWT of what was granted out."""
        assert self.tokens is not None
        if isinstance(caller, TokenCaller):
            raise Challenge("Basic", self.http.realm).unauthorized(message="a token cannot be exchanged for another; send Basic credentials")
        granted = grant(parse_scopes(request.query.get("scope", [])), caller.may)
        document: dict[str, Any] = self.tokens.issue(caller.name or "", granted)
        log.info("issued a token to %s for %s", caller.name or "anonymous", [f"{k}:{','.join(sorted(v))}" for k, v in granted.repositories.items()])
        body = json.dumps(document).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Cache-Control": "no-store"}
        return Response(200, Headers(headers), body)


def build_auth(config: Config, s3: Any = None, table: Table | None = None) -> Authenticator | None:
    """None when neither auth nor accessControl is configured: every caller may do everything, as before.

    table: where failed logins are counted (the uploads table); without it nothing is counted.
    """
    http = config.http
    if http.auth is None and http.accessControl is None:
        return None
    try:
        policy = Policy(http.accessControl)
    except re.error as error:
        raise ConfigError(f"http.accessControl.repositories: bad glob: {error}") from error
    passwords = Passwords.from_path(http.auth.htpasswd.path, s3) if http.auth else None
    bearer = http.auth.bearer if http.auth else None
    tokens = TokenIssuer(bearer.key.get_secret_value(), bearer.service, bearer.expiry) if bearer and bearer.key else None
    failures = FailedLogins(table, http.auth.lockout) if http.auth and table is not None else None
    sessions = Sessions(bearer.key.get_secret_value(), _hash_of(passwords)) if tokens and bearer and bearer.key and passwords else None
    log.info(
        "auth: %s; %s; accessControl %s",
        f"htpasswd {http.auth.htpasswd.path}" if http.auth else "no logins",
        "Bearer challenges, tokens at " + TOKEN_PATH if tokens else "Basic challenges",
        "on" if http.accessControl else "off (logged-in users may do everything)",
    )
    if http.auth and http.auth.failDelay > 0:
        log.info("auth: failDelay is not slept (it would hold the handler); http.auth.lockout limits failed logins")
    return Authenticator(http, policy, passwords, tokens, failures if failures and failures.enabled else None, sessions)


def _hash_of(passwords: Passwords) -> Callable[[str], bytes | None]:
    """A user's current htpasswd hash, which session cookies are bound to."""
    return lambda user: passwords.users().get(user)


def check_auth(config: Config) -> None:
    """Fail at startup rather than at the first login: bad globs, an unreadable local htpasswd file."""
    build_auth(config)
