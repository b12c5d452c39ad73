"""The repository index in DynamoDB: catalog, tags, manifests and referrers.

It holds what search needs (sizes, platforms, push times, annotations) so listings never read S3,
and small manifest bodies inline so a pull by tag is one read. S3 stays the source of truth:
`rebuild.py` recreates all of this from the bucket.

Items (partition: repo, sort: key):
  ("_catalog", <repo>)         the repository exists; `manifests` counts its manifests, `version` counts
                               every change to its manifests and tags (bumped in the same transaction),
                               `stars` how many users starred it, `downloads` its pulls (when counted)
  ("_summaries", <repo>)       search's summary of the repository as of catalog `version` (its own item,
                               so catalog listings and GC never read the summaries' bytes)
  (<repo>, "t#<tag>")          a tag: digest, media type, size, inline body
  (<repo>, "m#<digest>")       a manifest: descriptors, subject, platform(s), sizes, push time, inline body
  (<repo>, "r#<subject>#<d>")  a referrer of <subject>: its descriptor for the referrers API
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.spec.errors import ManifestBlobUnknown, TooManyRequests
from chalicelib.spec.manifests import Manifest
from chalicelib.storage.dynamo import EVENTUAL, FRESH_MISS, STRONG, Table, seen_uses

CATALOG = "_catalog"  # not a valid repository name, so it cannot collide with one
SUMMARIES = "_summaries"
LISTINGS = "_listings"  # search's per-image listing rows of a repository, kept apart so the home page never reads them
GC_STATE = "_gc"
INLINE_LIMIT = 300 * 1024  # DynamoDB items stop at 400 KB
ITEM_BUDGET = 350 * 1024
# What an item gives up, in order, when it would not fit: all of it can be read back from S3.
SHEDDABLE = ("history", "body", "labels", "annotations", "layers", "children", "config", "platforms")
SUMMARY_BUDGET = 300 * 1024  # a repository summary larger than this is not cached: search recomputes it
TRANSACTION_LIMIT = 100
PUT_ATTEMPTS = 4  # a push that keeps meeting a concurrent delete of the same digest gives up with 429
TagRule = Literal["any", "create", "update"]


class TagRefused(Exception):
    """The tag exists (or not) contrary to what the caller may do; the model turns it into the caller's refusal."""


@dataclass(frozen=True)
class DroppedManifest:
    """What a client's delete removed: the manifest's item (its body, subject, children; empty when a concurrent
    delete took the manifest) and the tags this delete removed."""

    item: dict[str, Any]
    tags: list[str]


@dataclass(frozen=True)
class Uses:
    """Transaction items counting a manifest's uses of its blobs, and the items that take them back."""

    add: list[dict[str, Any]] = field(default_factory=list)
    undo: list[dict[str, Any]] = field(default_factory=list)


def tag_key(tag: str) -> str:
    return f"t#{tag}"


def manifest_key(digest: str) -> str:
    return f"m#{digest}"


def referrer_key(subject: str, digest: str) -> str:
    return f"r#{subject}#{digest}"


@dataclass(frozen=True)
class StoredManifest:
    digest: str
    media_type: str
    size: int
    body: bytes | None  # None when too large to keep inline: read it from S3
    subject: str | None = None


def _approximate_size(item: dict[str, Any]) -> int:
    return sum(len(k) + (len(v) if isinstance(v, bytes) else len(json.dumps(v, default=str))) for k, v in item.items())


def fit_item(item: dict[str, Any]) -> dict[str, Any]:
    """Drop optional facts until the item fits DynamoDB; `partial` tells readers to go to S3."""
    for name in SHEDDABLE:
        if _approximate_size(item) <= ITEM_BUDGET:
            break
        if item.get(name) is not None:
            item[name] = None
            item["partial"] = True
    return item


def _stored(item: dict[str, Any], digest: str) -> StoredManifest:
    return StoredManifest(digest, str(item["mediaType"]), int(item["size"]), item.get("body"), item.get("subject"))


