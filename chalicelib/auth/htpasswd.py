"""htpasswd users (bcrypt only, as zot): one bcrypt per credential per instance, then a keyed in-memory cache.

bcrypt costs tens of milliseconds by design, and Lambda bills every one; Basic auth on every request
therefore checks a cache of credentials already verified, keyed by an HMAC of the header value under
a random per-process key, so the cache never holds a password or a fast hash of one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt

from chalicelib.config.schema import ConfigError

log = logging.getLogger("zotless.auth")

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
BCRYPT_MAX_BYTES = 72  # bcrypt reads no further; htpasswd -B truncates the same way
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 4096
DEFAULT_COST = 5  # what `htpasswd -nB` writes; the dummy's cost when the file has no usable entry
_WELL_FORMED = re.compile(rb"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")


def bcrypt_cost(hashed: bytes) -> int | None:
    """The cost in a hash's prefix (`$2y$05$…` is 5), or None when bcrypt could not check against it."""
    found = _WELL_FORMED.match(hashed)
    return int(found.group(1)) if found else None


def dummy_hash(hashes: list[bytes]) -> bytes:
    """A hash of a password nobody has, at the file's most common cost: unknown users cost what known ones do."""
    costs = Counter(c for c in map(bcrypt_cost, hashes) if c is not None)
    cost = costs.most_common(1)[0][0] if costs else DEFAULT_COST
    return bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(cost))


def parse_htpasswd(text: str, source: str) -> dict[str, bytes]:
    """user -> bcrypt hash; other hash kinds (MD5, SHA1, crypt) are refused, as zot refuses them."""
    users: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"{source}:{number}: expected user:bcrypt-hash")
        if not hashed.startswith(BCRYPT_PREFIXES):
            log.warning("%s:%d: user %r skipped: only bcrypt hashes are supported (htpasswd -B)", source, number, user)
            continue
        users[user] = hashed.encode()
    return users


def read_source(path: str, s3: Any = None) -> str:
    """A local file (also one bundled with the Lambda deployment) or an S3 object named s3://bucket/key."""
    try:
        if path.startswith("s3://"):
            bucket, _, key = path[len("s3://") :].partition("/")
            if s3 is None or not bucket or not key:
                raise ConfigError(f"http.auth.htpasswd.path {path!r}: needs s3://bucket/key and an S3 client")
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        return Path(path).read_text()
    except ConfigError:
        raise
    except Exception as error:  # any failure to read the user list must stop the service, not open it
        raise ConfigError(f"http.auth.htpasswd.path {path!r}: cannot read: {error}") from error


class Passwords:
    """Verifies user:password pairs against an htpasswd file, read once (lazily for S3)."""

    def __init__(self, load: Callable[[], dict[str, bytes]]) -> None:
        self._load = load
        self._users: dict[str, bytes] | None = None
        self._dummy = b""
        self._lock = threading.Lock()
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._cache_key = secrets.token_bytes(32)

    @classmethod
    def from_path(cls, path: str, s3: Any = None) -> Passwords:
        passwords = cls(lambda: parse_htpasswd(read_source(path, s3), path))
        if not path.startswith("s3://"):
            passwords.users()  # a missing local file fails at startup, not at the first login
        return passwords

    def users(self) -> dict[str, bytes]:
        if self._users is None:
            with self._lock:
                if self._users is None:
                    users = self._load()
                    self._dummy = dummy_hash(list(users.values()))
                    self._users = users
        return self._users

    def verified(self, credential: str, user: str) -> bool:
        """Whether this exact Basic value was verified for this user lately: then no guess is being made."""
        cached = self._cache.get(hmac.new(self._cache_key, credential.encode(), hashlib.sha256).digest())
        return cached is not None and cached[0] == user and cached[1] > time.monotonic()

    def check(self, credential: str, user: str, password: str) -> bool:
        """credential is the raw Basic value: a cache hit skips bcrypt entirely."""
        key = hmac.new(self._cache_key, credential.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        if self.verified(credential, user):
            return True
        if not self._bcrypt(user, password):
            return False
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (user, now + CACHE_SECONDS)
        return True

    def _bcrypt(self, user: str, password: str) -> bool:
        """One bcrypt at the file's cost whatever the user: known, unknown, or with a malformed entry."""
        hashed = self.users().get(user)
        candidate = password.encode()[:BCRYPT_MAX_BYTES]
        usable = hashed is not None and bcrypt_cost(hashed) is not None
        if hashed is not None and not usable:
            log.warning("user %r has a malformed bcrypt hash", user)
        matched = bcrypt.checkpw(candidate, hashed if usable and hashed else self._dummy)
        return matched and usable
