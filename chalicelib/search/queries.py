"""zot's search queries over a Searcher: each returns the schema's shapes as dictionaries.

Pages: `limit` 0 or absent means all results up to MAX_PAGE; TotalCount always counts every match
the caller may read. CVE queries read the CVE result cache (vulns.py) and answer empty results when
CVE scanning is off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.cve.results import ScanResult, Summary
from chalicelib.search import vulns
from chalicelib.search.catalog import Searcher, SearchError
from chalicelib.search.facts import EMPTY_VULNERABILITIES, RepoContent, referrer
from chalicelib.spec.errors import RegistryError
from chalicelib.spec.references import Digest, validate_name

if TYPE_CHECKING:
    from chalicelib.cve.service import CveService

MAX_PAGE = 1000
EMPTY_PAGE = {"TotalCount": 0, "ItemCount": 0}
Row = dict[str, Any]

REPO_ORDER: dict[str, tuple[Callable[[Row], Any], bool]] = {
    "RELEVANCE": (lambda r: (r.get("Rank", 0), r["Name"]), False),
    "UPDATE_TIME": (lambda r: (r.get("_updated", 0), r["Name"]), True),
    "ALPHABETIC_ASC": (lambda r: r["Name"], False),
    "ALPHABETIC_DSC": (lambda r: r["Name"], True),
    "STARS": (lambda r: (r.get("_stars", 0), r["Name"]), True),
    "DOWNLOADS": (lambda r: (r.get("DownloadCount", 0), r["Name"]), True),
}
IMAGE_ORDER: dict[str, tuple[Callable[[Row], Any], bool]] = {
    "RELEVANCE": (lambda i: (i["RepoName"], i["Tag"]), False),
    "UPDATE_TIME": (lambda i: (i.get("_updated", 0), i["RepoName"], i["Tag"]), True),
    "ALPHABETIC_ASC": (lambda i: (i["RepoName"], i["Tag"]), False),
    "ALPHABETIC_DSC": (lambda i: (i["RepoName"], i["Tag"]), True),
    "STARS": (lambda i: (i["RepoName"], i["Tag"]), False),
    "DOWNLOADS": (lambda i: (i.get("DownloadCount", 0), i["RepoName"], i["Tag"]), True),
}


def bounds(page: dict[str, Any] | None) -> tuple[int, int]:
    page = page or {}
    limit, offset = page.get("limit") or 0, page.get("offset") or 0
    if limit < 0 or offset < 0:
        raise SearchError("limit and offset must not be negative")
    return (min(limit, MAX_PAGE) if limit else MAX_PAGE), offset


def paged(rows: list[Row], page: dict[str, Any] | None, orders: dict[str, tuple[Callable[[Row], Any], bool]]) -> tuple[list[Row], dict[str, int]]:
    """Sort by the requested criterion (SEVERITY applies to CVEs only: relevance here), then cut a page."""
    limit, offset = bounds(page)
    key, descending = orders.get((page or {}).get("sortBy") or "RELEVANCE", orders["RELEVANCE"])
    ordered = sorted(rows, key=key, reverse=descending)
    chosen = ordered[offset : offset + limit]
    return chosen, {"TotalCount": len(rows), "ItemCount": len(chosen)}


def _image_name(image: str) -> tuple[str, str]:
    """"repo:tag" into its parts; the repository is validated as a name."""
    repo, sep, tag = image.rpartition(":")
    if not sep or not repo or not tag or "/" in tag:
        raise SearchError(f"image {image!r} is not in the form repository:tag")
    return _repo(repo), tag


def _repo(repo: str) -> str:
    try:
        return validate_name(repo)
    except RegistryError as error:
        raise SearchError(f"invalid repository name {repo!r}") from error


def _digest(text: str) -> str:
    try:
        return str(Digest.parse(text))
    except RegistryError as error:
        raise SearchError(f"invalid digest {text!r}") from error


class Queries:
    """One request's resolvers; the Searcher decides what the caller may see."""

    def __init__(self, searcher: Searcher, cve: CveService | None = None) -> None:
        self.searcher = searcher
        self.cve = cve  # None when CVE scanning is off
        self.briefs = vulns.Briefs(cve)

    # Shaping for this caller

    def _image(self, image: Row) -> Row:
        return {**image, "IsDeletable": self.searcher.caller.may("delete", image["RepoName"])}

    def _summary(self, summary: Row) -> Row:
        newest = summary.get("NewestImage")
        return {**summary, "NewestImage": self._image(newest) if newest else None}

    def _matches(self, platforms: list[Row], signed: bool, repo: str, wanted: dict[str, Any] | None) -> bool:
        """zot's Filter: any platform with a listed Os and Arch, signed, starred or bookmarked as asked."""
        if not wanted:
            return True
        oses, arches = [o for o in wanted.get("Os") or [] if o], [a for a in wanted.get("Arch") or [] if a]
        if oses and not any(p["Os"] in oses for p in platforms):
            return False
        if arches and not any(p["Arch"] in arches for p in platforms):
            return False
        if wanted.get("HasToBeSigned") and not signed:
            return False
        starred, bookmarked = self.searcher.preferences()
        if wanted.get("IsStarred") is not None and (repo in starred) != wanted["IsStarred"]:
            return False
        return wanted.get("IsBookmarked") is None or (repo in bookmarked) == wanted["IsBookmarked"]

    def _repos_page(self, summaries: list[Row], page: dict[str, Any] | None) -> Row:
        results, info = paged(summaries, page, REPO_ORDER)
        return {"Page": info, "Results": [self._summary(s) for s in results]}

    def _images_page(self, images: list[Row], page: dict[str, Any] | None) -> Row:
        results, info = paged(images, page, IMAGE_ORDER)
        return {"Page": info, "Results": [self._image(i) for i in results]}

    def _content(self, repo: str) -> RepoContent:
        content = self.searcher.content(repo)
        if content is None:
            raise SearchError(f"repository {repo} not found")  # the same words whether absent or not readable
        return content

    # Queries

    def repo_list_with_newest_image(self, requestedPage: Row | None = None) -> Row:
        return self._repos_page(self.searcher.summaries(), requestedPage)

    def image_list(self, repo: str, requestedPage: Row | None = None) -> Row:
        if repo:
            return self._images_page(self._content(_repo(repo)).images(), requestedPage)
        return self._all_images(requestedPage)

    def _all_images(self, page: Row | None) -> Row:
        """Every readable image. In name order only the repositories the page covers are read; other orders read all."""
        limit, offset = bounds(page)
        counted = [(s["Name"], int(s.get("_images", 0))) for s in self.searcher.summaries()]
        if ((page or {}).get("sortBy") or "RELEVANCE") not in ("RELEVANCE", "ALPHABETIC_ASC"):
            return self._images_page([i for name, _ in counted for i in self._content(name).images()], page)
        images: list[Row] = []
        skipped = 0
        for name, count in counted:
            if skipped + count <= offset:
                skipped += count
                continue
            if len(images) >= offset - skipped + limit:
                break
            images += self.searcher.content(name).images() if self.searcher.content(name) else []
        chosen = images[offset - skipped : offset - skipped + limit]
        return {"Page": {"TotalCount": sum(c for _, c in counted), "ItemCount": len(chosen)}, "Results": [self._image(i) for i in chosen]}

    def expanded_repo_info(self, repo: str) -> Row:
        content = self._content(_repo(repo))
        summary = content.summary()
        item = self.searcher.index.catalog_item(content.repo)
        starred, bookmarked = self.searcher.preferences()
        if summary is not None:
            mine = {"StarCount": int((item or {}).get("stars", 0)), "IsStarred": content.repo in starred, "IsBookmarked": content.repo in bookmarked}
            summary = self._summary({**summary, **mine})
        return {"Images": [self._image(i) for i in content.images()], "Summary": summary}

    def global_search(self, query: str, filter: Row | None = None, requestedPage: Row | None = None) -> Row:
        """`repo:tag` lists that repository's images whose tag starts with tag; anything else matches repository names."""
        if ":" in query:
            repo, _, prefix = query.rpartition(":")
            content = self.searcher.content(_repo(repo.strip())) if repo.strip() else None
            images = [i for i in (content.images() if content else []) if i["Tag"].startswith(prefix.strip())]
            images = [i for i in images if self._matches(i["_platforms"], i["IsSigned"], i["RepoName"], filter)]
            found = self._images_page(images, requestedPage)
            return {"Page": found["Page"], "Images": found["Results"], "Repos": [], "Layers": []}
        needle = query.strip().lower()
        repos = []
        for summary in self.searcher.summaries():
            name = summary["Name"].lower()
            position = name.find(needle)
            if position < 0 or not self._matches(summary["Platforms"], summary.get("_signed", False), summary["Name"], filter):
                continue
            repos.append({**summary, "Rank": 0 if name == needle else position + (len(name) - len(needle)) + 1})
        found = self._repos_page(repos, requestedPage)
        return {"Page": found["Page"], "Images": [], "Repos": found["Results"], "Layers": []}

    def image(self, image: str) -> Row:
        repo, tag = _image_name(image)
        found = self._content(repo).image(tag)
        if found is None:
            raise SearchError(f"image {repo}:{tag} not found")
        return self._image(found)

    def image_list_for_digest(self, id: str, requestedPage: Row | None = None) -> Row:
        """Images whose manifest, config or a layer has the digest: candidates from the blob tables and one batch read."""
        digest = _digest(id)
        readable = [name for name, _ in self.searcher.repositories()]
        candidates = (self.searcher.holders(digest) & set(readable)) | self.searcher.index.holding_manifest(readable, digest)
        images = []
        for repo in sorted(candidates):
            content = self.searcher.content(repo)
            for image in content.images() if content else []:
                configs_and_layers = {m["ConfigDigest"] for m in image["Manifests"]} | {layer["Digest"] for m in image["Manifests"] for layer in m["Layers"]}
                if digest == image["Digest"] or digest in {m["Digest"] for m in image["Manifests"]} or digest in configs_and_layers:
                    images.append(image)
        return self._images_page(images, requestedPage)

    def referrers(self, repo: str, digest: str, type: list[str] | None = None) -> list[Row]:
        repo, subject = _repo(repo), _digest(digest)
        if not self.searcher.readable(repo):
            raise SearchError(f"repository {repo} not found")
        wanted = {t for t in type or [] if t}
        found = [referrer(str(d["digest"]), {"size": d.get("size"), **d}) for d in self.searcher.index.referrers(repo, subject)]
        return [r for r in found if not wanted or r["ArtifactType"] in wanted]

    def derived_image_list(self, image: str, digest: str | None = None, requestedPage: Row | None = None) -> Row:
        return self._related(image, digest, requestedPage, derived=True)

    def base_image_list(self, image: str, digest: str | None = None, requestedPage: Row | None = None) -> Row:
        return self._related(image, digest, requestedPage, derived=False)

    def _related(self, image: str, digest: str | None, page: Row | None, derived: bool) -> Row:
        """Derived: images whose layers start with all of this one's and add more. Base: images whose layers begin this one's.

        Matched on the listing rows of the cached summaries (every readable repository, no partition
        read), so the count is exact at any size; only the page's repositories are read.
        """
        repo, tag = _image_name(image)
        target = self._content(repo).image(tag)
        if target is None:
            raise SearchError(f"image {repo}:{tag} not found")
        stacks = [
            [layer["Digest"] for layer in m["Layers"]] for m in target["Manifests"] if m["Layers"] and (digest is None or m["Digest"] == digest)
        ]
        related = [
            (name, row)
            for name, row in self.searcher.listing()
            if (name, row["Tag"]) != (repo, tag) and any(_extends(o, s) if derived else _extends(s, o) for o in row["_stacks"] for s in stacks)
        ]
        return self._listing_page(related, page)

    def _listing_page(self, rows: list[tuple[str, Row]], page: Row | None) -> Row:
        """Sort and count listing rows, then read only the repositories of the page's images for their ImageSummary.

        DOWNLOADS order needs live counts, which listing rows do not keep: every row's repository is read then.
        """
        if ((page or {}).get("sortBy") or "RELEVANCE") == "DOWNLOADS":
            return self._images_page([i for name, row in rows if (i := self._image_of(name, row)) is not None], page)
        chosen, info = paged([{**row, "RepoName": name} for name, row in rows], page, IMAGE_ORDER)
        results = [i for row in chosen if (i := self._image_of(row["RepoName"], row)) is not None]
        return {"Page": {**info, "ItemCount": len(results)}, "Results": [self._image(i) for i in results]}

    def _image_of(self, repo: str, row: Row) -> Row | None:
        """A listed image's ImageSummary from its repository's partition (read once per request); None if it moved meanwhile."""
        content = self.searcher.content(repo)
        found = content.image(row["Tag"]) if content else None
        return found if found is not None and found["Digest"] == row["Digest"] else None

    def starred_repos(self, requestedPage: Row | None = None) -> Row:
        return self._preferred(0, requestedPage)

    def bookmarked_repos(self, requestedPage: Row | None = None) -> Row:
        return self._preferred(1, requestedPage)

    def _preferred(self, which: int, page: Row | None) -> Row:
        return self._repos_page(self.searcher.summaries_of(sorted(self.searcher.preferences()[which])), page)

    # CVE queries (chalicelib.search.vulns): answered from the result cache; with CVE scanning off, empty answers.

    def _no_scanner_list(self, reference: str) -> Row:
        return {"Tag": reference, "CVEList": [], "Summary": dict(EMPTY_VULNERABILITIES), "Page": dict(EMPTY_PAGE)}

    def _reference_digest(self, content: RepoContent, reference: str) -> str:
        """A tag's or a digest's manifest in a readable repository, else the same "not found" as any other image."""
        item = content.tags.get(reference) if ":" not in reference else None
        digest = str(item["digest"]) if item else reference
        if digest not in content.manifests:
            raise SearchError(f"image {content.repo}{'@' if ':' in reference else ':'}{reference} not found")
        return digest

    def cve_list_for_image(
        self, image: str, requestedPage: Row | None = None, searchedCVE: str | None = None, excludedCVE: str | None = None, severity: str | None = None
    ) -> Row:
        """CVEListForImage: a page of the image's CVEs (filters applied), Summary counting all of them as zot does."""
        repo, reference = _image_reference(image)
        if self.cve is None:
            return self._no_scanner_list(reference)
        content = self._content(repo)
        outcome = self.cve.result(self._reference_digest(content, reference))
        if not isinstance(outcome, ScanResult):  # not scanned (yet, ever, or without a database): zot's unscanned answer
            return self._no_scanner_list(reference)
        cves, page = vulns.cve_page(vulns.filtered(outcome.cves, searchedCVE, excludedCVE, severity), requestedPage, bounds)
        return {"Tag": reference, "CVEList": cves, "Summary": outcome.summary.as_graphql(), "Page": page}

    def cve_diff_list_for_images(
        self, minuend: Row, subtrahend: Row, requestedPage: Row | None = None, searchedCVE: str | None = None, excludedCVE: str | None = None
    ) -> Row:
        """CVEDiffListForImages: the minuend's CVEs the subtrahend lacks; no subtrahend means the minuend's base image in its repository."""
        if self.cve is None:
            empty = {"CVEList": [], "Summary": dict(EMPTY_VULNERABILITIES), "Page": dict(EMPTY_PAGE)}
            return {"Minuend": _identifier(minuend), "Subtrahend": _identifier(subtrahend), **empty}
        content = self._content(_repo(minuend.get("Repo") or ""))
        first, first_digest = _input_image(content, minuend, "minuend")
        first_id = _identifier(minuend, first_digest)
        if subtrahend.get("Repo"):
            _, second_digest = _input_image(self._content(_repo(subtrahend["Repo"])), subtrahend, "subtrahend")
            second_id = _identifier(subtrahend, second_digest)
        else:
            second_digest, second_id = _base_of(content, first)
        found = {"Minuend": first_id, "Subtrahend": second_id, "CVEList": [], "Summary": dict(EMPTY_VULNERABILITIES), "Page": dict(EMPTY_PAGE)}
        ours = self.cve.result(first_digest)
        theirs = self.cve.result(second_digest) if second_digest else None
        if not isinstance(ours, ScanResult) or (theirs is not None and not isinstance(theirs, ScanResult)):
            return found  # either side not scanned: zot's unscanned answer, no error
        subtracted = {c["Id"] for c in vulns.filtered(theirs.cves, searchedCVE, excludedCVE)} if theirs is not None else set()
        remaining = [c for c in vulns.filtered(ours.cves, searchedCVE, excludedCVE) if c["Id"] not in subtracted]
        cves, page = vulns.cve_page(remaining, requestedPage, bounds)
        return found | {"CVEList": cves, "Summary": Summary.of(remaining).as_graphql(), "Page": page}

    def image_list_for_cve(self, id: str, filter: Row | None = None, requestedPage: Row | None = None) -> Row:
        """ImageListForCVE: readable tagged images whose result names the CVE.

        The CVE->image lookup names the digests (one Query), their results confirm them (one batched read per 100),
        the cached summaries' listing rows give every readable image with those digests; only the page's repositories are read.
        """
        if self.cve is None:
            return {"Page": dict(EMPTY_PAGE), "Results": []}
        candidates = set(self.cve.affected(id))
        listing = self.searcher.listing() if candidates else []
        readable = sorted(candidates & {row["Digest"] for _, row in listing})  # only readable images' results are read
        briefs = self.briefs.of(readable)
        rows = [(name, row) for name, row in listing if row["Digest"] in briefs and id in briefs[row["Digest"]].cve_ids]
        matching = [(name, row) for name, row in rows if self._matches(row["_platforms"], row["IsSigned"], name, filter)]
        return self._listing_page(matching, _newest_first(requestedPage))

    def image_list_with_cve_fixed(self, id: str, image: str, filter: Row | None = None, requestedPage: Row | None = None) -> Row:
        """ImageListWithCVEFixed: a repository's tags that fixed the CVE, by zot's rule (an image not scanned never counts as fixed)."""
        if self.cve is None:
            return {"Page": dict(EMPTY_PAGE), "Results": []}
        images = self._content(_repo(image)).images()
        fixed = vulns.fixed_tags(images, self.briefs.of(i["Digest"] for i in images), id)
        fixed = [i for i in fixed if self._matches(i["_platforms"], i["IsSigned"], i["RepoName"], filter)]
        return self._images_page(fixed, _newest_first(requestedPage))

    def with_vulnerabilities(self, answer: Any) -> Any:
        """The answer with each ImageSummary's and ManifestSummary's Vulnerabilities from one batched cache read."""
        if self.cve is None:
            return answer
        digests = vulns.digests_in(answer)
        return vulns.with_vulnerabilities(answer, self.briefs.of(digests)) if digests else answer