class RepoIndex:
    def __init__(self, table: Table) -> None:
        self.table = table

    def manifest_item(self, repo: str, manifest: Manifest, platforms: list[dict[str, str]], facts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything search will list about a manifest, written once at push time (facts: the config's created, labels, history)."""
        body = manifest.body if len(manifest.body) <= INLINE_LIMIT else None
        return fit_item({
            "repo": repo,
            "key": manifest_key(str(manifest.digest)),
            "mediaType": manifest.media_type,
            "size": len(manifest.body),
            "body": body,
            "pushed": int(time.time()),
            "artifactType": manifest.referrer_artifact_type(),
            "subject": str(manifest.subject.digest) if manifest.subject else None,
            "config": manifest.config.as_index() if manifest.config else None,
            "layers": [layer.as_index() for layer in manifest.layers] or None,
            "children": [child.as_index() for child in manifest.children] or None,
            "platforms": platforms or None,
            "annotations": manifest.annotations or None,
            "totalSize": len(manifest.body) + manifest.layers_size() + sum(c.size for c in manifest.children),
            **{k: v for k, v in (facts or {}).items() if k in ("created", "labels", "history")},
        })

    def put_manifest(
        self,
        repo: str,
        manifest: Manifest,
        platforms: list[dict[str, str]],
        tag: str | None,
        uses: Uses | None = None,
        tag_rule: TagRule = "any",
        facts: dict[str, Any] | None = None,
    ) -> None:
        """Index a manifest with its tag, catalog count, referrer entry and uses of what it refers to, atomically.

        The uses fail the transaction if GC took a blob meanwhile: the manifest is then refused.
        Re-pushing a stored digest only moves the tag. tag_rule is the caller's permission, checked
        by the tag write's own condition so no concurrent push can turn a create into an update.
        """
        item = self.manifest_item(repo, manifest, platforms, facts) | ({"tagged": 1} if tag else {})
        children = [str(c.digest) for c in manifest.children]
        uses = uses or Uses()
        uses = Uses(uses.add + self.child_use_ops(repo, children), uses.undo + self.child_release_ops(repo, children))
        for _ in range(PUT_ATTEMPTS):
            if self._insert(repo, manifest, item, tag, uses, tag_rule):
                return
            if tag is None or self._retag(repo, item, tag, tag_rule):
                return
        raise TooManyRequests("the manifest is being deleted and pushed at once; retry", headers={"Retry-After": "1"})

    def _insert(self, repo: str, manifest: Manifest, item: dict[str, Any], tag: str | None, uses: Uses, tag_rule: TagRule) -> bool:
        """The first push of a digest; False when it is stored already (the caller then only moves the tag)."""
        operations = [
            self.table.op_put(item, "attribute_not_exists(#k)", names={"#k": "key"}),
            self.table.op_update((CATALOG, repo), "ADD manifests :one, version :one SET updated = :now", {":one": 1, ":now": item["pushed"]}),
        ]
        if tag:
            operations.append(self._tag_op(repo, tag, item, tag_rule))
        if manifest.subject:
            operations.append(self.table.op_put(self._referrer_item(repo, manifest, item)))
        room = TRANSACTION_LIMIT - len(operations)
        counted, inline = (uses.add[:-room] if room < len(uses.add) else []), uses.add[-room:] if room else []
        if counted and self.table.get(repo, manifest_key(str(manifest.digest))) is not None:
            return False
        self._count_ahead(counted, uses.undo[: len(counted)])
        reasons = self.table.transact(operations + inline)
        if reasons is None:
            return True
        self._undo(uses.undo[: len(counted)])
        if reasons[0] == "ConditionalCheckFailed":
            return False
        if tag and reasons[2] == "ConditionalCheckFailed":
            raise TagRefused(tag)
        raise ManifestBlobUnknown("a blob or manifest it refers to was removed meanwhile; push them again")

    def _count_ahead(self, add: list[dict[str, Any]], undo: list[dict[str, Any]]) -> None:
        """Over DynamoDB's 100 items a transaction, uses beyond the last batch are counted first.

        A refusal takes them back, so nothing stays counted for a manifest that was not stored; only
        a crash in between leaves a count too high, which keeps a blob longer and never loses one.
        """
        for start in range(0, len(add), TRANSACTION_LIMIT):
            if self.table.transact(add[start : start + TRANSACTION_LIMIT]) is not None:
                self._undo(undo[:start])
                raise ManifestBlobUnknown("a blob or manifest it refers to was removed meanwhile; push them again")

    def _undo(self, undo: list[dict[str, Any]]) -> None:
        for start in range(0, len(undo), TRANSACTION_LIMIT):
            self.table.transact(undo[start : start + TRANSACTION_LIMIT])

    def _retag(self, repo: str, item: dict[str, Any], tag: str, tag_rule: TagRule) -> bool:
        """Point a tag at a stored manifest; False when the manifest went meanwhile (the caller inserts it again)."""
        marked = self.table.op_update((repo, str(item["key"])), "ADD tagged :one", {":one": 1}, "attribute_exists(mediaType)")
        reasons = self.table.transact([self._tag_op(repo, tag, item, tag_rule), marked, self._changed(repo)])
        if reasons is None:
            return True
        if reasons[0] == "ConditionalCheckFailed":
            raise TagRefused(tag)
        return False

    def _tag_op(self, repo: str, tag: str, item: dict[str, Any], tag_rule: TagRule) -> dict[str, Any]:
        """The tag write, conditional on what the caller may do: create (absent, or already this digest) or update (present)."""
        condition = {"any": None, "create": "attribute_not_exists(#k) OR digest = :d", "update": "attribute_exists(#k)"}[tag_rule]
        values = {":d": item["key"][2:]} if tag_rule == "create" else None
        return self.table.op_put(self._tag_item(repo, tag, item), condition, values, names={"#k": "key"} if condition else None)

    def child_use_ops(self, repo: str, children: list[str]) -> list[dict[str, Any]]:
        """An index keeps its child manifests: GC removes a manifest only while no index uses it."""
        condition = "attribute_exists(mediaType)"
        return [self.table.op_update((repo, manifest_key(d)), "ADD uses :one", {":one": 1}, condition) for d in dict.fromkeys(children)]

    def child_release_ops(self, repo: str, children: list[str]) -> list[dict[str, Any]]:
        condition = "attribute_exists(mediaType)"
        return [self.table.op_update((repo, manifest_key(d)), "ADD uses :minus", {":minus": -1}, condition) for d in dict.fromkeys(children)]

    def set_child_uses(self, repo: str, item: dict[str, Any], expected: int, lower: bool) -> bool | None:
        """Set how many indexes list a manifest (the index rebuild): True set, False right already, None raced."""
        used = int(item.get("uses", 0))
        if used == expected or (used > expected and not lower):
            return False
        seen, values = seen_uses(item)
        key = (repo, str(item["key"]))
        return None if self.table.update(key, "SET uses = :n", {**values, ":n": expected}, f"attribute_exists(mediaType) AND {seen}") is None else True

    def release_children(self, repo: str, children: list[str]) -> None:
        for digest in dict.fromkeys(children):
            self.table.update((repo, manifest_key(digest)), "ADD uses :minus", {":minus": -1}, "attribute_exists(mediaType)")

    def manifest(self, repo: str, digest: str) -> StoredManifest | None:
        """A pull's read (GET/HEAD by digest): eventually consistent, re-read strongly on a miss."""
        item = self.table.get(repo, manifest_key(digest), FRESH_MISS)
        return _stored(item, digest) if item else None

    def manifest_details(self, repo: str, digest: str) -> dict[str, Any] | None:
        return self.table.get(repo, manifest_key(digest))

    def tagged(self, repo: str, tag: str) -> StoredManifest | None:
        """A pull's read by tag: a tag moved in the last second may still name its old digest, a new one is found."""
        item = self.table.get(repo, tag_key(tag), FRESH_MISS)
        return _stored(item, str(item["digest"])) if item else None

    def existing_manifests(self, repo: str, digests: list[str]) -> set[str]:
        items = self.table.batch_get([(repo, manifest_key(d)) for d in set(digests)])
        return {str(i["key"])[2:] for i in items}

    def delete_tag(self, repo: str, tag: str, digest: str | None = None) -> bool:
        """False when the tag is absent, or (given digest) points elsewhere now: GC never removes a tag a client moved.

        The repository's change count goes up in the same transaction, so search's summary notices.
        """
        condition, values = ("attribute_exists(#k)", None) if digest is None else ("digest = :d", {":d": digest})
        names = {"#k": "key"} if digest is None else None
        reasons = self.table.transact([self.table.op_delete((repo, tag_key(tag)), condition, values, names), self._changed(repo, existing=True)])
        if reasons is None:
            return True
        if reasons[0] == "ConditionalCheckFailed":
            return False
        # no catalog item (a repository forgotten meanwhile): the tag still goes, nothing to count
        return self.table.delete(repo, tag_key(tag), condition=condition, values=values, names=names)

    def _changed(self, repo: str, existing: bool = False) -> dict[str, Any]:
        """The catalog item's change count, bumped with every manifest or tag write: a summary of an older count is stale."""
        condition, names = ("attribute_exists(#k)", {"#k": "key"}) if existing else (None, None)
        return self.table.op_update((CATALOG, repo), "ADD version :one", {":one": 1}, condition, names)

    def tags_of(self, repo: str, digest: str) -> list[str]:
        """Tags pointing to a digest: a walk over the repository's tags."""
        return [str(i["key"])[2:] for i in self.table.query(repo, "t#") if i.get("digest") == digest]

    def drop_manifest(self, repo: str, digest: str) -> DroppedManifest | None:
        """A client's delete by digest: the manifest and every tag pointing to it; None when it is not there.

        A tag written while the tags are removed bumps the manifest's `tagged` count, which the
        manifest's delete is conditional on: the walk is then repeated, so no tag is left dangling.
        """
        removed: list[str] = []  # every walk's tags: S3's tag objects go for all of them
        for _ in range(PUT_ATTEMPTS):
            item = self.table.get(repo, manifest_key(digest))
            if item is None:
                return DroppedManifest({}, removed) if removed else None
            removed += [tag for tag in self.tags_of(repo, digest) if self.delete_tag(repo, tag, digest)]
            if self._drop(repo, digest, item, only_unused=False):
                return DroppedManifest(item, removed)
        raise TooManyRequests("the manifest is being tagged while it is deleted; retry", headers={"Retry-After": "1"})

    def drop_unused_manifest(self, repo: str, digest: str, tagged: int) -> dict[str, Any] | None:
        """GC's delete: only while no index uses it and no tag was written since GC read it (tagged unchanged)."""
        item = self.table.get(repo, manifest_key(digest))
        if item is None or int(item.get("tagged", 0)) != tagged:
            return None
        return item if self._drop(repo, digest, item, only_unused=True) else None

    def _drop(self, repo: str, digest: str, item: dict[str, Any], only_unused: bool) -> bool:
        """Delete the manifest item, its catalog count and referrer entry, if its tag count is what was read."""
        tagged = item.get("tagged")
        condition = "attribute_exists(mediaType) AND " + ("attribute_not_exists(tagged)" if tagged is None else "tagged = :tagged")
        values: dict[str, Any] = {} if tagged is None else {":tagged": tagged}
        if only_unused:
            condition += " AND (attribute_not_exists(uses) OR uses <= :zero)"
            values[":zero"] = 0
        operations = [
            self.table.op_delete((repo, manifest_key(digest)), condition, values or None),
            self.table.op_update((CATALOG, repo), "ADD manifests :minus, version :one SET updated = :now", {":minus": -1, ":one": 1, ":now": int(time.time())}),
        ]
        if item.get("subject"):
            operations.append(self.table.op_delete((repo, referrer_key(str(item["subject"]), digest))))
        return self.table.transact(operations) is None

    def empty_repositories(self, updated_before: int) -> Iterator[str]:
        """Repositories whose last manifest went before a time: GC takes them out of the catalog."""
        for item in self.table.query(CATALOG):
            if int(item.get("manifests", 0)) <= 0 and int(item.get("updated", 0)) < updated_before:
                yield str(item["key"])

    def forget_repository(self, repo: str, updated_before: int) -> bool:
        """Remove an emptied repository from the catalog, with its search summary and listing, unless a push arrived meanwhile.

        All go at once: a summary left behind could match the change count of a repository of the same name pushed later.
        """
        condition = "manifests <= :zero AND updated < :before"
        forget = self.table.op_delete((CATALOG, repo), condition, {":zero": 0, ":before": updated_before})
        return self.table.transact([forget, self.table.op_delete((SUMMARIES, repo)), self.table.op_delete((LISTINGS, repo))]) is None

    def repository_items(self, repo: str, read: str = STRONG) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A repository's manifest and tag items, from one walk over its partition (retention: EVENTUAL, scrub)."""
        manifests, tags = [], []
        for item in self.table.query(repo, read=read):
            key = str(item["key"])
            (manifests if key.startswith("m#") else tags if key.startswith("t#") else []).append(item)
        return manifests, tags

    def cursor(self, name: str) -> str | None:
        """Where an interrupted walk over repositories (retention, scheduled scrub) stopped: the last one done."""
        item = self.table.get(GC_STATE, name)
        return str(item["after"]) if item and item.get("after") else None

    def save_cursor(self, name: str, after: str | None) -> None:
        if after is None:
            self.table.delete(GC_STATE, name)
        else:
            self.table.put({"repo": GC_STATE, "key": name, "after": after})

    def tags(self, repo: str, limit: int | None, after: str | None) -> list[str]:
        items = self.table.query(repo, "t#", after=tag_key(after) if after else None, limit=limit, read=EVENTUAL)  # a listing
        return [str(i["key"])[2:] for i in items]

    def repositories(self, limit: int | None, after: str | None) -> list[str]:
        return [str(i["key"]) for i in self.table.query(CATALOG, after=after, limit=limit, read=EVENTUAL)]  # a listing; GC's walk decides nothing from it

    def catalog_items(self) -> Iterator[dict[str, Any]]:
        """Every repository's catalog item: one paged Query, whatever the number of images."""
        return self.table.query(CATALOG)

    def summary_items(self, repos: list[str] | None = None, partition: str = SUMMARIES) -> dict[str, dict[str, Any]]:
        """Search's cached summaries (or LISTINGS) by repository: all (one paged Query) or these (one BatchGetItem per 100)."""
        items = self.table.query(partition) if repos is None else self.table.batch_get([(partition, r) for r in dict.fromkeys(repos)])
        return {str(item["key"]): item for item in items}

    def count_download(self, repo: str, digest: str) -> None:
        """One more pull of a manifest, on its item and its repository's (one transaction); a manifest deleted meanwhile counts nothing."""
        exists, names = "attribute_exists(#k)", {"#k": "key"}
        self.table.transact([
            self.table.op_update((repo, manifest_key(digest)), "ADD downloads :one", {":one": 1}, exists, names),
            self.table.op_update((CATALOG, repo), "ADD downloads :one", {":one": 1}, exists, names),
        ])

    def catalog_item(self, repo: str) -> dict[str, Any] | None:
        return self.table.get(CATALOG, repo)

    def catalog_items_of(self, repos: list[str]) -> list[dict[str, Any]]:
        """The catalog items of these repositories (one BatchGetItem per 100)."""
        return self.table.batch_get([(CATALOG, repo) for repo in dict.fromkeys(repos)])

    def holding_manifest(self, repos: list[str], digest: str) -> set[str]:
        """Which of these repositories hold a manifest (one BatchGetItem per 100 repositories)."""
        return {str(i["repo"]) for i in self.table.batch_get([(repo, manifest_key(digest)) for repo in dict.fromkeys(repos)])}

    def save_summary(self, repo: str, summary: dict[str, Any], version: int, listing: list[dict[str, Any]] | None = None) -> bool:
        """Cache search's summary (and listing rows) of a repository, only while no change came after the one they were computed from."""
        if _approximate_size(summary) > SUMMARY_BUDGET:
            return False
        condition = "attribute_exists(#k) AND " + ("version = :v" if version else "attribute_not_exists(version)")
        # the catalog's count must still be `version`: an update that records it (IAM grants UpdateItem, not ConditionCheckItem)
        check = self.table.op_update((CATALOG, repo), "SET summarized = :v", {":v": version}, condition, {"#k": "key"})
        item = {"repo": SUMMARIES, "key": repo, "summary": summary, "version": version}
        rows = {"repo": LISTINGS, "key": repo, "summary": {"rows": listing}, "version": version}
        kept = [self.table.op_put(rows)] if listing is not None and _approximate_size(rows) <= SUMMARY_BUDGET else []
        return self.table.transact([check, self.table.op_put(item), *kept]) is None

    def repository_exists(self, repo: str) -> bool:
        return self.table.get(CATALOG, repo) is not None

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        return [i["descriptor"] for i in self.table.query(repo, f"r#{subject}#", read=EVENTUAL)]  # a listing

    def _tag_item(self, repo: str, tag: str, manifest_item: dict[str, Any]) -> dict[str, Any]:
        return {
            "repo": repo,
            "key": tag_key(tag),
            "digest": manifest_item["key"][2:],
            "mediaType": manifest_item["mediaType"],
            "size": manifest_item["size"],
            "body": manifest_item["body"],
            "pushed": manifest_item["pushed"],
        }

    def _referrer_item(self, repo: str, manifest: Manifest, item: dict[str, Any]) -> dict[str, Any]:
        assert manifest.subject is not None
        descriptor: dict[str, Any] = {"mediaType": manifest.media_type, "digest": str(manifest.digest), "size": len(manifest.body)}
        if item["artifactType"]:
            descriptor["artifactType"] = item["artifactType"]
        if manifest.annotations and _approximate_size(manifest.annotations) <= ITEM_BUDGET:
            descriptor["annotations"] = manifest.annotations
        return {"repo": repo, "key": referrer_key(str(manifest.subject.digest), str(manifest.digest)), "descriptor": descriptor}
