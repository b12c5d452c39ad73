"""Tags and catalog with the spec's pagination."""

from __future__ import annotations

import json

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


def test_repository_leaves_catalog_with_its_last_manifest(client):
    digest, _ = client.push_image("gone/app", "1", [b"x"])
    client.push_image("kept/app", "1", [b"x"])
    client("DELETE", f"/v2/gone/app/manifests/{digest}")
    assert json.loads(client("GET", "/v2/_catalog").body_bytes())["repositories"] == ["kept/app"]
