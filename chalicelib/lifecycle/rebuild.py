"""Rebuild the DynamoDB index from the bucket alone: S3 is the source of truth.

Reads blob pointers, then every repository's manifests and tags, and writes the same items a
push would. Idempotent: links that exist are left alone, so it can run over a partial index.
Upload sessions are not rebuilt (a lost session is an abandoned upload; GC aborts it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from chalicelib.api.service import Service
from chalicelib.model.registry import manifest_object_key
from chalicelib.spec.errors import RegistryError
from chalicelib.spec.manifests import parse_manifest
from chalicelib.spec.references import Digest
from chalicelib.storage.blobs import BlobLocation


@dataclass
class RebuildReport:
    blobs: int = 0
    manifests: int = 0
    tags: int = 0
    repositories: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {"blobs": self.blobs, "manifests": self.manifests, "tags": self.tags, "repositories": len(self.repositories), "problems": self.problems}


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
    raw = service.store.get(key)
    if raw is None:
        return None
    record = json.loads(raw)
    return BlobLocation(digest, int(record["size"]), str(record["data"]))


def rebuild_index(service: Service) -> RebuildReport:
    report = RebuildReport()
    shared: dict[Digest, BlobLocation] = {}
    for item in service.store.list("_blobs/"):
        digest = _digest_from_path(item.key[len("_blobs/") :])
        location = _pointer(service, item.key, digest) if digest else None
        if location:
            shared[location.digest] = location
    manifests: list[tuple[str, Digest]] = []
    tags: list[tuple[str, str]] = []
    for item in service.store.list("repositories/"):
        if (blob := _split(item.key, "_blobs")) and (digest := _digest_from_path(blob[1])):
            location = _pointer(service, item.key, digest)
            if location:
                service.blobs.restore_link(blob[0], location)
                report.blobs += 1
        elif (revision := _split(item.key, "_manifests")) and revision[1].startswith("revisions/"):
            if digest := _digest_from_path(revision[1][len("revisions/") :]):
                manifests.append((revision[0], digest))
        elif (tag := _split(item.key, "_manifests")) and tag[1].startswith("tags/"):
            tags.append((tag[0], tag[1][len("tags/") :]))
    for repo, digest in manifests:
        _restore_manifest(service, repo, digest, shared, report)
    for repo, tag in tags:
        _restore_tag(service, repo, tag, report)
    return report


def _restore_manifest(service: Service, repo: str, digest: Digest, shared: dict[Digest, BlobLocation], report: RebuildReport) -> None:
    body = service.store.get(manifest_object_key(repo, str(digest)))
    try:
        manifest = parse_manifest(body or b"", None, digest.algorithm)
    except RegistryError as error:
        report.problems.append(f"{repo}@{digest}: {error.message}")
        return
    for blob in manifest.required_blobs():
        if blob in shared:
            service.blobs.restore_link(repo, shared[blob])
            report.blobs += 1
    use_ops = service.blobs.use_ops(repo, manifest.required_blobs())
    service.index.put_manifest(repo, manifest, service.registry.platforms(repo, manifest), None, use_ops)
    report.manifests += 1
    report.repositories.add(repo)


def _restore_tag(service: Service, repo: str, tag: str, report: RebuildReport) -> None:
    raw = service.store.get(f"repositories/{repo}/_manifests/tags/{tag}")
    try:
        digest = Digest.parse(raw.decode(errors="replace") if raw else None)
    except RegistryError:
        report.problems.append(f"{repo}:{tag}: tag object does not hold a digest")
        return
    body = service.store.get(manifest_object_key(repo, str(digest)))
    if body is None:
        report.problems.append(f"{repo}:{tag}: tagged manifest missing")
        return
    manifest = parse_manifest(body, None, digest.algorithm)
    service.index.put_manifest(repo, manifest, service.registry.platforms(repo, manifest), tag, [])
    report.tags += 1
