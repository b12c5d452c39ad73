"""Each ecosystem's version order and OSV's range rules, checked on the versions that trip generic code."""

from __future__ import annotations

import pytest

from chalicelib.cve.osv import Advisory, advisories_of, cve_name, severity_of
from chalicelib.cve.versions import alpine_key, debian_key, evaluate_range, pypi_key, semver_key
from tests.cve_images import CRITICAL, osv


@pytest.mark.parametrize(
    ("key", "lower", "higher"),
    [
        (debian_key, "2.0", "1:1.0"),  # the epoch wins
        (debian_key, "1.0~rc1", "1.0"),  # ~ sorts before the release
        (debian_key, "1.0~~", "1.0~"),
        (debian_key, "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
        (debian_key, "1.0-1", "1.0+b1-1"),
        (alpine_key, "1.2.4_rc1", "1.2.4"),  # _rc before the release
        (alpine_key, "1.2.4", "1.2.4_p1"),  # _p after it
        (alpine_key, "1.2.4-r1", "1.2.4-r10"),  # -rN numerically
        (alpine_key, "1.2.4_git20230717-r4", "1.2.4_git20230717-r5"),
        (alpine_key, "1.2.4", "1.2.4a"),
        (alpine_key, "1.2", "1.2.1"),
        (pypi_key, "2.31.0rc1", "2.31.0"),
        (pypi_key, "2.0", "1!0.1"),  # PEP 440 epoch
        (pypi_key, "2.0.post1", "2.1.dev0"),
        (semver_key, "4.17.21-beta.2", "4.17.21-beta.11"),  # numeric identifiers numerically
        (semver_key, "1.0.0-alpha", "1.0.0-alpha.1"),
        (semver_key, "1.0.0-rc.1", "1.0.0"),
        (semver_key, "1.0.0-alpha.beta", "1.0.0-beta"),
    ],
)
def test_each_ecosystem_orders_its_tricky_versions(key, lower: str, higher: str) -> None:
    assert key(lower) < key(higher)


def test_equal_versions_compare_equal_where_the_ecosystem_says_so() -> None:
    assert pypi_key("1.0") == pypi_key("1.0.0")
    assert semver_key("1.0.0+build.1") == semver_key("1.0.0")


def test_osv_ranges_introduced_fixed_last_affected_and_limit() -> None:
    fixed = {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.5"}, {"introduced": "2.0"}, {"fixed": "2.3"}]}
    assert evaluate_range("0.9", fixed, "PyPI") == (False, "")
    assert evaluate_range("1.2", fixed, "PyPI") == (True, "1.5")
    assert evaluate_range("1.7", fixed, "PyPI") == (False, "")
    assert evaluate_range("2.1rc1", fixed, "PyPI") == (True, "2.3")
    last = {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.4"}]}
    assert evaluate_range("1.4", last, "PyPI") == (True, "")
    assert evaluate_range("1.4.1", last, "PyPI") == (False, "")
    limited = {"type": "SEMVER", "events": [{"introduced": "0"}, {"limit": "2.0.0"}]}
    assert evaluate_range("1.9.9", limited, "npm")[0] and not evaluate_range("2.0.0", limited, "npm")[0]


def test_a_version_the_ecosystem_cannot_read_matches_nothing() -> None:
    assert evaluate_range("not a version", {"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}, "PyPI") == (False, "")


def test_versions_lists_are_matched_in_the_ecosystems_order() -> None:
    advisory = Advisory("X", ["X"], "", "", "LOW", "", [], ["1.0"])
    assert advisory.match("1.0.0", "PyPI")[0] and not advisory.match("1.0.1", "PyPI")[0]


def test_severity_cvss_first_then_the_records_word_then_unknown() -> None:
    assert severity_of({"severity": CRITICAL}) == "CRITICAL"
    assert severity_of({"severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}]}) == "HIGH"
    assert severity_of({"database_specific": {"severity": "MODERATE"}}) == "MEDIUM"
    assert severity_of({"severity": [{"type": "Ubuntu", "score": "low"}]}) == "LOW"
    assert severity_of({}) == "UNKNOWN"


def test_aliases_make_one_vulnerability_named_by_its_cve() -> None:
    assert cve_name({"id": "DSA-1-1", "aliases": ["CVE-2024-1"]}) == "CVE-2024-1"
    assert cve_name({"id": "DEBIAN-CVE-2024-2", "upstream": ["CVE-2024-2"]}) == "CVE-2024-2"
    assert cve_name({"id": "GHSA-xxxx"}) == "GHSA-xxxx"
    [(ecosystem, package, advisory)] = advisories_of(osv("PYSEC-1", "PyPI", "Foo_Bar", fixed="1.0", aliases=["CVE-2024-3"]))
    assert (ecosystem, package, advisory.name) == ("PyPI", "foo-bar", "CVE-2024-3")


def test_withdrawn_records_name_no_package() -> None:
    assert advisories_of(osv("GHSA-w", "npm", "x", withdrawn="2024-01-01T00:00:00Z")) == []


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("3.0.7-24.el9", "3.0.7-25.el9"),
        ("3.0.7-25.el9", "1:3.0.7-1.el9"),  # the epoch wins
        ("1.0~rc1-1", "1.0-1"),  # ~ before the release
        ("1.0-1", "1.0^git1-1"),  # ^ after it
        ("1.0a-1", "1.0.1-1"),  # a digit run is newer than a letter run
        ("2.9-1", "2.10-1"),
        ("1.0-1.el9", "1.0-1.el9_3"),
    ],
)
def test_rpm_order(lower: str, higher: str) -> None:
    from chalicelib.cve.versions import rpm_key

    assert rpm_key(lower) < rpm_key(higher)
    assert not rpm_key(higher) < rpm_key(lower)
