# ruff: noqa: E501, UP031  (GraphQL texts stay one line each, with %s where a selection varies)
"""zot's CVE queries through the search endpoint, on moto: images with real package files, scanned against small OSV records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.config.schema import Config, Cve
from chalicelib.cve.service import CveService
from tests.conftest import Client
from tests.counting import CallCounter
from tests.cve_images import dist_info, dpkg_entry, gzip_layer
from tests.unit.authsetup import As, Setup, auth_config, basic
from tests.unit.search_helpers import data, gql, push_index
from tests.unit.test_cve_scan import NEW_OPENSSL, OLD_OPENSSL, debian_image, push_raw

ZLIB = dpkg_entry("zlib1g", "1:1.2.13.dfsg-1", "zlib")
NOT_SCANNED = {"MaxSeverity": "", "Count": 0}
LIST = "{CVEListForImage(image: %s%s){Tag Page {TotalCount ItemCount} CVEList {Id Severity PackageList {Name PackagePath InstalledVersion FixedVersion}} Summary {MaxSeverity Count UnknownCount LowCount MediumCount HighCount CriticalCount}}}"


def scanning_on(config: Config) -> Config:
    config.extensions.search.cve = Cve()
    return config


@pytest.fixture
def config() -> Config:
    return scanning_on(Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}}}))


@pytest.fixture
def cve(service) -> CveService:
    from tests.cve_images import standard_records

    scans = CveService(service.api.registry, service.index, service.store)
    scans.db.load(standard_records(), "test")
    return scans


def created(day: int) -> dict[str, str]:
    return {"architecture": "amd64", "os": "linux", "created": f"2024-01-{day:02d}T00:00:00Z"}


def push(client: Client, cve: CveService | None, repo: str, tag: str, layers: list[bytes], day: int = 1) -> str:
    """Push an image built on `day`; scan it unless cve is None (then it waits, "not scanned yet")."""
    digest, _ = client.push_image(repo, tag, layers, created(day))
    if cve is not None:
        cve.scan(repo, digest)
    return digest


def cve_list(client: Client, image: str, arguments: str = "") -> dict:
    return data(client, LIST % (f'"{image}"', arguments))["CVEListForImage"]


def tags(answer: dict) -> list[str]:
    return [f"{i['RepoName']}:{i['Tag']}" for i in answer["Results"]]


def test_a_vulnerable_image_lists_its_cves_by_severity_with_packages_and_the_whole_summary(client: Client, cve: CveService) -> None:
    digest = push(client, cve, "app", "1.0", debian_image(OLD_OPENSSL, ZLIB))
    found = cve_list(client, "app:1.0", ", requestedPage: {limit: 1 offset: 0}")
    assert found["Tag"] == "1.0" and found["Page"] == {"TotalCount": 2, "ItemCount": 1}
    assert found["CVEList"] == [
        {"Id": "CVE-2023-5363", "Severity": "CRITICAL", "PackageList": [
            {"Name": "libssl3", "PackagePath": found["CVEList"][0]["PackageList"][0]["PackagePath"], "InstalledVersion": "3.0.11-1~deb12u1", "FixedVersion": "3.0.11-1~deb12u2"}
        ]}
    ]  # fmt: skip
    summary = {"MaxSeverity": "CRITICAL", "Count": 2, "UnknownCount": 1, "LowCount": 0, "MediumCount": 0, "HighCount": 0, "CriticalCount": 1}
    assert found["Summary"] == summary
    second = cve_list(client, "app:1.0", ", requestedPage: {limit: 1 offset: 1}")["CVEList"]
    assert [(c["Id"], c["PackageList"][0]["FixedVersion"]) for c in second] == [("CVE-2023-9999", "")]
    by_digest = cve_list(client, f"app@{digest}")
    assert by_digest["Tag"] == digest and [c["Id"] for c in by_digest["CVEList"]] == ["CVE-2023-5363", "CVE-2023-9999"]
    alphabetic = cve_list(client, "app:1.0", ", requestedPage: {sortBy: ALPHABETIC_DSC}")
    assert [c["Id"] for c in alphabetic["CVEList"]] == ["CVE-2023-9999", "CVE-2023-5363"]


def test_searched_excluded_and_severity_filter_the_list_but_not_the_summary(client: Client, cve: CveService) -> None:
    push(client, cve, "app", "1.0", debian_image(OLD_OPENSSL, ZLIB))
    zlib = cve_list(client, "app:1.0", ', searchedCVE: "zlib1g"')  # a package name matches, as in zot
    assert [c["Id"] for c in zlib["CVEList"]] == ["CVE-2023-9999"] and zlib["Page"]["TotalCount"] == 1 and zlib["Summary"]["Count"] == 2
    assert [c["Id"] for c in cve_list(client, "app:1.0", ', excludedCVE: "5363"')["CVEList"]] == ["CVE-2023-9999"]
    assert [c["Id"] for c in cve_list(client, "app:1.0", ', severity: "CRITICAL"')["CVEList"]] == ["CVE-2023-5363"]
    status, document = gql(client, LIST % ('"app:1.0"', ", requestedPage: {sortBy: RELEVANCE}"))
    assert status == 200 and "not supported" in document["errors"][0]["message"]


def test_fixed_and_whited_out_packages_are_not_listed(client: Client, cve: CveService) -> None:
    push(client, cve, "app", "1.1", debian_image(NEW_OPENSSL))
    fixed = cve_list(client, "app:1.1")
    assert fixed["CVEList"] == [] and fixed["Summary"]["MaxSeverity"] == "NONE" and fixed["Page"] == {"TotalCount": 0, "ItemCount": 0}
    base = gzip_layer({"etc/os-release": b'ID=debian\nVERSION_ID="12"\n', "var/lib/dpkg/status": b""} | dist_info("requests", "2.30.0"))
    removed = gzip_layer({"usr/lib/python3/dist-packages/.wh.requests-2.30.0.dist-info": b""})
    push(client, cve, "wh", "base", [base])
    push(client, cve, "wh", "slim", [base, removed])
    assert [c["Id"] for c in cve_list(client, "wh:base")["CVEList"]] == ["CVE-2023-32681"]
    assert cve_list(client, "wh:slim")["CVEList"] == []


def test_unscanned_and_unscannable_images_answer_as_zot_answers_an_unscanned_image(client: Client, cve: CveService) -> None:
    push(client, None, "app", "pending", debian_image(OLD_OPENSSL))
    odd, _ = push_raw(client, "app", "odd", [(b"\x00" * 64, "application/vnd.example.layer.v1.squashfs")])
    cve.scan("app", odd)
    for tag in ("pending", "odd"):
        status, document = gql(client, LIST % (f'"app:{tag}"', ""))
        assert status == 200 and "errors" not in document
        answer = document["data"]["CVEListForImage"]
        assert answer["Tag"] == tag and answer["CVEList"] == [] and answer["Page"] == {"TotalCount": 0, "ItemCount": 0}
        assert answer["Summary"] == {"MaxSeverity": "", "Count": 0, "UnknownCount": 0, "LowCount": 0, "MediumCount": 0, "HighCount": 0, "CriticalCount": 0}
    status, document = gql(client, LIST % ('"app:none"', ""))
    assert status == 200 and "not found" in document["errors"][0]["message"]


def test_vulnerabilities_on_every_image_summary(client: Client, cve: CveService) -> None:
    push(client, cve, "app", "1.0", debian_image(OLD_OPENSSL), day=1)
    push(client, cve, "app", "1.1", debian_image(NEW_OPENSSL), day=2)
    push(client, None, "app", "2.0", debian_image(OLD_OPENSSL, ZLIB), day=3)
    push(client, cve, "lib", "1", debian_image(OLD_OPENSSL, ZLIB))
    severity = "Vulnerabilities {MaxSeverity Count}"
    images = data(client, '{ImageList(repo: "app"){Results {Tag %s Manifests {Digest %s}}}}' % (severity, severity))["ImageList"]["Results"]
    assert {i["Tag"]: i["Vulnerabilities"] for i in images} == {"1.0": {"MaxSeverity": "CRITICAL", "Count": 1}, "1.1": {"MaxSeverity": "NONE", "Count": 0}, "2.0": NOT_SCANNED}
    assert images[0]["Manifests"][0]["Vulnerabilities"] == {"MaxSeverity": "CRITICAL", "Count": 1}
    newest = data(client, "{RepoListWithNewestImage{Results {Name NewestImage {Tag %s}}}}" % severity)["RepoListWithNewestImage"]["Results"]
    assert {r["Name"]: r["NewestImage"]["Vulnerabilities"] for r in newest} == {"app": NOT_SCANNED, "lib": {"MaxSeverity": "CRITICAL", "Count": 2}}
    expanded = data(client, '{ExpandedRepoInfo(repo: "lib"){Images {%s} Summary {NewestImage {%s}}}}' % (severity, severity))["ExpandedRepoInfo"]
    assert expanded["Images"][0]["Vulnerabilities"] == expanded["Summary"]["NewestImage"]["Vulnerabilities"] == {"MaxSeverity": "CRITICAL", "Count": 2}
    searched = data(client, '{GlobalSearch(query: "app:1"){Images {Tag %s}}}' % severity)["GlobalSearch"]["Images"]
    assert [i["Vulnerabilities"]["MaxSeverity"] for i in searched] == ["CRITICAL", "NONE"]
    full = data(client, '{Image(image: "app:1.0"){Vulnerabilities {MaxSeverity Count UnknownCount LowCount MediumCount HighCount CriticalCount}}}')
    assert full["Image"]["Vulnerabilities"] == {"MaxSeverity": "CRITICAL", "Count": 1, "UnknownCount": 0, "LowCount": 0, "MediumCount": 0, "HighCount": 0, "CriticalCount": 1}


def test_a_multi_platform_index_has_its_union_and_each_platform_its_own(client: Client, cve: CveService) -> None:
    amd, amd_body = client.push_image("multi", "amd64", debian_image(OLD_OPENSSL))
    arm, arm_body = client.push_image("multi", "arm64", debian_image(ZLIB), {"architecture": "arm64", "os": "linux"})
    index = push_index(client, "multi", "latest", [(amd, amd_body, {"os": "linux", "architecture": "amd64"}), (arm, arm_body, {"os": "linux", "architecture": "arm64"})])
    cve.scan("multi", index)
    text = '{Image(image: "multi:latest"){Vulnerabilities {MaxSeverity Count} Manifests {Platform {Arch} Vulnerabilities {MaxSeverity Count}}}}'
    image = data(client, text)["Image"]
    assert image["Vulnerabilities"] == {"MaxSeverity": "CRITICAL", "Count": 2}
    assert {m["Platform"]["Arch"]: m["Vulnerabilities"]["Count"] for m in image["Manifests"]} == {"amd64": 1, "arm64": 1}


def test_listings_read_the_result_cache_once_and_only_when_vulnerabilities_are_asked_for(client: Client, cve: CveService, service) -> None:
    for n in range(5):
        push(client, cve, f"repo{n}", "1", debian_image(OLD_OPENSSL, dpkg_entry("pkg", str(n))))
        push(client, cve, f"repo{n}", "2", debian_image(NEW_OPENSSL, dpkg_entry("pkg", str(n))))
    counter = CallCounter(service.index.table.client, service.store.client)
    projections: list[str] = []

    def projected(params: dict, **_: object) -> None:
        projections.extend(str(r.get("ProjectionExpression")) for r in params["RequestItems"].values())

    service.index.table.client.meta.events.register("provide-client-params.dynamodb.BatchGetItem", projected)
    asked = " Vulnerabilities {MaxSeverity Count}"
    for text in ("{RepoListWithNewestImage{Results {Name NewestImage {Tag%s}}}}", '{ImageList(repo: ""){Results {Tag%s Manifests {Digest%s}}}}'):
        for _ in range(2):  # the first read caches the repository summaries
            data(client, text.replace("%s", ""))
            without = counter.take()
        data(client, text.replace("%s", asked))
        with_vulnerabilities = counter.take()
        extra = {k: with_vulnerabilities.get(k, 0) - without.get(k, 0) for k in with_vulnerabilities.keys() | without.keys()}
        assert {k: v for k, v in extra.items() if v} == {"dynamodb:BatchGetItem": 1}, (text, without, with_vulnerabilities)
    assert projections and all("#p" in p and len(p.split(",")) == 6 for p in projections), "keys, state, version, summary, ids: no findings"


def test_image_list_for_cve_lists_affected_tags_across_repositories(client: Client, cve: CveService) -> None:
    push(client, cve, "app", "1.0", debian_image(OLD_OPENSSL), day=1)
    push(client, cve, "app", "1.1", debian_image(NEW_OPENSSL), day=2)
    push(client, cve, "other", "latest", debian_image(OLD_OPENSSL, ZLIB), day=3)
    push(client, None, "other", "pending", debian_image(OLD_OPENSSL, dpkg_entry("x", "1")), day=4)
    text = '{ImageListForCVE(id: "CVE-2023-5363"%s){Page {TotalCount ItemCount} Results {RepoName Tag Vulnerabilities {MaxSeverity}}}}'
    found = data(client, text % "")["ImageListForCVE"]
    assert tags(found) == ["other:latest", "app:1.0"] and found["Page"] == {"TotalCount": 2, "ItemCount": 2}  # newest first, as zot
    assert found["Results"][0]["Vulnerabilities"] == {"MaxSeverity": "CRITICAL"}
    page = data(client, text % ", requestedPage: {limit: 1 offset: 1 sortBy: ALPHABETIC_ASC}")["ImageListForCVE"]
    assert tags(page) == ["other:latest"] and page["Page"] == {"TotalCount": 2, "ItemCount": 1}
    assert data(client, text % ', filter: {Arch: ["arm64"]}')["ImageListForCVE"]["Results"] == []
    assert tags(data(client, text.replace("CVE-2023-5363", "CVE-2023-9999") % "")["ImageListForCVE"]) == ["other:latest"]


@pytest.mark.parametrize("cve_id", ["CVE-" + "9" * 2000, "é" * 600, "CVE-2023-5363#sha256", ""])
def test_an_id_no_advisory_has_is_answered_empty_without_asking_dynamodb(client: Client, cve: CveService, service, cve_id: str) -> None:
    """DynamoDB refuses a key condition over 1,024 bytes (moto does not): a client's long id must not reach it."""
    push(client, cve, "app", "1.0", debian_image(OLD_OPENSSL), day=1)
    data(client, '{ImageListForCVE(id: "CVE-2023-5363"){Page {TotalCount}}}')  # summaries cached
    counter = CallCounter(service.index.table.client)
    status, answer = gql(client, '{ImageListForCVE(id: %s){Page {TotalCount} Results {Tag}}}' % json.dumps(cve_id))
    assert status == 200 and answer["data"]["ImageListForCVE"] == {"Page": {"TotalCount": 0}, "Results": []}, answer
    assert counter.take() == {}


