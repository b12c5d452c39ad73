"""Rebuild the DynamoDB index from the bucket alone: S3 is the source of truth.

Repository by repository, writes the items pushes would have written: blob links, manifests in
dependency order (an index only after the manifests it lists, as a push requires), tags, and the use
counts GC relies on (each link used by as many manifests as refer to it, each manifest by as many
indexes as list it). Idempotent: items that exist are left alone and counts that are right are not
written, so it can run over a partial index (`scrub --repair-index` does). An object that cannot be
indexed (unparsable, too deep, a child or blob missing) is reported as a problem and skipped.
Each repository's search summary is computed last. Upload sessions are not rebuilt (a lost session is an abandoned upload; GC aborts it).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chalicelib.api.service import Service
from chalicelib.model.registry import manifest_object_key, tag_object_key
from chalicelib.search.catalog import refresh_summary
from chalicelib.spec.errors import ManifestBlobUnknown, RegistryError
from chalicelib.spec.manifests import Manifest, parse_manifest
from chalicelib.spec.references import Digest
from chalicelib.storage.blobs import BlobLocation, pointer_key

# What a stored object that cannot be indexed raises: the spec's errors, and a parser's own limits.
UNREADABLE = (RegistryError, RecursionError, ValueError)


@dataclass
class RebuildReport:
    blobs: int = 0
    manifests: int = 0
    tags: int = 0
    uses_corrected: int = 0
    repositories: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "blobs": self.blobs,
            "manifests": self.manifests,
            "tags": self.tags,
            "usesCorrected": self.uses_corrected,
            "repositories": len(self.repositories),
            "problems": self.problems,
        }


@dataclass
class StoredRepository:
    """What S3 holds for one repository: its own blob pointers (without dedupe), manifests and tags."""

    pointers: list[tuple[str, Digest]] = field(default_factory=list)
    manifests: list[Digest] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Restored:
    """A manifest now in the index, with the platforms its item lists (a tag item is written from it)."""

    manifest: Manifest
    platforms: list[dict[str, str]]
    facts: dict[str, Any] = field(default_factory=dict)


def _split(key: str, marker: str) -> tuple[str, str] | None:
    """("repo/name", rest) from "repositories/repo/name/<marker>/rest"; names cannot contain "/_"."""
    body = key[len("repositories/") :]
    name, found, rest = body.partition(f"/{marker}/")
    return (name, rest) if found else None


def _digest_from_path(rest: str) -> Digest | None:
    algorithm, _, hexpart = rest.partition("/")
    try:
        return Digest.parse(f"{algorithm}:{hexpart}")
    except RegistryError:
        return None


def _pointer(service: Service, key: str, digest: Digest) -> BlobLocation | None:
    """The blob a pointer object names; None when it is gone or unreadable."""
    raw = service.store.get(key)
    try:
        record = json.loads(raw) if raw is not None else None
        return BlobLocation(digest, int(record["size"]), str(record["data"])) if isinstance(record, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


class SharedPointers:
    """The location-wide pointer objects (dedupe), read once per digest and only for digests a manifest uses."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.found: dict[Digest, BlobLocation | None] = {}

    def get(self, digest: Digest) -> BlobLocation | None:
        if digest not in self.found:
            self.found[digest] = _pointer(self.service, pointer_key(digest, None), digest)
        return self.found[digest]


def rebuild_index(service: Service, repositories: list[str] | None = None) -> RebuildReport:
    """Index what S3 holds for every repository of this location, or only for these."""
    report = RebuildReport()
    shared = SharedPointers(service)
    for repo, stored in stored_repositories(service, repositories).items():
        rebuild_repository(service, repo, stored, shared, report)
    return report


def stored_repositories(service: Service, repositories: list[str] | None = None) -> dict[str, StoredRepository]:
    """One listing of the bucket (or of each repository's prefix), grouped by repository."""
    found: dict[str, StoredRepository] = {}
    prefixes = ["repositories/"] if repositories is None else [f"repositories/{repo}/" for repo in repositories]
    for prefix in prefixes:
        for item in service.store.list(prefix):
            _classify(item.key, found)
    return found if repositories is None else {repo: stored for repo, stored in found.items() if repo in repositories}


def _classify(key: str, found: dict[str, StoredRepository]) -> None:
    if (blob := _split(key, "_blobs")) and (digest := _digest_from_path(blob[1])):
        found.setdefault(blob[0], StoredRepository()).pointers.append((key, digest))
    elif (entry := _split(key, "_manifests")) and entry[1].startswith("revisions/"):
        if digest := _digest_from_path(entry[1][len("revisions/") :]):
            found.setdefault(entry[0], StoredRepository()).manifests.append(digest)
    elif entry and entry[1].startswith("tags/"):
        found.setdefault(entry[0], StoredRepository()).tags.append(entry[1][len("tags/") :])


def rebuild_repository(service: Service, repo: str, stored: StoredRepository, shared: SharedPointers, report: RebuildReport) -> None:
    """Links, then manifests in dependency order, then tags, then the use counts they imply."""
    for key, digest in stored.pointers:  # without dedupe each repository names its own copies
        if location := _pointer(service, key, digest):
            service.blobs.restore_link(repo, location)
            report.blobs += 1
        else:
            report.problems.append(f"{repo}: blob pointer {key} is not readable")
    manifests = _load_manifests(service, repo, stored.manifests, report)
    restored = restore_manifests(service, repo, manifests, shared, report)
    for tag in stored.tags:
        _restore_tag(service, repo, tag, restored, report)
    restore_use_counts(service, repo, manifests, [digest for _, digest in stored.pointers], report)
    if restored:  # search's summary, so the first global search after a rebuild reads no partition
        refresh_summary(service.index, repo, service.index.catalog_item(repo))


