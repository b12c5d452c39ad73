"""The repository index in DynamoDB: catalog, tags, manifests and referrers.

It holds what search needs (sizes, platforms, push times, annotations) so listings never read S3,
and small manifest bodies inline so a pull by tag is one read. S3 stays the source of truth:
`rebuild.py` recreates all of this from the bucket.

Items (partition: repo, sort: key):
  ("_catalog", <repo>)         the repository exists; `manifests` counts its manifests
  (<repo>, "t#<tag>")          a tag: digest, media type, size, inline body
  (<repo>, "m#<digest>")       a manifest: descriptors, subject, platform(s), sizes, push time, inline body
  (<repo>, "r#<subject>#<d>")  a referrer of <subject>: its descriptor for the referrers API
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from chalicelib.spec.errors import ManifestBlobUnknown
from chalicelib.spec.manifests import Manifest
from chalicelib.storage.dynamo import Table

CATALOG = "_catalog"  # not a valid repository name, so it cannot collide with one
GC_STATE = "_gc"
INLINE_LIMIT = 300 * 1024  # DynamoDB items stop at 400 KB
ITEM_BUDGET = 350 * 1024
# What an item gives up, in order, when it would not fit: all of it can be read back from S3.
SHEDDABLE = ("body", "annotations", "layers", "children", "config", "platforms")
TRANSACTION_LIMIT = 100


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

    def manifest_item(self, repo: str, manifest: Manifest, platforms: list[dict[str, str]]) -> dict[str, Any]:
        """Everything search will list about a manifest, written once at push time."""
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
        })

    def put_manifest(self, repo: str, manifest: Manifest, platforms: list[dict[str, str]], tag: str | None, use_ops: list[dict[str, Any]]) -> None:
        """Index a new manifest with its tag, catalog count, referrer entry and uses of what it refers to, atomically.

        use_ops (the blob links' use counts) fail the transaction if GC took a blob meanwhile:
        the manifest is then refused. Re-pushing a stored digest only moves the tag.
        """
        item = self.manifest_item(repo, manifest, platforms)
        tag_ops = [self.table.op_put(self._tag_item(repo, tag, item))] if tag else []
        operations = [
            self.table.op_put(item, "attribute_not_exists(#k)", names={"#k": "key"}),
            self.table.op_update((CATALOG, repo), "ADD manifests :one SET updated = :now", {":one": 1, ":now": item["pushed"]}),
            *tag_ops,
        ]
        if manifest.subject:
            operations.append(self.table.op_put(self._referrer_item(repo, manifest, item)))
        references = use_ops + self.child_use_ops(repo, [str(c.digest) for c in manifest.children])
        if len(operations) + len(references) > TRANSACTION_LIMIT:
            self._put_large(repo, operations, references, tag_ops)
            return
        reasons = self.table.transact(operations + references)
        if reasons is None:
            return
        if reasons[0] == "ConditionalCheckFailed":
            if tag_ops:
                self.table.transact(tag_ops)
            return
        raise ManifestBlobUnknown("a blob or manifest it refers to was removed meanwhile; push them again")

    def _put_large(self, repo: str, operations: list[dict[str, Any]], references: list[dict[str, Any]], tag_ops: list[dict[str, Any]]) -> None:
        """Over DynamoDB's 100 items a transaction: count uses first (over-counting only keeps blobs longer)."""
        if self.table.get(repo, operations[0]["Put"]["Item"]["key"]["S"]) is not None:
            if tag_ops:
                self.table.transact(tag_ops)
            return
        for start in range(0, len(references), TRANSACTION_LIMIT):
            if self.table.transact(references[start : start + TRANSACTION_LIMIT]) is not None:
                raise ManifestBlobUnknown("a blob or manifest it refers to was removed meanwhile; push them again")
        if self.table.transact(operations) is not None and tag_ops:
            self.table.transact(tag_ops)

    def child_use_ops(self, repo: str, children: list[str]) -> list[dict[str, Any]]:
        """An index keeps its child manifests: GC removes a manifest only while no index uses it."""
        condition = "attribute_exists(mediaType)"
        return [self.table.op_update((repo, manifest_key(d)), "ADD uses :one", {":one": 1}, condition) for d in dict.fromkeys(children)]

    def release_children(self, repo: str, children: list[str]) -> None:
        for digest in dict.fromkeys(children):
            self.table.update((repo, manifest_key(digest)), "ADD uses :minus", {":minus": -1}, "attribute_exists(mediaType)")

    def manifest(self, repo: str, digest: str) -> StoredManifest | None:
        item = self.table.get(repo, manifest_key(digest))
        return _stored(item, digest) if item else None

    def manifest_details(self, repo: str, digest: str) -> dict[str, Any] | None:
        return self.table.get(repo, manifest_key(digest))

    def tagged(self, repo: str, tag: str) -> StoredManifest | None:
        item = self.table.get(repo, tag_key(tag))
        return _stored(item, str(item["digest"])) if item else None

    def existing_manifests(self, repo: str, digests: list[str]) -> set[str]:
        items = self.table.batch_get([(repo, manifest_key(d)) for d in set(digests)])
        return {str(i["key"])[2:] for i in items}

    def delete_tag(self, repo: str, tag: str) -> bool:
        return self.table.delete(repo, tag_key(tag), condition="attribute_exists(#k)", names={"#k": "key"})

    def tags_of(self, repo: str, digest: str) -> list[str]:
        """Tags pointing to a digest: a walk over the repository's tags."""
        return [str(i["key"])[2:] for i in self.table.query(repo, "t#") if i.get("digest") == digest]

    def delete_manifest(self, repo: str, digest: str, tags: list[str], subject: str | None, only_unused: bool = False) -> bool:
        """Drop a manifest (read by the caller, who passes its subject) with the tags that point to it.

        False when it was not there (or, for GC, is in use).
        """
        keys = [tag_key(t) for t in tags]
        for start in range(0, len(keys), TRANSACTION_LIMIT):
            self.table.transact([self.table.op_delete((repo, key), "digest = :d", {":d": digest}) for key in keys[start : start + TRANSACTION_LIMIT]])
        condition, values = "attribute_exists(mediaType)", None
        if only_unused:
            condition, values = condition + " AND (attribute_not_exists(uses) OR uses <= :zero)", {":zero": 0}
        operations = [
            self.table.op_delete((repo, manifest_key(digest)), condition, values),
            self.table.op_update((CATALOG, repo), "ADD manifests :minus", {":minus": -1}),
        ]
        if subject:
            operations.append(self.table.op_delete((repo, referrer_key(subject, digest))))
        if self.table.transact(operations) is not None:
            return False
        self.table.delete(CATALOG, repo, condition="manifests <= :zero", values={":zero": 0})
        return True

    def repository_items(self, repo: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A repository's manifest and tag items, from one walk over its partition (retention, scrub)."""
        manifests, tags = [], []
        for item in self.table.query(repo):
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
        items = self.table.query(repo, "t#", after=tag_key(after) if after else None, limit=limit)
        return [str(i["key"])[2:] for i in items]

    def repositories(self, limit: int | None, after: str | None) -> list[str]:
        return [str(i["key"]) for i in self.table.query(CATALOG, after=after, limit=limit)]

    def repository_exists(self, repo: str) -> bool:
        return self.table.get(CATALOG, repo) is not None

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        return [i["descriptor"] for i in self.table.query(repo, f"r#{subject}#")]

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
