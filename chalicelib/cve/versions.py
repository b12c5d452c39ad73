"""Version order per ecosystem, and OSV's range evaluation on top of it.

Each ecosystem sorts by its own rules: Debian and Ubuntu by dpkg's (python-debian), Alpine by apk's,
PyPI by PEP 440 (packaging), npm and OSV's SEMVER ranges by semver 2.0 precedence. A version the
ecosystem cannot parse matches nothing: a scan never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache, total_ordering
from typing import Any

Key = Any  # a sortable key; keys are only compared with keys from the same ordering


class UnorderedVersion(ValueError):
    """The ecosystem's rules cannot read this version."""


def debian_key(version: str) -> Key:
    """dpkg's order: epochs, `~` before everything, letters before other symbols."""
    from debian.debian_support import Version

    try:
        return Version(version)
    except ValueError as error:
        raise UnorderedVersion(version) from error


def pypi_key(version: str) -> Key:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version)
    except InvalidVersion as error:
        raise UnorderedVersion(version) from error


_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def semver_key(version: str) -> Key:
    """semver 2.0 precedence: a pre-release sorts before its release; numeric identifiers below alphanumeric ones."""
    match = _SEMVER.match(version.strip())
    if not match:
        raise UnorderedVersion(version)
    major, minor, patch, pre = match.groups()
    release = (int(major), int(minor), int(patch))
    if pre is None:
        return (release, 1, ())
    identifiers = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split("."))
    return (release, 0, identifiers)


_APK = re.compile(r"^(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:-r(\d+))?$")
_APK_SUFFIX = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")
# apk: alpha < beta < pre < rc < (no suffix) < cvs < svn < git < hg < p
_APK_RANK = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}


def alpine_key(version: str) -> Key:
    """apk's order: numbers, then a letter, then suffixes (`_rc1` before the release, `_p1` after), then `-rN`."""
    match = _APK.match(version.strip())
    if not match:
        raise UnorderedVersion(version)
    numbers, letter, suffixes, release = match.groups()
    parts = tuple(int(n) for n in numbers.split("."))
    ranked = [(_APK_RANK[name], int(n or 0)) for name, n in _APK_SUFFIX.findall(suffixes)]
    return (parts, letter, (*ranked, (0, 0)), int(release or 0))


def _rpm_segments(text: str) -> int:
    """Where the next segment starts: rpm skips every separator except `~` and `^`."""
    index = 0
    while index < len(text) and not (text[index].isascii() and text[index].isalnum()) and text[index] not in "~^":
        index += 1
    return index


def _rpm_take(text: str, numeric: bool) -> tuple[str, str]:
    index = 0
    while index < len(text) and text[index].isascii() and (text[index].isdigit() if numeric else text[index].isalpha()):
        index += 1
    return text[:index], text[index:]


def rpmvercmp(left: str, right: str) -> int:
    """rpm's rpmvercmp: digit runs numerically and newer than letter runs, `~` sorts first, `^` after the end."""
    while left or right:
        left, right = left[_rpm_segments(left) :], right[_rpm_segments(right) :]
        if left.startswith("~") or right.startswith("~"):
            if not left.startswith("~"):
                return 1
            if not right.startswith("~"):
                return -1
            left, right = left[1:], right[1:]
            continue
        if left.startswith("^") or right.startswith("^"):
            if not left:
                return -1
            if not right:
                return 1
            if not left.startswith("^"):
                return 1
            if not right.startswith("^"):
                return -1
            left, right = left[1:], right[1:]
            continue
        if not left or not right:
            break
        numeric = left[0].isdigit()
        ours, left = _rpm_take(left, numeric)
        theirs, right = _rpm_take(right, numeric)
        if not theirs:
            return 1 if numeric else -1
        if numeric:
            ours, theirs = ours.lstrip("0"), theirs.lstrip("0")
            if len(ours) != len(theirs):
                return 1 if len(ours) > len(theirs) else -1
        if ours != theirs:
            return 1 if ours > theirs else -1
    return 0 if not left and not right else (-1 if not left else 1)


