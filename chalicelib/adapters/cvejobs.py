"""CVE scanning on Lambda: the push hook that queues a scan, the queue's handler, the database schedule.

A push sends (repo, digest) to SQS when ZOTLESS_CVE_QUEUE_URL is set (the queue's function scans it,
and SQS redelivers on failure); the scheduled function reloads a URL source and re-matches stored
results, and also queues anything pushed while no queue listened.
"""

from __future__ import annotations

import os

from chalicelib.api.service import Service
from chalicelib.cve.service import CveService
from chalicelib.cve.sources import is_remote
from chalicelib.cve.worker import QueueNotifier, handle_messages

QUEUE_URL_VARIABLE = "ZOTLESS_CVE_QUEUE_URL"


def scans_enabled(service: Service) -> bool:
    search = service.config.extensions.search
    return search.enable and search.cve is not None


_built: dict[int, CveService] = {}


def cve_service(service: Service) -> CveService:
    """One per service for the instance's life: its advisory cache outlives each message."""
    if id(service) not in _built:
        _built[id(service)] = CveService(service.api.registry, service.index, service.store)
    return _built[id(service)]


def with_scan_queue(service: Service) -> Service:
    """Every stored manifest is queued for a scan, when scanning is on and a queue URL is configured."""
    queue_url = os.environ.get(QUEUE_URL_VARIABLE)
    if queue_url and scans_enabled(service):
        import boto3

        notifier = QueueNotifier(boto3.client("sqs", region_name=service.config.storage.storageDriver.region), queue_url)
        for location in service.locations:
            location.registry.listeners.append(notifier)
    return service


def handle_queue(service: Service, bodies: list[str]) -> None:
    handle_messages(cve_service(service), bodies)


def scheduled_update(service: Service) -> dict[str, object]:
    """Reload a URL source, re-match stored results, scan what was never scanned; a summary for the log."""
    if not scans_enabled(service):
        return {"skipped": "extensions.search.cve is not configured"}
    cve, settings = cve_service(service), service.config.extensions.search.cve
    summary: dict[str, object] = {}
    if settings and settings.source and is_remote(settings.source):
        summary["database"] = cve.update_database(settings.source, service.store.client).status()
    summary["rematched"] = cve.rematch_all()
    waiting = cve.unscanned()
    for repo, digest in waiting:
        cve.scan(repo, digest)
    summary["scanned"] = len(waiting)
    return summary
