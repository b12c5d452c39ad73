"""Scans off the request path: a background thread locally, an SQS queue on AWS.

A push calls `notify(repo, digest)` (the model's manifest listener); the worker scans. After a
database update every stored inventory is re-matched. Failures are logged and never stop the worker:
an image left without a result is caught up on the next start (`CveService.unscanned`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from chalicelib.cve.service import CveService

log = logging.getLogger("zotless.cve")
REMATCH = ("", "rematch")


class ScanWorker:
    """One thread draining a queue of (repo, digest) to scan, or REMATCH after a database update."""

    def __init__(self, cve: CveService) -> None:
        self.cve = cve
        self.jobs: queue.Queue[tuple[str, str] | Callable[[], object] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="cve-scans", daemon=True)

    def start(self, catch_up: bool = True) -> ScanWorker:
        if catch_up:
            self.jobs.put(("", "catch-up"))
        self.thread.start()
        return self

    def notify(self, repo: str, digest: str) -> None:
        self.jobs.put((repo, digest))

    def catch_up(self) -> None:
        """Queue every manifest without a result (pushed while no worker listened)."""
        self.jobs.put(("", "catch-up"))

    def call(self, job: Callable[[], object]) -> None:
        """Any other work in the same thread (a database load), so it never races a scan's writes."""
        self.jobs.put(job)

    def rematch(self) -> None:
        self.jobs.put(REMATCH)

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def idle(self) -> None:
        """Wait until every queued job ran (tests, and the CLI after an update)."""
        self.jobs.join()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                job() if callable(job) else self._do(*job)
            except Exception:  # one bad image or a storage hiccup must not stop scanning
                log.exception("scan job %s failed", job)
            finally:
                self.jobs.task_done()
        self.jobs.task_done()

    def _do(self, repo: str, digest: str) -> None:
        if (repo, digest) == REMATCH:
            log.info("re-matched %d results against the new advisory database", self.cve.rematch_all())
        elif (repo, digest) == ("", "catch-up"):
            for waiting in self.cve.unscanned():
                self.jobs.put(waiting)
        else:
            self.cve.scan(repo, digest)


class QueueNotifier:
    """On AWS: a push sends (repo, digest) to SQS; the queue's function scans (app.py's on_sqs_message)."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url

    def __call__(self, repo: str, digest: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps({"repo": repo, "digest": digest}))


def handle_messages(cve: CveService, bodies: list[str]) -> None:
    """The queue function: each message names one manifest; a failure raises so SQS delivers it again."""
    for body in bodies:
        message = json.loads(body)
        if message.get("rematch"):
            cve.rematch_all()
        else:
            cve.scan(str(message["repo"]), str(message["digest"]))


Listener = Callable[[str, str], None]
