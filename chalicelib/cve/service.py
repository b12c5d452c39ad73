"""The interface search's resolvers and the CLI call: scans on request, answers from the cache only."""

from __future__ import annotations

import json
import logging
from typing import Any

from chalicelib.cve.database import AdvisoryDb, DbVersion
from chalicelib.cve.layers import UnreadableLayer
from chalicelib.cve.results import Brief, NotScanned, ResultCache, ScanResult
from chalicelib.cve.scanner import Blobs, match, read_inventory
from chalicelib.model.locations import RoutedRegistry
from chalicelib.storage.dynamo import Table
from chalicelib.storage.index import RepoIndex
from chalicelib.storage.objectstore import ObjectStore

log = logging.getLogger("zotless.cve")
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}


class CveService:
    """Scanning (`scan`, `rematch_all`, `unscanned`) and the cache reads search's CVE queries answer from (`result`, `briefs`)."""

    def __init__(self, registry: RoutedRegistry | Blobs, index: RepoIndex, store: ObjectStore) -> None:
        self.registry = registry
        self.index = index
        table: Table = index.table
        self.db = AdvisoryDb(store, table)
        self.cache = ResultCache(table, store)

    # The database

    def update_database(self, source: str, s3_client: Any = None) -> DbVersion:
        """Load a whole new version from a source and serve it; results are then re-matched (`rematch_all`)."""
        from chalicelib.cve.sources import read_records

        return self.db.load(read_records(source, s3_client), source)

    # Scanning

    def scan(self, repo: str, digest: str) -> ScanResult | NotScanned:
        """Scan a manifest (an index: each platform's manifest) against the serving database; cached per digest."""
        version = self.db.current()
        return self._scan(repo, digest, version, self.cache.item(digest))

    def _scan(self, repo: str, digest: str, version: DbVersion | None, item: dict[str, Any] | None) -> ScanResult | NotScanned:
        if item is not None and item["state"] != "index" and (item["state"] == "unscannable" or (version and item.get("dbVersion") == version.version)):
            return self.cache.result(digest, item)
        manifest = json.loads(self.registry.get_manifest(repo, digest).body)
        if manifest.get("mediaType") in INDEX_TYPES or ("manifests" in manifest and "layers" not in manifest):
            return self._scan_index(repo, digest, manifest, version)
        found = self.cache.inventory(item)
        if found is None:
            try:
                found = read_inventory(self.registry, repo, manifest)
            except UnreadableLayer as error:
                self.cache.save(digest, "unscannable", reason=str(error))
                return NotScanned(digest, "unscannable", str(error))
        cves = match(found, self.db, version) if version else None
        self.cache.save(digest, "scanned", inventory=found, db_version=version.version if version else "", cves=cves)
        return self.cache.result(digest, self.cache.item(digest))

    def _scan_index(self, repo: str, digest: str, manifest: dict[str, Any], version: DbVersion | None) -> ScanResult | NotScanned:
        """Every platform's manifest on its own; the index holds their union, and is not scanned if any child is not."""
        children = [str(c["digest"]) for c in manifest.get("manifests") or []]
        cached = self.cache.items(children)
        outcomes = [self._scan(repo, child, version, cached.get(child)) for child in children]
        blocked = next((o for o in outcomes if isinstance(o, NotScanned)), None)
        if blocked is not None:
            state = "unscannable" if blocked.reason == "unscannable" else "index"
            self.cache.save(digest, state, reason=f"{blocked.digest}: {blocked.reason}", children=children)
            return NotScanned(digest, blocked.reason, blocked.detail)
        assert version is not None  # without a database every child is "no database", so blocked above
        self._merge_index(digest, children, outcomes, version)  # type: ignore[arg-type]
        return self.cache.result(digest, self.cache.item(digest))

    def rematch_all(self) -> int:
        """After a database update: re-match every stored inventory (no layer is read again); indexes last.

        Results saved before the CVE->image lookup existed are re-saved too, which writes their lookup items.
        """
        version = self.db.current()
        if version is None:
            return 0
        items = [i for i in self.cache.all_items() if i["state"] != "unscannable" and (i.get("dbVersion") != version.version or not i.get("hits"))]
        items.sort(key=lambda i: i["state"] == "index")
        for item in items:
            digest = str(item["key"])[2:]
            found = self.cache.inventory(item)
            if item["state"] == "index":
                children = list(item.get("children") or [])
                outcomes = [self.cache.result(c, i) for c, i in self.cache.items(children).items()]
                if len(outcomes) == len(children) and all(isinstance(o, ScanResult) for o in outcomes):
                    self._merge_index(digest, children, outcomes, version)  # type: ignore[arg-type]
            elif found is not None:
                self.cache.save(digest, "scanned", inventory=found, db_version=version.version, cves=match(found, self.db, version))
        return len(items)

    def _merge_index(self, digest: str, children: list[str], outcomes: list[ScanResult], version: DbVersion) -> None:
        merged: dict[str, dict[str, Any]] = {}
        for outcome in outcomes:
            for cve in outcome.cves:
                known = merged.setdefault(cve["Id"], dict(cve, PackageList=[]))
                known["PackageList"] += [p for p in cve["PackageList"] if p not in known["PackageList"]]
        self.cache.save(digest, "index", db_version=version.version, cves=list(merged.values()), children=children)

    def unscanned(self) -> list[tuple[str, str]]:
        """(repo, digest) of stored manifests without a result: what a worker catches up on after a restart."""
        waiting = []
        for repo in self.index.repositories(None, None):
            digests = [str(i["key"])[2:] for i in self.index.table.query(repo, "m#")]
            known = self.cache.items(digests)
            waiting += [(repo, d) for d in digests if d not in known]
        return waiting

    # Queries: search's resolvers (chalicelib/search/vulns.py) hold the query rules; these read the cache only, never scan

    def result(self, digest: str) -> ScanResult | NotScanned:
        """One image's cached result (CVEListForImage, CVEDiffListForImages): one GetItem."""
        return self.cache.result(digest, self.cache.item(digest))

    def briefs(self, digests: list[str]) -> dict[str, Brief]:
        """State, summary and CVE ids per digest (a missing result is "pending"): what search's listings read, batched."""
        return self.cache.briefs(digests)

    def affected(self, cve_id: str) -> list[str]:
        """Digests the CVE->image lookup names for a CVE (ImageListForCVE): one paged Query; check each against `briefs`."""
        return self.cache.affected(cve_id)
