"""Running the registry on one machine: the emulator when no endpoint is configured, then the service."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from chalicelib.adapters import logs
from chalicelib.adapters.emulator import start_moto
from chalicelib.api.service import Service, build_service
from chalicelib.config.schema import Config
from chalicelib.storage.aws import claim_index, ensure_resources, make_clients

CVE_CATCH_UP_SECONDS = 60.0
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB")
DEFAULT_DATA = ".zotless"  # the embedded emulator's state, in the directory `zotless serve` runs in


def endpoint_configured(config: Config) -> bool:
    storage = config.storage
    return bool(storage.storageDriver.regionendpoint or storage.cacheDriver.endpoint or any(os.environ.get(v) for v in ENDPOINT_VARIABLES))


def configure_logging(config: Config) -> None:
    """JSON lines on stderr, the same shape as the deployed function's."""
    logs.setup(config.log.level)


@contextmanager
def local_service(
    config: Config, emulator: bool | None = None, on_emulator_exit: Callable[[int], None] | None = None, data: str | None = None
) -> Iterator[tuple[Service, str | None]]:
    """The service, plus the emulator's endpoint when one was started (None = use what is configured).

    on_emulator_exit(returncode) is called if the emulator dies while the service is in use: every
    storage call would fail from then on, so the caller should stop serving. `data` is the directory
    the emulator keeps its state in (None: in memory, lost when it stops).
    """
    start = not endpoint_configured(config) if emulator is None else emulator
    if not start:
        clients = make_clients(config)
        ensure_resources(config, clients)
        claim_index(config, clients)
        yield build_service(config, clients), None
        return
    with start_moto(data=data) as moto:
        os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
        # The emulator takes any key: a real one from the environment would only end up in its presigned URLs and logs.
        for variable in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(variable, None)
        os.environ.update(AWS_ACCESS_KEY_ID="zotless", AWS_SECRET_ACCESS_KEY="zotless")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        clients = make_clients(config)
        ensure_resources(config, clients)
        claim_index(config, clients)
        if on_emulator_exit is not None:
            moto.watch(on_emulator_exit)
        yield build_service(config, clients), moto.endpoint


def start_gc_schedule(service: Service) -> list[threading.Thread]:
    """The local server runs GC (and scrub, when enabled) on their intervals, as the deployed schedules do."""
    from chalicelib.lifecycle.gc import collect_everywhere
    from chalicelib.lifecycle.scrub import scrub_everywhere

    storage, scrub = service.config.storage, service.config.extensions.scrub
    jobs = [("gc", storage.gcInterval, collect_everywhere)] if storage.gc and not storage.readOnly else []
    jobs += [("scrub", scrub.interval, scrub_everywhere)] if scrub.enable else []
    return [_every(name, interval, lambda job=job: job(service)) for name, interval, job in jobs] + start_cve_scans(service)


def start_cve_scans(service: Service) -> list[threading.Thread]:
    """With extensions.search.cve: a worker scans each pushed manifest; a URL source is reloaded on its interval."""
    from chalicelib.cve.service import CveService
    from chalicelib.cve.sources import is_remote
    from chalicelib.cve.worker import ScanWorker

    search = service.config.extensions.search
    if not search.enable or search.cve is None:
        return []
    worker = ScanWorker(CveService(service.api.registry, service.index, service.store)).start()
    for location in service.locations:
        location.registry.listeners.append(worker.notify)
    threads = [worker.thread, _every("cve-catch-up", CVE_CATCH_UP_SECONDS, worker.catch_up)]  # pushes through --lambda's own service
    source = search.cve.source

    def load() -> None:
        worker.cve.update_database(str(source), service.store.client)
        worker.cve.rematch_all()

    if source and worker.cve.db.current() is None:
        worker.call(load)  # a configured source serves from the first start, a local path included
    if source and is_remote(source):
        threads.append(_every("cve-db", search.cve.updateInterval, lambda: worker.call(load)))
    return threads


def _every(name: str, interval: float, job: Callable[[], object]) -> threading.Thread:
    def loop() -> None:
        while not stopping.wait(interval):
            try:
                job()
            except Exception:  # a failed run must not stop the schedule; the next one retries
                logging.getLogger(f"zotless.{name}").exception("scheduled %s failed", name)

    stopping = threading.Event()
    thread = threading.Thread(target=loop, name=f"{name}-schedule", daemon=True)
    thread.start()
    return thread
