"""Scrub: re-read what the registry stores and check it against its digests and its index.

Reads every manifest and every blob it refers to (each shared object once), hashes the bytes, and
reports one JSON line per problem: a corrupt or missing object, which repositories and tags it
affects, and where the index and S3 disagree. It changes nothing unless asked to repair the index.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from chalicelib.api.service import Service
from chalicelib.lifecycle.rebuild import UNREADABLE, RebuildReport, rebuild_index
from chalicelib.model.registry import manifest_object_key, tag_object_key
from chalicelib.spec.manifests import Manifest, parse_manifest
from chalicelib.spec.references import Digest, ResumableHash

log = logging.getLogger("zotless.scrub")


@dataclass(frozen=True)
class Finding:
    kind: str  # "blob", "manifest" or "tag"
    problem: str  # "corrupt", "missing", "size", "not-indexed", "index-only", "tag-mismatch"
    repository: str
    digest: str
    affects: list[str] = field(default_factory=list)  # repo:tag or repo@digest of the images hit
    detail: str = ""

    def line(self) -> str:
        return json.dumps({"event": "scrub", **asdict(self)}, sort_keys=True)


@dataclass
class ScrubSummary:
    repositories: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes_read: int = 0
    problems: int = 0
    repaired: bool = False
    complete: bool = True
    seconds: float = 0.0

    def line(self) -> str:
        return json.dumps({"event": "scrub-summary", **asdict(self)}, sort_keys=True)


class Scrubber:
    def __init__(self, service: Service, time_budget: float | None = None) -> None:
        self.service = service
        self.summary = ScrubSummary()
        self._verified: dict[str, str | None] = {}  # data key -> problem (None: fine), so shared bytes are read once
        self.deadline = None if time_budget is None else time.monotonic() + time_budget
        storage = service.config.storage.storageDriver
        self.cursor_name = f"scrub:{storage.bucket}/{storage.rootdirectory}"
        self._troubled: set[str] = set()  # repositories with findings: the ones a repair rebuilds

    def run(self, repositories: list[str] | None = None, repair_index: bool = False, resume: bool = False) -> Iterator[Finding]:
        """With resume (the schedule), start after where the last run stopped and stop at the time budget."""
        started = time.monotonic()
        names = repositories or self._all_repositories()
        after = self.service.index.cursor(self.cursor_name) if resume else None
        for repo in names:
            if after is not None and repo <= after:
                continue
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.summary.complete = False
                break
            self.summary.repositories += 1
            for finding in self._scrub_repository(repo):
                self.summary.problems += 1
                self._troubled.add(repo)
                yield finding
            if resume:
                self.service.index.save_cursor(self.cursor_name, repo)
        if resume and self.summary.complete:
            self.service.index.save_cursor(self.cursor_name, None)
        if repair_index and self._troubled:
            self.repair(sorted(self._troubled))
        self.summary.seconds = round(time.monotonic() - started, 3)

    def _all_repositories(self) -> list[str]:
        """Repositories the index knows and those only S3 knows (an index that lost them)."""
        indexed = set(self.service.index.repositories(None, None))
        stored = {key.split("/_manifests/")[0][len("repositories/") :] for key in self._manifest_keys("repositories/")}
        return sorted(r for r in indexed | stored if self.service.owns(r))

    def _manifest_keys(self, prefix: str) -> Iterator[str]:
        return (o.key for o in self.service.store.list(prefix) if "/_manifests/revisions/" in o.key)

    def _scrub_repository(self, repo: str) -> Iterator[Finding]:
        index = self.service.index
        manifest_items, tag_items = index.repository_items(repo)
        indexed = {str(i["key"])[2:] for i in manifest_items}
        stored = {_digest_of_key(k) for k in self._manifest_keys(f"repositories/{repo}/_manifests/revisions/")}
        tags = {str(i["key"])[2:]: str(i["digest"]) for i in tag_items}
        for digest in sorted(indexed - stored):
            yield Finding("manifest", "missing", repo, digest, self._affected(repo, digest, tags), "indexed but not in S3")
        for digest in sorted(stored - indexed):
            yield Finding("manifest", "not-indexed", repo, digest, [f"{repo}@{digest}"], "in S3 but not in the index")
        yield from self._check_tags(repo, tags)
        for digest in sorted(stored):
            yield from self._check_manifest(repo, digest, tags)

    def _check_tags(self, repo: str, tags: dict[str, str]) -> Iterator[Finding]:
        stored_tags = {o.key.rsplit("/", 1)[1] for o in self.service.store.list(f"repositories/{repo}/_manifests/tags/")}
        for tag in sorted(set(tags) | stored_tags):
            raw = self.service.store.get(tag_object_key(repo, tag)) if tag in stored_tags else None
            in_s3 = raw.decode(errors="replace") if raw is not None else None
            if in_s3 != tags.get(tag):
                problem = "index-only" if in_s3 is None else "not-indexed" if tag not in tags else "tag-mismatch"
                yield Finding("tag", problem, repo, in_s3 or tags.get(tag, ""), [f"{repo}:{tag}"], f"S3 says {in_s3}, index says {tags.get(tag)}")

    def _check_manifest(self, repo: str, digest: str, tags: dict[str, str]) -> Iterator[Finding]:
        self.summary.manifests += 1
        affected = self._affected(repo, digest, tags)
        body = self.service.store.get(manifest_object_key(repo, digest)) or b""
        try:
            expected = Digest.parse(digest)
            manifest = parse_manifest(body, None, expected.algorithm)
        except UNREADABLE as error:
            yield Finding("manifest", "corrupt", repo, digest, affected, getattr(error, "message", type(error).__name__))
            return
        if manifest.digest != expected:
            yield Finding("manifest", "corrupt", repo, digest, affected, f"content hashes to {manifest.digest}")
            return
        yield from self._check_blobs(repo, manifest, affected)

    def _check_blobs(self, repo: str, manifest: Manifest, affected: list[str]) -> Iterator[Finding]:
        held = self.service.blobs.locate(repo, manifest.required_blobs())
        descriptors = ([manifest.config] if manifest.config else []) + [layer for layer in manifest.layers if layer.digest in manifest.required_blobs()]
        for descriptor in descriptors:
            location = held.get(descriptor.digest)
            if location is None:
                yield Finding("blob", "missing", repo, str(descriptor.digest), affected, "the index has no link for this repository")
                continue
            problem = self._verify(location.data_key, descriptor.digest, descriptor.size)
            if problem:
                yield Finding("blob", problem.split(":")[0], repo, str(descriptor.digest), affected, problem)

    def _verify(self, data_key: str, digest: Digest, size: int) -> str | None:
        if data_key in self._verified:
            return self._verified[data_key]
        self.summary.blobs += 1
        hasher, length = ResumableHash(digest.algorithm), 0
        try:
            for chunk in self.service.store.stream(data_key):
                hasher.update(chunk)
                length += len(chunk)
        except Exception as error:  # noqa: BLE001 - any read failure is the finding itself
            self._verified[data_key] = problem = f"missing: {type(error).__name__}"
            return problem
        self.summary.bytes_read += length
        actual = hasher.digest()
        problem = None if actual == digest and length == size else f"corrupt: {length} bytes hashing to {actual}"
        self._verified[data_key] = problem
        return problem

    def _affected(self, repo: str, digest: str, tags: dict[str, str]) -> list[str]:
        return [f"{repo}:{t}" for t, d in sorted(tags.items()) if d == digest] or [f"{repo}@{digest}"]

    def repair(self, repositories: list[str]) -> RebuildReport:
        """Drop what S3 no longer backs, then restore from S3 what a push would have written, counts included."""
        self._drop_index_only(repositories)
        report = rebuild_index(self.service, repositories)
        for problem in report.problems:
            log.warning(json.dumps({"event": "scrub-repair", "problem": problem}))
        self.summary.repaired = True
        return report

    def _drop_index_only(self, repositories: list[str]) -> None:
        """Index entries S3 no longer backs are removed, releasing what they used: S3 is the source of truth."""
        store, index = self.service.store, self.service.index
        for repo in repositories:
            manifest_items, tag_items = index.repository_items(repo)
            for item in tag_items:
                if store.get(tag_object_key(repo, str(item["key"])[2:])) is None:
                    index.delete_tag(repo, str(item["key"])[2:], str(item["digest"]))  # not one a client moved meanwhile
            for item in manifest_items:
                digest = str(item["key"])[2:]
                if store.size(manifest_object_key(repo, digest)) is None:
                    self.service.registry.forget_manifest(repo, Digest.parse(digest))


def _digest_of_key(key: str) -> str:
    algorithm, hexpart = key.rsplit("/", 2)[-2:]
    return f"{algorithm}:{hexpart}"


Report = Callable[[Finding | ScrubSummary], None]


def _log(item: Finding | ScrubSummary) -> None:
    """The schedule's report: findings as warnings, each location's summary as info."""
    if isinstance(item, ScrubSummary):
        log.info(item.line())
    else:
        log.warning(item.line())


def scrub_everywhere(
    service: Service,
    time_budget: float | None = None,
    repositories: list[str] | None = None,
    repair_index: bool = False,
    resume: bool = True,
    report: Report = _log,
) -> list[ScrubSummary]:
    """Every location (the schedule: resuming where the last run stopped, findings logged), or as `zotless scrub` asks.

    With repositories, only the locations that own some of them are scrubbed; each finding and each
    location's summary goes to report as it comes.
    """
    deadline = None if time_budget is None else time.monotonic() + time_budget
    summaries = []
    for location in service.locations or [service]:
        wanted = [r for r in repositories if location.owns(r)] if repositories else None
        if repositories and not wanted:
            continue
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
        scrubber = Scrubber(location, remaining)
        for finding in scrubber.run(wanted, repair_index, resume):
            report(finding)
        report(scrubber.summary)
        summaries.append(scrubber.summary)
    return summaries
