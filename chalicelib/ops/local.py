"""Health checks and Prometheus metrics around the core's handler, for the local server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.model.access import ANONYMOUS
from chalicelib.ops.health import HEALTH_PATHS, Health
from chalicelib.ops.measures import NO_REPO, measure
from chalicelib.spec.errors import RegistryError
from chalicelib.spec.http import Request, Response

if TYPE_CHECKING:
    from chalicelib.api.service import Service
    from chalicelib.ops.prometheus import PrometheusMetrics

Handler = Callable[[Request], Response]
logger = logging.getLogger("zotless.ops")


def repository_bytes(service: Service, repo: str) -> int:
    """zot_repo_storage_bytes: manifests plus the blobs they reference, each blob once (zot sums the repo's directory)."""
    manifests, _ = service.index.repository_items(repo)
    sizes = {}
    for item in manifests:
        sizes[str(item["key"])] = int(item.get("size") or 0)
        for blob in [item.get("config") or {}, *(item.get("layers") or [])]:
            if blob.get("digest"):
                sizes[str(blob["digest"])] = int(blob.get("size") or 0)
    return sum(sizes.values())


class Operations:
    """Answers /livez, /readyz, /startupz and the metrics path; measures every other request it passes on."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.health = Health(service)
        settings = service.config.extensions.metrics
        self.metrics_path = settings.prometheus.path if settings.enable else None
        self.metrics: PrometheusMetrics | None = None
        if settings.enable:
            from chalicelib.ops.prometheus import PrometheusMetrics

            self.metrics = PrometheusMetrics()
        self.changed: set[str] = set()  # repositories whose storage bytes are measured at the next scrape
        self.changed_lock = threading.Lock()

    def wrap(self, handler: Handler) -> Handler:
        def handle(request: Request) -> Response:
            if request.path in HEALTH_PATHS and request.method in ("GET", "HEAD"):
                return self.health.answer(request.path)
            if self.metrics is not None and request.path == self.metrics_path and request.method in ("GET", "HEAD"):
                return self.scrape(request)
            started = time.monotonic()
            response = handler(request)
            if self.metrics is not None:
                try:
                    self.observe(request, response, time.monotonic() - started)
                except Exception:  # the request was served: a failed measure (storage bytes read) must not turn it into a 500
                    logger.exception("could not record metrics for %s %s", request.method, request.path)
            return response

        return handle

    def observe(self, request: Request, response: Response, seconds: float) -> None:
        assert self.metrics is not None
        measured = measure(request.method, request.path, response, seconds)
        self.metrics.record(measured)
        if measured.manifest_changed and measured.repo != NO_REPO:  # measured when scraped: a push must not read its whole repository
            with self.changed_lock:
                self.changed.add(measured.repo)

    def measure_storage(self) -> None:
        """Storage bytes of the repositories changed since the last scrape (one Query each); a failed one waits for the next."""
        assert self.metrics is not None
        with self.changed_lock:
            changed, self.changed = self.changed, set()
        for repo in sorted(changed):
            try:
                self.metrics.set_storage(repo, repository_bytes(self.service, repo))
            except Exception:  # the scrape still answers with the other numbers
                logger.exception("could not measure the storage bytes of %s", repo)
                with self.changed_lock:
                    self.changed.add(repo)

    def scrape(self, request: Request) -> Response:
        """Protected as GET /v2/ is: with auth on, only callers who sent valid credentials may read the metrics."""
        assert self.metrics is not None
        auth = self.service.api.auth
        try:
            caller = auth.authenticate(request) if auth is not None else ANONYMOUS
            if not caller.may_enter():
                raise caller.refusal(None, "")
        except RegistryError as error:
            return error.to_response()
        self.measure_storage()
        return self.metrics.scrape()
