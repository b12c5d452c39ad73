"""The web page's files through the core's router and the Lambda app: redirects, hashed URLs, ETags, CSP."""

from __future__ import annotations

import re

from chalicelib.adapters.apigateway import response_body
from chalicelib.api.endpoints import WEB_PATH
from tests.unit.test_chalice_app import header, invoke, lambda_app, stage_root_event  # noqa: F401  (lambda_app: the fixture)


def test_the_server_root_sends_a_browser_to_the_page(client):
    assert (root := client("GET", "/")).status == 302 and root.headers["Location"] == WEB_PATH
    assert (bare := client("GET", WEB_PATH.rstrip("/"))).status == 302 and bare.headers["Location"] == "ui/"


def test_the_page_names_its_assets_by_content_hash_and_they_are_cached_for_good(client):
    page = client("GET", WEB_PATH)
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-cache" and "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.body_bytes().decode()
    referenced = dict(re.findall(r'(?:src|href)="([\w.-]+)\?v=(\w+)"', html))
    assert set(referenced) == {"app.js", "style.css", "icon.svg"}
    for name, version in referenced.items():
        asset = client("GET", f"{WEB_PATH}{name}?v={version}")
        assert asset.status == 200 and asset.headers["ETag"] == f'"{version}"', name
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = client("GET", f"{WEB_PATH}app.js?v=old")
    assert stale.status == 200 and stale.headers["Cache-Control"] == "no-cache"


def test_an_unchanged_file_is_a_304_and_an_unknown_one_a_404(client):
    first = client("GET", f"{WEB_PATH}app.js")
    again = client("GET", f"{WEB_PATH}app.js", headers={"If-None-Match": f'W/"x", {first.headers["ETag"]}'})
    assert again.status == 304 and again.body_bytes() == b"" and again.headers["ETag"] == first.headers["ETag"]
    assert client("GET", f"{WEB_PATH}nothing.js").status == 404
    assert client("GET", f"{WEB_PATH}..%2fapp.py").status == 400  # no escaped paths reach the file lookup


def test_the_deployed_api_serves_the_page_on_both_doors_and_the_bare_execute_api_url(lambda_app):  # noqa: F811
    result = invoke(lambda_app, "GET", WEB_PATH)
    assert result["statusCode"] == 200 and b'type="module"' in response_body(result)
    staged = lambda_app(stage_root_event("GET", WEB_PATH + "style.css"), None)
    assert staged["statusCode"] == 200 and header(staged, "Content-Type") == "text/css; charset=utf-8"
