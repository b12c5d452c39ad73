"""What one request tells about the registry, computed once for both outputs (Prometheus and EMF lines).

The names follow zot's pkg/extensions/monitoring: requests by method and code, latency by method
(histogram) and by repository (summary), image uploads (manifest PUTs) and downloads (manifest
GETs) per repository. zotless adds a latency histogram by route, which zot does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.spec.http import Response

NO_REPO = "N/A"  # zot's label when a request is not about one repository
_REPO = re.compile(r"^/v2/(.+?)/(blobs|tags|manifests|referrers)/")
_MANIFEST = re.compile(r"^/v2/(.+)/manifests/[^/]+$")
_ROUTES = (("/blobs/uploads/", "uploads"), ("/blobs/", "blobs"), ("/manifests/", "manifests"), ("/tags/list", "tags"), ("/referrers/", "referrers"))


@dataclass(frozen=True)
class RequestMeasure:
    """One served request: the labels and values every metric of it needs."""

    method: str
    status: int
    seconds: float
    repo: str
    route: str
    download: bool  # an image pulled: a manifest GET answered 200 (zot counts the same)
    upload: bool  # an image pushed: a manifest PUT answered 201

    @property
    def manifest_changed(self) -> bool:
        """A push or a delete: the repository's stored bytes may have changed."""
        return self.upload or (self.method == "DELETE" and self.route == "manifests" and self.status == 202)


def route_of(path: str) -> str:
    """A low-cardinality name for the kind of request (no repository names or digests)."""
    if path in ("/v2", "/v2/"):
        return "base"
    if path == "/v2/_catalog":
        return "catalog"
    if path.startswith("/v2/"):
        return next((name for marker, name in _ROUTES if marker in path), "other")
    return "other"


def names_its_repository(status: int) -> bool:
    """Only an answered request labels its repository: a refusal (401/403), an unknown name (404) or a bad
    request (400) could otherwise add one series per name a client makes up, and zot knows no repo there either.
    """
    return status < 400


def measure(method: str, path: str, response: Response, seconds: float) -> RequestMeasure:
    repo_match = _REPO.match(path)
    manifest = _MANIFEST.match(path) is not None
    return RequestMeasure(
        method=method,
        status=response.status,
        seconds=seconds,
        repo=repo_match.group(1) if repo_match and names_its_repository(response.status) else NO_REPO,
        route=route_of(path),
        download=manifest and method == "GET" and response.status == 200,
        upload=manifest and method == "PUT" and response.status == 201,
    )
