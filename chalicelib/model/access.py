"""Who is asking and what they may do; every route names its action and the API asks here first.

With no auth and no accessControl configured every caller is ANONYMOUS and may do everything;
authentication (chalicelib/auth/authn.py) produces the callers of chalicelib/auth/callers.py instead. The
blob layer asks `may_read` before linking a blob from another repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chalicelib.spec.errors import Denied, RegistryError

Action = Literal["read", "create", "update", "delete"]


@dataclass(frozen=True)
class Caller:
    name: str | None = None

    def may(self, action: Action, repo: str) -> bool:
        return True

    def may_read(self, repo: str) -> bool:
        return self.may("read", repo)

    def may_enter(self) -> bool:
        """GET /v2/: with auth on, only callers who sent credentials pass; the rest learn from the challenge which to send."""
        return True

    def catalog_reader(self) -> Caller:
        """Whose read access filters the catalog; raises the refusal when the catalog needs other credentials."""
        return self

    def refusal(self, action: Action | None, repo: str) -> RegistryError:
        """403 here; callers whose credentials could change the answer say 401 with a challenge instead."""
        return Denied(detail={"repository": repo, "action": action})


ANONYMOUS = Caller()