def test_results_stored_before_the_cve_lookup_are_listed_after_the_next_rematch(client: Client, cve: CveService, service) -> None:
    """The lookup is re-derived from stored results: a re-match re-saves results that have no lookup items yet."""
    push(client, cve, "app", "1.0", debian_image(OLD_OPENSSL))
    table = service.index.table
    for item in list(table.query("_cve", "h#")):  # as a registry upgraded from before the lookup holds them
        table.delete("_cve", str(item["key"]))
    for item in list(table.query("_cve", "s#")):
        table.put({k: v for k, v in item.items() if k != "hits"})
    text = '{ImageListForCVE(id: "CVE-2023-5363"){Results {RepoName Tag}}}'
    assert data(client, text)["ImageListForCVE"]["Results"] == []
    assert cve.rematch_all() == 1
    assert data(client, text)["ImageListForCVE"]["Results"] == [{"RepoName": "app", "Tag": "1.0"}]


def test_image_list_with_cve_fixed_follows_zots_rule(client: Client, cve: CveService) -> None:
    push(client, cve, "app", "0.9", debian_image(NEW_OPENSSL), day=1)  # built before the first vulnerable tag: not "fixed"
    push(client, cve, "app", "1.0", debian_image(OLD_OPENSSL), day=2)
    push(client, cve, "app", "1.1", debian_image(NEW_OPENSSL), day=3)
    push(client, None, "app", "1.2-pending", debian_image(NEW_OPENSSL, ZLIB), day=4)
    odd, _ = push_raw(client, "app", "1.3-odd", [(b"\x00" * 64, "application/vnd.example.layer.v1.squashfs")])
    cve.scan("app", odd)
    text = '{ImageListWithCVEFixed(id: "%s", image: "app"){Page {TotalCount ItemCount} Results {Tag}}}'
    fixed = data(client, text % "CVE-2023-5363")["ImageListWithCVEFixed"]
    assert [i["Tag"] for i in fixed["Results"]] == ["1.1"] and fixed["Page"]["TotalCount"] == 1
    push(client, cve, "clean", "a", debian_image(NEW_OPENSSL), day=1)
    push(client, cve, "clean", "b", debian_image(NEW_OPENSSL), day=2)
    assert [i["Tag"] for i in data(client, text.replace('"app"', '"clean"') % "CVE-2023-5363")["ImageListWithCVEFixed"]["Results"]] == ["b", "a"]


