"""zot's web UI (project-zot/zui) replayed: the requests it made against `zotless serve` in headless Chromium.

docs/search.md ("zot's web UI against zotless") tells how they were captured: zui's build behind a
same-origin proxy, skopeo-pushed images, a guest and a logged-in user browsing the home page, a
repository, an image's tabs and a search. The texts below are the captured ones, byte for byte (the
CVE query's digest is the pushed image's); the headers are those zui's axios sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.config.schema import Config
from chalicelib.spec.http import Response
from tests.unit.authsetup import As, Setup, auth_config, basic

UI = {"Accept": "application/json", "Content-Type": "application/json", "X-ZOT-API-CLIENT": "zot-ui"}
CARD = (
    "{Page {TotalCount ItemCount} Repos {Name LastUpdated Size Platforms { Os Arch } IsStarred IsBookmarked NewestImage { Tag Vulnerabilities "
    "{MaxSeverity Count} Description IsSigned SignatureInfo { Tool IsTrusted Author } Licenses Vendor Labels } StarCount DownloadCount}}}"
)
HOME_BOOKMARKS = '{GlobalSearch(query:"", requestedPage: {limit:2 offset:0 sortBy: RELEVANCE} ,filter: { IsBookmarked: true}) ' + CARD
HOME_POPULAR = '{GlobalSearch(query:"", requestedPage: {limit:3 offset:0 sortBy: DOWNLOADS} ) ' + CARD
HOME_RECENT = '{GlobalSearch(query:"", requestedPage: {limit:2 offset:0 sortBy: UPDATE_TIME} ) ' + CARD
HOME_STARRED = '{GlobalSearch(query:"", requestedPage: {limit:2 offset:0 sortBy: RELEVANCE} ,filter: { IsStarred: true}) ' + CARD
SUGGEST = '{GlobalSearch(query:"hello", requestedPage: {limit:9 offset:0 sortBy: RELEVANCE} ) ' + CARD
SEARCH = '{GlobalSearch(query:"hello", requestedPage: {limit:10 offset:0 sortBy: RELEVANCE} ) ' + CARD
EXPLORE = '{GlobalSearch(query:"", requestedPage: {limit:10 offset:0 sortBy: RELEVANCE} ) ' + CARD
REPO = (
    '{ExpandedRepoInfo(repo:"public/hello"){Images {Manifests {Digest Platform {Os Arch} Size} Vulnerabilities {MaxSeverity Count} Tag LastUpdated '
    "Vendor IsDeletable } Summary {Name LastUpdated Size Platforms {Os Arch} Vendors IsStarred IsBookmarked NewestImage {RepoName IsSigned "
    "SignatureInfo { Tool IsTrusted Author } Vulnerabilities {MaxSeverity Count} Manifests {Digest} Tag Vendor Title Documentation DownloadCount "
    "Source Description Licenses}}}}"
)
IMAGE = (
    '{Image(image: "public/hello:2.0"){RepoName IsSigned SignatureInfo { Tool IsTrusted Author } Vulnerabilities {MaxSeverity Count}  Referrers '
    "{MediaType ArtifactType Size Digest Annotations{Key Value}} Tag TaggedTimestamp ArtifactType Manifests {ArtifactType Layers {Size Digest} "
    "History {Layer {Size Digest} HistoryDescription {CreatedBy EmptyLayer}} Digest ConfigDigest LastUpdated Size Platform {Os Arch} Referrers "
    "{MediaType ArtifactType Size Digest Annotations{Key Value}}} Vendor Licenses }}"
)
USED_BY = (
    '{BaseImageList(image: "public/hello:2.0", requestedPage: {limit:10 offset:0}){Page {TotalCount ItemCount} Results { RepoName Tag Description '
    "Manifests {Digest Platform {Os Arch} Size} Vendor DownloadCount LastUpdated IsSigned SignatureInfo { Tool IsTrusted Author } "
    "Vulnerabilities {MaxSeverity Count}}}}"
)
USES = (
    '{DerivedImageList(image: "public/hello:2.0", requestedPage: {limit:10 offset:0}){Page {TotalCount ItemCount} Results {RepoName Tag Description '
    "Manifests {Digest Platform {Os Arch} Size} Vendor DownloadCount LastUpdated IsSigned SignatureInfo { Tool IsTrusted Author } "
    "Vulnerabilities {MaxSeverity Count}}}}"
)
CVES = (
    '{CVEListForImage(image: "public/hello@%s", requestedPage: {limit:10 offset:0}){Tag Page {TotalCount ItemCount} CVEList {Id Title Description '
    "Severity Reference PackageList {Name PackagePath InstalledVersion FixedVersion}} Summary {Count UnknownCount LowCount MediumCount HighCount "
    "CriticalCount}}}"
)
# (repository, tag, description, architecture), as skopeo pushed them in the browser run
IMAGES = [
    ("public/hello", "1.0", "hello world amd64", "amd64"),
    ("public/hello", "2.0", "hello again arm64", "arm64"),
    ("public/alpine-like", "3.20", "alpine-like base image", "amd64"),
    ("private/secret", "1.0", "secret image", "amd64"),
]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return auth_config(tmp_path)


@pytest.fixture
def digests(service) -> dict[str, str]:
    """The browser run's images: a platform, a history line, and zot's annotations; repo:tag -> digest."""
    setup, pushed = Setup(service), {}
    for repo, tag, text, arch in IMAGES:
        created = "2026-11-30T10:00:00Z"
        image_config = {"architecture": arch, "os": "linux", "created": created, "config": {"Labels": {"org.opencontainers.image.vendor": "zotless check"}},
                        "history": [{"created": created, "created_by": "ADD hello.txt /"}]}  # fmt: skip
        annotations = {"org.opencontainers.image.description": text, "org.opencontainers.image.title": text.split()[0],
                       "org.opencontainers.image.licenses": "Apache-2.0", "org.opencontainers.image.vendor": "zotless check",
                       "org.opencontainers.image.source": "https://example.invalid/src", "org.opencontainers.image.created": created}  # fmt: skip
        pushed[f"{repo}:{tag}"] = setup.push_image(repo, tag, [text.encode()], config=image_config, annotations=annotations)[0]
    return pushed


def get(client: As, text: str, cookie: str | None = None) -> dict[str, Any]:
    """zui's GET, with its headers (and the browser's cookie): the answer's `data`, after checking it has no errors."""
    headers = {**UI, **({"Cookie": cookie} if cookie else {})}
    response = client("GET", "/v2/_zot/ext/search?query=" + quote(text, safe=""), headers=headers)
    document = json.loads(response.body_bytes())
    assert response.status == 200 and "errors" not in document, document
    return document["data"]


