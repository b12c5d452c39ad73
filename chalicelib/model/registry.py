"""The distribution-spec's semantics on top of blobs, upload sessions and the index.

This is the registry model: it raises the spec's errors and knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from chalicelib.model.access import ANONYMOUS, Caller
from chalicelib.spec.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
    RangeInvalid,
    RegistryError,
    TooManyRequests,
)
from chalicelib.spec.manifests import IMAGE_CONFIG_TYPES, Manifest, config_facts, parse_manifest
from chalicelib.spec.references import Digest, is_tag
from chalicelib.storage.blobs import BlobLocation, BlobStore
from chalicelib.storage.dynamo import FRESH_MISS
from chalicelib.storage.index import RepoIndex, StoredManifest, TagRefused, TagRule
from chalicelib.storage.objectstore import ObjectStore
from chalicelib.storage.uploads import (
    MIN_PART,
    SEAT,
    UNBUDGETED_READ,
    BlobWriter,
    CommittedBlob,
    PendingPart,
    RecentPieces,
    RecentSessions,
    SessionTable,
    UploadSession,
)

log = logging.getLogger("zotless.registry")
T = TypeVar("T")
CONFIG_READ_LIMIT = 1 << 20  # configs larger than this are not read for platform facts


def tag_rule(caller: Caller, repo: str) -> TagRule:
    """Which tag writes the caller's permissions allow: any, only new tags (create), only existing ones (update)."""
    may_create, may_update = caller.may("create", repo), caller.may("update", repo)
    return "any" if may_create == may_update else "create" if may_create else "update"


