"""OSV records, reduced to what a scan needs: per (ecosystem, package), the advisories and their ranges.

A record's name is its CVE id when it has one (its own id, an alias or an upstream id), so a Debian
advisory and the CVE it tracks are one vulnerability. Severity comes from the CVSS vectors, else the
record's own severity word, else UNKNOWN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chalicelib.cve.versions import evaluate_range, in_versions

SEVERITIES = ("UNKNOWN", "NONE", "LOW", "MEDIUM", "HIGH", "CRITICAL")
_WORDS = {"MODERATE": "MEDIUM", "IMPORTANT": "HIGH", "NEGLIGIBLE": "LOW", "UNIMPORTANT": "LOW", "MINOR": "LOW", "MAJOR": "HIGH"}
_CVE = re.compile(r"^CVE-\d{4}-\d+$")


def normalize_pypi(name: str) -> str:
    """PEP 503: the name OSV's PyPI records use."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_key(ecosystem: str, name: str) -> str:
    return normalize_pypi(name) if ecosystem == "PyPI" else name


def cve_name(record: dict[str, Any]) -> str:
    """The CVE id among the record's id, aliases and upstream ids; the record's own id when there is none."""
    candidates = [str(record.get("id", ""))] + [str(a) for a in record.get("aliases") or []] + [str(u) for u in record.get("upstream") or []]
    return next((c for c in candidates if _CVE.match(c)), candidates[0])


def _cvss_severity(kind: str, vector: str) -> str | None:
    """The CVSS library's qualitative rating of a vector; None when the vector does not parse."""
    from cvss import CVSS2, CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if kind == "CVSS_V2":
            return _from_score(CVSS2(vector).base_score)
        if kind == "CVSS_V3":
            return str(CVSS3(vector).severities()[0]).upper()
        if kind == "CVSS_V4":
            return str(CVSS4(vector).severity).upper()
    except (CVSSError, ValueError, KeyError, IndexError):
        return None
    return None


def _from_score(score: Any) -> str:
    """CVSS v3's bands, applied to a v2 base score (v2 has no CRITICAL band of its own)."""
    value = float(score)
    return "NONE" if value == 0 else "LOW" if value < 4 else "MEDIUM" if value < 7 else "HIGH" if value < 9 else "CRITICAL"


def _word(value: Any) -> str | None:
    word = str(value or "").strip().upper()
    word = _WORDS.get(word, word)
    return word if word in SEVERITIES else None


def severity_of(record: dict[str, Any], affected: dict[str, Any] | None = None) -> str:
    """The highest CVSS rating (package-level vectors first), else a severity word, else UNKNOWN."""
    entries = list((affected or {}).get("severity") or []) + list(record.get("severity") or [])
    rated = [s for s in (_cvss_severity(str(e.get("type")), str(e.get("score"))) for e in entries) if s]
    if rated:
        return max(rated, key=SEVERITIES.index)
    words = [_word(e.get("score")) for e in entries if not str(e.get("type", "")).startswith("CVSS")]
    words += [_word((record.get("database_specific") or {}).get("severity"))]
    words += [_word(((affected or {}).get("ecosystem_specific") or {}).get("severity"))]
    found = [w for w in words if w]
    return max(found, key=SEVERITIES.index) if found else "UNKNOWN"


def reference_of(record: dict[str, Any]) -> str:
    """The advisory's own page when listed, else its first reference."""
    references = [r for r in record.get("references") or [] if r.get("url")]
    preferred = [r for r in references if r.get("type") in ("ADVISORY", "WEB")]
    return str((preferred or references or [{"url": ""}])[0]["url"])


@dataclass(frozen=True)
class Advisory:
    """One record's claim about one package: stored per (ecosystem, package) in the database."""

    name: str
    ids: list[str]
    title: str
    description: str
    severity: str
    reference: str
    ranges: list[dict[str, Any]]
    versions: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ids": self.ids,
            "title": self.title,
            "description": self.description,
            "severity": self.severity,
            "reference": self.reference,
            "ranges": self.ranges,
            "versions": self.versions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Advisory:
        return cls(**{k: data[k] for k in ("name", "ids", "title", "description", "severity", "reference", "ranges", "versions")})

    def match(self, version: str, ecosystem: str) -> tuple[bool, str]:
        """Whether the installed version is affected, and the version that fixes it ("" when none is known)."""
        if self.versions and in_versions(version, self.versions, ecosystem):
            fixes = [fix for hit, fix in (evaluate_range(version, r, ecosystem) for r in self.ranges) if hit]
            return True, fixes[0] if fixes else ""
        for affected_range in self.ranges:
            hit, fix = evaluate_range(version, affected_range, ecosystem)
            if hit:
                return True, fix
        return False, ""


def advisories_of(record: dict[str, Any]) -> list[tuple[str, str, Advisory]]:
    """(ecosystem, package key, advisory) for every package a record names; withdrawn records name none."""
    if record.get("withdrawn"):
        return []
    name = cve_name(record)
    ids = sorted({str(record.get("id", ""))} | {str(a) for a in record.get("aliases") or []} | {str(u) for u in record.get("upstream") or []})
    title = str(record.get("summary") or "")
    description = str(record.get("details") or title)
    reference = reference_of(record)
    found = []
    for affected in record.get("affected") or []:
        package = affected.get("package") or {}
        ecosystem, package_name = str(package.get("ecosystem") or ""), str(package.get("name") or "")
        if not ecosystem or not package_name:
            continue
        ranges = [r for r in affected.get("ranges") or [] if r.get("type") in ("ECOSYSTEM", "SEMVER")]
        versions = [str(v) for v in affected.get("versions") or []]
        if not ranges and not versions:
            continue
        advisory = Advisory(name, ids, title, description, severity_of(record, affected), reference, ranges, versions)
        found.append((ecosystem, package_key(ecosystem, package_name), advisory))
    return found
