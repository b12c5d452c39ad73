"""Users' starred and bookmarked repositories (zot's userprefs), in the repository table.

Items: ("_userprefs", <user>) with string sets `stars` and `bookmarks`. A star also counts on the
repository's catalog item (`stars`), in the same transaction, so listings read a count, not every user.
Every toggle's transaction also requires the catalog item, so a repository removed meanwhile is
NAME_UNKNOWN, never a preference written for nothing.
"""

from __future__ import annotations

from typing import Literal

from chalicelib.spec.errors import NameUnknown, TooManyRequests
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

        Each write is conditional on what was read, so two toggles at once never count a star twice,
        and on the repository's catalog item, so a repository that is gone is NameUnknown (404).
        """
        for attempt in range(ATTEMPTS):
            present = repo in (self.of(user)[0] if kind == "stars" else self.of(user)[1])
            reasons = self.table.transact([self._set_op(user, repo, kind, present), self._catalog_op(repo, kind, present)])
            if reasons is None:
                return not present
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                raise NameUnknown(detail={"name": repo})
            backoff(attempt)
        raise TooManyRequests("the preference is being changed concurrently; retry", headers={"Retry-After": "1"})

    def _catalog_op(self, repo: str, kind: Kind, present: bool) -> dict[str, object]:
        """The star count's change (nothing for a bookmark), made only while the repository's catalog item exists.

        An update, not a ConditionCheck: the deployed policy grants UpdateItem, not ConditionCheckItem.
        """
        count = (-1 if present else 1) if kind == "stars" else 0
        return self.table.op_update((CATALOG, repo), "ADD stars :n", {":n": count}, "attribute_exists(#k)", {"#k": "key"})

    def _set_op(self, user: str, repo: str, kind: Kind, present: bool) -> dict[str, object]:
        names = {"#s": kind}
        if present:
            return self.table.op_update((PREFS, user), "DELETE #s :r", {":r": {repo}, ":one": repo}, "contains(#s, :one)", names)
        condition = "attribute_not_exists(#s) OR NOT contains(#s, :one)"
        return self.table.op_update((PREFS, user), "ADD #s :r", {":r": {repo}, ":one": repo}, condition, names)
