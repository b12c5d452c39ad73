"""Tags and catalog with the spec's pagination."""

from __future__ import annotations

import json
import time

from chalicelib.lifecycle.gc import GarbageCollector
from tests.conftest import error_code


def tags_page(client, query: str = "") -> tuple[list[str], str | None]:
    response = client("GET", f"/v2/team/app/tags/list{query}")
    assert response.status == 200
    document = json.loads(response.body_bytes())
    assert document["name"] == "team/app"
    return document["tags"], response.headers.get("Link")


def test_tags_sorted_and_paginated(client):
    for tag in ["v10", "latest", "v2", "alpha", "v1"]:
        client.push_image("team/app", tag, [b"x"])
    assert tags_page(client) == (["alpha", "latest", "v1", "v10", "v2"], None)
    page, link = tags_page(client, "?n=2")
    assert page == ["alpha", "latest"]
    assert link == '</v2/team/app/tags/list?n=2&last=latest>; rel="next"'
    page, link = tags_page(client, "?n=2&last=latest")
    assert page == ["v1", "v10"]
    page, link = tags_page(client, "?n=2&last=v10")
    assert page == ["v2"] and link is None
    assert tags_page(client, "?n=0") == ([], None)
    assert tags_page(client, "?last=v2") == ([], None)


def test_tags_of_unknown_repository(client):
    response = client("GET", "/v2/nobody/tags/list")
    assert response.status == 404 and error_code(response) == "NAME_UNKNOWN"


def test_bad_page_size(client):
    client.push_image("team/app", "1", [b"x"])
    response = client("GET", "/v2/team/app/tags/list?n=-1")
    assert response.status == 400 and error_code(response) == "PAGINATION_NUMBER_INVALID"


def test_catalog_paginated(client):
    for repo in ["b/app", "a/app", "c", "a/b/c/deep"]:
        client.push_image(repo, "1", [b"x"])
    full = client("GET", "/v2/_catalog")
    assert json.loads(full.body_bytes())["repositories"] == ["a/app", "a/b/c/deep", "b/app", "c"]
    first = client("GET", "/v2/_catalog?n=3")
    assert json.loads(first.body_bytes())["repositories"] == ["a/app", "a/b/c/deep", "b/app"]
    assert first.headers["Link"] == '</v2/_catalog?n=3&last=b/app>; rel="next"'
    rest = client("GET", "/v2/_catalog?n=3&last=b/app")
    assert json.loads(rest.body_bytes())["repositories"] == ["c"]
    assert "Link" not in rest.headers


def test_an_emptied_repository_answers_tags_list_until_gc_forgets_it(client, service):
    """distribution answers 200 with no tags for an emptied repository (skopeo list-tags relies on it); GC drops it after gcDelay."""
    digest, _ = client.push_image("gone/app", "1", [b"x"])
    client.push_image("kept/app", "1", [b"x"])
    assert client("DELETE", f"/v2/gone/app/manifests/{digest}").status == 202
    emptied = client("GET", "/v2/gone/app/tags/list")
    assert emptied.status == 200 and json.loads(emptied.body_bytes()) == {"name": "gone/app", "tags": []}
    assert json.loads(client("GET", "/v2/_catalog").body_bytes())["repositories"] == ["gone/app", "kept/app"]
    assert GarbageCollector(service).run().deleted.get("repositories", 0) == 0  # within gcDelay: still listed
    report = GarbageCollector(service, clock=lambda: time.time() + 2 * 3600).run()
    assert report.deleted["repositories"] == 1
    assert json.loads(client("GET", "/v2/_catalog").body_bytes())["repositories"] == ["kept/app"]
    assert error_code(client("GET", "/v2/gone/app/tags/list")) == "NAME_UNKNOWN"


def test_a_push_into_an_emptied_repository_keeps_it(client, service):
    digest, _ = client.push_image("team/app", "1", [b"x"])
    client("DELETE", f"/v2/team/app/manifests/{digest}")
    client.push_image("team/app", "2", [b"y"])
    assert GarbageCollector(service, clock=lambda: time.time() + 2 * 3600).run().deleted.get("repositories", 0) == 0
    assert tags_page(client) == (["2"], None)
