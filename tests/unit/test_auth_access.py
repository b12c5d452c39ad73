"""Access control through the core: who may read, push, mount, list; 401 vs 403, and never a 404 that reveals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.config.schema import Config
from tests.conftest import error_code, sha256
from tests.unit.authsetup import As, Setup, auth_config, basic, bearer, body, challenge, service_for, token_for


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return auth_config(tmp_path)


@pytest.fixture
def setup(service) -> Setup:
    return Setup(service)


def test_anonymous_reads_public_but_every_write_asks_for_credentials(service, setup):
    digest, _ = setup.push_image("public/app", "1.0", [b"layer"])
    anonymous = As(service)
    assert anonymous("GET", "/v2/public/app/manifests/1.0").status == 200
    assert anonymous("GET", "/v2/public/app/tags/list").status == 200
    for method, target, scope in [
        ("POST", "/v2/public/app/blobs/uploads/", "repository:public/app:pull,push"),
        ("PUT", "/v2/public/app/manifests/2.0", "repository:public/app:pull,push"),
        ("DELETE", f"/v2/public/app/manifests/{digest}", "repository:public/app:delete"),
        ("GET", "/v2/team/app/manifests/1.0", "repository:team/app:pull"),
    ]:
        response = anonymous(method, target, b"{}" if method == "PUT" else b"")
        assert response.status == 401 and error_code(response) == "UNAUTHORIZED", (method, target)
        assert challenge(response)[1]["scope"] == scope


def test_user_limited_to_one_glob_cannot_read_push_mount_from_or_list_others(service, setup):
    setup.push_image("team/app", "1", [b"team layer"])
    setup.push_image("private/secret", "1", [b"secret layer"])
    setup.push_image("private/other", "1", [b"other"])
    secret_layer = sha256(b"secret layer")
    bob = As(service, basic("bob"))

    assert bob("GET", "/v2/team/app/manifests/1").status == 200
    assert bob.push_blob("team/new", b"bob's") == sha256(b"bob's")
    for method, target in [("GET", "/v2/private/secret/manifests/1"), ("GET", "/v2/private/secret/tags/list"),
                           ("HEAD", f"/v2/private/secret/blobs/{secret_layer}"), ("POST", "/v2/private/secret/blobs/uploads/"),
                           ("GET", f"/v2/private/secret/referrers/{secret_layer}")]:
        response = bob(method, target)
        assert response.status == 403, (method, target, response.status)
        if method != "HEAD":
            assert error_code(response) == "DENIED"
    # mount from a repository bob cannot read: an ordinary upload session instead of the blob
    mounted = bob("POST", f"/v2/team/app/blobs/uploads/?mount={secret_layer}&from=private/secret")
    assert mounted.status == 202
    # nor does a HEAD in his own repository link it implicitly (dedupe)
    assert bob("HEAD", f"/v2/team/app/blobs/{secret_layer}").status == 404
    assert body(bob("GET", "/v2/_catalog"))["repositories"] == ["team/app"]  # repositories with a manifest

    alice = As(service, basic("alice"))
    assert alice("POST", f"/v2/private/mine/blobs/uploads/?mount={secret_layer}&from=private/secret").status == 201


def test_refusals_come_before_any_404_that_would_reveal_content(service, setup):
    setup.push_image("private/secret", "1", [b"x"])
    for target in ["/v2/private/secret/manifests/missing", "/v2/private/absent/manifests/1", "/v2/private/absent/tags/list",
                   f"/v2/private/absent/blobs/{sha256(b'nothing')}", "/v2/private/absent/blobs/uploads/some-session"]:
        assert As(service)("GET", target).status == 401, target
        assert As(service, basic("bob"))("GET", target).status == 403, target
        assert As(service, basic("alice"))("GET", target).status == 404, target


def test_tag_overwrite_needs_update_and_a_new_tag_create(service, setup):
    setup.push_image("team/app", "existing", [b"v1"])
    creator, updater = As(service, basic("creator")), As(service, basic("updater"))
    creator.push_image("team/app", "new-by-creator", [b"c"])

    manifest = body(setup("GET", "/v2/team/app/manifests/existing"))
    raw = json.dumps(manifest | {"annotations": {"moved": "yes"}}).encode()
    headers = {"Content-Type": manifest["mediaType"]}
    refused = creator("PUT", "/v2/team/app/manifests/existing", raw, headers)
    assert refused.status == 403 and error_code(refused) == "DENIED"
    assert updater("PUT", "/v2/team/app/manifests/existing", raw, headers).status == 201
    assert updater("PUT", "/v2/team/app/manifests/brand-new", raw, headers).status == 403
    assert updater("PUT", f"/v2/team/app/manifests/{sha256(raw)}", raw, headers).status == 403  # by digest is a create
    assert creator("PUT", f"/v2/team/app/manifests/{sha256(raw)}", raw, headers).status == 201
    assert As(service, basic("bob"))("PUT", "/v2/team/app/manifests/existing", raw, headers).status == 201


def test_catalog_pages_stay_full_and_link_stays_right_when_filtered(service, setup):
    names = []
    for index in range(12):
        prefix = "team" if index % 3 == 0 else "private"
        names.append(f"{prefix}/r{index:02d}")
        setup.push_image(names[-1], "1", [b"x"])
    readable = sorted(n for n in names if n.startswith("team/"))
    bob = As(service, basic("bob"))
    seen, target = [], "/v2/_catalog?n=2"
    while target:
        response = bob("GET", target)
        page = body(response)["repositories"]
        link = response.headers.get("Link")
        assert len(page) == 2 or not link, (page, link)
        seen += page
        target = link[1 : link.index(">")] if link else ""
    assert seen == readable
    assert body(As(service)("GET", "/v2/_catalog"))["repositories"] == []  # anonymous reads public/** only: none pushed


def test_anonymous_catalog_asks_for_credentials_when_nothing_is_public(tmp_path: Path, aws: None):
    config = auth_config(tmp_path, control={"repositories": {"**": {"defaultPolicy": ["read"]}}})
    service = service_for(config)
    response = As(service)("GET", "/v2/_catalog")
    assert response.status == 401 and challenge(response)[1]["scope"] == "registry:catalog:*"
    assert As(service, basic("bob"))("GET", "/v2/_catalog").status == 200


def test_token_holder_is_limited_by_scope_and_by_policy(service, setup):
    setup.push_image("team/app", "1", [b"x"])
    setup.push_image("private/secret", "1", [b"y"])
    pull_only = token_for(service, "repository:team/app:pull", basic("bob"))
    holder = As(service, bearer(pull_only))
    assert holder("GET", "/v2/team/app/manifests/1").status == 200
    refused = holder("POST", "/v2/team/app/blobs/uploads/")
    assert refused.status == 401
    assert challenge(refused)[1]["error"] == "insufficient_scope" and challenge(refused)[1]["scope"] == "repository:team/app:pull,push"
    assert holder("GET", "/v2/team/other/tags/list").status == 401  # another repository: not in this token

    # bob asked for private/secret: the token grants nothing there, and the policy says no, so 403
    wide = token_for(service, ["repository:private/secret:pull,push", "repository:team/app:*"], basic("bob"))
    assert As(service, bearer(wide))("GET", "/v2/private/secret/manifests/1").status == 403
    assert As(service, bearer(wide))("DELETE", "/v2/team/app/manifests/1").status == 202


def test_catalog_with_a_token_needs_the_catalog_scope(service, setup):
    setup.push_image("team/app", "1", [b"x"])
    setup.push_image("private/secret", "1", [b"y"])
    without = As(service, bearer(token_for(service, "repository:team/app:pull", basic("bob"))))
    refused = without("GET", "/v2/_catalog")
    assert refused.status == 401 and challenge(refused)[1]["scope"] == "registry:catalog:*"
    with_scope = As(service, bearer(token_for(service, "registry:catalog:*", basic("bob"))))
    assert body(with_scope("GET", "/v2/_catalog"))["repositories"] == ["team/app"]


def test_access_control_without_logins_is_anonymous_and_final(tmp_path: Path, aws: None):
    config = Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}},
                                    "http": {"accessControl": {"repositories": {"**": {"anonymousPolicy": ["read"]}}}}})
    service = service_for(config)
    Setup(service).push_image("any/app", "1", [b"x"])
    anonymous = As(service, basic("alice"))  # credentials mean nothing without auth: still anonymous
    assert anonymous("GET", "/v2/").status == 200
    assert anonymous("GET", "/v2/any/app/manifests/1").status == 200
    refused = anonymous("POST", "/v2/any/app/blobs/uploads/")
    assert refused.status == 403 and "WWW-Authenticate" not in refused.headers
    assert anonymous("GET", "/auth/token").status == 404
