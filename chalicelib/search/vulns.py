"""zot's CVE queries and ImageSummary.Vulnerabilities, answered from the CVE result cache (never by scanning).

An image with no result yet, one the scanner cannot read, or one scanned before any advisory
database answers as zot answers an image it has not scanned: an empty CVE list, a summary whose
MaxSeverity is "" with zero counts, no error (zui's tabs stay usable). A scanned image without
findings has MaxSeverity "NONE". Listings read every result they need in one batched read per
100 digests (`CveService.briefs`), and only when the query selects `Vulnerabilities`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from chalicelib.search.catalog import SearchError
from chalicelib.search.facts import EMPTY_VULNERABILITIES, RepoContent

if TYPE_CHECKING:
    from chalicelib.cve.results import Brief
    from chalicelib.cve.service import CveService

Row = dict[str, Any]
SEVERITY_RANK = {"": 0, "NONE": 1, "UNKNOWN": 2, "LOW": 3, "MEDIUM": 4, "HIGH": 5, "CRITICAL": 6}
# zot's CVE page finder sorts by these only (pkg/extensions/search/cve/pagination.go); SEVERITY is the default.
CVE_ORDER: dict[str, tuple[Callable[[Row], Any], bool]] = {
    "SEVERITY": (lambda c: (-SEVERITY_RANK.get(str(c.get("Severity") or ""), 0), c["Id"]), False),
    "ALPHABETIC_ASC": (lambda c: c["Id"], False),
    "ALPHABETIC_DSC": (lambda c: c["Id"], True),
}


def mentions(cve: Row, text: str) -> bool:
    """zot's CVE.ContainsStr: the text in any case within the id, title, severity, reference, description or a package field."""
    needle = text.upper()
    fields = [cve.get(k) for k in ("Id", "Title", "Severity", "Reference", "Description")]
    fields += [p.get(k) for p in cve.get("PackageList") or [] for k in ("Name", "FixedVersion", "InstalledVersion", "PackagePath")]
    return any(needle in str(f or "").upper() for f in fields)


def filtered(cves: Iterable[Row], searched: str | None, excluded: str | None, severity: str | None = None) -> list[Row]:
    """zot's shouldIncludeCVE: an exact severity, no mention of the excluded text, a mention of the searched one."""
    return [
        c
        for c in cves
        if (not severity or str(c.get("Severity") or "").upper() == severity.upper())
        and (not excluded or not mentions(c, excluded))
        and (not searched or mentions(c, searched))
    ]


def cve_page(cves: list[Row], page: Row | None, bounds: Callable[[Row | None], tuple[int, int]]) -> tuple[list[Row], Row]:
    """Sort (SEVERITY unless asked otherwise; others are refused as zot refuses them) and cut one page."""
    limit, offset = bounds(page)
    criterion = (page or {}).get("sortBy") or "SEVERITY"
    if criterion not in CVE_ORDER:
        raise SearchError(f"sorting CVEs by '{criterion}' is not supported")
    key, descending = CVE_ORDER[criterion]
    chosen = sorted(cves, key=key, reverse=descending)[offset : offset + limit]
    return chosen, {"TotalCount": len(cves), "ItemCount": len(chosen)}


def vulnerabilities(brief: Brief | None) -> Row:
    """ImageVulnerabilitySummary of one result; zot's "not scanned" summary when there is none."""
    if brief is None or brief.summary is None:
        return dict(EMPTY_VULNERABILITIES)
    return brief.summary.as_graphql()


def with_vulnerabilities(value: Any, briefs: dict[str, Brief]) -> Any:
    """A copy of a resolver's answer where every object with a Digest and a Vulnerabilities field has its summary."""
    if isinstance(value, list):
        return [with_vulnerabilities(v, briefs) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: with_vulnerabilities(v, briefs) for k, v in value.items()}
    if "Vulnerabilities" in out and isinstance(out.get("Digest"), str):
        out["Vulnerabilities"] = vulnerabilities(briefs.get(out["Digest"]))
    return out


def digests_in(value: Any) -> list[str]:
    """Digests of every object in an answer that carries a Vulnerabilities field."""
    if isinstance(value, list):
        return [d for v in value for d in digests_in(v)]
    if not isinstance(value, dict):
        return []
    own = [value["Digest"]] if "Vulnerabilities" in value and isinstance(value.get("Digest"), str) else []
    return own + [d for v in value.values() if isinstance(v, dict | list) for d in digests_in(v)]


class Briefs:
    """One request's reads of the result cache: each digest is read at most once, in batches."""

    def __init__(self, cve: CveService | None) -> None:
        self.cve = cve
        self.known: dict[str, Brief] = {}
        self.reads = 0

    def of(self, digests: Iterable[str]) -> dict[str, Brief]:
        wanted = list(dict.fromkeys(digests))
        missing = [d for d in wanted if d not in self.known]
        if missing and self.cve is not None:
            self.reads += 1
            self.known.update(self.cve.briefs(missing))
        return {d: self.known[d] for d in wanted if d in self.known}


def fixed_tags(images: list[Row], briefs: dict[str, Brief], cve_id: str) -> list[Row]:
    """zot's GetFixedTags over whole tags: an image not scanned counts as vulnerable (so it is never fixed, as in zot);
    with no vulnerable tag every scanned tag is fixed, else the clean tags built no earlier than the earliest vulnerable one.
    """
    scanned = {i["Digest"] for i in images if briefs[i["Digest"]].scanned}
    vulnerable = [i for i in images if i["Digest"] not in scanned or cve_id in briefs[i["Digest"]].cve_ids]
    clean = [i for i in images if i["Digest"] in scanned and i not in vulnerable]
    if not vulnerable:
        return clean
    earliest = min(i["_updated"] for i in vulnerable)
    return [i for i in clean if i["_updated"] >= earliest]


def base_for(content: RepoContent, target: Row) -> Row | None:
    """zot's subtrahend when none is given: the image of the same repository sharing most layers with the target's first manifest."""
    first = (target["Manifests"] or [{}])[0]
    layers = {layer["Digest"] for layer in first.get("Layers") or []}
    best, score = None, 0
    for image in content.images():
        for manifest in image["Manifests"]:
            if manifest["Digest"] in (first.get("Digest"), target["Digest"]):
                continue
            own = [layer["Digest"] for layer in manifest["Layers"]]
            shared = sum(1 for d in own if d in layers)
            if own and shared == len(own) and len(own) <= len(layers) and shared > score:
                best, score = {**image, "_manifest": manifest}, shared
    return best
