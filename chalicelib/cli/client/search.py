"""What `image`, `cve`, `repo`, `search` and `status` ask: zot's GraphQL search API where the server has it,
else the distribution API (catalog, tags, manifests, referrers), so the commands work against any registry.

Rows come back normalised (plain dicts, the same keys either way), so output does not care which answered.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chalicelib.cli.client.errors import EXIT_FAILED, EXIT_NOT_FOUND, ClientError, not_found
from chalicelib.cli.client.http import Registry
from chalicelib.cli.client.images import MANIFEST_TYPES, fetch_manifest, list_referrers
from chalicelib.cli.client.references import split_image
from chalicelib.spec.errors import DigestInvalid
from chalicelib.spec.manifests import INDEX_TYPES
from chalicelib.spec.references import Digest

SEARCH_PATH = "/v2/_zot/ext/search"
DISCOVER_PATH = "/v2/_oci/ext/discover"
IMAGE_FIELDS = "RepoName Tag Digest MediaType Size LastUpdated IsSigned Manifests { Digest ConfigDigest Size Platform { Os Arch } }"
REPO_FIELDS = "Name LastUpdated Size NewestImage { Tag Digest }"
REFERRER_FIELDS = "MediaType ArtifactType Size Digest Annotations { Key Value }"
CVE_FIELDS = "Id Severity Title Description PackageList { Name InstalledVersion FixedVersion }"
_FULL_HEX = re.compile(r"^[0-9a-f]{64}$")
NO_SEARCH = "the registry has no search extension ({what} needs zot's search API at " + SEARCH_PATH + ")"


def quote(value: str) -> str:
    """A GraphQL string literal (JSON's escaping is GraphQL's)."""
    return json.dumps(value)


def image_row(summary: dict[str, Any]) -> dict[str, Any]:
    manifests = summary.get("Manifests") or []
    platforms = [f"{(m.get('Platform') or {}).get('Os') or ''}/{(m.get('Platform') or {}).get('Arch') or ''}".strip("/") for m in manifests]
    return {
        "repo": summary.get("RepoName", ""),
        "tag": summary.get("Tag", ""),
        "digest": summary.get("Digest", ""),
        "mediaType": summary.get("MediaType", ""),
        "platforms": [p for p in platforms if p] or ["N/A"],
        "signed": bool(summary.get("IsSigned")),
        "size": int(summary.get("Size") or 0),
        "lastUpdated": summary.get("LastUpdated") or "",
    }


class Backend:
    """The questions the commands ask; GraphQL and Distribution answer them."""

    name = "distribution"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry


class GraphQL(Backend):
    """zot's search extension, queried as zli does: GET ?query=."""

    name = "search"

    def query(self, text: str) -> dict[str, Any]:
        response = self.registry.request("GET", SEARCH_PATH, params={"query": text}, expect=(200, 422, 400))
        try:
            body = response.json()
        except ValueError as error:
            raise ClientError(f"{SEARCH_PATH}: the answer is not JSON") from error
        errors = body.get("errors") or []
        if errors and not body.get("data"):
            message = "; ".join(str(e.get("message", e)) for e in errors)
            missing = "not found" in message.lower() or "not exist" in message.lower()
            raise ClientError(message, EXIT_NOT_FOUND if missing else EXIT_FAILED)
        return body.get("data") or {}

    def _images(self, call: str) -> list[dict[str, Any]]:
        name = call.split("(", 1)[0]
        data = self.query(f"{{ {call} {{ Results {{ {IMAGE_FIELDS} }} }} }}")
        return [image_row(r) for r in (data.get(name) or {}).get("Results") or []]

    def images(self, repo: str = "", tag: str | None = None) -> list[dict[str, Any]]:
        rows = self._images(f"ImageList(repo: {quote(repo)})")
        return [r for r in rows if tag is None or r["tag"] == tag]

    def by_digest(self, digest: str) -> list[dict[str, Any]]:
        """zli takes a short digest; a search API that wants the whole one gets it, else the catalog is scanned."""
        full = f"sha256:{digest}" if _FULL_HEX.match(digest) else digest
        try:
            Digest.parse(full)
        except DigestInvalid:
            return Distribution(self.registry).by_digest(digest)
        return self._images(f"ImageListForDigest(id: {quote(full)})")

    def derived(self, image: str) -> list[dict[str, Any]]:
        return self._images(f"DerivedImageList(image: {quote(image)})")

    def base(self, image: str) -> list[dict[str, Any]]:
        return self._images(f"BaseImageList(image: {quote(image)})")

    def cves(self, image: str, searched: str = "") -> list[dict[str, Any]]:
        data = self.query(f"{{ CVEListForImage(image: {quote(image)}, searchedCVE: {quote(searched)}) {{ Tag CVEList {{ {CVE_FIELDS} }} }} }}")
        rows = [cve_row(c) for c in (data.get("CVEListForImage") or {}).get("CVEList") or []]
        if not rows:
            self._must_exist(image)
        return rows

    def _must_exist(self, image: str) -> None:
        """An empty answer about an image that is not there is an unknown image (exit 5), not a clean one."""
        repo, reference = split_image(image)
        if self.registry.raw("HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}).status_code == 404:
            raise not_found(image)

    def affected(self, cve: str) -> list[dict[str, Any]]:
        return self._images(f"ImageListForCVE(id: {quote(cve)})")

    def fixed(self, repo: str, cve: str) -> list[dict[str, Any]]:
        return self._images(f"ImageListWithCVEFixed(id: {quote(cve)}, image: {quote(repo)})")

    def diff(self, minuend: str, subtrahend: str) -> list[dict[str, Any]]:
        a, b = _image_input(minuend), _image_input(subtrahend)
        data = self.query(f"{{ CVEDiffListForImages(minuend: {a}, subtrahend: {b}) {{ CVEList {{ {CVE_FIELDS} }} }} }}")
        return [cve_row(c) for c in (data.get("CVEDiffListForImages") or {}).get("CVEList") or []]

    def repos(self) -> list[dict[str, Any]]:
        data = self.query(f"{{ RepoListWithNewestImage {{ Results {{ {REPO_FIELDS} }} }} }}")
        return [repo_row(r) for r in (data.get("RepoListWithNewestImage") or {}).get("Results") or []]

    def search(self, text: str) -> dict[str, list[dict[str, Any]]]:
        data = self.query(f"{{ GlobalSearch(query: {quote(text)}) {{ Images {{ {IMAGE_FIELDS} }} Repos {{ {REPO_FIELDS} }} }} }}")
        found = data.get("GlobalSearch") or {}
        return {"images": [image_row(i) for i in found.get("Images") or []], "repos": [repo_row(r) for r in found.get("Repos") or []]}

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]:
        data = self.query(f"{{ Referrers(repo: {quote(repo)}, digest: {quote(digest)}, type: []) {{ {REFERRER_FIELDS} }} }}")
        rows = []
        for found in data.get("Referrers") or []:
            annotations = {a["Key"]: a["Value"] for a in found.get("Annotations") or []}
            rows.append(referrer_row(found.get("ArtifactType"), found.get("MediaType"), found.get("Digest"), found.get("Size"), annotations))
        return rows


