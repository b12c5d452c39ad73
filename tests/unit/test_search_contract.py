# ruff: noqa: E501  (the clients' query texts stay verbatim, one line each as in their sources)
"""The contract: zot's web UI and CLI send these exact query texts, and zotless must answer them unchanged.

Copied as the clients build them (template values filled in as the clients fill them):
- zui: project-zot/zui `src/api.js`, commit fbbd3594232dcbe34668c0064a8e374f2d2d4cfb (2026-07-24), `endpoints.*`.
  The browser sends each as a URL with only spaces and quotes percent-encoded; `{}` `[]` `:` stay raw.
- zli: project-zot/zot `pkg/cli/client/service.go` and `discover.go`, commit 6d19b445fed1c86c23fb7b351fac07cfd4717402
  (2026-08-21): a GET with the text in `?query=` (and as the body), Basic credentials always set. The CVE texts
  (getCVEListForImageGQL, getTagsForCVEGQL, getFixedTagsForCVEGQL, getCVEDiffListGQL) lose only their trailing spaces.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.config.schema import Config, Cve
from tests.conftest import Client
from tests.unit.search_helpers import COSIGN_SIG, SPDX, push_index, push_referrer

# --- zui, src/api.js (pageNumber 1, pageSize 15 unless named) ---


def zui_repo_list(page_size: int = 15, page_number: int = 1) -> str:
    return (
        f"{{RepoListWithNewestImage(requestedPage: {{limit:{page_size} offset:{(page_number - 1) * page_size}}}){{Results {{Name LastUpdated Size Platforms {{Os Arch}}  NewestImage {{ Tag Vulnerabilities {{MaxSeverity Count}} Description  Licenses Title Source IsSigned SignatureInfo {{ Tool IsTrusted Author }} Documentation Vendor Labels}} IsStarred IsBookmarked StarCount DownloadCount}}}}}}"
    )


def zui_detailed_repo_info(name: str) -> str:
    return f'{{ExpandedRepoInfo(repo:"{name}"){{Images {{Manifests {{Digest Platform {{Os Arch}} Size}} Vulnerabilities {{MaxSeverity Count}} Tag LastUpdated Vendor IsDeletable }} Summary {{Name LastUpdated Size Platforms {{Os Arch}} Vendors IsStarred IsBookmarked NewestImage {{RepoName IsSigned SignatureInfo {{ Tool IsTrusted Author }} Vulnerabilities {{MaxSeverity Count}} Manifests {{Digest}} Tag Vendor Title Documentation DownloadCount Source Description Licenses}}}}}}}}'


def zui_detailed_image_info(name: str, tag: str) -> str:
    return f'{{Image(image: "{name}:{tag}"){{RepoName IsSigned SignatureInfo {{ Tool IsTrusted Author }} Vulnerabilities {{MaxSeverity Count}}  Referrers {{MediaType ArtifactType Size Digest Annotations{{Key Value}}}} Tag TaggedTimestamp ArtifactType Manifests {{ArtifactType Layers {{Size Digest}} History {{Layer {{Size Digest}} HistoryDescription {{CreatedBy EmptyLayer}}}} Digest ConfigDigest LastUpdated Size Platform {{Os Arch}} Referrers {{MediaType ArtifactType Size Digest Annotations{{Key Value}}}}}} Vendor Licenses }}}}'


def zui_vulnerabilities_for_repo(name: str, search_term: str = "", excluded_term: str = "", severity: str = "") -> str:
    query = f'{{CVEListForImage(image: "{name}", requestedPage: {{limit:15 offset:0}}'
    if search_term:
        query += f', searchedCVE: "{search_term}"'
    if excluded_term:
        query += f', excludedCVE: "{excluded_term}"'
    if severity:
        query += f', severity: "{severity}"'
    return f"{query}){{Tag Page {{TotalCount ItemCount}} CVEList {{Id Title Description Severity Reference PackageList {{Name PackagePath InstalledVersion FixedVersion}}}} Summary {{Count UnknownCount LowCount MediumCount HighCount CriticalCount}}}}}}"


def zui_all_vulnerabilities_for_repo(name: str) -> str:
    return f'{{CVEListForImage(image: "{name}"){{Tag Page {{TotalCount ItemCount}} CVEList {{Id Title Description Severity Reference PackageList {{Name PackagePath InstalledVersion FixedVersion}}}}}}}}'


def zui_image_list_with_cve_fixed(cve_id: str, repo_name: str, os: list[str] | None = None, arch: list[str] | None = None) -> str:
    filter_param = ""
    if os or arch:
        filter_param = ",filter:{" + (f" Os:{json.dumps(os)}" if os else "") + (f" Arch:{json.dumps(arch)}" if arch else "") + "}"
    return f'{{ImageListWithCVEFixed(id:"{cve_id}", image:"{repo_name}", requestedPage: {{limit:3 offset:0}}{filter_param}) {{Page {{TotalCount ItemCount}} Results {{Tag}}}}}}'


def zui_depends_on_for_image(name: str) -> str:
    return f'{{BaseImageList(image: "{name}", requestedPage: {{limit:15 offset:0}}){{Page {{TotalCount ItemCount}} Results {{ RepoName Tag Description Manifests {{Digest Platform {{Os Arch}} Size}} Vendor DownloadCount LastUpdated IsSigned SignatureInfo {{ Tool IsTrusted Author }} Vulnerabilities {{MaxSeverity Count}}}}}}}}'


def zui_is_dependent_on_for_image(name: str) -> str:
    return f'{{DerivedImageList(image: "{name}", requestedPage: {{limit:15 offset:0}}){{Page {{TotalCount ItemCount}} Results {{RepoName Tag Description Manifests {{Digest Platform {{Os Arch}} Size}} Vendor DownloadCount LastUpdated IsSigned SignatureInfo {{ Tool IsTrusted Author }} Vulnerabilities {{MaxSeverity Count}}}}}}}}'


def zui_global_search(search_query: str, sort_by: str = "RELEVANCE", filter_param: str = "") -> str:
    """filter_param as the UI builds it, e.g. ',filter: { Os:["linux"] HasToBeSigned: true}', or '' for no filter."""
    search_param = f'query:"{search_query}"' if search_query else 'query:""'
    pagination_param = f"requestedPage: {{limit:15 offset:0 sortBy: {sort_by}}}"
    return f"{{GlobalSearch({search_param}, {pagination_param} {filter_param}) {{Page {{TotalCount ItemCount}} Repos {{Name LastUpdated Size Platforms {{ Os Arch }} IsStarred IsBookmarked NewestImage {{ Tag Vulnerabilities {{MaxSeverity Count}} Description IsSigned SignatureInfo {{ Tool IsTrusted Author }} Licenses Vendor Labels }} StarCount DownloadCount}}}}}}"


def zui_image_suggestions(search_query: str) -> str:
    search_param = f'query:"{search_query}"' if search_query != "" else 'query:""'
    return f"{{GlobalSearch({search_param}, requestedPage: {{limit:15 offset:0 sortBy:RELEVANCE}}) {{Images {{RepoName Tag}}}}}}"


def zui_referrers(repo: str, digest: str, type_: str = "") -> str:
    return f'{{Referrers(repo: "{repo}" digest: "{digest}" type: "{type_}"){{MediaType ArtifactType Size Digest Annotations{{Key Value}}}}}}'


# --- zli, pkg/cli/client/service.go and discover.go (sortBy as Flag2SortCriteria renders the flag) ---

ZLI_RESULTS = """
				Results{
					RepoName Tag
					Digest
					MediaType
					Manifests {
						Digest
						ConfigDigest
						Size
						Platform {Os Arch}
						IsSigned
						Layers {Size Digest}
						LastUpdated
					}
					LastUpdated
					Size
					IsSigned
				}"""


def zli_derived(image: str, sort_by: str = "ALPHABETIC_ASC") -> str:
    return f"""
		{{
			DerivedImageList(image:"{image}", requestedPage: {{sortBy: {sort_by}}}){{{ZLI_RESULTS}
			}}
		}}"""


def zli_base(image: str, sort_by: str = "ALPHABETIC_ASC") -> str:
    return f"""
		{{
			BaseImageList(image:"{image}", requestedPage: {{sortBy: {sort_by}}}){{{ZLI_RESULTS}
			}}
		}}"""


def zli_referrers(repo: str, digest: str) -> str:
    return f"""
		{{
			Referrers( repo: "{repo}", digest: "{digest}" ){{
				ArtifactType,
				Digest,
				MediaType,
				Size,
				Annotations{{
					Key
					Value
				}}
			}}
		}}"""


def zli_global_search(query: str, sort_by: str = "RELEVANCE") -> str:
    return f"""
		{{
			GlobalSearch(query:"{query}", requestedPage: {{sortBy: {sort_by}}}){{
				Images {{
					RepoName
					Tag
					MediaType
					Digest
					Size
					IsSigned
					LastUpdated
					Manifests {{
						Digest
						ConfigDigest
						Platform {{Os Arch}}
						Size
						IsSigned
						Layers {{Size Digest}}
						LastUpdated
					}}
				}}
				Repos {{
					Name
					Platforms {{ Os Arch }}
					LastUpdated
					Size
					DownloadCount
					StarCount
				}}
			}}
		}}"""


def zli_images(repo: str, sort_by: str = "ALPHABETIC_ASC") -> str:
    return f"""
	{{
		ImageList(repo: "{repo}", requestedPage: {{sortBy: {sort_by}}}) {{
			Results {{
				RepoName Tag
				Digest
				MediaType
				Manifests {{
					Digest
					ConfigDigest
					Size
					Platform {{Os Arch}}
					IsSigned
					Layers {{Size Digest}}
					LastUpdated
				}}
				LastUpdated
				Size
				IsSigned
			}}
		}}
	}}"""


def zli_images_for_digest(digest: str, sort_by: str = "ALPHABETIC_ASC") -> str:
    return f"""
	{{
		ImageListForDigest(id: "{digest}", requestedPage: {{sortBy: {sort_by}}}) {{
			Results {{
				RepoName Tag
				Digest
				MediaType
				Manifests {{
					Digest
					ConfigDigest
					Size
					Platform {{Os Arch}}
					IsSigned
					Layers {{Size Digest}}
					LastUpdated
				}}
				LastUpdated
				Size
				IsSigned
			}}
		}}
	}}"""


def zli_cve_for_image(image: str, searched: str = "", sort_by: str = "SEVERITY") -> str:
    return f"""
	{{
		CVEListForImage (image:"{image}", searchedCVE:"{searched}", requestedPage: {{sortBy: {sort_by}}}) {{
			Tag
			CVEList {{
				Id Title Severity Description
				PackageList {{Name PackagePath InstalledVersion FixedVersion}}
			}}
			Summary {{
				Count UnknownCount LowCount MediumCount HighCount CriticalCount MaxSeverity
			}}
		}}
	}}"""


def zli_images_for_cve(cve_id: str, sort_by: str = "ALPHABETIC_ASC") -> str:
    return f"""
		{{
			ImageListForCVE(id: "{cve_id}", requestedPage: {{sortBy: {sort_by}}}) {{{ZLI_RESULTS}
			}}
		}}"""


def zli_fixed_tags_for_cve(image: str, cve_id: str) -> str:
    return f"""
		{{
			ImageListWithCVEFixed(id: "{cve_id}", image: "{image}") {{{ZLI_RESULTS}
			}}
		}}"""


def zli_image_input(repo: str, tag: str, digest: str = "", platform: tuple[str, str] | None = None) -> str:
    """getImageInput in service.go."""
    extra = f', Platform: {{Os: "{platform[0]}", Arch: "{platform[1]}"}}' if platform else ""
    return f'{{Repo: "{repo}", Tag: "{tag}", Digest: "{digest}"{extra}}}'


def zli_cve_diff(minuend: str, subtrahend: str) -> str:
    return f"""
		{{
			CVEDiffListForImages( minuend: {minuend}, subtrahend: {subtrahend} ) {{
				Minuend {{Repo Tag Digest Platform {{Os Arch}}}}
				Subtrahend {{Repo Tag Digest Platform {{Os Arch}}}}
				CVEList {{
					Id Title Description Severity Reference
					PackageList {{Name InstalledVersion FixedVersion}}
				}}
				Summary {{
					Count UnknownCount LowCount MediumCount HighCount CriticalCount
				}}
				Page {{TotalCount ItemCount}}
			}}
		}}"""


ZLI_SCHEMA = """
		{
			__schema {
				queryType {
					fields {
						name
						args {
							name
						}
						type {
							name
							kind
						}
					}
					__typename
				}
				types {
					name
					fields {
						name
					}
				}
			}
		}"""

# zli's checks before a command (pkg/cli/client/gql_queries.go): each query with exactly these arguments.
ZLI_REQUIRED = {
    "ImageList": ["repo", "requestedPage"],
    "ImageListForDigest": ["id", "requestedPage"],
    "BaseImageList": ["image", "digest", "requestedPage"],
    "DerivedImageList": ["image", "digest", "requestedPage"],
    "GlobalSearch": ["query", "filter", "requestedPage"],
    "Referrers": ["repo", "digest", "type"],
    "CVEListForImage": ["image", "requestedPage", "searchedCVE", "excludedCVE", "severity"],
    "CVEDiffListForImages": ["minuend", "subtrahend", "requestedPage", "searchedCVE", "excludedCVE"],
    "ImageListForCVE": ["id", "filter", "requestedPage"],
    "ImageListWithCVEFixed": ["id", "image", "filter", "requestedPage"],
}


def browser_url(text: str) -> str:
    """The URL a browser sends for zui's `/v2/_zot/ext/search?query=...`: only the query percent-encode set is escaped."""
    return "/v2/_zot/ext/search?query=" + "".join({" ": "%20", '"': "%22", "#": "%23", "<": "%3C", ">": "%3E"}.get(c, c) for c in text)


