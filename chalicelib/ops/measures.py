"""What one request tells about the registry, computed once for both outputs (Prometheus and EMF lines).

The names follow zot's pkg/extensions/monitoring: requests by method and code, latency by method
(histogram) and by repository (summary), image uploads (manifest PUTs) and downloads (manifest
GETs) per repository. zotless adds a latency histogram by route, which zot does not have.
Its route table also names a log line's route and repository (adapters/logs.py): one reading of a path.
It imports only the spec, so app.py's import stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.spec.http import Response

NO_REPO = "N/A"  # zot's label when a request is not about one repository
OTHER_ROUTE = "other"


@dataclass(frozen=True)
class Route:
    """One route of the API as the metrics and the log lines name it; `name` in the pattern is the repository."""

    pattern: re.Pattern[str]
    template: str  # the log line's route: "/v2/{name}/manifests/{reference}"
    kind: str  # the metrics' low-cardinality label: "manifests"


# Anchored, as the core's router matches: a name may hold "blobs" or "manifests" as a path component.
ROUTES = (
    Route(re.compile(r"^/v2/?$"), "/v2/", "base"),
    Route(re.compile(r"^/v2/_catalog$"), "/v2/_catalog", "catalog"),
    Route(re.compile(r"^/v2/(?P<name>.+)/tags/list$"), "/v2/{name}/tags/list", "tags"),
    Route(re.compile(r"^/v2/(?P<name>.+)/manifests/[^/]+$"), "/v2/{name}/manifests/{reference}", "manifests"),
    Route(re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/$"), "/v2/{name}/blobs/uploads/", "uploads"),
    Route(re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/[^/]+$"), "/v2/{name}/blobs/uploads/{session}", "uploads"),
    Route(re.compile(r"^/v2/(?P<name>.+)/blobs/[^/]+$"), "/v2/{name}/blobs/{digest}", "blobs"),
    Route(re.compile(r"^/v2/(?P<name>.+)/referrers/[^/]+$"), "/v2/{name}/referrers/{digest}", "referrers"),
)


def match_route(path: str) -> tuple[Route | None, str | None]:
    """(route, repository) of a path, or (None, None) for a path no route matches."""
    for route in ROUTES:
        found = route.pattern.match(path)
        if found:
            return route, found.groupdict().get("name")
    return None, None


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




def names_its_repository(status: int) -> bool:
    """Only an answered request labels its repository: a refusal (401/403), an unknown name (404) or a bad
    request (400) could otherwise add one series per name a client makes up, and zot knows no repo there either.
    """
    return status < 400


def measure(method: str, path: str, response: Response, seconds: float) -> RequestMeasure:
    route, repo = match_route(path)
    kind = route.kind if route else OTHER_ROUTE
    manifest = kind == "manifests"
    return RequestMeasure(
        method=method,
        status=response.status,
        seconds=seconds,
        repo=repo if repo and names_its_repository(response.status) else NO_REPO,
        route=kind,
        download=manifest and method == "GET" and response.status == 200,
        upload=manifest and method == "PUT" and response.status == 201,
    )