def _image_input(image: str) -> str:
    repo, reference = split_image(image)
    key = "Digest" if ":" in reference and "@" in image else "Tag"
    return f"{{Repo: {quote(repo)}, {key}: {quote(reference)}}}"


def cve_row(cve: dict[str, Any]) -> dict[str, Any]:
    packages = cve.get("PackageList") or []
    return {
        "id": cve.get("Id", ""),
        "severity": cve.get("Severity", ""),
        "title": cve.get("Title", ""),
        "packages": [{"name": p.get("Name"), "installed": p.get("InstalledVersion"), "fixed": p.get("FixedVersion")} for p in packages],
    }


def repo_row(repo: dict[str, Any]) -> dict[str, Any]:
    newest = repo.get("NewestImage") or {}
    size = int(repo.get("Size") or 0)
    return {"name": repo.get("Name", ""), "lastUpdated": repo.get("LastUpdated") or "", "size": size, "newestTag": newest.get("Tag") or ""}


def referrer_row(artifact_type: str | None, media_type: str | None, digest: str | None, size: int | None, annotations: dict[str, str]) -> dict[str, Any]:
    return {"artifactType": artifact_type or "", "mediaType": media_type or "", "digest": digest or "", "size": int(size or 0), "annotations": annotations}


class Distribution(Backend):
    """The distribution API only: enough for images, repos, digests, base/derived and referrers, not for CVEs."""

    def repositories(self) -> list[str]:
        names: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            response = self.registry.request("GET", path)
            names += response.json().get("repositories") or []
            path = _next_link(response.headers.get("Link", ""))
        return names

    def tags(self, repo: str) -> list[str]:
        response = self.registry.raw("GET", f"/v2/{repo}/tags/list")
        if response.status_code == 404:
            raise not_found(repo)
        if response.status_code != 200:
            raise self.registry.error(response, repo)
        return response.json().get("tags") or []

    def describe(self, repo: str, tag: str) -> dict[str, Any]:
        """An image row from its manifest (and, for an index, its children's platforms and sizes)."""
        manifest = fetch_manifest(self.registry, repo, tag)
        document = manifest.document
        row = {"repo": repo, "tag": tag, "digest": manifest.digest, "mediaType": manifest.media_type, "signed": False, "lastUpdated": ""}
        if manifest.media_type in INDEX_TYPES or document.get("manifests") is not None:
            children = document.get("manifests") or []
            row["platforms"] = [f"{(c.get('platform') or {}).get('os', '')}/{(c.get('platform') or {}).get('architecture', '')}" for c in children] or ["N/A"]
            row["size"] = len(manifest.body) + sum(int(c.get("size", 0)) for c in children)
            row["layers"] = []
            row["blobs"] = {c["digest"] for c in children}
            return row
        layers = [layer["digest"] for layer in document.get("layers") or []]
        config = document.get("config") or {}
        row["platforms"] = [self._platform(repo, config)]
        row["size"] = len(manifest.body) + int(config.get("size", 0)) + sum(int(layer.get("size", 0)) for layer in document.get("layers") or [])
        row["layers"] = layers
        row["blobs"] = {config.get("digest", ""), *layers}
        return row

    def _platform(self, repo: str, config: dict[str, Any]) -> str:
        if not str(config.get("mediaType", "")).endswith("config.v1+json") or int(config.get("size", 0)) > 1 << 20:
            return "N/A"
        response = self.registry.raw("GET", f"/v2/{repo}/blobs/{config['digest']}")
        try:
            body = response.json()
        except ValueError:
            return "N/A"
        return f"{body.get('os', '')}/{body.get('architecture', '')}" if body.get("os") else "N/A"

    def _all(self, repos: list[str] | None = None) -> list[dict[str, Any]]:
        return [self.describe(repo, tag) for repo in (repos if repos is not None else self.repositories()) for tag in self.tags(repo)]

    def images(self, repo: str = "", tag: str | None = None) -> list[dict[str, Any]]:
        if tag:
            return [_public(self.describe(repo, tag))]
        return [_public(row) for row in self._all([repo] if repo else None)]

    def by_digest(self, digest: str) -> list[dict[str, Any]]:
        """zot's ImageListForDigest: the manifest, its config or a layer has the digest."""
        wanted = digest.split(":", 1)[-1]
        return [_public(row) for row in self._all() if any(d.split(":", 1)[-1].startswith(wanted) for d in [row["digest"], *row["blobs"]] if d)]

    def derived(self, image: str) -> list[dict[str, Any]]:
        """Images whose layers start with all of this image's layers, and add more."""
        mine = self._layers_of(image)
        return [_public(row) for row in self._all() if len(row["layers"]) > len(mine) and row["layers"][: len(mine)] == mine]

    def base(self, image: str) -> list[dict[str, Any]]:
        """Images whose layers are a proper prefix of this image's."""
        mine = self._layers_of(image)
        return [_public(row) for row in self._all() if row["layers"] and len(row["layers"]) < len(mine) and mine[: len(row["layers"])] == row["layers"]]

    def _layers_of(self, image: str) -> list[str]:
        repo, reference = split_image(image)
        return list(self.describe(repo, reference)["layers"])

    def repos(self) -> list[dict[str, Any]]:
        return [{"name": name, "lastUpdated": "", "size": 0, "newestTag": ""} for name in self.repositories()]

    def search(self, text: str) -> dict[str, list[dict[str, Any]]]:
        """As GlobalSearch reads its query: `repo:tag-prefix` searches tags in a repository, else repository names."""
        if ":" in text:
            repo, _, prefix = text.partition(":")
            return {"images": [_public(self.describe(repo, t)) for t in self.tags(repo) if t.startswith(prefix)], "repos": []}
        return {"images": [], "repos": [r for r in self.repos() if text.lower() in r["name"]]}

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]:
        return [
            referrer_row(d.get("artifactType"), d.get("mediaType"), d.get("digest"), d.get("size"), d.get("annotations") or {})
            for d in list_referrers(self.registry, repo, digest)
        ]

    def cves(self, image: str, searched: str = "") -> list[dict[str, Any]]:
        raise ClientError(NO_SEARCH.format(what="CVE listing"))

    def affected(self, cve: str) -> list[dict[str, Any]]:
        raise ClientError(NO_SEARCH.format(what="CVE search"))

    def fixed(self, repo: str, cve: str) -> list[dict[str, Any]]:
        raise ClientError(NO_SEARCH.format(what="CVE search"))

    def diff(self, minuend: str, subtrahend: str) -> list[dict[str, Any]]:
        raise ClientError(NO_SEARCH.format(what="a CVE diff"))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in ("layers", "blobs")}