def zui(client: Client, text: str) -> dict[str, Any]:
    response = client("GET", browser_url(text), headers={"Accept": "application/json", "Content-Type": "application/json"})
    document = json.loads(response.body_bytes())
    assert response.status == 200 and "errors" not in document, document
    return document["data"]


def zli(client: Client, text: str) -> dict[str, Any]:
    from urllib.parse import urlencode

    headers = {"Authorization": "Basic Og==", "Content-Type": "application/json"}  # SetBasicAuth("", "") without --user
    response = client("GET", "/v2/_zot/ext/search?" + urlencode({"query": text}), text.encode(), headers)
    document = json.loads(response.body_bytes())
    assert response.status == 200 and not document.get("errors"), document
    return document["data"]


@pytest.fixture
def pushed(client: Client) -> dict[str, str]:
    """A base image, an app built on its layer (labels, annotations, a signature and an SBOM), a multi-platform index."""
    client.push_image("base/os", "1", [b"base rootfs"], {"os": "linux", "architecture": "amd64", "created": "2024-01-01T00:00:00Z"})
    app_config = {
        "os": "linux",
        "architecture": "amd64",
        "created": "2024-06-01T00:00:00Z",
        "config": {"Labels": {"org.opencontainers.image.vendor": "Acme"}},
        "history": [{"created_by": "ADD base"}, {"created_by": "COPY app"}],
    }
    annotations = {"org.opencontainers.image.description": "the app", "org.opencontainers.image.licenses": "Apache-2.0"}
    app, app_body = client.push_image("team/app", "1.0", [b"base rootfs", b"app files"], app_config, annotations=annotations)
    signature = push_referrer(client, "team/app", app, len(app_body), COSIGN_SIG, b"signature")
    push_referrer(client, "team/app", app, len(app_body), SPDX, b'{"spdxVersion": "SPDX-2.3"}')
    children = []
    for arch in ("amd64", "arm64"):
        config = {"os": "linux", "architecture": arch, "created": "2023-01-01T00:00:00Z"}
        digest, body = client.push_image("team/app", f"1.0-{arch}", [arch.encode()], config)
        children.append((digest, body, {"os": "linux", "architecture": arch}))
    push_index(client, "team/app", "multi", children)
    return {"app": app, "signature": signature, "layer": "sha256:" + __import__("hashlib").sha256(b"base rootfs").hexdigest()}