def test_fixed_tags_are_by_build_time_whatever_the_push_order(client: Client, cve: CveService) -> None:
    """The one rule (zot's): built no earlier than the earliest vulnerable tag; CveService's removed copy compared push times."""
    push(client, cve, "late", "1.1", debian_image(NEW_OPENSSL), day=3)  # pushed first, built after the vulnerable tag
    push(client, cve, "late", "1.0", debian_image(OLD_OPENSSL), day=2)
    push(client, cve, "late", "0.9", debian_image(NEW_OPENSSL), day=1)  # pushed last, built before it: not fixed
    text = '{ImageListWithCVEFixed(id: "CVE-2023-5363", image: "late"){Results {Tag}}}'
    assert data(client, text)["ImageListWithCVEFixed"]["Results"] == [{"Tag": "1.1"}]


def test_cve_diff_between_two_images_and_against_the_base_image(client: Client, cve: CveService) -> None:
    base_layer = debian_image(OLD_OPENSSL, ZLIB)
    push(client, cve, "app", "base", base_layer, day=1)
    push(client, cve, "app", "derived", [*base_layer, gzip_layer(dist_info("requests", "2.30.0"))], day=2)
    push(client, cve, "app", "patched", debian_image(NEW_OPENSSL, ZLIB), day=3)
    text = "{CVEDiffListForImages(minuend: %s, subtrahend: %s){Minuend {Repo Tag} Subtrahend {Repo Tag Digest} CVEList {Id} Summary {MaxSeverity Count} Page {TotalCount ItemCount}}}"
    diff = data(client, text % ('{Repo: "app", Tag: "base"}', '{Repo: "app", Tag: "patched"}'))["CVEDiffListForImages"]
    assert [c["Id"] for c in diff["CVEList"]] == ["CVE-2023-5363"] and diff["Summary"] == {"MaxSeverity": "CRITICAL", "Count": 1}
    assert diff["Page"] == {"TotalCount": 1, "ItemCount": 1} and diff["Subtrahend"]["Tag"] == "patched"
    against_base = data(client, text % ('{Repo: "app", Tag: "derived", Digest: ""}', '{Repo: "", Tag: "", Digest: ""}'))["CVEDiffListForImages"]
    assert [c["Id"] for c in against_base["CVEList"]] == ["CVE-2023-32681"] and against_base["Subtrahend"]["Tag"] == "base"
    status, document = gql(client, text % ('{Repo: "app", Tag: "none"}', '{Repo: "app", Tag: "base"}'))
    assert status == 200 and "not found" in document["errors"][0]["message"]


