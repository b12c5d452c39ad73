"""zot's search API through the core on moto: image facts, summaries kept current, access control, bounds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from chalicelib.lifecycle.gc import GarbageCollector
from chalicelib.lifecycle.rebuild import rebuild_index
from chalicelib.storage.index import CATALOG, LISTINGS, SUMMARIES
from tests.conftest import Client, sha256
from tests.counting import CallCounter
from tests.unit.authsetup import As, Setup, auth_config, basic, challenge, service_for
from tests.unit.search_helpers import COSIGN_SIG, NOTATION_SIG, SPDX, data, gql, push_index, push_referrer

REPO_LIST = (
    "{RepoListWithNewestImage{Page {TotalCount ItemCount} Results {Name LastUpdated Size Platforms {Os Arch} Vendors StarCount "
    "NewestImage {Tag Digest LastUpdated IsSigned Description Vendor Licenses Title Labels}}}}"
)
CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-03-01T12:00:00.123456789Z",
    "config": {"Labels": {"org.opencontainers.image.vendor": "Acme", "org.label-schema.license": "MIT", "org.label-schema.labels": "web"}},
    "history": [{"created_by": "ADD rootfs /", "created": "2024-03-01T11:00:00Z"}, {"created_by": "ENV X=1", "empty_layer": True}],
}


def test_image_facts_come_from_the_push_config_labels_and_annotations(client: Client) -> None:
    annotations = {"org.opencontainers.image.description": "an app", "org.opencontainers.image.title": "App"}
    digest, body = client.push_image("team/app", "1.0", [b"rootfs"], CONFIG, annotations=annotations)
    image = data(client, '{Image(image: "team/app:1.0"){RepoName Tag Digest MediaType Size LastUpdated Description Title Vendor Licenses Labels IsDeletable '
                 "Manifests {Digest ConfigDigest Size LastUpdated Platform {Os Arch} Layers {Size Digest} "
                 "History {Layer {Size Digest} HistoryDescription {Created CreatedBy EmptyLayer}}}}}")["Image"]  # fmt: skip
    config_size = len(json.dumps(CONFIG).encode())
    assert image["RepoName"] == "team/app" and image["Digest"] == digest and image["Tag"] == "1.0"
    assert image["LastUpdated"] == "2024-03-01T12:00:00.123456Z"  # the config's created, zot's rule
    assert (image["Description"], image["Title"]) == ("an app", "App")  # annotations
    assert (image["Vendor"], image["Licenses"], image["Labels"]) == ("Acme", "MIT", "web")  # config labels, label-schema fallbacks
    assert image["Size"] == str(len(body) + config_size + len(b"rootfs")) and image["IsDeletable"] is True
    manifest = image["Manifests"][0]
    assert manifest["Platform"] == {"Os": "linux", "Arch": "amd64"} and manifest["ConfigDigest"] == sha256(json.dumps(CONFIG).encode())
    assert manifest["Layers"] == [{"Size": "6", "Digest": sha256(b"rootfs")}]
    assert [h["Layer"] for h in manifest["History"]] == [{"Size": "6", "Digest": sha256(b"rootfs")}, None]
    assert manifest["History"][1]["HistoryDescription"] == {"Created": None, "CreatedBy": "ENV X=1", "EmptyLayer": True}


def test_last_updated_is_the_push_time_without_created(client: Client) -> None:
    client.push_image("team/app", "1.0", [b"x"], {"os": "linux", "architecture": "arm64"})
    image = data(client, '{Image(image: "team/app:1.0"){LastUpdated PushTimestamp}}')["Image"]
    assert image["LastUpdated"] == image["PushTimestamp"] and image["LastUpdated"].endswith("Z")


def test_multi_platform_image_lists_each_platform(client: Client) -> None:
    children = []
    for arch in ("amd64", "arm64"):
        digest, body = client.push_image("team/multi", f"only-{arch}", [arch.encode()], {"os": "linux", "architecture": arch})
        children.append((digest, body, {"os": "linux", "architecture": arch}))
    index = push_index(client, "team/multi", "1.0", children, {"org.opencontainers.image.vendor": "Acme"})
    image = data(client, '{Image(image: "team/multi:1.0"){Digest MediaType Vendor Manifests {Digest Platform {Os Arch}}}}')["Image"]
    assert image["Digest"] == index and image["Vendor"] == "Acme"
    assert [m["Platform"]["Arch"] for m in image["Manifests"]] == ["amd64", "arm64"]
    repos = data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"]
    assert {(p["Os"], p["Arch"]) for p in repos[0]["Platforms"]} == {("linux", "amd64"), ("linux", "arm64")}


def test_signatures_from_cosign_and_notation_referrers_and_cosign_tags(client: Client) -> None:
    signed, body = client.push_image("team/app", "signed", [b"a"])
    by_tag, _ = client.push_image("team/app", "by-tag", [b"b"])
    client.push_image("team/app", "unsigned", [b"c"])
    push_referrer(client, "team/app", signed, len(body), COSIGN_SIG, b"sig")
    push_referrer(client, "team/app", signed, len(body), NOTATION_SIG, b"jws")
    push_referrer(client, "team/app", signed, len(body), SPDX, b"{}")
    client.push_image("team/app", "sha256-" + by_tag.split(":")[1] + ".sig", [b"cosign tag scheme"])
    images = data(client, '{ImageList(repo: "team/app"){Page {TotalCount} Results {Tag IsSigned SignatureInfo {Tool IsTrusted} Referrers {ArtifactType}}}}')
    found = {i["Tag"]: i for i in images["ImageList"]["Results"]}
    assert set(found) == {"signed", "by-tag", "unsigned"} and images["ImageList"]["Page"]["TotalCount"] == 3  # the .sig tag is no image
    assert sorted(s["Tool"] for s in found["signed"]["SignatureInfo"]) == ["cosign", "notation"] and found["signed"]["IsSigned"]
    assert sorted(r["ArtifactType"] for r in found["signed"]["Referrers"]) == sorted([COSIGN_SIG, NOTATION_SIG, SPDX])
    assert found["by-tag"]["IsSigned"] and not found["unsigned"]["IsSigned"]
    refs = data(client, f'{{Referrers(repo: "team/app" digest: "{signed}" type: ""){{ArtifactType Digest}}}}')["Referrers"]
    assert len(refs) == 3
    sboms = data(client, f'{{Referrers(repo: "team/app" digest: "{signed}" type: ["{SPDX}"]){{ArtifactType}}}}')["Referrers"]
    assert sboms == [{"ArtifactType": SPDX}]


def test_derived_and_base_images_share_a_layer_prefix(client: Client) -> None:
    client.push_image("base/os", "1", [b"os layer"])
    client.push_image("apps/web", "1", [b"os layer", b"web layer"])
    client.push_image("apps/other", "1", [b"another os"])
    client.push_image("apps/empty", "1", [])  # no layers: it begins every image, yet is nobody's base
    derived = data(client, '{DerivedImageList(image: "base/os:1"){Page {TotalCount} Results {RepoName Tag}}}')["DerivedImageList"]
    assert derived["Results"] == [{"RepoName": "apps/web", "Tag": "1"}] and derived["Page"]["TotalCount"] == 1
    base = data(client, '{BaseImageList(image: "apps/web:1"){Results {RepoName Tag}}}')["BaseImageList"]
    assert base["Results"] == [{"RepoName": "base/os", "Tag": "1"}]


def test_image_list_for_digest_finds_manifest_config_and_layer_digests(client: Client) -> None:
    digest, _ = client.push_image("a/one", "1", [b"shared"], {"os": "linux", "architecture": "amd64", "n": 1})
    client.push_image("b/two", "2", [b"shared", b"more"])
    query = '{ImageListForDigest(id: "%s"){Page {TotalCount} Results {RepoName Tag}}}'
    by_layer = data(client, query % sha256(b"shared"))["ImageListForDigest"]
    assert [(i["RepoName"], i["Tag"]) for i in by_layer["Results"]] == [("a/one", "1"), ("b/two", "2")]
    assert data(client, query % digest)["ImageListForDigest"]["Results"] == [{"RepoName": "a/one", "Tag": "1"}]
    config = sha256(json.dumps({"os": "linux", "architecture": "amd64", "n": 1}).encode())
    assert data(client, query % config)["ImageListForDigest"]["Results"] == [{"RepoName": "a/one", "Tag": "1"}]


def test_global_search_by_name_by_tag_and_with_filters(client: Client) -> None:
    client.push_image("team/web", "1.0", [b"w"])
    client.push_image("team/web", "2.0", [b"w2"], {"os": "linux", "architecture": "arm64"})
    client.push_image("team/db", "1.0", [b"d"], {"os": "windows", "architecture": "amd64"})
    search = '{GlobalSearch(query: "%s", %s){Page {TotalCount ItemCount} Repos {Name Rank} Images {RepoName Tag}}}'
    repos = data(client, search % ("web", "requestedPage: {limit: 10 offset: 0 sortBy: RELEVANCE}"))["GlobalSearch"]
    assert [r["Name"] for r in repos["Repos"]] == ["team/web"] and repos["Images"] == []
    everything = data(client, search % ("", "requestedPage: {limit: 1 offset: 1 sortBy: ALPHABETIC_DSC}"))["GlobalSearch"]
    assert everything["Page"] == {"TotalCount": 2, "ItemCount": 1} and everything["Repos"][0]["Name"] == "team/db"
    tags = data(client, search % ("team/web:1", "requestedPage: {sortBy: RELEVANCE}"))["GlobalSearch"]
    assert tags["Images"] == [{"RepoName": "team/web", "Tag": "1.0"}]
    windows = data(client, search % ("team", 'filter: {Os: ["windows"]}'))["GlobalSearch"]
    assert [r["Name"] for r in windows["Repos"]] == ["team/db"]
    signed = data(client, search % ("team", "filter: {HasToBeSigned: true}"))["GlobalSearch"]
    assert signed["Repos"] == [] and signed["Page"]["TotalCount"] == 0


def test_summary_follows_pushes_tag_moves_and_deletes(client: Client) -> None:
    older, _ = client.push_image("team/app", "old", [b"1"], {"os": "linux", "architecture": "amd64", "created": "2024-01-01T00:00:00Z"})
    newest = data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"][0]["NewestImage"]
    assert newest["Tag"] == "old"
    client.push_image("team/app", "new", [b"2"], {"os": "linux", "architecture": "amd64", "created": "2025-01-01T00:00:00Z"})
    assert data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"][0]["NewestImage"]["Tag"] == "new"
    assert client("DELETE", "/v2/team/app/manifests/new").status == 202  # by tag: only the tag goes
    assert data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"][0]["NewestImage"]["Tag"] == "old"
    assert client("DELETE", f"/v2/team/app/manifests/{older}").status == 202
    assert data(client, REPO_LIST)["RepoListWithNewestImage"]["Page"]["TotalCount"] == 0  # no tagged image: no summary


def test_summary_follows_a_tag_moved_to_another_manifest(client: Client) -> None:
    _, old_body = client.push_image("team/app", "a", [b"1"], {"os": "linux", "architecture": "amd64", "created": "2024-01-01T00:00:00Z"})
    client.push_image("team/app", "b", [b"2"], {"os": "linux", "architecture": "amd64", "created": "2025-01-01T00:00:00Z"})
    assert data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"][0]["LastUpdated"] == "2025-01-01T00:00:00Z"
    moved = client("PUT", "/v2/team/app/manifests/b", old_body, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert moved.status == 201  # b now names the 2024 image: no image of 2025 is tagged any more
    assert data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"][0]["LastUpdated"] == "2024-01-01T00:00:00Z"


def test_a_cached_summary_costs_one_catalog_query_and_no_partition_walk(service, client: Client) -> None:
    for n in range(5):
        client.push_image(f"repo/r{n}", "1", [f"layer {n}".encode()])
    counter = CallCounter(service.index.table.client, service.store.client)
    first = data(client, REPO_LIST)
    walked = counter.take()
    assert walked == {"dynamodb:Query": 2 + 5, "dynamodb:TransactWriteItems": 5}  # stale: each recomputed once and cached
    assert data(client, REPO_LIST) == first
    assert counter.take() == {"dynamodb:Query": 2}  # then one Query of the catalog and one of the summaries, nothing else


def test_a_forgotten_repository_takes_its_summary_along(service, client: Client) -> None:
    digest, _ = client.push_image("team/app", "old", [b"1"])
    assert data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"][0]["NewestImage"]["Tag"] == "old"
    assert client("DELETE", f"/v2/team/app/manifests/{digest}").status == 202
    GarbageCollector(service, clock=lambda: time.time() + 7200).run()
    assert service.index.table.get(CATALOG, "team/app") is None and service.index.table.get(SUMMARIES, "team/app") is None
    assert service.index.table.get(LISTINGS, "team/app") is None  # the listing rows the summary was cached with go too
    client.push_image("team/app", "new", [b"2"])  # the same name again: its change count starts over
    assert data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"][0]["NewestImage"]["Tag"] == "new"


def test_rebuild_index_fills_in_the_summaries(service, client: Client) -> None:
    client.push_image("team/app", "1.0", [b"layer"], CONFIG)
    expected = data(client, REPO_LIST)
    table = service.index.table
    for item in list(table.query(CATALOG)) + list(table.query("team/app")):
        table.delete(item["repo"], item["key"])
    rebuild_index(service)
    catalog, summary = table.get(CATALOG, "team/app"), table.get(SUMMARIES, "team/app")
    assert catalog is not None and summary is not None and summary["version"] == catalog["version"]
    assert summary["summary"]["NewestImage"]["Vendor"] == "Acme"
    assert data(client, REPO_LIST) == expected


def test_cve_queries_answer_empty_results(client: Client) -> None:
    client.push_image("team/app", "1.0", [b"layer"])
    found = data(client, '{CVEListForImage(image: "team/app:1.0"){Tag Page {TotalCount ItemCount} CVEList {Id} Summary {Count MaxSeverity}}}')
    assert found["CVEListForImage"] == {"Tag": "1.0", "Page": {"TotalCount": 0, "ItemCount": 0}, "CVEList": [], "Summary": {"Count": 0, "MaxSeverity": ""}}
    fixed = data(client, '{ImageListWithCVEFixed(id: "CVE-1", image: "team/app"){Page {TotalCount} Results {Tag}}}')
    assert fixed["ImageListWithCVEFixed"] == {"Page": {"TotalCount": 0}, "Results": []}


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("{RepoListWithNewestImage{Results {Nope}}}", 422),
        ("{RepoListWithNewestImage(", 422),
        ("", 422),
        ("{" * 40 + "}" * 40, 422),
        ("{" + " ".join(f"a{n}: RepoListWithNewestImage{{Page {{TotalCount}}}}" for n in range(11)) + "}", 422),
        ("mutation { x }", 422),
    ],
)
def test_bad_queries_get_graphql_errors_never_a_500(client: Client, text: str, status: int) -> None:
    answered, document = gql(client, text)
    assert answered == status and document["errors"] and document["errors"][0]["message"]


def test_deep_query_is_refused(client: Client) -> None:
    deep = "{ImageList(repo: \"a\"){Results {Referrers {Annotations {Key}}}}}"
    assert gql(client, deep)[0] == 200  # within bounds (an error for the missing repository, not a refusal)
    nested = "query { __schema { types { fields { type { " + "ofType { " * 12 + "name" + " }" * 12 + " } } } } }"
    status, document = gql(client, nested)
    assert status == 422 and "deeper" in document["errors"][0]["message"]
    from graphql import get_introspection_query

    status, document = gql(client, get_introspection_query(), method="POST")  # what GraphiQL and schema tools send
    assert status == 200 and "errors" not in document and document["data"]["__schema"]["queryType"]["name"] == "Query"


def test_fragments_spread_twice_at_every_level_are_walked_once_each(client: Client) -> None:
    """Thirty fragments that each spread the next twice: walked naively that is 2^30 visits, a kilobyte of query
    that would hold a Lambda for minutes; each fragment must be measured once and the query answered at once."""
    fragments = "".join(f"fragment F{n} on RepoSummary {{ Name ...F{n + 1} ...F{n + 1} }}\n" for n in range(30))
    query = "{RepoListWithNewestImage {Results {...F0}}}\n" + fragments + "fragment F30 on RepoSummary { Name }\n"
    status, document = gql(client, query, method="POST")
    assert status == 200 and "errors" not in document, document


def test_resolver_errors_are_200_with_errors_and_bad_bodies_400(client: Client) -> None:
    status, document = gql(client, '{Image(image: "no/such:tag"){Tag}}')
    assert status == 200 and document["data"] is None and "not found" in document["errors"][0]["message"]
    status, document = gql(client, "{ImageList(repo: \"a\", requestedPage: {limit: -1}){Page {TotalCount}}}")
    assert status == 200 and "negative" in document["errors"][0]["message"]
    assert client("POST", "/v2/_zot/ext/search", b"not json").status == 400
    assert client("POST", "/v2/_zot/ext/search", b"[1]").status == 400


def test_post_with_variables_and_operation_name(client: Client) -> None:
    client.push_image("team/app", "1.0", [b"layer"])
    text = "query One($repo: String!) { ImageList(repo: $repo) { Results { Tag } } } query Two { RepoListWithNewestImage { Page { TotalCount } } }"
    payload = json.dumps({"query": text, "variables": {"repo": "team/app"}, "operationName": "One"}).encode()
    response = client("POST", "/v2/_zot/ext/search", payload, {"Content-Type": "application/json"})
    assert response.status == 200 and json.loads(response.body_bytes())["data"] == {"ImageList": {"Results": [{"Tag": "1.0"}]}}


def test_discover_lists_the_search_endpoint_and_mgmt_has_no_auth_without_logins(client: Client) -> None:
    discovered = json.loads(client("GET", "/v2/_oci/ext/discover").body_bytes())
    assert "/v2/_zot/ext/search" in discovered["extensions"][0]["endpoints"]
    mgmt = json.loads(client("GET", "/v2/_zot/ext/mgmt").body_bytes())
    assert mgmt["distSpecVersion"] == "1.1.0" and mgmt["http"] == {}  # no auth: the UI shows no login


class TestAccessControl:
    """A caller sees only repositories they may read: results, counts and totals alike."""

    @pytest.fixture
    def config(self, tmp_path: Path):
        return auth_config(tmp_path)

    @pytest.fixture
    def setup(self, service) -> Setup:
        setup = Setup(service)
        setup.push_image("public/web", "1", [b"shared base"])
        setup.push_image("public/db", "1", [b"db"])
        setup.push_image("team/app", "1", [b"shared base", b"team"])
        setup.push_image("private/secret", "1", [b"shared base", b"secret"])
        return setup

    def test_anonymous_reading_only_public_sees_only_public(self, service, setup: Setup) -> None:
        anonymous = As(service)
        listed = data(anonymous, REPO_LIST)["RepoListWithNewestImage"]
        assert [r["Name"] for r in listed["Results"]] == ["public/db", "public/web"] and listed["Page"]["TotalCount"] == 2
        found = data(anonymous, '{GlobalSearch(query: ""){Page {TotalCount} Repos {Name}}}')["GlobalSearch"]
        assert found["Page"]["TotalCount"] == 2 and {r["Name"] for r in found["Repos"]} == {"public/web", "public/db"}
        derived = data(anonymous, '{DerivedImageList(image: "public/web:1"){Page {TotalCount} Results {RepoName}}}')["DerivedImageList"]
        assert derived == {"Page": {"TotalCount": 0}, "Results": []}  # team/app and private/secret extend it, unseen
        by_layer = data(anonymous, '{ImageListForDigest(id: "' + sha256(b"shared base") + '"){Page {TotalCount} Results {RepoName}}}')
        assert by_layer["ImageListForDigest"] == {"Page": {"TotalCount": 1}, "Results": [{"RepoName": "public/web"}]}
        status, document = gql(anonymous, '{ExpandedRepoInfo(repo: "private/secret"){Summary {Name}}}')
        assert status == 200 and document["data"] is None and "not found" in document["errors"][0]["message"]
        assert data(anonymous, '{Image(image: "public/web:1"){IsDeletable}}')["Image"]["IsDeletable"] is False

    def test_a_user_sees_what_the_policy_lets_them_read(self, service, setup: Setup) -> None:
        bob = As(service, basic("bob"))
        names = [r["Name"] for r in data(bob, REPO_LIST)["RepoListWithNewestImage"]["Results"]]
        assert names == ["public/db", "public/web", "team/app"]
        derived = data(bob, '{DerivedImageList(image: "public/web:1"){Results {RepoName}}}')["DerivedImageList"]["Results"]
        assert derived == [{"RepoName": "team/app"}]
        assert data(bob, '{Image(image: "team/app:1"){IsDeletable}}')["Image"]["IsDeletable"] is True

    def test_stars_and_bookmarks_for_logged_in_users_only(self, service, setup: Setup) -> None:
        bob, alice = As(service, basic("bob")), As(service, basic("alice"))
        assert bob("PUT", "/v2/_zot/ext/userprefs?repo=team/app&action=toggleStar").status == 200
        assert alice("PUT", "/v2/_zot/ext/userprefs?repo=public/web&action=toggleStar").status == 200
        assert bob("PUT", "/v2/_zot/ext/userprefs?repo=public/web&action=toggleStar").status == 200
        assert bob("PUT", "/v2/_zot/ext/userprefs?repo=public/db&action=toggleBookmark").status == 200
        starred = data(bob, "{StarredRepos{Page {TotalCount} Results {Name IsStarred StarCount}}}")["StarredRepos"]
        assert starred["Results"] == [{"Name": "public/web", "IsStarred": True, "StarCount": 2}, {"Name": "team/app", "IsStarred": True, "StarCount": 1}]
        assert [r["Name"] for r in data(bob, "{BookmarkedRepos{Results {Name IsBookmarked}}}")["BookmarkedRepos"]["Results"]] == ["public/db"]
        assert bob("PUT", "/v2/_zot/ext/userprefs?repo=team/app&action=toggleStar").status == 200  # toggled off
        text = "{RepoListWithNewestImage(requestedPage: {sortBy: STARS}){Results {Name StarCount IsStarred IsBookmarked}}}"
        listed = {r["Name"]: r for r in data(bob, text)["RepoListWithNewestImage"]["Results"]}
        assert listed["team/app"] == {"Name": "team/app", "StarCount": 0, "IsStarred": False, "IsBookmarked": False}
        assert listed["public/web"]["StarCount"] == 2 and listed["public/db"]["IsBookmarked"] is True
        refused = As(service)("PUT", "/v2/_zot/ext/userprefs?repo=public/web&action=toggleStar")
        assert refused.status == 401 and challenge(refused)
        assert bob("PUT", "/v2/_zot/ext/userprefs?repo=private/secret&action=toggleStar").status == 403
        assert bob("PUT", "/v2/_zot/ext/userprefs?repo=team/none&action=toggleStar").status == 404
        assert bob("PUT", "/v2/_zot/ext/userprefs?repo=team/app&action=explode").status == 400

    def test_mgmt_tells_the_ui_to_show_a_login(self, service, setup: Setup) -> None:
        mgmt = json.loads(As(service)("GET", "/v2/_zot/ext/mgmt").body_bytes())
        assert mgmt["http"]["auth"]["htpasswd"] == {} and mgmt["http"]["auth"]["bearer"]["service"] == "zotless"


def test_anonymous_search_asks_for_credentials_when_nothing_is_public(tmp_path: Path, aws: None) -> None:
    service = service_for(auth_config(tmp_path, control={"repositories": {"team/**": {"defaultPolicy": ["read"]}}}))
    response = As(service)("GET", "/v2/_zot/ext/search?query=%7BRepoListWithNewestImage%7BPage%7BTotalCount%7D%7D%7D")
    assert response.status == 401 and challenge(response)


def test_download_count_is_off_by_default_and_one_write_per_pull_when_on(service, client: Client, aws: None) -> None:
    client.push_image("team/app", "1.0", [b"layer"])
    counter = CallCounter(service.index.table.client)
    assert client("GET", "/v2/team/app/manifests/1.0").status == 200
    assert counter.take() == {"dynamodb:GetItem": 1}  # off: a pull writes nothing
    counting = service_for(service.config.model_copy(update={"extensions": service.config.extensions.model_copy(
        update={"search": service.config.extensions.search.model_copy(update={"downloadCount": True})})}))  # fmt: skip
    counted, counter = Client(counting), CallCounter(counting.index.table.client)
    for _ in range(3):
        assert counted("GET", "/v2/team/app/manifests/1.0").status == 200
    assert counted("HEAD", "/v2/team/app/manifests/1.0").status == 200  # a HEAD is no download
    assert counter.take() == {"dynamodb:GetItem": 4, "dynamodb:TransactWriteItems": 3}
    listed = data(counted, "{RepoListWithNewestImage{Results {DownloadCount}} ImageList(repo: \"team/app\"){Results {DownloadCount}}}")
    assert listed == {"RepoListWithNewestImage": {"Results": [{"DownloadCount": 3}]}, "ImageList": {"Results": [{"DownloadCount": 3}]}}


def test_many_stale_summaries_catch_up_over_retries(service, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry upgraded without rebuild-index: each request recomputes a bounded number, and retries converge."""
    from chalicelib.search import catalog

    monkeypatch.setattr(catalog, "MAX_REFRESHES", 2)
    for n in range(5):
        client.push_image(f"many/r{n}", "1", [f"layer {n}".encode()])
    outcomes = [gql(client, REPO_LIST) for _ in range(3)]
    assert [status for status, _ in outcomes] == [200, 200, 200]
    assert "out of date" in outcomes[0][1]["errors"][0]["message"] and "out of date" in outcomes[1][1]["errors"][0]["message"]
    assert "errors" not in outcomes[2][1] and outcomes[2][1]["data"]["RepoListWithNewestImage"]["Page"]["TotalCount"] == 5


