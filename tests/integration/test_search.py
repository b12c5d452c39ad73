"""zot's search API over HTTP against `zotless serve`, with images pushed by skopeo and artifacts by oras-py.

A base image, an app built on its layer (config labels, manifest annotations, history), a
multi-platform index (skopeo copy --all), a cosign-style signature and an SBOM (oras, with subject).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.integration.conftest import RunningRegistry
from tests.integration.images import COSIGN_SIG, SPDX, push_showcase

pytestmark = pytest.mark.integration
def search(registry: RunningRegistry, text: str) -> dict[str, Any]:
    response = registry("GET", "/v2/_zot/ext/search", params={"query": text})
    document = response.json()
    assert response.status_code == 200 and "errors" not in document, document
    return document["data"]


@pytest.fixture(scope="module")
def pushed(skopeo: str, registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("search-images")
    prefix = f"it/search-{hashlib.sha256(str(tmp).encode()).hexdigest()[:8]}"
    # The referrers are older than the app: its LastUpdated stays the app's own.
    return push_showcase(skopeo, registry.host, tmp, prefix, "the app", ["ADD os-release", "COPY app"], signed_at="2020-01-01T00:00:00Z")


def test_repository_list_and_search_show_the_pushed_images(registry: RunningRegistry, pushed: dict[str, str]) -> None:
    prefix = pushed["prefix"]
    fields = "Page {TotalCount} Repos {Name Platforms {Os Arch} NewestImage {Tag IsSigned Vendor Description}}"
    found = search(registry, f'{{GlobalSearch(query: "{prefix}"){{{fields}}}}}')
    repos = {r["Name"]: r for r in found["GlobalSearch"]["Repos"]}
    assert set(repos) == {f"{prefix}/base", f"{prefix}/app", f"{prefix}/multi"} and found["GlobalSearch"]["Page"]["TotalCount"] == 3
    assert repos[f"{prefix}/app"]["NewestImage"] == {"Tag": "1.0", "IsSigned": True, "Vendor": "Acme", "Description": "the app"}
    assert {p["Arch"] for p in repos[f"{prefix}/multi"]["Platforms"]} == {"amd64", "arm64"}
    listed = search(registry, "{RepoListWithNewestImage(requestedPage: {limit: 1000}){Results {Name}}}")["RepoListWithNewestImage"]["Results"]
    assert {f"{prefix}/base", f"{prefix}/app", f"{prefix}/multi"} <= {r["Name"] for r in listed}


def test_image_page_signature_sbom_history_and_relatives(registry: RunningRegistry, pushed: dict[str, str]) -> None:
    prefix = pushed["prefix"]
    image = search(registry, f'{{Image(image: "{prefix}/app:1.0"){{Digest Licenses LastUpdated SignatureInfo {{Tool}} Referrers {{ArtifactType}} '
                             "Manifests {History {HistoryDescription {CreatedBy}} Layers {Digest}}}}")["Image"]  # fmt: skip
    assert image["Digest"] == pushed["app"] and image["Licenses"] == "MIT" and image["LastUpdated"] == "2024-06-01T00:00:00Z"
    assert image["SignatureInfo"] == [{"Tool": "cosign"}] and {r["ArtifactType"] for r in image["Referrers"]} == {COSIGN_SIG, SPDX}
    assert [h["HistoryDescription"]["CreatedBy"] for h in image["Manifests"][0]["History"]] == ["ADD os-release", "COPY app"]
    derived = search(registry, f'{{DerivedImageList(image: "{prefix}/base:1"){{Results {{RepoName Tag}}}}}}')["DerivedImageList"]["Results"]
    assert derived == [{"RepoName": f"{prefix}/app", "Tag": "1.0"}]
    base = search(registry, f'{{BaseImageList(image: "{prefix}/app:1.0"){{Results {{RepoName Tag}}}}}}')["BaseImageList"]["Results"]
    assert base == [{"RepoName": f"{prefix}/base", "Tag": "1"}]
    by_layer = search(registry, f'{{ImageListForDigest(id: "{pushed["base_layer"]}"){{Results {{RepoName}}}}}}')["ImageListForDigest"]["Results"]
    assert {r["RepoName"] for r in by_layer} == {f"{prefix}/base", f"{prefix}/app"}


def test_multi_platform_image_over_post(registry: RunningRegistry, pushed: dict[str, str]) -> None:
    text = "query($repo: String!) { ImageList(repo: $repo) { Results { Tag MediaType Manifests { Platform { Os Arch } } } } }"
    response = registry("POST", "/v2/_zot/ext/search", json={"query": text, "variables": {"repo": f"{pushed['prefix']}/multi"}})
    images = response.json()["data"]["ImageList"]["Results"]
    assert response.status_code == 200 and [i["Tag"] for i in images] == ["2.0"]
    assert [m["Platform"] for m in images[0]["Manifests"]] == [{"Os": "linux", "Arch": "amd64"}, {"Os": "linux", "Arch": "arm64"}]


def test_extension_endpoints_and_bad_queries_over_http(registry: RunningRegistry) -> None:
    assert "/v2/_zot/ext/search" in registry("GET", "/v2/_oci/ext/discover").json()["extensions"][0]["endpoints"]
    assert registry("GET", "/v2/_zot/ext/mgmt").json()["http"] == {}
    bad = registry("GET", "/v2/_zot/ext/search", params={"query": "{Nope"})
    assert bad.status_code == 422 and bad.json()["errors"]
    assert registry("POST", "/v2/_zot/ext/search", data=b"\xff not json").status_code == 400


def test_zli_style_get_with_the_query_in_the_body_too_keeps_the_connection_usable(registry: RunningRegistry) -> None:
    """zli sends a GET whose body repeats the query (pkg/cli/client/client.go makeGraphQLRequest), with Basic ":" credentials."""
    text = "{RepoListWithNewestImage{Page {TotalCount}}}"
    headers = {"Authorization": "Basic Og==", "Content-Type": "application/json"}
    for _ in range(3):  # the same keep-alive connection: a body left unread would corrupt the next request
        response = registry("GET", "/v2/_zot/ext/search", params={"query": text}, data=text.encode(), headers=headers)
        assert response.status_code == 200 and response.json()["data"]["RepoListWithNewestImage"]["Page"]["TotalCount"] >= 0
        assert registry("GET", "/v2/").status_code == 200


def test_search_through_the_lambda_adapter(lambda_registry: RunningRegistry) -> None:
    """app.py's greedy route hands the extension paths to the core like any /v2 path."""
    lambda_registry.push_image("it/search-lambda", "1.0", [b"layer"])
    found = search(lambda_registry, '{ImageList(repo: "it/search-lambda"){Results {Tag}}}')
    assert found["ImageList"]["Results"] == [{"Tag": "1.0"}]
    posted = lambda_registry("POST", "/v2/_zot/ext/search", json={"query": "{RepoListWithNewestImage{Page {TotalCount}}}"})
    assert posted.status_code == 200 and posted.json()["data"]["RepoListWithNewestImage"]["Page"]["TotalCount"] >= 1
    assert lambda_registry("GET", "/v2/_oci/ext/discover").json()["extensions"][0]["name"] == "_zot"
