"""Scan results cached per manifest digest and database version, in the repository table.

Item ("_cve", "s#<digest>"): the image's package inventory (read from its layers once, ever), the
database version its findings were matched against, the findings (zlib JSON; in S3 when too big
for an item), the per-severity summary and the CVE ids. A new database version re-matches the
stored inventories without reading a layer again.

Item ("_cve", "h#<CVE id>#<digest>"): the CVE->image lookup ImageListForCVE reads with one Query,
written before the result for each id the result gains (`dbVersion`: the match that wrote it). A hit
whose result no longer names the CVE stays (the scan functions may only put `_cve` items) and is
dropped by readers, which keep only digests whose result names the CVE: the result is the truth.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.cve.osv import SEVERITIES
from chalicelib.cve.packages import Inventory
from chalicelib.storage.dynamo import Table
from chalicelib.storage.objectstore import ObjectStore

PARTITION = "_cve"
INLINE_LIMIT = 300 * 1024
RESULTS_PREFIX = "_cve/results/"
State = Literal["scanned", "unscannable", "index"]


def result_key(digest: str) -> str:
    return f"s#{digest}"


def hit_prefix(cve_id: str) -> str:
    """The lookup's sort-key prefix of one CVE (ids hold no '#')."""
    return f"h#{cve_id}#"


MAX_CVE_ID = 256  # bytes: OSV ids (CVE-, GHSA-, PYSEC-...) are a few dozen
HITS_FORMAT = 1  # results saved with their lookup items; older ones are re-saved by the next re-match


@dataclass(frozen=True)
class Summary:
    """zot's ImageVulnerabilitySummary."""

    max_severity: str = "NONE"
    count: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, cves: list[dict[str, Any]]) -> Summary:
        counts = {s: 0 for s in SEVERITIES if s != "NONE"}
        for cve in cves:
            counts[cve["Severity"] if cve["Severity"] in counts else "UNKNOWN"] += 1
        worst = max((cve["Severity"] for cve in cves), key=SEVERITIES.index, default="NONE")
        return cls(worst, len(cves), counts)

    def as_graphql(self) -> dict[str, Any]:
        counts = {f"{s.title()}Count": self.counts.get(s, 0) for s in ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")}
        return {"MaxSeverity": self.max_severity, "Count": self.count, **counts}

    def as_item(self) -> dict[str, Any]:
        return {"max": self.max_severity, "count": self.count, "counts": self.counts}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Summary:
        return cls(item.get("max", "NONE"), int(item.get("count", 0)), {k: int(v) for k, v in (item.get("counts") or {}).items()})


@dataclass(frozen=True)
class ScanResult:
    """zot's CVEResultForImage, unpaginated: CVEs (zot's CVE and PackageInfo fields) and their summary."""

    digest: str
    db_version: str
    cves: list[dict[str, Any]]
    summary: Summary
    scanned: int

    def cve_ids(self) -> set[str]:
        return {cve["Id"] for cve in self.cves}

    def filtered(self, searched: str | None = None, excluded: str | None = None, severity: str | None = None) -> list[dict[str, Any]]:
        """zot's searchedCVE / excludedCVE (substring of id or title, any case) and severity filters."""

        def mentions(cve: dict[str, Any], text: str) -> bool:
            return text.lower() in cve["Id"].lower() or text.lower() in (cve.get("Title") or "").lower()

        found = [cve for cve in self.cves if not searched or mentions(cve, searched)]
        found = [cve for cve in found if not excluded or not mentions(cve, excluded)]
        return [cve for cve in found if not severity or cve["Severity"] == severity.upper()]

    def as_graphql(self, tag: str | None = None, **filters: str | None) -> dict[str, Any]:
        cves = self.filtered(**filters)
        return {"Tag": tag, "CVEList": cves, "Summary": Summary.of(cves).as_graphql()}


@dataclass(frozen=True)
class NotScanned:
    """No answer yet ("pending"), never ("unscannable": a layer type the scanner cannot read), or no database loaded."""

    digest: str
    reason: Literal["pending", "unscannable", "no database"]
    detail: str = ""


@dataclass(frozen=True)
class Brief:
    """What a listing needs of one result (state, summary, CVE ids), read without the findings or the inventory."""

    digest: str
    reason: str = "pending"  # "" when scanned, else NotScanned's reason
    summary: Summary | None = None
    cve_ids: frozenset[str] = frozenset()

    @property
    def scanned(self) -> bool:
        return not self.reason


BRIEF_ATTRIBUTES = ("state", "dbVersion", "summary", "cves")


def pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode())


