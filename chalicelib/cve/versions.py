"""Version order per ecosystem, and OSV's range evaluation on top of it.

Each ecosystem sorts by its own rules: Debian and Ubuntu by dpkg's (python-debian), Alpine by apk's,
PyPI by PEP 440 (packaging), npm and OSV's SEMVER ranges by semver 2.0 precedence. A version the
ecosystem cannot parse matches nothing: a scan never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
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


def _ecosystem_family(ecosystem: str) -> str:
    return ecosystem.split(":", 1)[0]


ORDERS: dict[str, Callable[[str], Key]] = {
    "Debian": debian_key,
    "Ubuntu": debian_key,
    "Alpine": alpine_key,
    "PyPI": pypi_key,
    "npm": semver_key,
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