def test_zui_home_page_repository_list(client: Client, pushed: dict[str, str]) -> None:
    results = zui(client, zui_repo_list())["RepoListWithNewestImage"]["Results"]
    by_name = {r["Name"]: r for r in results}
    assert set(by_name) == {"base/os", "team/app"}
    app = by_name["team/app"]
    assert {(p["Os"], p["Arch"]) for p in app["Platforms"]} == {("linux", "amd64"), ("linux", "arm64")}
    assert app["NewestImage"]["Tag"] == "1.0" and app["NewestImage"]["IsSigned"] is True and app["NewestImage"]["Vendor"] == "Acme"
    assert app["NewestImage"]["Vulnerabilities"] == {"MaxSeverity": "", "Count": 0}


def test_zui_repository_page(client: Client, pushed: dict[str, str]) -> None:
    info = zui(client, zui_detailed_repo_info("team/app"))["ExpandedRepoInfo"]
    assert {i["Tag"] for i in info["Images"]} == {"1.0", "1.0-amd64", "1.0-arm64", "multi"}
    assert info["Summary"]["Name"] == "team/app" and info["Summary"]["Vendors"] == ["Acme"]
    assert info["Summary"]["NewestImage"]["Description"] == "the app"


def test_zui_image_page_with_its_tabs(client: Client, pushed: dict[str, str]) -> None:
    image = zui(client, zui_detailed_image_info("team/app", "1.0"))["Image"]
    assert image["IsSigned"] and image["SignatureInfo"][0]["Tool"] == "cosign" and image["Licenses"] == "Apache-2.0"
    assert {r["ArtifactType"] for r in image["Referrers"]} == {COSIGN_SIG, SPDX}
    assert [h["HistoryDescription"]["CreatedBy"] for h in image["Manifests"][0]["History"]] == ["ADD base", "COPY app"]
    assert zui(client, zui_depends_on_for_image("team/app:1.0"))["BaseImageList"]["Results"][0]["RepoName"] == "base/os"
    assert zui(client, zui_is_dependent_on_for_image("base/os:1"))["DerivedImageList"]["Results"][0]["Tag"] == "1.0"
    assert zui(client, zui_vulnerabilities_for_repo("team/app:1.0"))["CVEListForImage"]["CVEList"] == []
    assert zui(client, zui_vulnerabilities_for_repo("team/app:1.0", "CVE-2024"))["CVEListForImage"]["Page"]["TotalCount"] == 0
    assert zui(client, zui_all_vulnerabilities_for_repo("team/app:1.0"))["CVEListForImage"]["Tag"] == "1.0"
    assert zui(client, zui_image_list_with_cve_fixed("CVE-2024-1", "team/app"))["ImageListWithCVEFixed"]["Results"] == []
    referrers = zui(client, zui_referrers("team/app", pushed["app"]))["Referrers"]
    assert {r["ArtifactType"] for r in referrers} == {COSIGN_SIG, SPDX}  # type "" filters nothing


