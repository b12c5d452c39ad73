"""Search's reads of the index for one request: repository summaries, repository contents, blob holders.

A global query reads the `_catalog` partition once (one paged Query, summaries inline); a summary
whose repository changed since it was computed (its `version` moved) is recomputed from the
repository's partition and cached back, conditional on the version it was computed from. A
request that would walk more partitions than its budget allows is refused, never left to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.model.access import Caller
from chalicelib.model.locations import RoutedRegistry
from chalicelib.search.facts import RepoContent
from chalicelib.storage.index import RepoIndex
from chalicelib.storage.userprefs import UserPrefs

MAX_WALKS = 200  # repository partitions one request may read (summaries refreshed, repositories listed)


class SearchError(Exception):
    """A query the client must change; its message becomes a GraphQL error."""


def is_stale(item: dict[str, Any]) -> bool:
    return "summary" not in item or item.get("summaryVersion") != item.get("version", 0)


def refresh_summary(index: RepoIndex, repo: str, item: dict[str, Any] | None) -> dict[str, Any]:
    """Recompute a repository's summary from its partition and cache it unless it changed meanwhile."""
    version = int((item or {}).get("version", 0))
    manifests, tags = index.repository_items(repo)
    summary = RepoContent.from_items(repo, manifests, tags).summary()
    if item is not None:
        index.save_summary(repo, summary, version)
    return summary


class Searcher:
    """The index as one caller sees it: only repositories the caller may read, in results and counts alike."""

    def __init__(self, index: RepoIndex, registry: RoutedRegistry, prefs: UserPrefs, caller: Caller) -> None:
        self.index = index
        self.registry = registry
        self.prefs = prefs
        self.caller = caller
        self.walks = 0
        self.contents: dict[str, RepoContent] = {}
        self._preferences: tuple[set[str], set[str]] | None = None

    def readable(self, repo: str) -> bool:
        return self.caller.may_read(repo)

    def spend(self) -> None:
        self.walks += 1
        if self.walks > MAX_WALKS:
            raise SearchError(f"the query reads more than {MAX_WALKS} repositories; narrow it or page through it")

    def preferences(self) -> tuple[set[str], set[str]]:
        """The caller's starred and bookmarked repositories (one read; anonymous has none)."""
        if self._preferences is None:
            self._preferences = self.prefs.of(self.caller.name) if self.caller.name else (set(), set())
        return self._preferences

    def content(self, repo: str) -> RepoContent | None:
        """A readable repository's items, read once per request; None when absent or not readable."""
        if not self.readable(repo):
            return None
        if repo not in self.contents:
            self.spend()
            manifests, tags = self.index.repository_items(repo)
            self.contents[repo] = RepoContent.from_items(repo, manifests, tags)
        found = self.contents[repo]
        return found if found.manifests else None

    def repositories(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name, catalog item) of every readable repository that holds a manifest, in name order."""
        for item in self.index.catalog_items():
            repo = str(item["key"])
            if int(item.get("manifests", 0)) > 0 and self.readable(repo):
                yield repo, item

    def summaries(self, names: set[str] | None = None) -> list[dict[str, Any]]:
        """RepoSummary facts of readable repositories (all, or these names), stale ones recomputed."""
        found = []
        for repo, item in self.repositories():
            if names is not None and repo not in names:
                continue
            summary = self.summary_of(repo, item)
            if summary is not None and summary.get("_images"):
                found.append(summary)
        return found

    def summary_of(self, repo: str, item: dict[str, Any] | None) -> dict[str, Any] | None:
        """The caller's view of one repository summary: the cached facts plus stars and bookmarks."""
        summary = item.get("summary") if item and not is_stale(item) else None
        if summary is None:
            self.spend()
            summary = refresh_summary(self.index, repo, item)
        if summary is None:
            return None
        starred, bookmarked = self.preferences()
        stars = int((item or {}).get("stars", 0))
        mine = {"StarCount": stars, "IsStarred": repo in starred, "IsBookmarked": repo in bookmarked, "_stars": stars}
        return {**summary, "DownloadCount": int((item or {}).get("downloads", 0)), **mine}  # counts read live, never from the cache

    def holders(self, digest: str) -> set[str]:
        """Repositories that hold a blob (config or layer), from each location's blob table: one Query each."""
        found: set[str] = set()
        for registry in self.registry.locations.values():
            for item in registry.blobs.table.query(digest):
                holder = str(item.get("holder", "#"))
                if holder != "#" and not item.get("deleted"):
                    found.add(holder)
        return found
