"""The interface search's resolvers and the CLI call: scans on request, answers from the cache only."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from chalicelib.cve.database import AdvisoryDb, DbVersion
from chalicelib.cve.layers import UnreadableLayer
from chalicelib.cve.results import Brief, NotScanned, ResultCache, ScanResult, Summary
from chalicelib.cve.scanner import Blobs, match, read_inventory
from chalicelib.model.locations import RoutedRegistry
from chalicelib.spec.errors import ManifestUnknown
from chalicelib.spec.references import is_tag
from chalicelib.storage.dynamo import Table
from chalicelib.storage.index import RepoIndex
from chalicelib.storage.objectstore import ObjectStore

log = logging.getLogger("zotless.cve")
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}


@dataclass(frozen=True)
class ImageRef:
    """A tagged image in a repository, as ImageListForCVE and ImageListWithCVEFixed list them."""

    repo: str
    tag: str
    digest: str
    pushed: int = 0


class CveService:
    """Scanning (`scan`, `rematch_all`, `unscanned`) and the queries (`cve_list_for_image` and the rest)."""

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
        """After a database update: re-match every stored inventory (no layer is read again); indexes last."""
        version = self.db.current()
        if version is None:
            return 0
        items = [i for i in self.cache.all_items() if i["state"] != "unscannable" and i.get("dbVersion") != version.version]
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

    # Queries: answered from the cache only, never by scanning

    def resolve(self, repo: str, reference: str) -> str:
        """A tag or digest to the manifest digest; ManifestUnknown when the repository has neither."""
        stored = self.index.tagged(repo, reference) if is_tag(reference) else self.index.manifest(repo, reference)
        if stored is None:
            raise ManifestUnknown(detail={"repository": repo, "reference": reference})
        return stored.digest

    def result(self, digest: str) -> ScanResult | NotScanned:
        return self.cache.result(digest, self.cache.item(digest))

    def cve_list_for_image(self, repo: str, reference: str) -> ScanResult | NotScanned:
        """CVEListForImage: filter and paginate with ScanResult.filtered / as_graphql."""
        return self.result(self.resolve(repo, reference))

    def summary(self, repo: str, digest: str) -> Summary | None:
        """ImageSummary.Vulnerabilities: None when not scanned (yet)."""
        outcome = self.result(digest)
        return outcome.summary if isinstance(outcome, ScanResult) else None

    def summaries(self, digests: list[str]) -> dict[str, Summary]:
        """Summaries for a listing (scanned digests only): one BatchGetItem per 100 digests, no findings unpacked."""
        return {d: b.summary for d, b in self.briefs(digests).items() if b.summary is not None}

    def briefs(self, digests: list[str]) -> dict[str, Brief]:
        """State, summary and CVE ids per digest (a missing result is "pending"): what search's listings read, batched."""
        return self.cache.briefs(digests)

    def _tagged(self, repo: str) -> list[ImageRef]:
        return [ImageRef(repo, str(i["key"])[2:], str(i["digest"]), int(i.get("pushed", 0))) for i in self.index.table.query(repo, "t#")]

    def _outcomes(self, images: list[ImageRef]) -> dict[str, ScanResult | NotScanned]:
        items = self.cache.items([i.digest for i in images])
        return {i.digest: self.cache.result(i.digest, items.get(i.digest)) for i in images}

    def images_affected_by(self, cve_id: str, repos: list[str] | None = None) -> list[ImageRef]:
        """ImageListForCVE: tagged images whose cached result names the CVE."""
        affected = []
        for repo in repos if repos is not None else self.index.repositories(None, None):
            images = self._tagged(repo)
            outcomes = self._outcomes(images)
            affected += [i for i in images if isinstance(outcomes[i.digest], ScanResult) and cve_id in outcomes[i.digest].cve_ids()]  # type: ignore[union-attr]
        return affected

    def images_with_fix(self, cve_id: str, repo: str) -> list[ImageRef]:
        """ImageListWithCVEFixed, zot's rule: scanned tags without the CVE, pushed after its earliest affected tag.

        With no affected tag every scanned tag counts as fixed; an image not scanned (yet, or ever) never does.
        """
        images = self._tagged(repo)
        outcomes = self._outcomes(images)
        scanned = [i for i in images if isinstance(outcomes[i.digest], ScanResult)]
        affected = [i for i in scanned if cve_id in outcomes[i.digest].cve_ids()]  # type: ignore[union-attr]
        clean = [i for i in scanned if i not in affected]
        if not affected:
            return clean
        earliest = min(i.pushed for i in affected)
        return [i for i in clean if i.pushed >= earliest]

    def diff(self, minuend: tuple[str, str], subtrahend: tuple[str, str]) -> ScanResult | NotScanned:
        """CVEDiffListForImages: the minuend's CVEs that the subtrahend does not have."""
        first, second = self.cve_list_for_image(*minuend), self.cve_list_for_image(*subtrahend)
        if isinstance(first, NotScanned):
            return first
        if isinstance(second, NotScanned):
            return second
        remaining = [cve for cve in first.cves if cve["Id"] not in second.cve_ids()]
        return ScanResult(first.digest, first.db_version, remaining, Summary.of(remaining), first.scanned)
