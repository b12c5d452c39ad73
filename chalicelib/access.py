"""Who is asking and what they may do; every route names its action and the API asks here first.

Authentication comes later; until then every caller is anonymous and may do everything. The
blob layer already asks `may_read` before linking a blob from another repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["read", "create", "update", "delete"]


@dataclass(frozen=True)
class Caller:
    name: str | None = None

    def may(self, action: Action, repo: str) -> bool:
        return True

    def may_read(self, repo: str) -> bool:
        return self.may("read", repo)


ANONYMOUS = Caller()
