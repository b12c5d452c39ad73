"""Blobs of a storage location: which repositories hold each digest, and where its bytes are.

With dedupe on, one data object per digest serves every repository; an S3 conditional write on the
digest's pointer object decides which upload's bytes become that object when two commits race, and
DynamoDB counts references. With dedupe off each repository keeps its own copy.

Blob table items (partition: digest, sort: holder):
  holder "#"          the shared object (dedupe): data key, size, refs; `gc_deleting` while GC removes it
  holder <repository> that repository holds the blob: data key, size, `uses` (manifests referring to it);
                      `deleted` marks a tombstone so implicit links never bring a deleted blob back

Garbage collection finds candidates in the sparse `orphans` index (gc_shard, orphan): a link is in it
from its upload until a manifest uses it and again once no manifest does; the shared record while no
repository holds it. A manifest PUT adds to `uses` in the same transaction that stores it, on the
condition that the link still exists, and GC deletes a link only while `uses` is zero: DynamoDB orders
the two, so a manifest is either refused or keeps its blobs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.spec.errors import BlobUnknown, TooManyRequests
from chalicelib.spec.references import Digest
from chalicelib.storage.dynamo import STRONG, Table, seen_uses
from chalicelib.storage.index import Uses
from chalicelib.storage.objectstore import ObjectStore
from chalicelib.storage.uploads import CommittedBlob

SHARED = "#"
ORPHANS_INDEX = "orphans"
HOLDERS_EXAMINED = 50  # a popular layer has many holders; a few readable ones are enough to find
COMMIT_ATTEMPTS = 8  # a commit waits out a GC that is removing the same digest's old object
LINK_CONDITION = "attribute_exists(#data) AND attribute_not_exists(deleted)"
NAMES = {"#data": "data"}
RELEASE = "ADD uses :minus SET orphan = :now, gc_shard = :shard"


@dataclass(frozen=True)
class BlobLocation:
    digest: Digest
    size: int
    data_key: str


def _location(digest: Digest, item: dict[str, Any]) -> BlobLocation:
    return BlobLocation(digest, int(item["size"]), str(item["data"]))


def pointer_key(digest: Digest, repo: str | None) -> str:
    """The S3 object naming a digest's data: location-wide with dedupe, per repository without."""
    scope = f"repositories/{repo}/" if repo else ""
    return f"{scope}_blobs/{digest.algorithm}/{digest.hex}"


def gc_shard(kind: str, digest: str) -> str:
    """Spread the orphans index over 16 partitions per kind ("l" links, "s" shared objects)."""
    return f"{kind}{digest[-1]}"


def _now() -> int:
    return int(time.time())