def unpack(data: bytes) -> Any:
    return json.loads(zlib.decompress(data))


class ResultCache:
    """Reads and writes result items; findings too large for an item go to S3 under their version."""

    def __init__(self, table: Table, store: ObjectStore) -> None:
        self.table = table
        self.store = store

    def item(self, digest: str) -> dict[str, Any] | None:
        return self.table.get(PARTITION, result_key(digest))

    def items(self, digests: list[str]) -> dict[str, dict[str, Any]]:
        found = self.table.batch_get([(PARTITION, result_key(d)) for d in dict.fromkeys(digests)]) if digests else []
        return {str(item["key"])[2:]: item for item in found}

    def briefs(self, digests: list[str]) -> dict[str, Brief]:
        """Every digest's Brief from one batched read of a few attributes (100 keys per call); absent ones are pending."""
        wanted = list(dict.fromkeys(digests))
        found = self.table.batch_get([(PARTITION, result_key(d)) for d in wanted], BRIEF_ATTRIBUTES) if wanted else []
        items = {str(item["key"])[2:]: item for item in found}
        return {d: self.brief(d, items.get(d)) for d in wanted}

    @staticmethod
    def brief(digest: str, item: dict[str, Any] | None) -> Brief:
        if item is None:
            return Brief(digest)
        if item["state"] == "unscannable":
            return Brief(digest, "unscannable")
        if not item.get("dbVersion"):
            return Brief(digest, "no database")
        return Brief(digest, "", Summary.from_item(item.get("summary") or {}), frozenset(item.get("cves") or ()))

    def all_items(self) -> list[dict[str, Any]]:
        return list(self.table.query(PARTITION, "s#"))

    def inventory(self, item: dict[str, Any] | None) -> Inventory | None:
        return Inventory.from_json(unpack(item["inventory"])) if item and item.get("inventory") else None

    def findings(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("findings") is not None:
            return list(unpack(item["findings"]))
        body = self.store.get(str(item["findingsKey"])) if item.get("findingsKey") else None
        return list(unpack(body)) if body else []

    def result(self, digest: str, item: dict[str, Any] | None) -> ScanResult | NotScanned:
        if item is None:
            return NotScanned(digest, "pending")
        if item["state"] == "unscannable":
            return NotScanned(digest, "unscannable", str(item.get("reason", "")))
        if not item.get("dbVersion"):
            return NotScanned(digest, "no database", "load one with `zotless cve-db update`")
        return ScanResult(digest, str(item["dbVersion"]), self.findings(item), Summary.from_item(item.get("summary") or {}), int(item.get("scanned", 0)))

    def affected(self, cve_id: str) -> list[str]:
        """Digests whose result named the CVE when saved, from the lookup: one paged Query (keys only).

        An id no advisory has (empty, holding '#', or longer than MAX_CVE_ID) is never asked: DynamoDB refuses a key
        condition over 1,024 bytes, which moto does not check, and a client may send any string.
        """
        if not cve_id or "#" in cve_id or len(cve_id.encode()) > MAX_CVE_ID:
            return []
        return [str(i["key"])[len(hit_prefix(cve_id)) :] for i in self.table.query(PARTITION, hit_prefix(cve_id))]

    def save(
        self, digest: str, state: State, *, inventory: Inventory | None = None, db_version: str = "", cves: list[dict[str, Any]] | None = None, **extra: Any
    ) -> None:
        item: dict[str, Any] = {"repo": PARTITION, "key": result_key(digest), "state": state, "scanned": int(time.time()), "hits": HITS_FORMAT, **extra}
        if inventory is not None:
            item["inventory"] = pack(inventory.as_json())
        if cves is not None and db_version:
            findings = pack(cves)
            item |= {"dbVersion": db_version, "summary": Summary.of(cves).as_item(), "cves": sorted({c["Id"] for c in cves}) or None}
            if len(findings) <= INLINE_LIMIT:
                item["findings"] = findings
            else:
                item["findingsKey"] = f"{RESULTS_PREFIX}{digest}/{db_version}"
                self.store.put(item["findingsKey"], findings)
        before = self.table.get(PARTITION, result_key(digest)) or {}
        known = set(before.get("cves") or ()) if before.get("hits") else set()
        for cve_id in sorted(set(item.get("cves") or ()) - known):  # before the result: a reader checks each hit against it
            self.table.put({"repo": PARTITION, "key": f"{hit_prefix(cve_id)}{digest}", "dbVersion": db_version})
        self.table.put(item)
