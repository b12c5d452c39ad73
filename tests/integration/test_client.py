"""The `zotless` client driven as a user drives it: subprocesses against real local servers, output and exit codes.

The query commands run against `nosearch_registry` (search switched off), so they exercise the distribution-API
fallback whatever the server offers; test_client_graphql.py covers the GraphQL path against a stub, and
test_queries_use_the_search_api_when_the_server_has_it runs against the real search extension where the server
has one (it skips on a tree without chalicelib/search).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.api.limits import CHUNK_MAX_LENGTH
from tests.integration.authconfig import creds
from tests.integration.clienthelpers import REF_NAME, Client, make_multiplatform_layout
from tests.integration.conftest import MiB, RunningRegistry, _registry, sha256
from tests.integration.images import make_layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nosearch_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A server with zot's search extension switched off: the client must fall back to the distribution API."""
    yield from _registry(tmp_path_factory, "nosearch-registry", {"extensions": {"search": {"enable": False}}})


@pytest.fixture
def client(tmp_path: Path) -> Client:
    home = tmp_path / "home"
    home.mkdir()
    return Client(home)


def manifest_digest(registry: RunningRegistry, repo: str, reference: str) -> str:
    accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    response = registry("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    return response.headers["Docker-Content-Digest"]


def patch_ranges(registry: RunningRegistry, repo: str) -> list[int]:
    """Content lengths the server logged for PATCHes to this repo's uploads (via the localserver request log)."""
    return [status for _, status in registry.requests_logged("PATCH", f"/v2/{repo}/blobs/uploads/")]


# push, pull, copy


def test_push_of_a_layer_over_4_mib_through_lambda_is_chunked_and_pulls_back(
    lambda_registry: RunningRegistry, client: Client, repo: str, tmp_path: Path
) -> None:
    digest = make_layout(tmp_path / "layout", "v1", [9 * MiB, 1000])
    pushed = client.run("push", f"oci:{tmp_path / 'layout'}:v1", f"{lambda_registry.host}/{repo}:v1")
    assert pushed.stdout.strip() == digest
    assert manifest_digest(lambda_registry, repo, "v1") == digest
    statuses = patch_ranges(lambda_registry, repo)
    layer = max((tmp_path / "layout" / "blobs" / "sha256").iterdir(), key=lambda path: path.stat().st_size)
    chunks = -(-layer.stat().st_size // CHUNK_MAX_LENGTH)
    assert statuses == [202] * (chunks - 1), statuses  # 9 MiB in chunks of Lambda's size, none refused; the closing PUT carries the last
    client.run("pull", f"{lambda_registry.host}/{repo}:v1", f"oci:{tmp_path / 'back'}:v1")
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    for blob in (tmp_path / "layout" / "blobs" / "sha256").iterdir():
        assert (tmp_path / "back" / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()


def test_multiplatform_index_referrers_and_annotations_travel_through_push_copy_and_pull(
    registry: RunningRegistry, lambda_registry: RunningRegistry, client: Client, repo: str, tmp_path: Path
) -> None:
    index_digest, referrer_digest = make_multiplatform_layout(tmp_path / "multi", "v1")
    client.run("push", "-q", f"oci:{tmp_path / 'multi'}:v1", f"{registry.host}/{repo}:v1")
    assert manifest_digest(registry, repo, "v1") == index_digest
    client.run("copy", f"{registry.host}/{repo}:v1", f"{lambda_registry.host}/{repo}-copy:v2")
    assert manifest_digest(lambda_registry, f"{repo}-copy", "v2") == index_digest
    referrers = lambda_registry("GET", f"/v2/{repo}-copy/referrers/{index_digest}").json()["manifests"]
    assert [(r["digest"], r.get("artifactType"), r.get("annotations")) for r in referrers] == [
        (referrer_digest, "application/spdx+json", {"org.example.kind": "sbom"})
    ]
    client.run("pull", f"{lambda_registry.host}/{repo}-copy:v2", f"oci:{tmp_path / 'back'}:v2")
    entries = json.loads((tmp_path / "back" / "index.json").read_text())["manifests"]
    assert [(e["digest"], (e.get("annotations") or {}).get(REF_NAME)) for e in entries] == [(index_digest, "v2"), (referrer_digest, None)]
    pulled_index = json.loads((tmp_path / "back" / "blobs" / "sha256" / index_digest.split(":")[1]).read_text())
    assert pulled_index["annotations"] == {"org.opencontainers.image.description": "two platforms"}
    listed = client.run("image", "name", f"{repo}-copy:v2", "--url", lambda_registry.url).stdout
    assert "linux/amd64,linux/arm64" in listed
    subject = client.run("search", "subject", f"{repo}-copy:v2", "--url", lambda_registry.url, "-f", "json").stdout
    assert [r["digest"] for r in json.loads(subject)] == [referrer_digest]


def test_push_a_directory_as_an_artifact_and_a_docker_archive(registry: RunningRegistry, client: Client, repo: str, tmp_path: Path) -> None:
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    (files / "a.txt").write_text("hello")
    (files / "sub" / "b.bin").write_bytes(os.urandom(3000))
    artifact = client.run("push", "-q", "-f", "json", f"dir:{files}", f"{registry.host}/{repo}:files")
    manifest = registry("GET", f"/v2/{repo}/manifests/files", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()
    assert json.loads(artifact.stdout)["digest"] == manifest_digest(registry, repo, "files")
    assert sorted(layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]) == ["a.txt", "sub/b.bin"]
    assert manifest["artifactType"] == "application/vnd.unknown.artifact.v1"

    archive = tmp_path / "image.tar"
    layer = os.urandom(5000)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    saved = json.dumps([{"Config": "config.json", "RepoTags": ["x:saved"], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(archive, "w") as tar:
        for name, data in (("config.json", config), ("layer.tar", layer), ("manifest.json", saved)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    client.run("push", f"docker-archive:{archive}", f"{registry.host}/{repo}")
    tags = registry("GET", f"/v2/{repo}/tags/list").json()["tags"]
    assert sorted(tags) == ["files", "saved"]
    assert registry.pull_blob(repo, sha256(layer)).content == layer


def test_an_interrupted_push_resumes_where_the_server_stands(registry: RunningRegistry, client: Client, repo: str, tmp_path: Path) -> None:
    """Killed mid-layer (after a few 1 MiB chunks), the next push asks the server for the offset and goes on from there."""
    make_layout(tmp_path / "layout", "v1", [24 * MiB])
    args = ("push", "--chunk-size", str(MiB), f"oci:{tmp_path / 'layout'}:v1", f"{registry.host}/{repo}:v1")
    process = client.popen(*args)
    deadline = time.monotonic() + 120
    while len(patch_ranges(registry, repo)) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    before = len(patch_ranges(registry, repo))
    assert 3 <= before < 24, f"{before} chunks were in when the client died"
    resumed = client.run(*args)
    assert "resuming" in resumed.stderr, resumed.stderr
    offset = int(resumed.stderr.split("resuming", 1)[1].split("at byte", 1)[1].split()[0])
    assert 3 * MiB <= offset < 24 * MiB
    layer = max((tmp_path / "layout" / "blobs" / "sha256").iterdir(), key=lambda path: path.stat().st_size)
    assert patch_ranges(registry, repo).count(202) == -(-layer.stat().st_size // MiB) - 1  # every 1 MiB chunk was taken once, the last by the PUT
    assert manifest_digest(registry, repo, "v1") == resumed.stdout.strip()


def test_blobs_the_destination_has_are_not_sent_again(registry: RunningRegistry, client: Client, repo: str, tmp_path: Path) -> None:
    make_layout(tmp_path / "layout", "v1", [6 * MiB])
    client.run("push", f"oci:{tmp_path / 'layout'}:v1", f"{registry.host}/{repo}:v1")
    sent = len(patch_ranges(registry, repo))
    again = client.run("push", f"oci:{tmp_path / 'layout'}:v1", f"{registry.host}/{repo}:v2")
    assert len(patch_ranges(registry, repo)) == sent
    assert again.stderr.count("exists") == 2, again.stderr


# queries through the distribution API fallback


def test_image_repo_search_and_status_commands_fall_back_to_the_distribution_api(nosearch_registry: RunningRegistry, client: Client, repo: str) -> None:
    registry = nosearch_registry
    shared = os.urandom(1500)
    base_digest, _ = registry.push_image(repo, "base", [shared])
    derived_digest, manifest = registry.push_image(repo, "derived", [shared, os.urandom(800)])
    client.run("config", "add", "local", registry.url)
    status = client.run("status").stdout
    assert "status: online" in status and "search: not available" in status
    listing = client.run("images", "local", "--name", repo).stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "OS/ARCH", "DIGEST", "SIGNED", "SIZE"]
    assert sorted(line.split()[1] for line in listing[1:]) == ["base", "derived"]
    rows = json.loads(client.run("image", "list", "-f", "json").stdout)
    assert {(r["repo"], r["tag"], r["digest"]) for r in rows} >= {(repo, "base", base_digest), (repo, "derived", derived_digest)}
    layer = manifest["layers"][1]["digest"]
    assert [(r["repo"], r["tag"]) for r in json.loads(client.run("image", "digest", layer, "-f", "json").stdout)] == [(repo, "derived")]
    assert (repo, "derived") in {(r["repo"], r["tag"]) for r in json.loads(client.run("image", "derived", f"{repo}:base", "-f", "json").stdout)}
    assert (repo, "base") in {(r["repo"], r["tag"]) for r in json.loads(client.run("image", "base", f"{repo}:derived", "-f", "json").stdout)}
    assert repo in client.run("repo", "list").stdout
    assert [r["name"] for r in json.loads(client.run("search", "query", repo, "-f", "json").stdout)["repos"]] == [repo]
    tagged = json.loads(client.run("search", "query", f"{repo}:der", "-f", "json").stdout)["images"]
    assert [(r["repo"], r["tag"]) for r in tagged] == [(repo, "derived")]
    yaml_out = client.run("image", "name", f"{repo}:base", "-f", "yaml").stdout
    assert f"repo: {repo}" in yaml_out and "tag: base" in yaml_out


def test_cve_commands_say_the_server_lacks_search(nosearch_registry: RunningRegistry, client: Client) -> None:
    failed = client.run("cve", "list", "some/app:v1", "--url", nosearch_registry.url, expect=1)
    assert failed.stderr.strip() == "Error: the registry has no search extension (CVE listing needs zot's search API at /v2/_zot/ext/search)"


def test_queries_use_the_search_api_when_the_server_has_it(registry: RunningRegistry, client: Client, repo: str) -> None:
    """Runs once the search extension is on the server (branch `search`); before that it skips."""
    status = client.run("status", "--url", registry.url).stdout
    if "search: available" not in status:
        pytest.skip("this server has no search extension yet")
    shared = os.urandom(1500)
    base_digest, _ = registry.push_image(repo, "base", [shared])
    derived_digest, _ = registry.push_image(f"{repo}-derived", "d", [shared, os.urandom(900)])
    client.run("config", "add", "local", registry.url)
    derived = json.loads(client.run("image", "derived", f"{repo}:base", "-f", "json").stdout)
    assert [(r["repo"], r["tag"], r["digest"]) for r in derived] == [(f"{repo}-derived", "d", derived_digest)]
    base = json.loads(client.run("image", "base", f"{repo}-derived:d", "-f", "json").stdout)
    assert [(r["repo"], r["tag"], r["digest"]) for r in base] == [(repo, "base", base_digest)]
    assert [r["tag"] for r in json.loads(client.run("image", "name", f"{repo}:base", "-f", "json").stdout)] == ["base"]
    assert (repo, "base") in {(r["repo"], r["tag"]) for r in json.loads(client.run("image", "digest", base_digest[7:19], "-f", "json").stdout)}
    newest = {r["name"]: r["newestTag"] for r in json.loads(client.run("repo", "list", "-f", "json").stdout)}
    assert newest[repo] == "base"
    assert client.run("cve", "list", f"{repo}:base").returncode == 0
    assert "not found" in client.run("cve", "list", f"{repo}:nope", expect=5).stderr


# errors: one line, an exit code, no traceback


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("image", "list", "--url", "http://127.0.0.1:1"), 3, "cannot reach the registry"),
        (("image", "list", "--url", "not-a-url"), 2, "not a registry URL"),
        (("image", "list"), 2, "no registry given"),
        (("image", "list", "--config", "nope"), 1, "config 'nope' does not exist"),
        (("push", "oci:/nonexistent:v1", "127.0.0.1:1/a:b"), 1, "not an OCI image layout"),
        (("push", "oci:/tmp", "not a reference"), 1, "expected HOST[:PORT]/REPO"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(client: Client, args: tuple[str, ...], code: int, message: str) -> None:
    result = client.run(*args, expect=code)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unknown_image_is_exit_5(registry: RunningRegistry, client: Client, repo: str) -> None:
    for args in (("image", "name", f"{repo}:nope", "--url", registry.url), ("pull", f"{registry.host}/{repo}:nope", "oci:/tmp/never")):
        result = client.run(*args, expect=5)
        assert "not found" in result.stderr and "Traceback" not in result.stderr


# auth: -u, auth files, tokens


def test_token_login_with_user_flag_and_with_an_auth_file_and_refusals(token_registry: RunningRegistry, client: Client, tmp_path: Path) -> None:
    make_layout(tmp_path / "layout", "v1", [5 * MiB])
    target = f"{token_registry.host}/private/client-{os.getpid()}:v1"
    client.run("push", "-q", "-u", creds("alice"), f"oci:{tmp_path / 'layout'}:v1", target)
    refused = client.run("push", "-q", "-u", "alice:wrong", f"oci:{tmp_path / 'layout'}:v1", target, expect=4)
    assert "login refused" in refused.stderr and "wrong" not in refused.stderr
    anonymous = client.run("image", "name", f"private/client-{os.getpid()}:v1", "--url", token_registry.url, expect=None)
    assert anonymous.returncode in (4, 5), anonymous.stderr  # refused (distribution API) or hidden (search, as zot does)
    auth_file = client.home / "run" / "containers" / "auth.json"
    auth_file.parent.mkdir(parents=True)
    auth_file.write_text(json.dumps({"auths": {token_registry.host: {"auth": base64.b64encode(creds("alice").encode()).decode()}}}))
    listed = client.run("image", "name", f"private/client-{os.getpid()}:v1", "--url", token_registry.url, "-f", "json").stdout
    assert [r["tag"] for r in json.loads(listed)] == ["v1"]