class BlobStore:
    def __init__(self, store: ObjectStore, table: Table, dedupe: bool) -> None:
        self.store = store
        self.table = table
        self.dedupe = dedupe

    def stat(self, repo: str, digest: Digest, read: str = STRONG) -> BlobLocation | None:
        """The blob as this repository holds it; one DynamoDB read (dynamo.FRESH_MISS for a pull: half the units)."""
        item = self.table.get(str(digest), repo, read)
        return None if item is None or item.get("deleted") else _location(digest, item)

    def require(self, repo: str, digest: Digest, read: str = STRONG) -> BlobLocation:
        found = self.stat(repo, digest, read)
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
        ours = BlobLocation(blob.digest, blob.size, blob.data_key)
        if not self.dedupe:
            return self._add_private(repo, ours)
        record = json.dumps({"data": blob.data_key, "size": blob.size}).encode()
        for attempt in range(COMMIT_ATTEMPTS):
            if self.store.put(pointer_key(blob.digest, None), record, content_type="application/json", if_absent=True):
                if self._link_shared(repo, ours):
                    return ours
            else:
                existing, deleting = self._shared(blob.digest)
                if existing is not None and not deleting and self._link_shared(repo, existing):
                    if existing.data_key != blob.data_key:
                        self.store.delete(blob.data_key)
                    return existing
            time.sleep(0.05 * (attempt + 1))
        raise TooManyRequests("the blob is being garbage-collected; retry the upload", headers={"Retry-After": "1"})

    def stat_or_link(self, repo: str, digest: Digest, may_read: Callable[[str], bool]) -> BlobLocation | None:
        """zot's implicit dedupe link: a blob a readable repository holds appears here too, unless deleted here.

        It writes; the model asks only for callers who may push to repo (else it calls `stat`). One Query
        reads this repository's item and the other holders together, so a new digest (most HEADs of a
        push) costs one call; strongly consistent, as a stale answer would make a client skip an upload.
        """
        if not self.dedupe:
            return self.stat(repo, digest)
        holders = list(self.table.query(str(digest), limit=HOLDERS_EXAMINED))
        item = next((h for h in holders if h["holder"] == repo), None)
        if item is None and len(holders) >= HOLDERS_EXAMINED:  # a popular digest: this repository may sort later
            item = self.table.get(str(digest), repo)
        if item is not None:
            return None if item.get("deleted") else _location(digest, item)
        for holder in holders:
            name = str(holder["holder"])
            if name not in (SHARED, repo) and not holder.get("deleted") and may_read(name):
                location = _location(digest, holder)
                return location if self._link_shared(repo, location) else None
        return None

    def mount(self, repo: str, digest: Digest, source: str, may_read: Callable[[str], bool]) -> BlobLocation | None:
        """An explicit cross-repository mount; it also restores a blob deleted from repo."""
        if source == repo or not may_read(source):
            return self.stat(repo, digest) if source == repo else None
        found = self.stat(source, digest)
        if found is None:
            return None
        if self.dedupe:
            return found if self._link_shared(repo, found) else None
        return self.stat(repo, digest) or self._copy_private(repo, found)

    def remove(self, repo: str, digest: Digest) -> None:
        """Delete a blob from one repository, leaving a tombstone so no implicit link brings it back."""
        held = self.stat(repo, digest)
        if held is None:
            raise BlobUnknown(detail={"digest": str(digest)})
        tombstone: dict[str, Any] = {"digest": str(digest), "holder": repo, "deleted": True, "created": _now()}
        if not self.dedupe:  # the bytes are this repository's own: GC deletes them
            tombstone |= {"data": held.data_key, "size": held.size, "gc_shard": gc_shard("l", str(digest)), "orphan": 0}
        operations = [self.table.op_put(tombstone, "attribute_exists(digest) AND attribute_not_exists(deleted)")]
        if self.dedupe:
            operations.append(self._release_shared_op(str(digest)))
        if self.table.transact(operations) is not None:
            raise BlobUnknown(detail={"digest": str(digest)})
        if not self.dedupe:
            self.store.delete(pointer_key(digest, repo))

    def restore_link(self, repo: str, location: BlobLocation) -> None:
        """Record that repo holds a blob, as found in S3 by the index rebuild."""
        if self.dedupe:
            self._link_shared(repo, location)
            return
        self.table.put(self._new_link(repo, location), "attribute_not_exists(digest)")

    # References from manifests (see the module docstring)

    def use_ops(self, repo: str, digests: list[Digest]) -> Uses:
        """Transaction items counting a new manifest's use of its blobs (they fail if a link is gone), and their undoing."""
        unique = list(dict.fromkeys(digests))
        add = [self.table.op_update((str(d), repo), "ADD uses :one REMOVE orphan", {":one": 1}, LINK_CONDITION, NAMES) for d in unique]
        return Uses(add, [self._release_op(repo, d) for d in unique])

    def release(self, repo: str, digests: list[Digest]) -> None:
        """A manifest that used these blobs is gone: once unused they wait gcDelay, then GC may take them."""
        for digest in dict.fromkeys(digests):
            values = {":minus": -1, ":now": _now(), ":shard": gc_shard("l", str(digest))}
            self.table.update((str(digest), repo), RELEASE, values, LINK_CONDITION, NAMES)

    def _release_op(self, repo: str, digest: Digest) -> dict[str, Any]:
        values = {":minus": -1, ":now": _now(), ":shard": gc_shard("l", str(digest))}
        return self.table.op_update((str(digest), repo), RELEASE, values, LINK_CONDITION, NAMES)

    def set_uses(self, link: dict[str, Any], expected: int, lower: bool) -> bool | None:
        """Set a link's count as pushes would have left it (the index rebuild); True set, False right already, None raced.

        Used links are no GC candidates, unused ones are (from now). lower=False never takes uses away.
        """
        used, orphaned = int(link.get("uses", 0)), "orphan" in link
        expected = expected if lower else max(expected, used)
        if used == expected and orphaned == (expected == 0):
            return False
        digest, repo = str(link["digest"]), str(link["holder"])
        seen, values = seen_uses(link)
        if expected > 0:
            expression, values = "SET uses = :n REMOVE orphan", {**values, ":n": expected}
        else:
            expression = "SET uses = :n, orphan = :now, gc_shard = :shard"
            values = {**values, ":n": 0, ":now": _now(), ":shard": gc_shard("l", digest)}
        return None if self.table.update((digest, repo), expression, values, f"{LINK_CONDITION} AND {seen}", NAMES) is None else True

    # Garbage collection

    def orphan_candidates(self, kind: str, before: int) -> Iterator[dict[str, Any]]:
        """Links ("l") or shared objects ("s") orphaned before a time, oldest first, shard by shard."""
        for shard in "0123456789abcdef":
            yield from self.table.query_index(ORPHANS_INDEX, "gc_shard", f"{kind}{shard}", "orphan", before)

    def collect_link(self, item: dict[str, Any], before: int) -> int | None:
        """Delete an unused link orphaned before the cutoff: None if it is kept, else the bytes freed (0 with dedupe)."""
        digest, repo = str(item["digest"]), str(item["holder"])
        condition = "orphan < :before AND (attribute_not_exists(uses) OR uses <= :zero)"
        values = {":before": before, ":zero": 0}
        if item.get("deleted"):  # a tombstone whose private bytes are still stored
            cleared = self.table.update((digest, repo), "REMOVE #data, orphan, gc_shard", values, condition, {"#data": "data"})
            if cleared is None:
                return None
            self.store.delete(str(item["data"]))
            return int(item.get("size", 0))
        operations = [self.table.op_delete((digest, repo), condition, values)]
        if self.dedupe:
            operations.append(self._release_shared_op(digest))
        if self.table.transact(operations) is not None:
            self.table.update((digest, repo), "REMOVE orphan", {":zero": 0}, "uses > :zero")  # used again: not a candidate
            return None
        if not self.dedupe:
            self.store.delete(str(item["data"]), pointer_key(Digest.parse(digest), repo))
            return int(item["size"])
        return 0

    def collect_shared(self, item: dict[str, Any]) -> int | None:
        """Delete a shared object no repository holds (mark, pointer, bytes, record): None if kept, else bytes freed."""
        digest = str(item["digest"])
        condition = "refs <= :zero AND attribute_exists(#data)"
        marked = self.table.update((digest, SHARED), "SET gc_deleting = :now", {":now": _now(), ":zero": 0}, condition, NAMES)
        if marked is None:
            self.table.update((digest, SHARED), "REMOVE orphan", {":zero": 0}, "refs > :zero")
            return None
        pointer = pointer_key(Digest.parse(digest), None)
        raw = self.store.get(pointer)
        stale_pointer = raw is not None and json.loads(raw).get("data") == marked["data"]
        self.store.delete(*([pointer] if stale_pointer else []), str(marked["data"]))
        self.table.delete(digest, SHARED, condition="attribute_exists(gc_deleting)")
        return int(marked["size"])

    # Internals

    def _new_link(self, repo: str, location: BlobLocation) -> dict[str, Any]:
        """A link starts orphaned: its manifest is pushed after it, and gcDelay protects it until then."""
        digest = str(location.digest)
        now = _now()
        link = {"digest": digest, "holder": repo, "data": location.data_key, "size": location.size, "created": now}
        return link | {"orphan": now, "gc_shard": gc_shard("l", digest)}

    def _release_shared_op(self, digest: str) -> dict[str, Any]:
        values = {":minus": -1, ":now": _now(), ":shard": gc_shard("s", digest)}
        expression = "ADD refs :minus SET orphan = :now, gc_shard = :shard"
        return self.table.op_update((digest, SHARED), expression, values, "attribute_exists(#data)", {"#data": "data"})

    def _shared(self, digest: Digest) -> tuple[BlobLocation | None, bool]:
        """The shared object's location and whether GC is removing it."""
        item = self.table.get(str(digest), SHARED)
        if item is not None:
            return _location(digest, item), bool(item.get("gc_deleting"))
        raw = self.store.get(pointer_key(digest, None))
        if raw is None:
            return None, False
        record = json.loads(raw)
        return BlobLocation(digest, int(record["size"]), str(record["data"])), False

    def _link_shared(self, repo: str, location: BlobLocation) -> bool:
        """Count one more holder of the shared object unless repo holds it; False while GC removes the object."""
        digest = str(location.digest)
        operations = [
            self.table.op_put(self._new_link(repo, location), "attribute_not_exists(digest) OR deleted = :yes", {":yes": True}),
            self.table.op_update(
                (digest, SHARED),
                "SET #data = if_not_exists(#data, :data), #size = if_not_exists(#size, :size), gc_shard = :shard ADD refs :one REMOVE orphan",
                {":data": location.data_key, ":size": location.size, ":one": 1, ":shard": gc_shard("s", digest)},
                "attribute_not_exists(gc_deleting)",
                {"#data": "data", "#size": "size"},
            ),
        ]
        reasons = self.table.transact(operations)
        return reasons is None or reasons[1] != "ConditionalCheckFailed"

    def _add_private(self, repo: str, location: BlobLocation) -> BlobLocation:
        record = json.dumps({"data": location.data_key, "size": location.size}).encode()
        if not self.table.put(self._new_link(repo, location), "attribute_not_exists(digest) OR deleted = :yes", {":yes": True}):
            self.store.delete(location.data_key)
            return self.require(repo, location.digest)
        self.store.put(pointer_key(location.digest, repo), record, content_type="application/json")
        return location

    def _copy_private(self, repo: str, source: BlobLocation) -> BlobLocation:
        """Without dedupe a mount copies server-side, so the target owns its bytes."""
        target = f"_data/{uuid.uuid4().hex}"
        self.store.copy(source.data_key, target)
        return self._add_private(repo, BlobLocation(source.digest, source.size, target))