def _load_manifests(service: Service, repo: str, digests: list[Digest], report: RebuildReport) -> dict[str, Manifest]:
    """Every manifest object that parses and matches its digest; the others are problems."""
    manifests: dict[str, Manifest] = {}
    for digest in digests:
        body = service.store.get(manifest_object_key(repo, str(digest)))
        try:
            manifest = parse_manifest(body if body is not None else b"", None, digest.algorithm)
        except UNREADABLE as error:
            report.problems.append(f"{repo}@{digest}: {getattr(error, 'message', type(error).__name__)}")
            continue
        if manifest.digest != digest:
            report.problems.append(f"{repo}@{digest}: content hashes to {manifest.digest}")
            continue
        manifests[str(digest)] = manifest
    return manifests


def restore_manifests(service: Service, repo: str, manifests: dict[str, Manifest], shared: SharedPointers, report: RebuildReport) -> dict[str, Restored]:
    """Image manifests first, then each index once all it lists is indexed, pass after pass for nested ones.

    A push of an index needs its children in the index (and counts a use of each), so this is the
    only order that works; an index some child of which never gets there is a problem, not an abort.
    """
    restored: dict[str, Restored] = {}
    waiting = dict(manifests)
    while waiting:
        ready = {d: m for d, m in waiting.items() if all(str(c.digest) in restored for c in m.children)}
        if not ready:
            break
        for digest, manifest in ready.items():
            if entry := _restore_manifest(service, repo, manifest, shared, report):
                restored[digest] = entry
            del waiting[digest]
    for digest, manifest in waiting.items():
        missing = sorted({str(c.digest) for c in manifest.children} - set(restored))
        report.problems.append(f"{repo}@{digest}: an index whose manifests are missing or unreadable: {', '.join(missing[:5])}")
    return restored


def _restore_manifest(service: Service, repo: str, manifest: Manifest, shared: SharedPointers, report: RebuildReport) -> Restored | None:
    """Link its blobs and write its item with the uses a push counts; a blob S3 lacks makes it a problem."""
    for blob in manifest.required_blobs():
        if location := shared.get(blob):
            service.blobs.restore_link(repo, location)
            report.blobs += 1
    platforms, facts = service.registry.indexed_facts(repo, manifest)
    use_ops = service.blobs.use_ops(repo, manifest.required_blobs())
    try:
        service.index.put_manifest(repo, manifest, platforms, None, use_ops, facts=facts)
    except ManifestBlobUnknown:
        report.problems.append(f"{repo}@{manifest.digest}: a blob it refers to is not in S3")
        return None
    report.manifests += 1
    report.repositories.add(repo)
    return Restored(manifest, platforms, facts)


def _restore_tag(service: Service, repo: str, tag: str, restored: dict[str, Restored], report: RebuildReport) -> None:
    raw = service.store.get(tag_object_key(repo, tag))
    try:
        digest = Digest.parse(raw.decode(errors="replace") if raw else None)
    except RegistryError:
        report.problems.append(f"{repo}:{tag}: tag object does not hold a digest")
        return
    entry = restored.get(str(digest))
    if entry is None:
        report.problems.append(f"{repo}:{tag}: tagged manifest {digest} missing or not indexed")
        return
    use_ops = service.blobs.use_ops(repo, entry.manifest.required_blobs())  # only counted if the manifest item is gone meanwhile
    service.index.put_manifest(repo, entry.manifest, entry.platforms, tag, use_ops, facts=entry.facts)
    report.tags += 1


def restore_use_counts(service: Service, repo: str, manifests: dict[str, Manifest], held: list[Digest], report: RebuildReport) -> None:
    """Set each count to what pushes of the indexed manifests would have made it, where it differs.

    Counts are only lowered when every manifest item of the repository was read from S3: one that
    was not (unreadable, or only in the index) may use anything, so its uses are never taken away.
    Each write is conditional on the count read, so a push or delete meanwhile is not overwritten
    (it is reported: run again). A link no manifest uses becomes a GC candidate after gcDelay.
    """
    manifest_items, _ = service.index.repository_items(repo)
    indexed = {str(item["key"])[2:] for item in manifest_items}
    lower = indexed <= set(manifests)
    users = [manifest for digest, manifest in manifests.items() if digest in indexed]
    blob_uses: Counter[str] = Counter(str(d) for manifest in users for d in dict.fromkeys(manifest.required_blobs()))
    blob_uses.update({str(digest): 0 for digest in held})
    child_uses: Counter[str] = Counter(d for manifest in users for d in dict.fromkeys(str(c.digest) for c in manifest.children))
    for link in service.blobs.table.batch_get([(digest, repo) for digest in blob_uses]):
        if not link.get("deleted"):
            _correct(report, repo, str(link["digest"]), service.blobs.set_uses(link, blob_uses[str(link["digest"])], lower))
    for item in manifest_items:
        digest = str(item["key"])[2:]
        if digest in manifests:
            _correct(report, repo, digest, service.index.set_child_uses(repo, item, child_uses[digest], lower))


def _correct(report: RebuildReport, repo: str, digest: str, outcome: bool | None) -> None:
    """outcome: True corrected, False already right, None changed by someone else meanwhile."""
    if outcome is None:
        report.problems.append(f"{repo}@{digest}: its use count changed during the rebuild; run it again")
    elif outcome:
        report.uses_corrected += 1