class TestAccessControl:
    """Only repositories the caller may read, in results and totals; an unreadable image answers as an absent one."""

    @pytest.fixture
    def config(self, tmp_path: Path) -> Config:
        return scanning_on(auth_config(tmp_path))

    @pytest.fixture
    def setup(self, service, cve: CveService) -> Setup:
        setup = Setup(service)
        push(setup, cve, "public/web", "1", debian_image(OLD_OPENSSL))
        push(setup, cve, "public/web", "2", debian_image(NEW_OPENSSL), day=2)
        push(setup, cve, "team/app", "1", debian_image(OLD_OPENSSL))
        push(setup, cve, "private/secret", "1", debian_image(OLD_OPENSSL))
        return setup

    def test_lists_hold_only_readable_repositories(self, service, setup: Setup) -> None:
        anonymous, bob = As(service), As(service, basic("bob"))
        text = '{ImageListForCVE(id: "CVE-2023-5363"){Page {TotalCount} Results {RepoName Tag}}}'
        assert data(anonymous, text)["ImageListForCVE"] == {"Page": {"TotalCount": 1}, "Results": [{"RepoName": "public/web", "Tag": "1"}]}
        assert sorted(tags(data(bob, text)["ImageListForCVE"])) == ["public/web:1", "team/app:1"]
        fixed = '{ImageListWithCVEFixed(id: "CVE-2023-5363", image: "public/web"){Results {Tag}}}'
        assert data(anonymous, fixed)["ImageListWithCVEFixed"]["Results"] == [{"Tag": "2"}]

    def test_an_unreadable_image_is_not_found(self, service, setup: Setup) -> None:
        bob = As(service, basic("bob"))
        queries = [
            LIST % ('"private/secret:1"', ""),
            '{ImageListWithCVEFixed(id: "CVE-2023-5363", image: "private/secret"){Results {Tag}}}',
            '{CVEDiffListForImages(minuend: {Repo: "team/app", Tag: "1"}, subtrahend: {Repo: "private/secret", Tag: "1"}){CVEList {Id}}}',
        ]
        for text in queries:
            status, document = gql(bob, text)
            hidden = document["errors"][0]["message"]
            status_absent, absent = gql(bob, text.replace("private/secret", "private/absent"))
            assert status == status_absent == 200 and "not found" in hidden
            assert hidden.replace("secret", "absent") == absent["errors"][0]["message"]