def _next_link(link: str) -> str | None:
    """RFC 5988 Link: <url>; rel="next"."""
    if 'rel="next"' not in link:
        return None
    return link.split(";", 1)[0].strip().strip("<>") or None


def discover(registry: Registry) -> dict[str, Any]:
    """What /v2/ and the OCI extension discovery say, for `status` and for choosing a backend."""
    base = registry.raw("GET", "/v2/")
    if base.status_code == 401:
        registry.request("GET", "/v2/_catalog")  # answers the challenge, or raises the refusal
        base = registry.raw("GET", "/v2/")
    extensions: list[dict[str, Any]] = []
    response = registry.raw("GET", DISCOVER_PATH)
    if response.status_code == 200:
        try:
            extensions = response.json().get("extensions") or []
        except ValueError:
            extensions = []
    return {
        "url": registry.base_url,
        "reachable": True,
        "status": base.status_code,
        "apiVersion": base.headers.get("Docker-Distribution-API-Version", ""),
        "extensions": extensions,
        "discovered": response.status_code == 200,
    }


def has_search(registry: Registry) -> bool:
    """Discovery when the server offers it; else a probe: a search endpoint that answers a trivial query."""
    found = discover(registry)
    if found["discovered"]:
        return any(SEARCH_PATH in str(endpoint) for ext in found["extensions"] for endpoint in ext.get("endpoints") or [])
    probe = registry.raw("GET", SEARCH_PATH, params={"query": "{ __typename }"})
    return probe.status_code == 200


def backend(registry: Registry) -> Backend:
    return GraphQL(registry) if has_search(registry) else Distribution(registry)


__all__ = ["MANIFEST_TYPES", "Backend", "Distribution", "GraphQL", "backend", "discover"]
