"""zot's accessControl: which actions a user (or anonymous) may take on a repository.

A repository is judged by the policy group of the longest glob that matches its name (zot's rule),
then by adminPolicy. Globs match as zot's doublestar does: `*` within one path segment, `**`
across any number of them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from chalicelib.config.schema import AccessControl, AccessPolicy, PolicyGroup
from chalicelib.model.access import Action

ALL_ACTIONS: frozenset[Action] = frozenset(("read", "create", "update", "delete"))
NOTHING: frozenset[Action] = frozenset()


def _segment(part: str) -> str:
    """One path segment of a glob as a regex: * ? [class] {a,b}; anything else is literal."""
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
            while i + 1 < len(part) and part[i + 1] == "*":
                i += 1
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := part.find("]", i + 2)) != -1:
            body = part[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body[0] in "!^" else body).replace("\\", "\\\\") + "]")
            i = end
        elif char == "{" and (end := part.find("}", i)) != -1:
            out.append("(?:" + "|".join(_segment(alt) for alt in part[i + 1 : end].split(",")) + ")")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """`**` as a whole segment matches zero or more segments, so `team/**` matches `team` and `team/a/b`."""
    parts = pattern.strip("/").split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part != "**":
            out.append(_segment(part) + ("" if last else "/"))
        elif index == 0:
            out.append(".*" if last else "(?:[^/]+/)*")
        elif last:
            out[-1] = out[-1][:-1]  # the segment before it, without its slash
            out.append("(?:/.*)?")
        else:
            out.append("(?:[^/]+/)*")
    return re.compile("^" + "".join(out) + "$")


def _named(policy: AccessPolicy, user: str, groups: frozenset[str]) -> bool:
    return user in policy.users or not groups.isdisjoint(policy.groups)


class Policy:
    """Decides read/create/update/delete per user and repository; results are cached per (user, repository)."""

    def __init__(self, control: AccessControl | None) -> None:
        """Without accessControl, zot lets every authenticated user do everything and anonymous nothing."""
        self.control = control or AccessControl()
        self.unset = control is None
        self.patterns = sorted(((glob_regex(p), p) for p in self.control.repositories), key=lambda item: -len(item[1]))
        self.user_groups: dict[str, frozenset[str]] = {}
        for group, members in self.control.groups.items():
            for user in members.users:
                self.user_groups[user] = self.user_groups.get(user, frozenset()) | {group}
        self.actions = lru_cache(maxsize=8192)(self._actions)

    def allows(self, user: str | None, action: Action, repo: str) -> bool:
        return action in self.actions(user, repo)

    def groups_of(self, user: str | None) -> frozenset[str]:
        return self.user_groups.get(user, frozenset()) if user else frozenset()

    def anonymous_reads_anything(self) -> bool:
        """Whether an anonymous catalog could list anything (else the catalog asks anonymous callers to log in)."""
        return any("read" in group.anonymousPolicy for group in self.control.repositories.values())

    def _group_for(self, repo: str) -> PolicyGroup | None:
        """The policy group of the longest matching glob, as zot picks it."""
        for regex, pattern in self.patterns:
            if regex.match(repo):
                return self.control.repositories[pattern]
        return None

    def _actions(self, user: str | None, repo: str) -> frozenset[Action]:
        if self.unset:
            return ALL_ACTIONS if user else NOTHING
        groups = self.groups_of(user)
        allowed: set[Action] = set()
        group = self._group_for(repo)
        if group is not None:
            allowed.update(self._group_actions(group, user, groups))
        admin = self.control.adminPolicy
        if user and _named(admin, user, groups):
            allowed.update(admin.actions)
        return frozenset(allowed)

    @staticmethod
    def _group_actions(group: PolicyGroup, user: str | None, groups: frozenset[str]) -> set[Action]:
        """A named policy adds to defaultPolicy (authenticated) or anonymousPolicy (anonymous), as in zot."""
        if not user:
            return set(group.anonymousPolicy)
        allowed: set[Action] = set(group.defaultPolicy)
        for policy in group.policies:
            if _named(policy, user, groups):
                allowed.update(policy.actions)
        return allowed
