"""Docker registry tokens: requested scopes in, a short-lived HS256 JWT of the granted actions out.

Every Lambda instance verifies with the same configured key, so a token from one instance works on
all. Verifying needs no bcrypt and no AWS call; a token already verified by this instance is found in
a small cache (keyed by its SHA-256, checked against its expiry), so repeated requests skip PyJWT too.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.model.access import Action
from chalicelib.spec.errors import RegistryError
from chalicelib.spec.references import validate_name

ISSUER = "zotless"
ALGORITHM = "HS256"
MAX_SCOPES = 64
VERIFIED_ENTRIES = 4096
# Docker scope actions and the accessControl actions each stands for.
SCOPE_ACTIONS: dict[str, tuple[Action, ...]] = {"pull": ("read",), "push": ("create", "update"), "delete": ("delete",)}
ACTION_SCOPE: dict[Action, str] = {"read": "pull", "create": "push", "update": "push", "delete": "delete"}


@dataclass(frozen=True)
class Scope:
    """`repository:<name>:<actions>` or `registry:catalog:*`, as clients send them."""

    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """None for anything malformed: the spec says to grant nothing for it rather than fail."""
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        kind = kind.split("(", 1)[0]  # repository(plugin) is a repository
        if not name or not actions:
            return None
        if kind == "repository":
            try:
                validate_name(name)
            except RegistryError:
                return None
        elif (kind, name) != ("registry", "catalog"):
            return None
        return cls(kind, name, frozenset(a for a in actions.split(",") if a))


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Repeated scope parameters and space-separated ones (OAuth's form) alike."""
    parsed = (Scope.parse(text) for value in values for text in value.split())
    return [scope for scope in parsed if scope is not None][:MAX_SCOPES]


@dataclass(frozen=True)
class Grants:
    """What a token allows: Docker actions per repository, and whether it may list the catalog."""

    repositories: Mapping[str, frozenset[str]] = field(default_factory=dict)
    catalog: bool = False

    def permits(self, action: Action, repo: str) -> bool:
        return ACTION_SCOPE[action] in self.repositories.get(repo, ())

    def access(self) -> list[dict[str, Any]]:
        """The token's `access` claim, in the spec's shape."""
        claim: list[dict[str, Any]] = [{"type": "repository", "name": n, "actions": sorted(a)} for n, a in sorted(self.repositories.items()) if a]
        if self.catalog:
            claim.append({"type": "registry", "name": "catalog", "actions": ["*"]})
        return claim

    @classmethod
    def from_access(cls, claim: Any) -> Grants:
        repositories: dict[str, frozenset[str]] = {}
        catalog = False
        for entry in claim if isinstance(claim, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("actions"), list):
                continue
            if entry.get("type") == "repository" and isinstance(entry.get("name"), str):
                repositories[entry["name"]] = repositories.get(entry["name"], frozenset()) | frozenset(map(str, entry["actions"]))
            elif (entry.get("type"), entry.get("name")) == ("registry", "catalog"):
                catalog = True
        return cls(repositories, catalog)


def grant(scopes: Iterable[Scope], may: Callable[[Action, str], bool]) -> Grants:
    """Each requested action the policy allows: pull needs read, push create or update, delete delete; `*` asks for all."""
    repositories: dict[str, frozenset[str]] = {}
    catalog = False
    for scope in scopes:
        if scope.type == "registry":
            catalog = True  # the catalog itself is filtered by what the user may read
            continue
        wanted = set(SCOPE_ACTIONS) if "*" in scope.actions else scope.actions & set(SCOPE_ACTIONS)
        allowed = {a for a in wanted if any(may(action, scope.name) for action in SCOPE_ACTIONS[a])}
        repositories[scope.name] = repositories.get(scope.name, frozenset()) | allowed
    return Grants(repositories, catalog)


class InvalidToken(Exception):
    """A bearer token that is expired, tampered with, or not ours; the message is safe to log."""


class TokenIssuer:
    def __init__(self, key: str, service: str, expiry: float) -> None:
        self._key = key.encode()
        self.service = service
        self.expiry = int(expiry)
        self._verified: dict[bytes, tuple[str, Grants, float]] = {}
        self._lock = threading.Lock()

    def issue(self, subject: str, grants: Grants) -> dict[str, Any]:
        """The token endpoint's JSON body: `token` and `access_token` are the same JWT."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 1,
            "exp": now + self.expiry,
            "jti": uuid.uuid4().hex,
            "access": grants.access(),
        }
        import jwt  # on first use: PyJWT imports `cryptography` when installed (~0.1 s), which a cold start without tokens must not pay

        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        issued = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"token": token, "access_token": token, "expires_in": self.expiry, "issued_at": issued}

    def verify(self, token: str) -> tuple[str, Grants]:
        """(subject, grants); the subject is "" for an anonymous token."""
        key = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(key)
        if cached is not None and cached[2] > time.time():
            return cached[0], cached[1]
        subject, grants, expires = self._decode(token)
        with self._lock:
            if len(self._verified) >= VERIFIED_ENTRIES:
                self._verified.pop(next(iter(self._verified)))
            self._verified[key] = (subject, grants, expires)
        return subject, grants

    def _decode(self, token: str) -> tuple[str, Grants, float]:
        import jwt

        try:
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], audience=self.service, issuer=ISSUER, options={"require": ["exp", "iat", "sub", "aud", "iss"]}
            )
        except jwt.InvalidTokenError as error:
            raise InvalidToken(type(error).__name__) from None
        return str(claims["sub"]), Grants.from_access(claims.get("access")), float(claims["exp"])
