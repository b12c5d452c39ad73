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


@dataclass(frozen=True)
class BlobLocation:
    digest: Digest
    size: int
    data_key: str


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
        if item is None or item.get("deleted"):
            return None
        return BlobLocation(digest, int(item["size"]), str(item["data"]))

    def require(self, repo: str, digest: Digest) -> BlobLocation:
        found = self.stat(repo, digest)
        if found is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        return found

    def missing(self, repo: str, digests: list[Digest]) -> list[Digest]:
        """Which of these digests the repository does not hold; one batched read."""
        if not digests:
            return []
        items = self.table.batch_get([(str(d), repo) for d in set(digests)])
        held = {i["digest"] for i in items if not i.get("deleted")}
        return [d for d in digests if str(d) not in held]

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

    def link_from(self, repo: str, digest: Digest, sources: list[str], may_read: Callable[[str], bool]) -> BlobLocation | None:
        """Give repo a blob that a readable source repository holds: a mount, or zot's implicit dedupe link."""
        tombstone = self.table.get(str(digest), repo)
        if tombstone is not None and not tombstone.get("deleted"):
            return BlobLocation(digest, int(tombstone["size"]), str(tombstone["data"]))
        for source in sources:
            if source == repo or not may_read(source):
                continue
            found = self.stat(source, digest)
            if found is None:
                continue
            if not self.dedupe:
                return self._copy_private(repo, found)
            self._link_shared(repo, found)
            return found
        return None

    def holders(self, digest: Digest, limit: int = 50) -> list[str]:
        """Repositories that hold a digest, for the implicit link on HEAD (dedupe on)."""
        items = self.table.query(str(digest), limit=limit + 1)
        return [i["holder"] for i in items if i["holder"] != SHARED and not i.get("deleted")]

    def was_deleted(self, repo: str, digest: Digest) -> bool:
        item = self.table.get(str(digest), repo)
        return bool(item and item.get("deleted"))

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
            return BlobLocation(digest, int(item["size"]), str(item["data"]))
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