@total_ordering
class RpmVersion:
    """[epoch:]version[-release], compared as rpm does: epoch numerically, then version and release by rpmvercmp."""

    def __init__(self, text: str) -> None:
        epoch, _, rest = text.rpartition(":") if ":" in text else ("0", "", text)
        if not epoch.isdigit() or not rest:
            raise UnorderedVersion(text)
        version, _, release = rest.rpartition("-") if "-" in rest else (rest, "", "")
        self.parts = (int(epoch), version, release)

    def _compare(self, other: RpmVersion) -> int:
        if self.parts[0] != other.parts[0]:
            return 1 if self.parts[0] > other.parts[0] else -1
        found = rpmvercmp(self.parts[1], other.parts[1])
        if found or not self.parts[2] or not other.parts[2]:
            return found  # a version without a release matches every release of it
        return rpmvercmp(self.parts[2], other.parts[2])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RpmVersion) and self._compare(other) == 0

    def __lt__(self, other: RpmVersion) -> bool:
        return self._compare(other) < 0

    def __hash__(self) -> int:
        return hash(self.parts[0])


def rpm_key(version: str) -> Key:
    return RpmVersion(version.strip())


def _ecosystem_family(ecosystem: str) -> str:
    return ecosystem.split(":", 1)[0]


ORDERS: dict[str, Callable[[str], Key]] = {
    "Debian": debian_key,
    "Ubuntu": debian_key,
    "Alpine": alpine_key,
    "PyPI": pypi_key,
    "npm": semver_key,
    "AlmaLinux": rpm_key,
    "Rocky Linux": rpm_key,
}


def order_for(ecosystem: str, range_type: str = "ECOSYSTEM") -> Callable[[str], Key] | None:
    """The key function for a range; None for orders this scanner does not know (GIT ranges, other ecosystems)."""
    if range_type == "SEMVER":
        return semver_key
    if range_type != "ECOSYSTEM":
        return None
    return ORDERS.get(_ecosystem_family(ecosystem))


@lru_cache(maxsize=1 << 16)
def _cached_key(order: Callable[[str], Key], version: str) -> Key:
    return order(version)


def _event_sort_key(order: Callable[[str], Key], event: dict[str, str]) -> tuple[int, Key]:
    kind, version = next(iter(event.items()))
    if kind == "introduced" and version == "0":
        return (0, None)
    return (1, _cached_key(order, version))


def evaluate_range(version: str, affected_range: dict[str, Any], ecosystem: str) -> tuple[bool, str]:
    """Whether a version falls in an OSV range, and the fix that ends its interval ("" when none is known).

    OSV's evaluation: walk the events in version order; `introduced` opens, `fixed` and beyond
    `last_affected` close; a `limit` bounds the whole range from above.
    """
    order = order_for(ecosystem, str(affected_range.get("type", "ECOSYSTEM")))
    if order is None:
        return False, ""
    try:
        installed = _cached_key(order, version)
        events = sorted((e for e in affected_range.get("events", []) if e), key=lambda e: _event_sort_key(order, e))
        limits = [_cached_key(order, e["limit"]) for e in events if "limit" in e and e["limit"] != "*"]
    except (UnorderedVersion, TypeError):
        return False, ""
    if limits and not any(installed < limit for limit in limits):
        return False, ""
    affected, fix = False, ""
    for event in events:
        kind, bound = next(iter(event.items()))
        if kind == "introduced" and (bound == "0" or installed >= _cached_key(order, bound)):
            affected, fix = True, ""
        elif (kind == "fixed" and installed >= _cached_key(order, bound)) or (kind == "last_affected" and installed > _cached_key(order, bound)):
            affected = False
        elif kind == "fixed" and affected and not fix:
            fix = bound
    return affected, fix if affected else ""


def in_versions(version: str, versions: list[str], ecosystem: str) -> bool:
    """An exact listing: string equality, or equality in the ecosystem's order (`1.0` == `1.0.0` on PyPI)."""
    if version in versions:
        return True
    order = order_for(ecosystem)
    if order is None:
        return False
    try:
        installed = _cached_key(order, version)
    except UnorderedVersion:
        return False
    for listed in versions:
        try:
            if _cached_key(order, listed) == installed:
                return True
        except UnorderedVersion:
            continue
    return False
