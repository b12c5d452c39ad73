"""zot's web-UI sessions without server-side state: a signed, expiring, HttpOnly cookie.

zot answers a successful Basic login from its UI (the request carries `X-ZOT-API-CLIENT: zot-ui`)
with `Set-Cookie: session=...` and later accepts that cookie from the UI instead of a password.
zot keeps the session in its memory; a Lambda instance cannot, so the cookie carries the user
name and expiry itself, HMAC-SHA256-signed with a key derived from the token key (every instance
verifies it, none stores it). It also carries a fingerprint of the user's htpasswd hash, so a
changed password or a removed user ends every session. Logout clears the cookie in the browser;
a copy of the cookie stays valid until it expires (SESSION_SECONDS). The cookie is never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from urllib.parse import quote

from chalicelib.spec.http import Request

COOKIE = "session"
USER_COOKIE = "user"  # zot's companion cookie: the user name, readable by zui's scripts
CLIENT_HEADER = "X-ZOT-API-CLIENT"
CLIENT_VALUE = "zot-ui"
LOGOUT_PATH = "/zot/auth/logout"
SESSION_SECONDS = 8 * 3600  # a working day; the UI signs in again after it
MAX_COOKIE_CHARS = 1024
_CONTEXT = b"zotless session cookie v1"  # the cookie's key differs from the JWT key, so neither verifies as the other


class InvalidSession(Exception):
    """A session cookie that is malformed, tampered with, expired, or for a password since changed; safe to log."""


def from_ui(request: Request) -> bool:
    """zot's rule: only its UI (which sends this header) gets sessions, and no Basic challenge on a 401."""
    return (request.headers.get(CLIENT_HEADER) or "").strip().lower() == CLIENT_VALUE


def secure_request(request: Request) -> bool:
    """Behind Lambda's HTTPS front ends X-Forwarded-Proto says https; a local plain-HTTP server is not."""
    return (request.headers.get("X-Forwarded-Proto") or "").split(",")[0].strip().lower() == "https"


def session_cookie(request: Request) -> str | None:
    """The `session` value from the Cookie header(s), or None."""
    for part in (request.headers.get("Cookie") or "").replace(",", ";").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE and value:
            return value.strip().strip('"')
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _attributes(max_age: int, secure: bool) -> str:
    return f"Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")


class Sessions:
    """Issues and verifies session cookies; `password_hash(user)` is the user's current htpasswd hash, or None."""

    def __init__(
        self, key: str, password_hash: Callable[[str], bytes | None], lifetime: int = SESSION_SECONDS, clock: Callable[[], float] | None = None
    ) -> None:
        self._key = hmac.new(key.encode(), _CONTEXT, hashlib.sha256).digest()
        self._password_hash = password_hash
        self.lifetime = lifetime
        self._clock = clock or (lambda: time.time())  # looked up per call, so a test's patched clock applies

    def _fingerprint(self, user: str) -> str:
        hashed = self._password_hash(user)
        if hashed is None:
            raise InvalidSession("unknown user")
        return _b64(hmac.new(self._key, hashed, hashlib.sha256).digest()[:12])

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: str, secure: bool) -> tuple[str, ...]:
        """Set-Cookie values for a user who just logged in with a password: the session, and zot's readable `user` cookie.

        zui reads `user` (its name only, no secret) to know it is logged in after a reload, as with zot.
        """
        claims = {"u": user, "e": int(self._clock()) + self.lifetime, "p": self._fingerprint(user)}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        attributes = _attributes(self.lifetime, secure)
        session = f"{COOKIE}={payload}.{self._sign(payload)}; {attributes}"
        return session, f"{USER_COOKIE}={quote(user, safe='@._-+')}; {attributes.replace('; HttpOnly', '')}"

    def verify(self, value: str) -> str:
        """The user a cookie value names; raises InvalidSession for anything but a current, untouched cookie."""
        payload, sep, signature = value.partition(".")
        if not sep or len(value) > MAX_COOKIE_CHARS or not value.isascii():
            raise InvalidSession("malformed")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidSession("bad signature")
        try:
            claims = json.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            raise InvalidSession("malformed") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("u"), str) or not isinstance(claims.get("e"), int):
            raise InvalidSession("malformed")
        if claims["e"] <= self._clock():
            raise InvalidSession("expired")
        if not hmac.compare_digest(str(claims.get("p", "")), self._fingerprint(claims["u"])):
            raise InvalidSession("password changed")
        return str(claims["u"])


def clearing_cookies(secure: bool) -> tuple[str, ...]:
    """Set-Cookie values that make the browser drop its session and `user` cookies (logout, or a session no longer valid)."""
    expired = f"Expires=Thu, 01 Jan 1970 00:00:00 GMT; {_attributes(0, secure)}"
    return f"{COOKIE}=; {expired}", f"{USER_COOKIE}=; {expired.replace('; HttpOnly', '')}"