def test_zui_search_and_suggestions(client: Client, pushed: dict[str, str]) -> None:
    found = zui(client, zui_global_search("app"))["GlobalSearch"]
    assert [r["Name"] for r in found["Repos"]] == ["team/app"] and found["Page"]["TotalCount"] == 1
    for sort_by in ("UPDATE_TIME", "ALPHABETIC_ASC", "ALPHABETIC_DSC", "DOWNLOADS"):
        assert zui(client, zui_global_search("", sort_by))["GlobalSearch"]["Page"]["TotalCount"] == 2
    arm = zui(client, zui_global_search("", "RELEVANCE", ',filter: { Os:["linux"] Arch:["arm64"]}'))["GlobalSearch"]
    assert [r["Name"] for r in arm["Repos"]] == ["team/app"]
    signed = zui(client, zui_global_search("", "RELEVANCE", ",filter: { HasToBeSigned: true}"))["GlobalSearch"]
    assert [r["Name"] for r in signed["Repos"]] == ["team/app"]
    assert zui(client, zui_global_search("", "RELEVANCE", ",filter: { IsBookmarked: true}"))["GlobalSearch"]["Repos"] == []
    suggestions = zui(client, zui_image_suggestions("team/app:1.0-"))["GlobalSearch"]["Images"]
    assert suggestions == [{"RepoName": "team/app", "Tag": "1.0-amd64"}, {"RepoName": "team/app", "Tag": "1.0-arm64"}]


