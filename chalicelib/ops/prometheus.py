"""The local server's Prometheus metrics, named as zot names them (pkg/extensions/monitoring).

Kept from zot: zot_http_requests_total{method,code}, zot_http_method_latency_seconds{method}
(histogram, zot's buckets), zot_http_repo_latency_seconds{repo} (summary), zot_repo_uploads_total,
zot_repo_downloads_total and zot_repo_storage_bytes, each {repo}. Added:
zotless_http_route_latency_seconds{method,route}. prometheus-client is a dev/CLI dependency only.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

from chalicelib.ops.measures import RequestMeasure
from chalicelib.spec.http import Headers, Response

ZOT_BUCKETS = (0.05, 0.5, 1, 5, 30, 60, 600)  # zot's GetDefaultBuckets
ROUTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class PrometheusMetrics:
    """One registry per server, so tests and several servers in a process never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("zot_http_requests", "Total number of http request in zot", ["method", "code"], registry=r)
        self.method_latency = Histogram("zot_http_method_latency_seconds", "Latency of serving HTTP requests", ["method"], buckets=ZOT_BUCKETS, registry=r)
        self.repo_latency = Summary("zot_http_repo_latency_seconds", "Latency of serving HTTP requests", ["repo"], registry=r)
        self.route_latency = Histogram("zotless_http_route_latency_seconds", "Latency of serving HTTP requests, by kind of request",
                                       ["method", "route"], buckets=ROUTE_BUCKETS, registry=r)
        self.uploads = Counter("zot_repo_uploads", "Total number times an image was uploaded", ["repo"], registry=r)
        self.downloads = Counter("zot_repo_downloads", "Total number times an image was downloaded", ["repo"], registry=r)
        self.storage = Gauge("zot_repo_storage_bytes", "Storage used per zot repo", ["repo"], registry=r)

    def record(self, measure: RequestMeasure) -> None:
        self.requests.labels(measure.method, str(measure.status)).inc()
        self.method_latency.labels(measure.method).observe(measure.seconds)
        self.repo_latency.labels(measure.repo).observe(measure.seconds)
        self.route_latency.labels(measure.method, measure.route).observe(measure.seconds)
        if measure.upload:
            self.uploads.labels(measure.repo).inc()
        if measure.download:
            self.downloads.labels(measure.repo).inc()

    def set_storage(self, repo: str, size: int) -> None:
        self.storage.labels(repo).set(size)

    def scrape(self) -> Response:
        return Response(200, Headers({"Content-Type": CONTENT_TYPE_LATEST}), generate_latest(self.registry))