def test_a_huge_config_history_is_trimmed_and_shed_never_refused(service, client: Client) -> None:
    steps = [{"created_by": "x" * 1500, "comment": "y" * 1500, "author": "z" * 1500, "created": "2024-01-01T00:00:00Z"} for _ in range(200)]  # < 1 MiB: read
    digest, _ = client.push_image("team/big", "1", [b"layer"], {"os": "linux", "architecture": "amd64", "history": steps, "config": {"Labels": {"a": "b"}}})
    item = service.index.manifest_details("team/big", digest)
    assert item is not None and item.get("history") is None and item["partial"] is True and item["labels"] == {"a": "b"}  # history went first
    image = data(client, '{Image(image: "team/big:1"){Manifests {Platform {Os} History {Layer {Digest}}}}}')["Image"]
    assert image["Manifests"][0] == {"Platform": {"Os": "linux"}, "History": []}


def test_a_request_reading_too_many_repositories_is_refused(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.search import catalog

    for n in range(3):
        client.push_image(f"walk/r{n}", "1", [f"layer {n}".encode()])
    monkeypatch.setattr(catalog, "MAX_WALKS", 2)
    in_name_order = data(client, "{ImageList(repo: \"\", requestedPage: {limit: 1 offset: 1}){Page {TotalCount} Results {RepoName}}}")["ImageList"]
    assert in_name_order == {"Page": {"TotalCount": 3}, "Results": [{"RepoName": "walk/r1"}]}  # only the repository the page covers
    status, document = gql(client, "{ImageList(repo: \"\", requestedPage: {sortBy: UPDATE_TIME}){Page {TotalCount}}}")
    assert status == 200 and "more than 2 repositories" in document["errors"][0]["message"]


def test_search_spans_storage_locations(aws: None) -> None:
    """subPaths: one index lists every location; the layer holders come from each location's blob table."""
    from chalicelib.config.schema import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "config-multiple.json", environ={})
    multi = service_for(config)
    client = Client(multi)
    client.push_image("infra/os", "1", [b"base"])
    client.push_image("team/web", "1", [b"base", b"web"])  # another location: its own copy of the base layer
    names = [r["Name"] for r in data(client, REPO_LIST)["RepoListWithNewestImage"]["Results"]]
    assert names == ["infra/os", "team/web"]
    derived = data(client, '{DerivedImageList(image: "infra/os:1"){Results {RepoName}}}')["DerivedImageList"]["Results"]
    assert derived == [{"RepoName": "team/web"}]
    found = data(client, '{ImageListForDigest(id: "' + sha256(b"base") + '"){Results {RepoName}}}')["ImageListForDigest"]["Results"]
    assert {r["RepoName"] for r in found} == {"infra/os", "team/web"}