def test_zli_checks_the_extension_and_the_schema_first(client: Client) -> None:
    discovered = json.loads(client("GET", "/v2/_oci/ext/discover").body_bytes())
    assert "/v2/_zot/ext/search" in next(e for e in discovered["extensions"] if e["name"] == "_zot")["endpoints"]
    schema = zli(client, ZLI_SCHEMA)["__schema"]
    fields = {f["name"]: [a["name"] for a in f["args"]] for f in schema["queryType"]["fields"]}
    for name, args in ZLI_REQUIRED.items():
        assert fields[name] == args, name
    assert {"PaginatedImagesResult", "GlobalSearchResult", "Referrer", "CVEResultForImage", "CVEDiffResult"} <= {t["name"] for t in schema["types"]}


def test_zli_image_and_search_commands(client: Client, pushed: dict[str, str]) -> None:
    images = zli(client, zli_images("team/app"))["ImageList"]["Results"]
    assert [i["Tag"] for i in images] == ["1.0", "1.0-amd64", "1.0-arm64", "multi"] and images[0]["IsSigned"]
    assert [m["Platform"]["Arch"] for m in images[3]["Manifests"]] == ["amd64", "arm64"]
    by_digest = zli(client, zli_images_for_digest(pushed["layer"]))["ImageListForDigest"]["Results"]
    assert {(i["RepoName"], i["Tag"]) for i in by_digest} == {("base/os", "1"), ("team/app", "1.0")}
    assert zli(client, zli_derived("base/os:1"))["DerivedImageList"]["Results"][0]["RepoName"] == "team/app"
    assert zli(client, zli_base("team/app:1.0"))["BaseImageList"]["Results"][0]["RepoName"] == "base/os"
    assert {r["Digest"] for r in zli(client, zli_referrers("team/app", pushed["app"]))["Referrers"]} >= {pushed["signature"]}
    search = zli(client, zli_global_search("team/app:multi"))["GlobalSearch"]
    assert [i["Tag"] for i in search["Images"]] == ["multi"] and search["Repos"] == []
    assert [r["Name"] for r in zli(client, zli_global_search("os"))["GlobalSearch"]["Repos"]] == ["base/os"]
    assert zli(client, zli_cve_for_image("team/app:1.0"))["CVEListForImage"]["CVEList"] == []


