"""The search-backed client commands against a stub that answers zot's GraphQL contract.

The stub (a thread in this process) offers `/v2/_oci/ext/discover` and `/v2/_zot/ext/search` with canned answers;
every query text the client sends is validated against zot's schema with graphql-core, so a field or argument
zot does not have fails here. Once the search branch lands, the same commands run against the real server too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.clienthelpers import Client, serving

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = [ROOT / "chalicelib" / "search" / "schema.graphql", Path("/work/shared/reference/zot-search/schema.graphql")]
DIGEST = "sha256:" + "ab" * 32


def image(repo: str, tag: str, arch: str = "amd64") -> dict[str, Any]:
    return {
        "RepoName": repo, "Tag": tag, "Digest": DIGEST, "MediaType": "application/vnd.oci.image.manifest.v1+json", "Size": "12345678",
        "LastUpdated": "2026-11-01T00:00:00Z", "IsSigned": True,
        "Manifests": [{"Digest": DIGEST, "ConfigDigest": DIGEST, "Size": "12345678", "Platform": {"Os": "linux", "Arch": arch}}],
    }  # fmt: skip


CVE = {"Id": "CVE-2024-0001", "Severity": "HIGH", "Title": "overflow in libfoo", "Description": "…", "PackageList": [
    {"Name": "libfoo", "InstalledVersion": "1.0", "FixedVersion": "1.1"}]}  # fmt: skip
REPO = {"Name": "app/web", "LastUpdated": "2026-11-01T00:00:00Z", "Size": "100", "NewestImage": {"Tag": "v2", "Digest": DIGEST}}
ANSWERS: dict[str, Any] = {
    "ImageList": {"Results": [image("app/web", "v1"), image("app/web", "v2", "arm64")]},
    "ImageListForDigest": {"Results": [image("app/web", "v1")]},
    "DerivedImageList": {"Results": [image("app/derived", "v1")]},
    "BaseImageList": {"Results": [image("base/os", "v1")]},
    "CVEListForImage": {"Tag": "v1", "CVEList": [CVE]},
    "ImageListForCVE": {"Results": [image("app/web", "v1")]},
    "ImageListWithCVEFixed": {"Results": [image("app/web", "v2")]},
    "CVEDiffListForImages": {"CVEList": [CVE]},
    "RepoListWithNewestImage": {"Results": [REPO]},
    "GlobalSearch": {"Images": [], "Repos": [REPO]},
    "Referrers": [{"MediaType": "application/vnd.oci.image.manifest.v1+json", "ArtifactType": "application/spdx+json", "Size": 500, "Digest": DIGEST,
                   "Annotations": [{"Key": "k", "Value": "v"}]}],
}  # fmt: skip


class Stub(ThreadingHTTPServer):
    queries: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/v2/":
            self._json(200, {})
        elif parts.path == "/v2/_oci/ext/discover":
            self._json(200, {"extensions": [{"name": "_zot", "endpoints": ["/v2/_zot/ext/search"]}]})
        elif parts.path == "/v2/_zot/ext/search":
            query = parse_qs(parts.query)["query"][0]
            self.server.queries.append(query)
            found = re.match(r"\s*(?:query\s*\w*\s*)?\{\s*(\w+)", query)  # the root field answers
            name = found.group(1) if found and found.group(1) in ANSWERS else None
            self._json(200, {"data": {name: ANSWERS[name]}} if name else {"errors": [{"message": "unknown query"}]})
        else:
            self._json(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "not here"}]})


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub(("127.0.0.1", 0), Handler)
    server.queries = []
    with serving(server):
        yield server


@pytest.fixture
def client(tmp_path: Path) -> Client:
    return Client(tmp_path)


def validate(queries: list[str]) -> None:
    """Each query is valid against zot's schema (skipped where graphql-core or the schema is missing)."""
    graphql = pytest.importorskip("graphql")
    schema_path = next((path for path in SCHEMAS if path.exists()), None)
    if schema_path is None:
        pytest.skip("no copy of zot's schema.graphql here")
    schema = graphql.build_schema(schema_path.read_text())
    for query in queries:
        errors = graphql.validate(schema, graphql.parse(query))
        assert not errors, f"{query}\n{errors}"


def test_image_commands_speak_graphql(stub: Stub, client: Client) -> None:
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    listing = client.run("image", "list", "--url", url).stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "OS/ARCH", "DIGEST", "SIGNED", "SIZE"]
    assert listing[1].split() == ["app/web", "v1", "linux/amd64", "abababab", "true", "12.3MB"]
    assert [r["tag"] for r in json.loads(client.run("image", "name", "app/web:v2", "--url", url, "-f", "json").stdout)] == ["v2"]
    assert "app/web" in client.run("image", "digest", DIGEST, "--url", url).stdout
    assert "app/derived" in client.run("image", "derived", "base/os:v1", "--url", url).stdout
    assert "base/os" in client.run("image", "base", "app/derived:v1", "--url", url).stdout
    sent = " ".join(stub.queries)
    for call in ('ImageList(repo: "")', 'ImageList(repo: "app/web")', f'ImageListForDigest(id: "{DIGEST}")', 'DerivedImageList(image: "base/os:v1")',
                 'BaseImageList(image: "app/derived:v1")'):  # fmt: skip
        assert call in sent
    validate(stub.queries)


def test_cve_repo_search_and_status_speak_graphql(stub: Stub, client: Client) -> None:
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    cves = client.run("cve", "list", "app/web:v1", "--url", url).stdout.splitlines()
    assert cves[0].split() == ["ID", "SEVERITY", "TITLE"] and cves[1].split()[:2] == ["CVE-2024-0001", "HIGH"]
    assert "CVE-2024-0001" in client.run("image", "cve", "app/web:v1", "--url", url).stdout
    assert "app/web" in client.run("cve", "affected", "CVE-2024-0001", "--url", url).stdout
    assert "v2" in client.run("cve", "fixed", "app/web", "CVE-2024-0001", "--url", url).stdout
    assert json.loads(client.run("cve", "diff", "app/web:v1", "app/web:v2", "--url", url, "-f", "json").stdout)[0]["id"] == "CVE-2024-0001"
    assert "app/web" in client.run("repo", "list", "--url", url).stdout
    assert json.loads(client.run("search", "query", "web", "--url", url, "-f", "json").stdout)["repos"][0]["name"] == "app/web"
    assert "application/spdx+json" in client.run("search", "subject", f"app/web@{DIGEST}", "--url", url).stdout
    assert "search: available" in client.run("status", "--url", url).stdout
    sent = " ".join(stub.queries)
    for call in ('CVEListForImage(image: "app/web:v1"', 'ImageListForCVE(id: "CVE-2024-0001")', 'ImageListWithCVEFixed(id: "CVE-2024-0001", image: "app/web")',
                 'CVEDiffListForImages(minuend: {Repo: "app/web", Tag: "v1"}, subtrahend: {Repo: "app/web", Tag: "v2"})', "RepoListWithNewestImage",
                 'GlobalSearch(query: "web")', f'Referrers(repo: "app/web", digest: "{DIGEST}"'):  # fmt: skip
        assert call in sent
    validate(stub.queries)
