"""Search's reads of the index for one request: repository summaries, repository contents, blob holders.

A global query reads the `_catalog` partition (change counts) and the `_summaries` partition (the
cached summaries) once each, whatever the number of images; a summary whose repository changed since
it was computed (the catalog's `version` moved past the summary's) is recomputed from the
repository's partition and cached back, conditional on the version it was computed from. A
request that would walk more partitions than its budget allows is refused, never left to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.model.access import Caller
from chalicelib.model.locations import RoutedRegistry
from chalicelib.search.facts import RepoContent
from chalicelib.storage.index import LISTINGS, RepoIndex
from chalicelib.storage.userprefs import UserPrefs

MAX_WALKS = 200  # repository partitions one request may read for its results
# Stale summaries one request may recompute (each is then cached, so retries converge): a registry
# upgraded without `rebuild-index` catches up over a few requests instead of one that never ends.
MAX_REFRESHES = 500


class SearchError(Exception):
    """A query the client must change; its message becomes a GraphQL error."""


def cached(item: dict[str, Any] | None, summary_item: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cached summary (or listing) when it was computed from the repository's current change count, else None."""
    if item is None or summary_item is None or summary_item.get("version") != item.get("version", 0):
        return None
    return summary_item.get("summary")


def refresh_summary(index: RepoIndex, repo: str, item: dict[str, Any] | None) -> dict[str, Any]:
    """Recompute a repository's summary from its partition and cache it unless it changed meanwhile."""
    return refresh(index, repo, item)[0]


def refresh(index: RepoIndex, repo: str, item: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A repository's summary and listing rows from one read of its partition, both cached unless it changed meanwhile."""
    version = int((item or {}).get("version", 0))
    manifests, tags = index.repository_items(repo)
    content = RepoContent.from_items(repo, manifests, tags)
    summary, listing = content.summary(), content.listing()
    if item is not None:
        index.save_summary(repo, summary, version, listing)
    return summary, listing


class Searcher:
    """The index as one caller sees it: only repositories the caller may read, in results and counts alike."""

    def __init__(self, index: RepoIndex, registry: RoutedRegistry, prefs: UserPrefs, caller: Caller) -> None:
        self.index = index
        self.registry = registry
        self.prefs = prefs
        self.caller = caller
        self.walks = 0
        self.refreshes = 0
        self.contents: dict[str, RepoContent] = {}
        self._preferences: tuple[set[str], set[str]] | None = None
        self.cache: dict[str, dict[str, Any]] = {}  # summary items read by this request

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

    def summaries(self) -> list[dict[str, Any]]:
        """RepoSummary facts of every readable repository with an image, stale ones recomputed."""
        repositories = list(self.repositories())
        self.cache.update(self.index.summary_items() if repositories else {})
        found = [self.summary_of(repo, item) for repo, item in repositories]
        return [summary for summary in found if summary.get("_images")]

    def listing(self) -> list[tuple[str, dict[str, Any]]]:
        """(repository, listing row) of every image in a readable repository, from the cached listings: no partition read.

        A listing computed from an older change count is recomputed (with the summary) and cached, as summaries are.
        """
        repositories = list(self.repositories())
        cached_listings = self.index.summary_items(partition=LISTINGS) if repositories else {}
        found: list[tuple[str, dict[str, Any]]] = []
        for repo, item in repositories:
            listing = cached(item, cached_listings.get(repo))
            rows = listing["rows"] if listing is not None else self._refreshed(repo, item)
            found += [(repo, row) for row in rows]
        return found

    def _refreshed(self, repo: str, item: dict[str, Any]) -> list[dict[str, Any]]:
        """A stale repository's listing rows, recomputed within the request's refresh budget (its summary is cached too)."""
        self._refresh_budget()
        summary, rows = refresh(self.index, repo, item)
        self.cache[repo] = {"version": item.get("version", 0), "summary": summary}
        return rows

    def _refresh_budget(self) -> None:
        self.refreshes += 1
        if self.refreshes > MAX_REFRESHES:
            raise SearchError(f"more than {MAX_REFRESHES} repository summaries were out of date; retry (they are cached as computed)")

    def summaries_of(self, repos: list[str]) -> list[dict[str, Any]]:
        """The same for a few named repositories (stars, bookmarks): batch reads, no walk over the catalog."""
        names = [r for r in dict.fromkeys(repos) if self.readable(r)]
        items = {str(i["key"]): i for i in self.index.catalog_items_of(names)} if names else {}
        held = [n for n in names if n in items and int(items[n].get("manifests", 0)) > 0]
        self.cache.update(self.index.summary_items(held) if held else {})
        return [summary for n in held if (summary := self.summary_of(n, items[n])).get("_images")]

    def summary_of(self, repo: str, item: dict[str, Any] | None) -> dict[str, Any]:
        """The caller's view of one repository summary: the cached facts plus stars, bookmarks and downloads."""
        summary = cached(item, self.cache.get(repo))
        if summary is None:
            self._refresh_budget()
            summary = refresh_summary(self.index, repo, item)
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
