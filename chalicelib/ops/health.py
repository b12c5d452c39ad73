"""zot's health endpoints: /livez (the process answers), /readyz (S3 and DynamoDB answer), /startupz (started).

Readiness makes one cheap call to each store, HeadBucket and GetItem, on clients that do not
retry and time out in seconds, so a load balancer or a probe learns at once that storage is gone.
Anyone may ask, so one answer (a failure too) serves every ask for READY_SECONDS per process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.config import Config as BotoConfig

from chalicelib.spec.http import Headers, Response

if TYPE_CHECKING:
    from chalicelib.api.service import Service

HEALTH_PATHS = ("/livez", "/readyz", "/startupz")
READY_SECONDS = 5.0  # how long one readiness answer is reused: a flood of asks costs two calls per window
PROBE_CONFIG = BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=3)


def _probe_client(client: Any) -> Any:
    """The same endpoint, region and credentials, without retries: a probe must answer quickly either way."""
    import boto3

    meta = client.meta
    session = boto3.Session()
    return session.client(meta.service_model.service_name, region_name=meta.region_name, endpoint_url=meta.endpoint_url,
                          config=meta.config.merge(PROBE_CONFIG))


def _answer(status: int, checks: dict[str, str]) -> Response:
    body = json.dumps({"status": "ok" if status == 200 else "unavailable", "checks": checks}).encode()
    return Response(status, Headers({"Content-Type": "application/json", "Cache-Control": "no-store"}), body)


class Health:
    """The three checks over one service; built once, the probe clients on the first readiness check."""

    def __init__(self, service: Service, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.clock = clock
        self._clients: tuple[Any, Any] | None = None
        self._ready: tuple[float, int, dict[str, str]] | None = None  # (until, status, checks) of the last probe
        self._ready_lock = threading.Lock()  # concurrent asks wait for the one probe under way

    def answer(self, path: str) -> Response:
        checks: dict[str, Callable[[], Response]] = {"/livez": self.livez, "/readyz": self.readyz, "/startupz": self.startupz}
        return checks[path]()

    def livez(self) -> Response:
        return _answer(200, {})

    def startupz(self) -> Response:
        """The service exists (tables checked, index claimed), so start-up is over."""
        return _answer(200, {})

    def readyz(self) -> Response:
        """The last probe's answer while it is fresh, else a new probe's; failures are kept as long as successes."""
        with self._ready_lock:
            if self._ready is None or self.clock() >= self._ready[0]:
                checks = self._probe()
                status = 200 if all(v == "ok" for v in checks.values()) else 503
                self._ready = (self.clock() + READY_SECONDS, status, checks)
            _, status, checks = self._ready
        return _answer(status, checks)

    def _probe(self) -> dict[str, str]:
        """One call to each store: "ok" or why not, by store."""
        s3, dynamodb = self._probe_clients()
        return {
            "s3": _check(lambda: s3.head_bucket(Bucket=self.service.store.bucket)),
            # A GetItem the API role already holds (DescribeTable would need a grant of its own); the item need not exist.
            "dynamodb": _check(lambda: dynamodb.get_item(TableName=self.service.index.table.name, Key=self.service.index.table.key("_meta", "readyz"))),
        }

    def _probe_clients(self) -> tuple[Any, Any]:
        if self._clients is None:
            self._clients = (_probe_client(self.service.store.client), _probe_client(self.service.index.table.client))
        return self._clients


def _check(call: Callable[[], object]) -> str:
    """"ok", or the error's class and code (never its message, which may carry a URL with credentials)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        call()
    except ClientError as error:
        return f"failed: {error.response.get('Error', {}).get('Code', 'ClientError')}"
    except (BotoCoreError, OSError) as error:
        return f"failed: {type(error).__name__}"
    return "ok"
