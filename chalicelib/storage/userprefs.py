"""Users' starred and bookmarked repositories (zot's userprefs), in the repository table.

Items: ("_userprefs", <user>) with string sets `stars` and `bookmarks`. A star also counts on the
repository's catalog item (`stars`), in the same transaction, so listings read a count, not every user.
"""

from __future__ import annotations

from typing import Literal

from chalicelib.spec.errors import TooManyRequests
from chalicelib.storage.dynamo import Table
from chalicelib.storage.index import CATALOG
from chalicelib.storage.retries import ATTEMPTS, backoff

PREFS = "_userprefs"  # not a valid repository name
Kind = Literal["stars", "bookmarks"]


class UserPrefs:
    def __init__(self, table: Table) -> None:
        self.table = table

    def of(self, user: str) -> tuple[set[str], set[str]]:
        """(starred, bookmarked) repositories of a user: one read."""
        item = self.table.get(PREFS, user) or {}
        return set(item.get("stars") or ()), set(item.get("bookmarks") or ())

    def toggle(self, user: str, repo: str, kind: Kind) -> bool:
        """Add the repository to the user's set, or take it out; True when it is in the set now.

        Each write is conditional on what was read, so two toggles at once never count a star twice.
        """
        for attempt in range(ATTEMPTS):
            present = repo in (self.of(user)[0] if kind == "stars" else self.of(user)[1])
            operations = [self._set_op(user, repo, kind, present)]
            if kind == "stars":
                count = -1 if present else 1
                operations.append(self.table.op_update((CATALOG, repo), "ADD stars :n", {":n": count}, "attribute_exists(#k)", {"#k": "key"}))
            if self.table.transact(operations) is None:
                return not present
            backoff(attempt)
        raise TooManyRequests("the preference is being changed concurrently; retry", headers={"Retry-After": "1"})

    def _set_op(self, user: str, repo: str, kind: Kind, present: bool) -> dict[str, object]:
        names = {"#s": kind}
        if present:
            return self.table.op_update((PREFS, user), "DELETE #s :r", {":r": {repo}, ":one": repo}, "contains(#s, :one)", names)
        condition = "attribute_not_exists(#s) OR NOT contains(#s, :one)"
        return self.table.op_update((PREFS, user), "ADD #s :r", {":r": {repo}, ":one": repo}, condition, names)
