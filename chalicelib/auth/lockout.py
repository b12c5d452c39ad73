"""Failed-login limits kept in DynamoDB, so no handler sleeps and every instance counts the same failures.

A sleeping Lambda is busy and billed, so a delay per failed login would let unauthenticated clients use up
the function's concurrency. Instead each login attempt that is not a credential this instance verified
lately adds one, atomically, to a counter for the user name and one for the source address, before its
password is checked (refunded when it was right), so concurrent guesses see each other's counts.
Counters live in fixed windows (`http.auth.lockout.window`) as items of the
uploads table, whose TTL attribute `expires` removes them; they have no `created`, so the expired-session
sweep never sees them. While a counter is at its limit every login it covers is answered 429 with
Retry-After before any password is checked: the right password too, until the window ends.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable

from chalicelib.config.schema import Lockout
from chalicelib.storage.dynamo import Table

log = logging.getLogger("zotless.auth")

ITEM_PREFIX = "login-failures/"  # never a session id (32 hex digits), so no upload request can name one


def _counter_id(kind: str, value: str, window: int) -> str:
    """A hash keeps attacker-chosen user names short and out of the table; the window number ends the key."""
    return f"{ITEM_PREFIX}{kind}/{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:32]}/{window}"


class FailedLogins:
    """Counts failed logins per user and per source address, and says how long a locked one must wait."""

    def __init__(self, table: Table, limits: Lockout, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.limits = limits
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.limits.perUser > 0 or self.limits.perSource > 0

    def locked(self, user: str, source: str) -> int | None:
        """Seconds until a login for this user or from this address may be tried again; None when it may be now."""
        now = self.clock()
        counters = self._counters(user, source, self._window(now))
        if not counters:
            return None
        items = self.table.batch_get([(key, "") for key in counters])  # one read for both; the table has no sort key
        if not any(int(item.get("fails", 0)) >= counters[str(item["id"])][1] for item in items):
            return None
        return max(1, math.ceil(self._window_end(now) - now))

    def claim(self, user: str, source: str) -> int | None:
        """Count a guess before its password is checked (an atomic ADD per counter), so the check and the count are one
        decision: concurrent guesses each see the count the others made. Seconds to wait when over a limit, else None."""
        now = self.clock()
        over = False
        for kind, limit, fails in self._add(user, source, 1, now):
            over = over or fails > limit
            if fails == limit:
                who = user[:64] if kind == "user" else source
                log.warning("logins locked for %s %r after %d failures", kind, who, limit, extra={"fields": {"event": "loginLocked", kind: who}})
        return max(1, math.ceil(self._window_end(now) - now)) if over else None

    def refund(self, user: str, source: str) -> None:
        """The claimed attempt was the right password: it is no failure."""
        self._add(user, source, -1, self.clock())

    def _add(self, user: str, source: str, step: int, now: float) -> list[tuple[str, int, int]]:
        expires = int(self._window_end(now) + self.limits.window)
        counted = []
        for key, (kind, limit) in self._counters(user, source, self._window(now)).items():
            item = self.table.update((key, None), "ADD fails :step SET expires = :expires", {":step": step, ":expires": expires})
            counted.append((kind, limit, int((item or {}).get("fails", 0))))
        return counted

    def _counters(self, user: str, source: str, window: int) -> dict[str, tuple[str, int]]:
        """Counter id -> (kind, limit) for the counters that apply: no user counter without a user name."""
        counters = {}
        if user and self.limits.perUser > 0:
            counters[_counter_id("user", user, window)] = ("user", self.limits.perUser)
        if self.limits.perSource > 0:
            counters[_counter_id("source", source, window)] = ("source", self.limits.perSource)
        return counters

    def _window(self, now: float) -> int:
        return int(now // self.limits.window)

    def _window_end(self, now: float) -> float:
        return (self._window(now) + 1) * self.limits.window
