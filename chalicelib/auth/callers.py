"""The callers authentication produces, and the challenges their refusals carry.

Anonymous callers who are refused get 401 with a challenge (logging in could help); named users get
403. A bearer token's caller may do what both its token and the policy allow, so a token never
outlives a policy change and a token for `push` never grants `update` to a user who lacks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from chalicelib.auth.policy import Policy
from chalicelib.auth.tokens import ACTION_SCOPE, Grants
from chalicelib.model.access import Action, Caller
from chalicelib.spec.errors import Denied, RegistryError, Unauthorized

CATALOG_SCOPE = "registry:catalog:*"


def scope_for(action: Action | None, repo: str) -> str | None:
    """The scope a client should ask a token for, as docker's registry words it (writes ask pull,push)."""
    if not repo or action is None:
        return None
    wanted = ACTION_SCOPE[action]
    return f"repository:{repo}:{'pull,push' if wanted == 'push' else wanted}"


@dataclass(frozen=True)
class Challenge:
    """The WWW-Authenticate header for this request: Basic, or Bearer with a realm derived from it."""

    scheme: Literal["Basic", "Bearer"]
    realm: str
    service: str = ""
    quiet: bool = False  # zot's UI asked: no WWW-Authenticate, so the browser shows zui's login page, not its own dialog

    def header(self, scope: str | None = None, error: str | None = None) -> str:
        if self.scheme == "Basic":
            return f'Basic realm="{self.realm}"'
        parts = [f'realm="{self.realm}"', f'service="{self.service}"']
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    def unauthorized(self, scope: str | None = None, error: str | None = None, message: str | None = None, detail: object = None) -> RegistryError:
        return Unauthorized(message, detail=detail, headers={} if self.quiet else {"WWW-Authenticate": self.header(scope, error)})


def _detail(action: Action | None, repo: str) -> dict[str, str] | None:
    return {"repository": repo, "action": action} if repo and action else None


@dataclass(frozen=True)
class PolicyCaller(Caller):
    """Anonymous or a user who sent valid credentials, judged by accessControl."""

    policy: Policy = field(default_factory=lambda: Policy(None))
    challenge: Challenge | None = None  # None: the registry has no logins, so a refusal is final (403)
    presented: bool = False  # sent credentials: GET /v2/ answers 200 instead of the challenge
    cookies: tuple[str, ...] = ()  # Set-Cookie values for the response: zot's UI logged in (or its stale session cleared)

    def may(self, action: Action, repo: str) -> bool:
        return self.policy.allows(self.name, action, repo)

    def may_enter(self) -> bool:
        return self.challenge is None or self.presented

    def catalog_reader(self) -> Caller:
        if self.challenge is not None and not self.name and not self.policy.anonymous_reads_anything():
            raise self.challenge.unauthorized(CATALOG_SCOPE)
        return self

    def refusal(self, action: Action | None, repo: str) -> RegistryError:
        if self.challenge is not None and not self.name:
            return self.challenge.unauthorized(scope_for(action, repo), detail=_detail(action, repo))
        return Denied(detail=_detail(action, repo))


@dataclass(frozen=True)
class TokenCaller(PolicyCaller):
    """A caller with a valid bearer token: the token's grants and the policy must both allow an action."""

    grants: Grants = field(default_factory=Grants)
    presented: bool = True

    def may(self, action: Action, repo: str) -> bool:
        return self.grants.permits(action, repo) and super().may(action, repo)

    def catalog_reader(self) -> Caller:
        if not self.grants.catalog and self.challenge is not None:
            raise self.challenge.unauthorized(CATALOG_SCOPE, "insufficient_scope")
        return PolicyCaller(self.name, self.policy, self.challenge, presented=True)

    def refusal(self, action: Action | None, repo: str) -> RegistryError:
        """The policy allows it but the token lacks the scope: 401 so the client fetches a wider token."""
        policy_allows = action is not None and self.policy.allows(self.name, action, repo)
        if self.challenge is not None and (policy_allows or not self.name):
            return self.challenge.unauthorized(scope_for(action, repo), "insufficient_scope", detail=_detail(action, repo))
        return Denied(detail=_detail(action, repo))
