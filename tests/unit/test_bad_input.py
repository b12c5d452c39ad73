"""Malformed requests get the spec's error body and status, and nothing a client sends is a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import error_code, make_request, sha256


def test_base_endpoint(client):
    response = client("GET", "/v2/")
    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v2/../etc/passwd/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/team%2Fapp/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/team/../app/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/Team/App/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/team//app/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/-team/manifests/latest", 400, "NAME_INVALID"),
        ("GET", f"/v2/{'a' * 256}/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/team/app/blobs/sha256:short", 400, "DIGEST_INVALID"),
        ("GET", "/v2/team/app/blobs/md5:" + "a" * 32, 400, "DIGEST_INVALID"),
        ("GET", "/v2/team/app/blobs/sha256:" + "A" * 64, 400, "DIGEST_INVALID"),
        ("GET", "/v2/team/app/manifests/-bad-tag", 400, "DIGEST_INVALID"),
        ("GET", "/v2/team/app/referrers/latest", 400, "DIGEST_INVALID"),
        ("POST", "/v2/team/app/blobs/uploads/?digest=sha256:zz", 400, "DIGEST_INVALID"),
        ("POST", "/v2/team/app/blobs/uploads/?mount=nope&from=x", 400, "DIGEST_INVALID"),
        ("GET", "/v2/nothing/here", 404, "NOT_FOUND"),
        ("GET", "/nothing", 404, "NOT_FOUND"),
        ("POST", "/v2/team/app/tags/list", 405, "UNSUPPORTED"),
        ("PATCH", "/v2/team/app/manifests/latest", 405, "UNSUPPORTED"),
    ],
)
def test_malformed_requests(client, method, path, status, code):
    response = client(method, path)
    assert response.status == status, response.body_bytes()
    body = json.loads(response.body_bytes())
    assert body["errors"][0]["code"] == code
    assert response.headers["Content-Type"] == "application/json"


def test_bad_digest_never_reaches_a_key(client, service):
    client("POST", "/v2/team/app/blobs/uploads/?digest=sha256:../../../x", b"data")
    assert [o.key for o in service.store.list("")] == []


def test_unknown_manifest_in_unknown_repo(client):
    assert error_code(client("GET", "/v2/a/b/manifests/latest")) == "MANIFEST_UNKNOWN"
    assert error_code(client("GET", f"/v2/a/b/manifests/{sha256(b'x')}")) == "MANIFEST_UNKNOWN"


_segments = st.sampled_from(
    ["v2", "team", "app", "blobs", "uploads", "manifests", "tags", "list", "referrers", "_catalog", "..", "%2F", "", "A", sha256(b"x"), "latest"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    segments=st.lists(_segments, min_size=1, max_size=7),
    query=st.sampled_from(["", "?n=x", "?n=5&last=", "?digest=sha256:1", f"?digest={sha256(b'')}", "?mount=a&from=b", "?digest-algorithm=sha1"]),
    headers=st.dictionaries(st.sampled_from(["Content-Range", "Range", "Content-Type", "Content-Length"]), st.text(max_size=20), max_size=3),
    body=st.binary(max_size=64),
)
def test_no_request_makes_a_server_error(client, method, segments, query, headers, body):
    request = make_request(method, "/" + "/".join(segments) + query, body, headers)
    response = client.service.api.handle(request)
    assert response.status < 500
    if response.status >= 400 and method != "HEAD":
        assert json.loads(response.body_bytes())["errors"][0]["code"]