class TestCveContract:
    """The CVE texts of zui (image page's vulnerability tab, fixed-in list) and zli (`cve list|affected|fixed|diff`) with scanning on."""

    @pytest.fixture
    def config(self) -> Config:
        config = Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}}})
        config.extensions.search.cve = Cve()
        return config

    @pytest.fixture
    def scanned(self, service, client: Client) -> dict[str, str]:
        from chalicelib.cve.service import CveService
        from tests.cve_images import standard_records
        from tests.unit.test_cve_scan import NEW_OPENSSL, OLD_OPENSSL, debian_image, dpkg_entry

        cve = CveService(service.api.registry, service.index, service.store)
        cve.db.load(standard_records(), "test")
        zlib = dpkg_entry("zlib1g", "1:1.2.13.dfsg-1", "zlib")
        digests = {}
        for day, (tag, entries) in enumerate({"1.0": [OLD_OPENSSL, zlib], "1.1": [NEW_OPENSSL, zlib]}.items(), start=1):
            digests[tag], _ = client.push_image("web/app", tag, debian_image(*entries), {"os": "linux", "architecture": "amd64", "created": f"2024-01-0{day}T00:00:00Z"})
            cve.scan("web/app", digests[tag])
        return digests

    def test_zui_vulnerability_tab_and_fixed_list(self, client: Client, scanned: dict[str, str]) -> None:
        tab = zui(client, zui_vulnerabilities_for_repo("web/app:1.0"))["CVEListForImage"]
        assert [c["Id"] for c in tab["CVEList"]] == ["CVE-2023-5363", "CVE-2023-9999"] and tab["Page"] == {"TotalCount": 2, "ItemCount": 2}
        assert tab["Summary"] == {"Count": 2, "UnknownCount": 1, "LowCount": 0, "MediumCount": 0, "HighCount": 0, "CriticalCount": 1}
        assert tab["CVEList"][0]["PackageList"][0]["FixedVersion"] == "3.0.11-1~deb12u2" and tab["CVEList"][0]["Reference"]
        assert [c["Id"] for c in zui(client, zui_vulnerabilities_for_repo("web/app:1.0", "zlib"))["CVEListForImage"]["CVEList"]] == ["CVE-2023-9999"]
        assert [c["Id"] for c in zui(client, zui_vulnerabilities_for_repo("web/app:1.0", "", "zlib"))["CVEListForImage"]["CVEList"]] == ["CVE-2023-5363"]
        assert zui(client, zui_vulnerabilities_for_repo("web/app:1.0", "", "", "UNKNOWN"))["CVEListForImage"]["Page"]["TotalCount"] == 1
        assert len(zui(client, zui_all_vulnerabilities_for_repo("web/app:1.0"))["CVEListForImage"]["CVEList"]) == 2
        fixed = zui(client, zui_image_list_with_cve_fixed("CVE-2023-5363", "web/app"))["ImageListWithCVEFixed"]
        assert fixed == {"Page": {"TotalCount": 1, "ItemCount": 1}, "Results": [{"Tag": "1.1"}]}
        assert zui(client, zui_image_list_with_cve_fixed("CVE-2023-5363", "web/app", ["linux"], ["arm64"]))["ImageListWithCVEFixed"]["Results"] == []
        badges = zui(client, zui_repo_list())["RepoListWithNewestImage"]["Results"][0]["NewestImage"]["Vulnerabilities"]
        assert badges == {"MaxSeverity": "UNKNOWN", "Count": 1}  # 1.1: zlib's unrated advisory remains

    def test_zli_cve_commands(self, client: Client, scanned: dict[str, str]) -> None:
        listed = zli(client, zli_cve_for_image("web/app:1.0"))["CVEListForImage"]
        assert [c["Id"] for c in listed["CVEList"]] == ["CVE-2023-5363", "CVE-2023-9999"] and listed["Summary"]["MaxSeverity"] == "CRITICAL"
        affected = zli(client, zli_images_for_cve("CVE-2023-5363"))["ImageListForCVE"]["Results"]
        assert [(i["RepoName"], i["Tag"], i["Digest"]) for i in affected] == [("web/app", "1.0", scanned["1.0"])]
        fixed = zli(client, zli_fixed_tags_for_cve("web/app", "CVE-2023-5363"))["ImageListWithCVEFixed"]["Results"]
        assert [i["Tag"] for i in fixed] == ["1.1"]
        diff = zli(client, zli_cve_diff(zli_image_input("web/app", "1.0"), zli_image_input("web/app", "1.1")))["CVEDiffListForImages"]
        assert [c["Id"] for c in diff["CVEList"]] == ["CVE-2023-5363"] and diff["Summary"]["CriticalCount"] == 1
        assert diff["Minuend"] == {"Repo": "web/app", "Tag": "1.0", "Digest": scanned["1.0"], "Platform": None}
