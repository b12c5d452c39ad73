"""Garbage collection of one storage location, safe while pushes run on other Lambda instances.

Phases, each resumable: retention (tags and untagged manifests, repository by repository, with a
cursor), unused blob links older than gcDelay, shared objects no repository holds, and uploads
older than uploadTTL. Blob work reads only the sparse orphans index, so its cost follows what is
eligible; retention reads each repository's index partition, so it follows the repositories walked.
Every deletion is a conditional write, so a concurrent push either wins or is refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.api.service import Service
from chalicelib.lifecycle.retention import ManifestFacts, TagFacts, decide, policy_for
from chalicelib.spec.references import Digest
from chalicelib.storage.dynamo import EVENTUAL
from chalicelib.storage.uploads import BlobWriter

log = logging.getLogger("zotless.gc")
Item = dict[str, Any]
CASCADE_PASSES = 4  # an index removed frees its children for the next pass


@dataclass
class GcReport:
    dry_run: bool
    examined: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    bytes_freed: int = 0
    seconds: float = 0.0
    complete: bool = True
    skipped: str | None = None
    location: str = ""

    def count(self, table: dict[str, int], name: str, n: int = 1) -> None:
        table[name] = table.get(name, 0) + n

    def line(self) -> str:
        return json.dumps({"event": "gc", **asdict(self)}, sort_keys=True)


class GarbageCollector:
    def __init__(self, service: Service, clock: Callable[[], float] = time.time, time_budget: float | None = None) -> None:
        self.service = service
        self.storage = service.config.storage
        self.clock = clock
        self.deadline = None if time_budget is None else time.monotonic() + time_budget
        self.location_name = service.config.storage.storageDriver.bucket + "/" + service.config.storage.storageDriver.rootdirectory

    def run(self, dry_run: bool = False) -> GcReport:
        started = time.monotonic()
        report = GcReport(dry_run=dry_run or self.storage.retention.dryRun)
        if self.storage.readOnly or not self.storage.gc:
            report.skipped = "read-only storage" if self.storage.readOnly else "storage.gc is off"
        else:
            for phase in (self._retention, self._empty_repositories, self._links, self._shared, self._uploads):
                if self._out_of_time():
                    report.complete = False
                    break
                phase(report)
        report.seconds = round(time.monotonic() - started, 3)
        report.location = self.location_name
        log.info(report.line())
        return report

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    # Retention

    def _retention(self, report: GcReport) -> None:
        index = self.service.index
        cursor = index.cursor(f"retention:{self.location_name}")
        for repo in index.repositories(None, cursor):
            if not self.service.owns(repo):
                continue
            if self._out_of_time():
                report.complete = False
                if not report.dry_run:
                    index.save_cursor(f"retention:{self.location_name}", cursor)
                return
            self._retain(repo, report)
            cursor = repo
        if not report.dry_run:
            index.save_cursor(f"retention:{self.location_name}", None)

    def _retain(self, repo: str, report: GcReport) -> None:
        """Apply the repository's policy; a repository no policy covers costs no read at all."""
        if policy_for(repo, self.storage.retention) is None:
            return
        now = self.clock()
        for _ in range(CASCADE_PASSES):
            manifests, tags = self._facts(repo)
            report.count(report.examined, "manifests", len(manifests))
            decision = decide(repo, manifests, tags, self.storage.retention, now)
            report.count(report.deleted, "tags", len(decision.tags))
            if report.dry_run:
                report.count(report.deleted, "manifests", len(decision.manifests))
                return
            registry, seen = self.service.registry, {t.name: t.digest for t in tags}
            tagged = {m.digest: m.tagged for m in manifests}
            for tag in decision.tags:
                registry.remove_tag(repo, tag, seen[tag])
            removed = [d for d in decision.manifests if registry.remove_unused_manifest(repo, Digest.parse(d), tagged[d])]
            report.count(report.deleted, "manifests", len(removed))
            if not removed and not decision.tags:
                return

    def _facts(self, repo: str) -> tuple[list[ManifestFacts], list[TagFacts]]:
        index = self.service.index
        manifest_items, tag_items = index.repository_items(repo, EVENTUAL)  # each delete is conditional on what it read
        manifests = [
            ManifestFacts(str(i["key"])[2:], int(i["pushed"]), int(i.get("uses", 0)), i.get("subject"), int(i.get("tagged", 0))) for i in manifest_items
        ]
        tags = [TagFacts(str(i["key"])[2:], str(i["digest"]), int(i["pushed"])) for i in tag_items]
        return manifests, tags

    def _empty_repositories(self, report: GcReport) -> None:
        """A repository whose last manifest was deleted stays listed (tags/list answers 200 []) until gcDelay passes."""
        cutoff = int(self.clock() - self.storage.gcDelay)
        index = self.service.index
        for repo in index.empty_repositories(cutoff):
            if not self.service.owns(repo):
                continue
            report.count(report.examined, "empty_repositories")
            if report.dry_run or index.forget_repository(repo, cutoff):
                report.count(report.deleted, "repositories")

    # Blobs

    def _links(self, report: GcReport) -> None:
        """Repositories' links no manifest uses, orphaned before gcDelay ago."""
        cutoff = int(self.clock() - self.storage.gcDelay)
        candidates = self.service.blobs.orphan_candidates("l", cutoff)
        self._collect(report, "blob_links", "uses", candidates, lambda item: self.service.blobs.collect_link(item, cutoff))

    def _shared(self, report: GcReport) -> None:
        """Shared objects no repository holds any more (their last link already waited gcDelay)."""
        candidates = self.service.blobs.orphan_candidates("s", int(self.clock()) + 1)
        self._collect(report, "blobs", "refs", candidates, self.service.blobs.collect_shared)

    def _collect(self, report: GcReport, name: str, counter: str, candidates: Iterable[Item], collect: Callable[[Item], int | None]) -> None:
        """Collect candidates one by one; a dry run counts those whose use count says they would go."""
        for item in candidates:
            if self._out_of_time():
                report.complete = False
                return
            report.count(report.examined, name)
            if report.dry_run:
                report.count(report.deleted, name, int(item.get(counter, 0)) <= 0)
                continue
            freed = collect(item)
            if freed is not None:
                report.count(report.deleted, name)
                report.bytes_freed += freed

    # Uploads

    def _uploads(self, report: GcReport) -> None:
        cutoff = self.clock() - self.storage.uploadTTL
        store, sessions = self.service.store, self.service.registry.sessions
        for session in sessions.expired(cutoff):
            if not self.service.owns(session.repo):
                continue
            report.count(report.examined, "upload_sessions")
            if not report.dry_run and sessions.delete_if_idle(session):
                BlobWriter(store, session).discard()
                report.count(report.deleted, "upload_sessions")
        for pending in store.pending_uploads("_data/"):
            report.count(report.examined, "multipart_uploads")
            if pending.initiated < cutoff and not sessions.exists(pending.key.removeprefix("_data/")):
                report.count(report.deleted, "multipart_uploads")
                if not report.dry_run:
                    store.abort_multipart(pending.key, pending.upload_id)
        stale = [o for o in store.list("_uploads/") if o.modified < cutoff]
        report.count(report.deleted, "upload_pieces", len(stale))
        if stale and not report.dry_run:
            store.delete(*[o.key for o in stale])


def collect_everywhere(service: Service, time_budget: float | None = None, dry_run: bool = False) -> list[GcReport]:
    """One run per storage location, each with its own settings, sharing the time budget."""
    deadline = None if time_budget is None else time.monotonic() + time_budget
    reports = []
    for location in service.locations or [service]:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
        reports.append(GarbageCollector(location, time_budget=remaining).run(dry_run))
    return reports