def _base_of(content: RepoContent, image: Row) -> tuple[str | None, Row]:
    """The base image's manifest digest and identifier, or none (the whole minuend list then remains)."""
    base = vulns.base_for(content, image)
    if base is None:
        return None, {"Repo": "", "Tag": "", "Digest": None, "Platform": None}
    manifest = base["_manifest"]
    return manifest["Digest"], _identifier({"Repo": base["RepoName"], "Tag": base["Tag"], "Platform": manifest["Platform"]}, manifest["Digest"])


def _newest_first(page: Row | None) -> Row:
    """zot's default order for the CVE image lists: most recently updated first."""
    return {**(page or {}), "sortBy": (page or {}).get("sortBy") or "UPDATE_TIME"}


def _image_reference(image: str) -> tuple[str, str]:
    """"repo:tag" or "repo@digest" into its parts (zot's CVEListForImage accepts both)."""
    if "@" in image:
        repo, _, digest = image.partition("@")
        return _repo(repo), _digest(digest)
    return _image_name(image)


def _identifier(raw: Row, digest: str | None = None) -> Row:
    platform = raw.get("Platform")
    return {"Repo": raw.get("Repo") or "", "Tag": raw.get("Tag") or "", "Digest": digest or raw.get("Digest"), "Platform": platform or None}


def _input_image(content: RepoContent, raw: Row, role: str) -> tuple[Row, str]:
    """zot's resolveImageData: the tag's manifest, or for an index the child named by Digest or Platform (else ambiguous)."""
    tag = raw.get("Tag") or ""
    image = content.image(tag) if tag else None
    if image is None:
        raise SearchError(f"{role} image {content.repo}:{tag} not found")
    children = image["Manifests"]
    if len(children) == 1 and children[0]["Digest"] == image["Digest"]:
        return image, image["Digest"]
    wanted, platform = raw.get("Digest") or "", raw.get("Platform") or {}
    for child in children:
        if child["Digest"] == wanted or (not wanted and platform and all(child["Platform"].get(k) == v for k, v in platform.items() if v)):
            return {**image, "Manifests": [child]}, child["Digest"]
    raise SearchError(f"{role} image {content.repo}:{tag}: platform or specific manifest digest needed")


def _extends(longer: list[str], shorter: list[str]) -> bool:
    """Whether `longer` starts with every layer of `shorter` and has more; an image without layers extends or bases nothing."""
    return bool(shorter) and len(longer) > len(shorter) and longer[: len(shorter)] == shorter