def manifest_object_key(repo: str, digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"repositories/{repo}/_manifests/revisions/{algorithm}/{hexpart}"


def tag_object_key(repo: str, tag: str) -> str:
    return f"repositories/{repo}/_manifests/tags/{tag}"


@dataclass(frozen=True)
class PulledManifest:
    digest: str
    media_type: str
    body: bytes


@dataclass(frozen=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None


class Registry:
    def __init__(
        self, store: ObjectStore, blobs: BlobStore, sessions: SessionTable, index: RepoIndex, read_only: bool = False, count_downloads: bool = False
    ) -> None:
        """count_downloads: zot's search DownloadCount, one DynamoDB write per manifest GET (extensions.search.downloadCount)."""
        self.store = store
        self.blobs = blobs
        self.sessions = sessions
        self.index = index
        self.writes_refused = read_only
        self.listeners: list[Callable[[str, str], None]] = []  # told (repo, digest) after each stored manifest: CVE scans
        self.count_downloads = count_downloads
        self.recent_pieces = RecentPieces()  # this instance's staged chunks, joined by its next PATCH without a read
        self.recent_sessions = RecentSessions()  # the sessions it advanced last, continued by their next chunk without a read

    def read_only(self, repo: str) -> bool:
        return self.writes_refused

    def blob_url(self, repo: str, location: BlobLocation, expires_in: int) -> str:
        return self.store.presigned_get(location.data_key, expires_in)

    def blob_bytes(self, repo: str, location: BlobLocation, first: int | None = None, last: int | None = None) -> Iterator[bytes]:
        return self.store.stream(location.data_key, first, last)

    def adopt_blob(self, repo: str, source: ObjectStore, location: BlobLocation) -> BlobLocation:
        """A mount from another storage location: S3 copies the bytes server-side, never through this process."""
        target = f"_data/{uuid.uuid4().hex}"
        self.store.copy_from(source, location.data_key, target)
        return self.blobs.add(repo, CommittedBlob(location.digest, location.size, target))

    # Blobs

    def check_blob(self, repo: str, digest: Digest, caller: Caller) -> BlobLocation:
        """HEAD: with dedupe on, a blob held by a repository the caller can read is linked here (as zot does).

        The link is a write (a holder item, one more reference), so only a caller who may push here
        gets it, never in read-only mode; anyone else sees only what the repository already holds.
        """
        linking = self._may_link(repo, caller)
        found = self.blobs.stat_or_link(repo, digest, caller.may_read) if linking else self.blobs.stat(repo, digest, FRESH_MISS)
        if found is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return found

    def _may_link(self, repo: str, caller: Caller) -> bool:
        """Whether a HEAD may create an implicit link in repo: the rule for any other blob write."""
        return not self.read_only(repo) and caller.may("create", repo)

    def blob(self, repo: str, digest: Digest) -> BlobLocation:
        return self.blobs.require(repo, digest, FRESH_MISS)  # a pull: half the read units, a miss re-read strongly

    def delete_blob(self, repo: str, digest: Digest) -> None:
        self.blobs.remove(repo, digest)

    def mount_blob(self, repo: str, digest: Digest, source: str, caller: Caller) -> BlobLocation | None:
        return self.blobs.mount(repo, digest, source, caller.may_read)

    # Uploads

    def start_upload(self, repo: str, algorithm: str) -> UploadSession:
        return self.sessions.create(repo, algorithm)

    def upload_monolithic(self, repo: str, digest: Digest, body: BinaryIO) -> BlobLocation:
        """POST ?digest=: the session lives only in this request, so DynamoDB never sees it."""
        return self._finish(UploadSession.transient(repo, digest.algorithm), body, digest, persisted=False)

    def upload_status(self, repo: str, session_id: str) -> UploadSession:
        return self.sessions.get(repo, session_id)

    def append_upload(self, repo: str, session_id: str, body: BinaryIO, start: int | None, length: int | None) -> UploadSession:
        """PATCH: streamed (no range) or a chunk that must start where the session ends."""
        if start is not None and length is not None and length < MIN_PART:
            return self._append_chunk(repo, session_id, body, start, length)
        session = self.sessions.claim(repo, session_id, expected_offset=start)
        writer = BlobWriter(self.store, session, recent=self.recent_pieces)
        try:
            before = session.offset
            with self.sessions.holding(session):
                writer.append(body)
            if length is not None and session.offset - before != length:
                raise RangeInvalid("chunk length does not match Content-Range")
        except BaseException:
            self._abandon(writer)
            raise
        self.sessions.save(session)
        return session

    def _append_chunk(self, repo: str, session_id: str, body: BinaryIO, start: int, length: int) -> UploadSession:
        """A chunk shorter than a part, read whole: one conditional save decides, with no lease to take and release.

        A chunk through Lambda costs one DynamoDB write, and no read when this instance advanced the
        session last. A new piece is written beside the save (its key is new); a part after it, under
        the number the save recorded, so racing requests never write the same part.
        """
        data = _read_exactly(body, length)
        session = self.recent_sessions.take(repo, session_id, start) or self.sessions.at_offset(repo, session_id, start)
        before = session.snapshot()
        writer = BlobWriter(self.store, session, recent=self.recent_pieces)
        seat = SEAT if length > UNBUDGETED_READ else 0
        writer.budget.acquire(seat)
        try:
            pending = self._or_abandon(writer, lambda: writer.take_chunk(data))
            if isinstance(pending, PendingPart):
                self._advance(writer, before, start, None)
                self._or_abandon(writer, lambda: writer.write_part(pending))
            else:
                self._advance(writer, before, start, pending)
        finally:
            writer.budget.release(seat)
        self.recent_sessions.keep(session)
        return session

    def _advance(self, writer: BlobWriter, before: UploadSession, start: int, piece_write: Future[None] | None) -> None:
        """Save the chunk's state while its piece (if any) is written; a refused save leaves nothing of its own behind."""
        try:
            self.sessions.advance(writer.session, start)
        except RegistryError:  # refused for sure: drop what this request wrote (after any other failure the save may have happened)
            _settle(piece_write)
            writer.drop_unsaved(before)
            raise
        except BaseException:
            _settle(piece_write)
            raise
        if piece_write is not None:
            self._or_abandon(writer, piece_write.result)

    def _or_abandon(self, writer: BlobWriter, action: Callable[[], T]) -> T:
        try:
            return action()
        except BaseException:
            self._abandon(writer)
            raise

    def finish_upload(self, repo: str, session_id: str, body: BinaryIO, digest: Digest, start: int | None) -> BlobLocation:
        session = self.sessions.claim(repo, session_id, expected_offset=start)
        with self.sessions.holding(session):
            return self._finish(session, body, digest)

    def cancel_upload(self, repo: str, session_id: str) -> None:
        session = self.sessions.claim(repo, session_id)
        BlobWriter(self.store, session).discard()
        self.sessions.delete(session)

    def _finish(self, session: UploadSession, body: BinaryIO, digest: Digest, persisted: bool = True) -> BlobLocation:
        writer = BlobWriter(self.store, session, recent=self.recent_pieces)
        try:
            writer.append(body, final=True)
            committed = writer.commit(digest)
        except BaseException:
            self._abandon(writer, persisted)
            raise
        location = self.blobs.add(session.repo, committed)
        if persisted:
            self.sessions.delete(session)
        return location

    def _abandon(self, writer: BlobWriter, persisted: bool = True) -> None:
        """A failed request ends its session: nothing it wrote can become visible."""
        writer.discard()
        if persisted:
            self.sessions.delete(writer.session)

    # Manifests

    def put_manifest(self, repo: str, reference: str, body: bytes, content_type: str | None, caller: Caller = ANONYMOUS) -> PushedManifest:
        """Validate, index, then write S3: a manifest or tag the index refuses never leaves an object behind.

        The index accepts first, in one transaction whose tag write is conditional on the caller's
        permission; S3 is written before the 201, so every acknowledged manifest is in the bucket.
        A crash in between leaves an index entry S3 does not back, never acknowledged: scrub reports
        it and the client's retry writes the objects.
        """
        expected = None if is_tag(reference) else Digest.parse(reference)
        manifest = parse_manifest(body, content_type, expected.algorithm if expected else "sha256")
        if expected is not None and manifest.digest != expected:
            raise DigestInvalid("manifest content does not match the digest in the URL", detail={"digest": reference})
        tag = reference if expected is None else None
        held = self._require_references(repo, manifest)
        uses = self.blobs.use_ops(repo, manifest.required_blobs())
        try:
            platforms, facts = self.indexed_facts(repo, manifest, held)
            self.index.put_manifest(repo, manifest, platforms, tag, uses, tag_rule(caller, repo), facts)
        except TagRefused as refused:
            raise caller.refusal("update" if caller.may("create", repo) else "create", repo) from refused
        digest = str(manifest.digest)
        self.store.put(manifest_object_key(repo, digest), body, content_type=manifest.media_type)
        if tag:
            self.store.put(tag_object_key(repo, tag), digest.encode(), content_type="text/plain")
        self._announce(repo, digest)
        return PushedManifest(manifest.digest, manifest.subject.digest if manifest.subject else None)

    def _announce(self, repo: str, digest: str) -> None:
        """A listener's failure (a queue down) never fails the push: the scan worker catches up later."""
        for listener in self.listeners:
            try:
                listener(repo, digest)
            except Exception:
                log.exception("manifest listener failed for %s@%s", repo, digest)

    def get_manifest(self, repo: str, reference: str) -> PulledManifest:
        stored = self._stored_manifest(repo, reference)
        body = stored.body if stored.body is not None else self.store.get(manifest_object_key(repo, stored.digest))
        if body is None:
            raise ManifestUnknown(detail={"reference": reference})
        if self.count_downloads:
            self._count_download(repo, stored.digest)
        return PulledManifest(stored.digest, stored.media_type, body)

    def _count_download(self, repo: str, digest: str) -> None:
        """A statistic never fails a pull: concurrent pulls of one repository may contend until the retries run out."""
        try:
            self.index.count_download(repo, digest)
        except TooManyRequests:
            log.warning("download of %s@%s not counted: the repository's counters are busy", repo, digest)

    def head_manifest(self, repo: str, reference: str) -> StoredManifest:
        return self._stored_manifest(repo, reference)

    def delete_manifest(self, repo: str, reference: str) -> None:
        """By tag: only the tag goes. By digest: the manifest and every tag that points to it."""
        if is_tag(reference):
            if not self.index.delete_tag(repo, reference):
                raise ManifestUnknown(detail={"tag": reference})
            self.store.delete(tag_object_key(repo, reference))
            return
        digest = Digest.parse(reference)
        dropped = self.index.drop_manifest(repo, str(digest))
        if dropped is None:
            raise ManifestUnknown(detail={"digest": reference})
        self.store.delete(*[tag_object_key(repo, t) for t in dropped.tags])
        if dropped.item:  # empty when a concurrent delete took the manifest itself (and released it)
            self._release(repo, digest, dropped.item)

    def forget_manifest(self, repo: str, digest: Digest) -> None:
        """Scrub's repair: an index entry whose S3 object is gone goes with its tags, releasing what it used if its body was inline."""
        dropped = self.index.drop_manifest(repo, str(digest))
        if dropped is not None and dropped.item:
            self._release(repo, digest, dropped.item)

    def remove_unused_manifest(self, repo: str, digest: Digest, tagged: int) -> bool:
        """GC's delete: only while no index uses the manifest and no tag was written since GC read `tagged`."""
        item = self.index.drop_unused_manifest(repo, str(digest), tagged)
        if item is None:
            return False
        self._release(repo, digest, item)
        return True

    def remove_tag(self, repo: str, tag: str, digest: str) -> bool:
        """GC's untag: only while the tag still points where GC saw it."""
        if not self.index.delete_tag(repo, tag, digest):
            return False
        self.store.delete(tag_object_key(repo, tag))
        return True

    def _release(self, repo: str, digest: Digest, item: dict[str, Any]) -> None:
        """After the index let a manifest go: delete its object, then release the blobs and child manifests it used."""
        key = manifest_object_key(repo, str(digest))
        body = item.get("body") or self.store.get(key)
        self.store.delete(key)
        if not body:
            return
        try:
            manifest = parse_manifest(body, str(item.get("mediaType")), digest.algorithm)
        except RegistryError as error:  # stored before today's limits: its uses stay counted (kept longer, never lost)
            log.warning("manifest %s@%s was deleted but its references cannot be read: %s", repo, digest, error.message)
            return
        self.blobs.release(repo, manifest.required_blobs())
        self.index.release_children(repo, [str(c.digest) for c in manifest.children])

    def _stored_manifest(self, repo: str, reference: str) -> StoredManifest:
        by_tag = is_tag(reference)
        stored = self.index.tagged(repo, reference) if by_tag else self.index.manifest(repo, str(Digest.parse(reference)))
        if stored is None:
            raise ManifestUnknown(detail={"reference": reference})
        return stored

    def _require_references(self, repo: str, manifest: Manifest) -> dict[Digest, BlobLocation]:
        """Every blob and child manifest must be in the repository; returns the blobs, found in one read."""
        required = manifest.required_blobs()
        held = self.blobs.locate(repo, required)
        missing = [str(d) for d in required if d not in held]
        if manifest.is_index:
            children = [str(c.digest) for c in manifest.children]
            present = self.index.existing_manifests(repo, children) if children else set()
            missing += [d for d in children if d not in present]
        if missing:
            raise ManifestBlobUnknown(detail={"missing": missing[:20]})
        return held

    def indexed_facts(self, repo: str, manifest: Manifest, held: dict[Digest, BlobLocation] | None = None) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """Platforms and the config's facts for search (created, labels, history), from one read of the config."""
        if manifest.is_index:
            return [c.platform for c in manifest.children if c.platform], {}
        config = manifest.config
        if config is None or config.media_type not in IMAGE_CONFIG_TYPES or config.size > CONFIG_READ_LIMIT:
            return [], {}
        location = held.get(config.digest) if held is not None else self.blobs.stat(repo, config.digest)
        raw = self.store.get(location.data_key) if location else None
        facts = config_facts(raw) if raw else {}
        platform = facts.pop("platform", None)
        return ([platform] if platform else []), facts

    # Listings

    def tags(self, repo: str, limit: int | None, after: str | None) -> list[str]:
        """The repository's existence is read only when it lists no tag: one read for most listings."""
        found = self.index.tags(repo, limit, after)
        if not found and not self.index.repository_exists(repo):
            raise NameUnknown(detail={"name": repo})
        return found

    def catalog(self, limit: int | None, after: str | None, caller: Caller) -> list[str]:
        """Only repositories the caller may read, reading on past the others so a page stays full and its Link right."""
        names: list[str] = []
        while True:
            batch = None if limit is None else max(limit - len(names), 100)
            page = self.index.repositories(batch, after)
            names += [r for r in page if caller.may_read(r)]
            if batch is None or limit is None or len(page) < batch or len(names) >= limit:
                return names if limit is None else names[:limit]
            after = page[-1]

    def referrers(self, repo: str, subject: Digest, artifact_type: str | None) -> list[dict[str, object]]:
        found = self.index.referrers(repo, str(subject))
        if artifact_type is not None:
            found = [d for d in found if d.get("artifactType") == artifact_type]
        return found


def _read_exactly(body: BinaryIO, length: int) -> bytes:
    """A chunk's body, which must hold exactly the bytes its Content-Range says."""
    data = body.read(length + 1)
    if len(data) != length:
        raise RangeInvalid("chunk length does not match Content-Range")
    return data


def _settle(write: Future[None] | None) -> None:
    """Wait for a write whose outcome no longer matters."""
    if write is not None:
        wait([write])
