"""Blobs of a storage location: which repositories hold each digest, and where its bytes are.

With dedupe on, one data object per digest serves every repository; an S3 conditional write on the
digest's pointer object decides which upload's bytes become that object when two commits race, and
DynamoDB counts references. With dedupe off each repository keeps its own copy.

Blob table items (partition: digest, sort: holder):
  holder "#"          the shared object (dedupe): data key, size, refs
  holder <repository> that repository holds the blob: data key, size; `deleted` marks a tombstone
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.dynamo import Table
from chalicelib.errors import BlobUnknown
from chalicelib.objectstore import ObjectStore
from chalicelib.references import Digest
from chalicelib.uploads import CommittedBlob

SHARED = "#"
HOLDERS_EXAMINED = 50  # a popular layer has many holders; a few readable ones are enough to find


@dataclass(frozen=True)
class BlobLocation:
    digest: Digest
    size: int
    data_key: str


def _location(digest: Digest, item: dict[str, object]) -> BlobLocation:
    return BlobLocation(digest, int(item["size"]), str(item["data"]))  # type: ignore[call-overload]


def pointer_key(digest: Digest, repo: str | None) -> str:
    """The S3 object naming a digest's data: location-wide with dedupe, per repository without."""
    scope = f"repositories/{repo}/" if repo else ""
    return f"{scope}_blobs/{digest.algorithm}/{digest.hex}"


class BlobStore:
    def __init__(self, store: ObjectStore, table: Table, dedupe: bool) -> None:
        self.store = store
        self.table = table
        self.dedupe = dedupe

    def stat(self, repo: str, digest: Digest) -> BlobLocation | None:
        """The blob as this repository holds it; one consistent DynamoDB read."""
        item = self.table.get(str(digest), repo)
        return None if item is None or item.get("deleted") else _location(digest, item)

    def require(self, repo: str, digest: Digest) -> BlobLocation:
        found = self.stat(repo, digest)
        if found is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return found

    def locate(self, repo: str, digests: list[Digest]) -> dict[Digest, BlobLocation]:
        """Those of these digests the repository holds; one batched read."""
        if not digests:
            return {}
        by_name = {str(d): d for d in digests}
        items = self.table.batch_get([(name, repo) for name in by_name])
        return {by_name[i["digest"]]: _location(by_name[i["digest"]], i) for i in items if not i.get("deleted")}

    def add(self, repo: str, blob: CommittedBlob) -> BlobLocation:
        """Make a freshly uploaded blob visible in a repository."""
        location = BlobLocation(blob.digest, blob.size, blob.data_key)
        if not self.dedupe:
            return self._add_private(repo, location)
        record = json.dumps({"data": blob.data_key, "size": blob.size}).encode()
        if not self.store.put(pointer_key(blob.digest, None), record, content_type="application/json", if_absent=True):
            existing = self._shared(blob.digest)
            self.store.delete(blob.data_key)
            location = existing or location
        self._link_shared(repo, location)
        return location

    def stat_or_link(self, repo: str, digest: Digest, may_read: Callable[[str], bool]) -> BlobLocation | None:
        """zot's implicit dedupe link: a blob a readable repository holds appears here too, unless deleted here."""
        item = self.table.get(str(digest), repo)
        if item is not None:
            return None if item.get("deleted") else _location(digest, item)
        if not self.dedupe:
            return None
        for holder in self.table.query(str(digest), limit=HOLDERS_EXAMINED):
            name = str(holder["holder"])
            if name not in (SHARED, repo) and not holder.get("deleted") and may_read(name):
                location = _location(digest, holder)
                self._link_shared(repo, location)
                return location
        return None

    def mount(self, repo: str, digest: Digest, source: str, may_read: Callable[[str], bool]) -> BlobLocation | None:
        """An explicit cross-repository mount; it also restores a blob deleted from repo."""
        if source == repo or not may_read(source):
            return self.stat(repo, digest) if source == repo else None
        found = self.stat(source, digest)
        if found is None:
            return None
        if self.dedupe:
            self._link_shared(repo, found)
            return found
        return self.stat(repo, digest) or self._copy_private(repo, found)

    def remove(self, repo: str, digest: Digest) -> None:
        """Delete a blob from one repository, leaving a tombstone so no implicit link brings it back."""
        tombstone = {"digest": str(digest), "holder": repo, "deleted": True, "size": 0, "data": "", "created": int(time.time())}
        operations = [self.table.op_put(tombstone, "attribute_exists(digest) AND attribute_not_exists(deleted)")]
        if self.dedupe:
            operations.append(self.table.op_update((str(digest), SHARED), "ADD refs :minus", {":minus": -1}))
        if self.table.transact(operations) is not None:
            raise BlobUnknown(detail={"digest": str(digest)})

    def restore_link(self, repo: str, location: BlobLocation) -> None:
        """Record that repo holds a blob, as found in S3 by the index rebuild."""
        if self.dedupe:
            self._link_shared(repo, location)
            return
        link = {"digest": str(location.digest), "holder": repo, "data": location.data_key, "size": location.size, "created": int(time.time())}
        self.table.put(link, "attribute_not_exists(digest)")

    def _shared(self, digest: Digest) -> BlobLocation | None:
        item = self.table.get(str(digest), SHARED)
        if item is not None:
            return _location(digest, item)
        raw = self.store.get(pointer_key(digest, None))
        if raw is None:
            return None
        record = json.loads(raw)
        return BlobLocation(digest, int(record["size"]), str(record["data"]))

    def _link_shared(self, repo: str, location: BlobLocation) -> None:
        """Count one more holder of the shared object unless repo already holds it."""
        digest = str(location.digest)
        link = {"digest": digest, "holder": repo, "data": location.data_key, "size": location.size, "created": int(time.time())}
        operations = [
            self.table.op_put(link, "attribute_not_exists(digest) OR deleted = :yes", {":yes": True}),
            self.table.op_update(
                (digest, SHARED),
                "SET #data = if_not_exists(#data, :data), #size = if_not_exists(#size, :size) ADD refs :one",
                {":data": location.data_key, ":size": location.size, ":one": 1},
                names={"#data": "data", "#size": "size"},
            ),
        ]
        self.table.transact(operations)  # cancelled only when repo already holds it: nothing to do

    def _add_private(self, repo: str, location: BlobLocation) -> BlobLocation:
        record = json.dumps({"data": location.data_key, "size": location.size}).encode()
        link = {"digest": str(location.digest), "holder": repo, "data": location.data_key, "size": location.size, "created": int(time.time())}
        if not self.table.put(link, "attribute_not_exists(digest) OR deleted = :yes", {":yes": True}):
            self.store.delete(location.data_key)
            return self.require(repo, location.digest)
        self.store.put(pointer_key(location.digest, repo), record, content_type="application/json")
        return location

    def _copy_private(self, repo: str, source: BlobLocation) -> BlobLocation:
        """Without dedupe a mount copies server-side, so the target owns its bytes."""
        target = f"_data/{uuid.uuid4().hex}"
        self.store.copy(source.data_key, target)
        return self._add_private(repo, BlobLocation(source.digest, source.size, target))