def repos(data: dict[str, Any]) -> list[str]:
    return sorted(repo["Name"] for repo in data["GlobalSearch"]["Repos"])


def alice_session(service) -> str:
    """zui's sign-in: Basic on GET /v2/ (axios adds the UI header), then the browser keeps the session cookie."""
    response = As(service)("GET", "/v2/", headers={**UI, **basic("alice")})
    assert response.status == 200
    return next(value.split(";", 1)[0] for value in response.cookies if value.startswith("session="))


def test_start_up_and_guest_entry(service) -> None:
    """The login page reads mgmt without the UI header, then /v2/ with it: 200 shows "Continue as guest"."""
    mgmt = As(service)("GET", "/v2/_zot/ext/mgmt", headers={"Accept": "application/json", "Content-Type": "application/json"})
    assert mgmt.status == 200 and "htpasswd" in json.loads(mgmt.body_bytes())["http"]["auth"]
    entry: Response = As(service)("GET", "/v2/", headers=UI)
    assert entry.status == 200 and "WWW-Authenticate" not in entry.headers


def test_the_home_page_as_a_guest_shows_the_public_images(service, digests) -> None:
    client = As(service)
    assert repos(get(client, HOME_POPULAR)) == ["public/alpine-like", "public/hello"]
    assert repos(get(client, HOME_RECENT)) == ["public/alpine-like", "public/hello"]
    assert repos(get(client, HOME_BOOKMARKS)) == repos(get(client, HOME_STARRED)) == []


def test_the_home_page_logged_in_shows_the_private_image_too(service, digests) -> None:
    client, cookie = As(service), alice_session(service)
    popular = get(client, HOME_POPULAR, cookie)
    assert repos(popular) == ["private/secret", "public/alpine-like", "public/hello"]
    hello = next(repo for repo in popular["GlobalSearch"]["Repos"] if repo["Name"] == "public/hello")
    assert sorted(p["Arch"] for p in hello["Platforms"]) == ["amd64", "arm64"]
    assert hello["NewestImage"]["Description"] and hello["NewestImage"]["Vendor"] == "zotless check"
    assert get(client, HOME_RECENT, cookie)["GlobalSearch"]["Page"] == {"TotalCount": 3, "ItemCount": 2}


def test_the_repository_page(service, digests) -> None:
    data = get(As(service), REPO, alice_session(service))["ExpandedRepoInfo"]
    assert sorted(image["Tag"] for image in data["Images"]) == ["1.0", "2.0"]
    assert all(image["IsDeletable"] for image in data["Images"])  # alice may delete in public/**
    assert data["Summary"]["Name"] == "public/hello" and data["Summary"]["NewestImage"]["Licenses"] == "Apache-2.0"
    assert data["Summary"]["NewestImage"]["Source"] == "https://example.invalid/src"


def test_the_image_page_and_its_tabs(service, digests) -> None:
    client = As(service)
    image = get(client, IMAGE)["Image"]
    assert image["RepoName"] == "public/hello" and image["Tag"] == "2.0"
    (manifest,) = image["Manifests"]
    assert manifest["Digest"] == digests["public/hello:2.0"] and manifest["Platform"] == {"Os": "linux", "Arch": "arm64"}
    assert [h["HistoryDescription"]["CreatedBy"] for h in manifest["History"]] == ["ADD hello.txt /"]
    assert get(client, USED_BY)["BaseImageList"]["Results"] == []
    assert get(client, USES)["DerivedImageList"]["Results"] == []
    get(client, CVES % digests["public/hello:2.0"])  # the Vulnerabilities tab: answered without errors


def test_a_search_as_a_guest_and_logged_in(service, digests) -> None:
    client = As(service)
    assert repos(get(client, SUGGEST)) == repos(get(client, SEARCH)) == ["public/hello"]
    assert repos(get(client, EXPLORE)) == ["public/alpine-like", "public/hello"]
    assert repos(get(client, EXPLORE, alice_session(service))) == ["private/secret", "public/alpine-like", "public/hello"]
