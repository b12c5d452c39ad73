# ruff: noqa: E501  (GraphQL texts stay one line each)
"""Cross-repository lists past the partition walk budget: ImageListForCVE and Derived/BaseImageList page at any size.

The budget (200 repositories a request) is lowered to 20 here so the test builds 29 repositories, not 211:
25 public (anyone may read), 3 of team/ (bob only) and one private (alice only), each an image built on
one shared base layer. Every list spans more repositories than the budget, and what a caller may not
read is absent from results and totals alike. DynamoDB calls are counted per page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config.schema import Config
from chalicelib.cve.service import CveService
from chalicelib.spec.manifests import config_facts, parse_manifest
from tests.conftest import LAYER, OCI_CONFIG, OCI_MANIFEST, sha256
from tests.counting import CallCounter
from tests.cve_images import standard_records
from tests.unit.authsetup import As, auth_config, basic
from tests.unit.search_helpers import data
from tests.unit.test_search_cve import scanning_on

PUBLIC, TEAM = 25, 3
WALKS = 20  # the budget for this test: fewer repositories than the lists span
CVE = "CVE-2099-0001"
FINDING = {"Id": CVE, "Title": "t", "Description": "d", "Reference": "", "Severity": "HIGH", "PackageList": [{"Name": "libx", "PackagePath": "", "InstalledVersion": "1", "FixedVersion": "2"}]}


@pytest.fixture(autouse=True)
def small_walk_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chalicelib.search.catalog.MAX_WALKS", WALKS)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return scanning_on(auth_config(tmp_path))


@pytest.fixture(scope="module")
def names() -> list[str]:
    return [f"public/app{n:03d}" for n in range(PUBLIC)] + [f"team/app{n:02d}" for n in range(TEAM)] + ["private/secret"]


def index_image(service: Any, repo: str, tag: str, layers: list[bytes], created: str) -> str:
    """Index an image as a push does (the model's index items with the config's facts, the layers' holder links) without uploading blobs: search reads only DynamoDB."""
    config = json.dumps({"os": "linux", "architecture": "amd64", "created": created}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": sha256(layer), "size": len(layer)} for layer in layers],
    }
    parsed = parse_manifest(json.dumps(manifest).encode(), OCI_MANIFEST)
    facts = config_facts(config)
    service.index.put_manifest(repo, parsed, [facts.pop("platform")], tag, facts=facts)
    links = service.api.registry.locations[""].blobs.table
    for layer in layers:  # the blob table's holder links a push writes (what the base layer's holders were read from)
        links.put({"digest": sha256(layer), "holder": repo, "size": len(layer), "uses": 1})
    return str(parsed.digest)


@pytest.fixture
def registry(service: Any, names: list[str]) -> tuple[CveService, dict[str, str]]:
    """The base image and one derived image per repository; results stored as a scan stores them."""
    cve = CveService(service.api.registry, service.index, service.store)
    cve.db.load(standard_records(), "test")
    version = cve.db.current().version
    base = index_image(service, "public/base", "1", [b"base layer"], "2024-01-01T00:00:00Z")
    cve.cache.save(base, "scanned", db_version=version, cves=[])
    digests = {}
    for n, name in enumerate(names):
        created = f"2024-02-01T00:{n // 60:02d}:{n % 60:02d}Z"  # a distinct config, so a distinct digest, per repository
        digests[name] = index_image(service, name, "1", [b"base layer", name.encode()], created)
        cve.cache.save(digests[name], "scanned", db_version=version, cves=[FINDING])
    return cve, digests


def cve_page(caller: As, limit: int, offset: int) -> dict:
    text = '{ImageListForCVE(id: "%s", requestedPage: {limit: %d offset: %d sortBy: ALPHABETIC_ASC}){Page {TotalCount ItemCount} Results {RepoName Tag Digest Vulnerabilities {MaxSeverity}}}}'
    return data(caller, text % (CVE, limit, offset))["ImageListForCVE"]


def related(caller: As, query: str, image: str, limit: int = 10, offset: int = 0) -> dict:
    text = '{%s(image: "%s", requestedPage: {limit: %d offset: %d sortBy: ALPHABETIC_ASC}){Page {TotalCount ItemCount} Results {RepoName Tag}}}'
    return data(caller, text % (query, image, limit, offset))[query]


def counted(service: Any, ask: Any) -> tuple[Any, dict[str, int]]:
    counter = CallCounter(service.index.table.client, service.store.client)
    answer = ask()
    return answer, counter.take()


def test_image_list_for_cve_pages_past_the_walk_budget_for_what_each_caller_may_read(service: Any, registry: tuple[CveService, dict[str, str]], names: list[str]) -> None:
    cve, digests = registry
    anonymous, bob = As(service), As(service, basic("bob"))
    cve_page(anonymous, 1, 0)  # the first global query computes and caches every repository listing
    page, calls = counted(service, lambda: cve_page(anonymous, 10, PUBLIC - 10))
    assert page["Page"] == {"TotalCount": PUBLIC, "ItemCount": 10}
    assert [r["RepoName"] for r in page["Results"]] == names[PUBLIC - 10 : PUBLIC]
    assert [r["Digest"] for r in page["Results"]] == [digests[n] for n in names[PUBLIC - 10 : PUBLIC]] and page["Results"][0]["Vulnerabilities"] == {"MaxSeverity": "HIGH"}
    # the lookup, the catalog, the listings (a page of each here), the page's 10 partitions; results: the readable ones, then the page's
    assert calls.get("dynamodb:Query", 0) <= 3 + 10 and calls.get("dynamodb:BatchGetItem", 0) <= 4, calls
    assert not any(k.startswith("s3:") for k in calls) and "dynamodb:TransactWriteItems" not in calls, calls
    last = cve_page(bob, 10, PUBLIC + TEAM - 5)  # bob reads team/ too; never private/secret
    assert last["Page"] == {"TotalCount": PUBLIC + TEAM, "ItemCount": 5} and [r["RepoName"] for r in last["Results"]] == names[PUBLIC + TEAM - 5 : PUBLIC + TEAM]
    cve.cache.save(digests[names[0]], "scanned", db_version=cve.db.current().version, cves=[])  # re-matched: no longer affected
    first = cve_page(anonymous, 3, 0)  # its lookup item stays (the scan functions only put); its result decides
    assert first["Page"]["TotalCount"] == PUBLIC - 1 and [r["RepoName"] for r in first["Results"]] == names[1:4]


def test_derived_and_base_image_lists_page_past_the_walk_budget(service: Any, registry: tuple[CveService, dict[str, str]], names: list[str]) -> None:
    anonymous, bob = As(service), As(service, basic("bob"))
    related(anonymous, "DerivedImageList", "public/base:1", 1)  # listings computed and cached once
    page, calls = counted(service, lambda: related(anonymous, "DerivedImageList", "public/base:1", 10, PUBLIC - 10))
    assert page["Page"] == {"TotalCount": PUBLIC, "ItemCount": 10} and [r["RepoName"] for r in page["Results"]] == names[PUBLIC - 10 : PUBLIC]
    # the image's own partition, the catalog, the listings, the page's 10 partitions: not one per holder of the base layer
    assert calls.get("dynamodb:Query", 0) <= 3 + 10 and "dynamodb:BatchGetItem" not in calls, calls
    assert related(bob, "DerivedImageList", "public/base:1", 10)["Page"]["TotalCount"] == PUBLIC + TEAM
    base, calls = counted(service, lambda: related(anonymous, "BaseImageList", f"{names[PUBLIC - 5]}:1"))
    assert base == {"Page": {"TotalCount": 1, "ItemCount": 1}, "Results": [{"RepoName": "public/base", "Tag": "1"}]}
    assert calls.get("dynamodb:Query", 0) <= 4, calls
