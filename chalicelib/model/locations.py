"""Several storage locations behind one registry: repositories go where their name prefix says.

zot's storage.subPaths: a repository whose name starts with a sub-path lives in that location's
bucket or prefix with its settings; the rest go to the default location. The index is shared, so
listings need no merging; a mount across locations copies the bytes server-side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.model.access import Caller
from chalicelib.model.registry import Registry
from chalicelib.spec.references import Digest
from chalicelib.storage.blobs import BlobLocation

# Registry methods whose first argument is the repository: they run in that repository's location.
ROUTED = (
    "read_only", "blob_url", "blob_bytes", "check_blob", "blob", "delete_blob", "start_upload", "upload_monolithic",
    "upload_status", "append_upload", "finish_upload", "cancel_upload", "put_manifest", "get_manifest", "head_manifest",
    "delete_manifest", "remove_unused_manifest", "remove_tag", "tags", "referrers",
)  # fmt: skip


def owner(prefixes: list[str], repo: str) -> str:
    """The longest sub-path ("/infra") that holds repo, or "" for the default location."""
    matches = [p for p in prefixes if repo == p[1:] or repo.startswith(p[1:] + "/")]
    return max(matches, key=len, default="")


class RoutedRegistry:
    """The Registry interface over locations; with no sub-paths it is the default location's registry."""

    def __init__(self, locations: dict[str, Registry]) -> None:
        self.locations = locations
        self.prefixes = [p for p in locations if p]

    def for_repo(self, repo: str) -> Registry:
        return self.locations[owner(self.prefixes, repo)]

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in ROUTED:
            raise AttributeError(name)
        return lambda repo, *args, **kwargs: getattr(self.for_repo(repo), name)(repo, *args, **kwargs)

    def catalog(self, limit: int | None, after: str | None, caller: Caller) -> list[str]:
        return self.locations[""].catalog(limit, after, caller)

    def mount_blob(self, repo: str, digest: Digest, source: str, caller: Caller) -> BlobLocation | None:
        target, origin = self.for_repo(repo), self.for_repo(source)
        if origin is target:
            return target.mount_blob(repo, digest, source, caller)
        found = origin.blobs.stat(source, digest) if caller.may_read(source) else None
        return target.adopt_blob(repo, origin.store, found) if found else None
