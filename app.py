"""The Lambda entry point: Chalice routes that hand every /v2 request to the core.

Importing it stays cheap for Lambda's cold start: the core and boto3 load with the first request
(bench/bench_cold_start.py measures both), or during INIT where INIT runs ahead of traffic.
"""

from __future__ import annotations

import json
import logging
import os
import time
from functools import cache
from typing import TYPE_CHECKING, Any

from chalice import Chalice, Rate, Response

from chalicelib.adapters import logs
from chalicelib.adapters.apigateway import is_function_url_event, request_from_event, rest_event_from_url_event, url_result, url_too_large
from chalicelib.adapters.eventbody import event_body
from chalicelib.api.limits import CHUNK_MAX_LENGTH
from chalicelib.config.durations import gc_interval_seconds, interval_seconds

if TYPE_CHECKING:
    from chalicelib.api.service import Service
    from chalicelib.ops.health import Health
    from chalicelib.spec.http import Request as CoreRequest
    from chalicelib.spec.http import Response as CoreResponse

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
GC_SAFETY_SECONDS = 30  # stop before Lambda's limit; the next run continues from the cursor


class RegistryChalice(Chalice):
    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """A request without Accept accepts anything (RFC 9110); Chalice would answer 400 to binary bodies.

        A function URL's event (payload 2.0) is served as the REST API event it stands for, then answered in 2.0.
        """
        started = time.monotonic()
        from_url = is_function_url_event(event)
        refused = url_too_large(event) if from_url else None
        if from_url:
            event = rest_event_from_url_event(event, self.routes)  # app.py's own routes (/livez...) stay its own
        headers = event.get("headers") or {}
        if not any(k.lower() == "accept" for k in headers):
            event["headers"] = {**headers, "Accept": "*/*"}
        result = refused or super().__call__(event, context)
        logs.log_invocation(access_log, event, result, started)
        return url_result(result) if from_url else result


# configure_logs=False: Chalice would take over the "zotless" logger (stdout, ERROR only, no propagation).
app = RegistryChalice(app_name="zotless", configure_logs=False)
app.api.binary_types = ["*/*"]  # layer bytes pass through API Gateway untouched
access_log = logging.getLogger("zotless.app")


@cache
def service() -> Service:
    """Built on the first request, then reused by every request this Lambda instance serves.

    Behind API Gateway a request carries at most ~4.5 MiB, so upload responses advertise the chunk limit.
    """
    from chalicelib.api.service import build_service
    from chalicelib.config.schema import load_config

    config = load_config()
    logs.setup_lambda(config.log.level)
    from chalicelib.adapters.cvejobs import with_scan_queue

    return with_scan_queue(build_service(config, chunk_max_length=CHUNK_MAX_LENGTH, one_request_at_a_time=True))


if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") in ("provisioned-concurrency", "snap-start"):
    import chalicelib.api.service  # noqa: F401  INIT runs ahead of traffic there: load the core now, not on a request


def serve() -> Response:
    current, started, core = app.current_request, time.monotonic(), service()
    event = current.to_original_event()
    request = request_from_event(event, event_body(event))  # not Chalice's raw_body: see eventbody.py
    result = core.api.handle(request)
    if core.config.extensions.metrics.enable:
        emit_measure(request, result, started)
    return respond(result)


def emit_measure(request: CoreRequest, result: CoreResponse, started: float) -> None:
    """An EMF line (no API call); a request already served never becomes a 500 for its statistic."""
    from chalicelib.ops.emf import emit
    from chalicelib.ops.measures import measure

    try:
        emit(measure(request.method, request.path, result, time.monotonic() - started))
    except Exception:  # noqa: BLE001 - the request was served; only its statistic is lost
        access_log.exception("could not emit the request's metrics")


def respond(result: CoreResponse) -> Response:
    """The core's response as Chalice's; several cookies go out as multiValueHeaders."""
    headers: dict[str, Any] = dict(result.headers.items())
    if result.cookies:
        headers["Set-Cookie"] = list(result.cookies)
    return Response(body=result.body_bytes(), headers=headers, status_code=result.status)


@cache
def health() -> Health:
    from chalicelib.ops.health import Health

    return Health(service())


def check(path: str) -> Response:
    return respond(health().answer(path))


@app.route("/livez", methods=["GET"], content_types=["*/*"])
def livez() -> Response:
    """zot's health endpoints (chalicelib/ops/health.py); unauthenticated, as zot's are."""
    return check("/livez")


@app.route("/readyz", methods=["GET"], content_types=["*/*"])
def readyz() -> Response:
    """503 when S3 or DynamoDB does not answer."""
    return check("/readyz")


@app.route("/startupz", methods=["GET"], content_types=["*/*"])
def startupz() -> Response:
    return check("/startupz")


@app.route("/v2", methods=ALL_METHODS, content_types=["*/*"])
def base() -> Response:
    return serve()


@app.route("/v2/{proxy+}", methods=ALL_METHODS, content_types=["*/*"])
def registry() -> Response:
    return serve()


@app.route("/", methods=ALL_METHODS, content_types=["*/*"])
def stage_base() -> Response:
    """The bare execute-api URL: its stage is "v2", so a client's /v2/ arrives as the stage's root."""
    return serve()


@app.route("/{proxy+}", methods=ALL_METHODS, content_types=["*/*"])
def stage_registry() -> Response:
    """/v2/<name>/... on the bare execute-api URL (stage "v2"); the event adapter puts /v2 back."""
    return serve()


@app.route("/auth/token", methods=["GET"], content_types=["*/*"])
def token() -> Response:
    """Docker's token endpoint (the Bearer challenge's realm), when http.auth.bearer is configured."""
    return serve()


@app.route("/zot/auth/logout", methods=["POST"], content_types=["*/*"])
def logout() -> Response:
    """zot's UI logout: clears its session cookie (chalicelib/auth/sessions.py)."""
    return serve()


@app.schedule(Rate(max(1, int(gc_interval_seconds() // 60)), unit=Rate.MINUTES), name="garbage_collect")
def garbage_collect(event: Any) -> None:
    """storage.gcInterval decides the rate when the app is packaged; each run logs a JSON summary."""
    from chalicelib.lifecycle.gc import collect_everywhere

    remaining = event.context.get_remaining_time_in_millis() / 1000 if event.context else 900
    collect_everywhere(service(), time_budget=max(remaining - GC_SAFETY_SECONDS, 1))


CVE_INTERVAL = interval_seconds("ZOTLESS_CVE_UPDATE_INTERVAL", "extensions.search.cve", "updateInterval")


@app.on_sqs_message(queue=os.environ.get("ZOTLESS_CVE_QUEUE", "zotless-cve-scans"), batch_size=1, name="cve_scan")
def cve_scan(event: Any) -> None:
    """One pushed manifest per message; an exception makes SQS deliver it again."""
    from chalicelib.adapters.cvejobs import handle_queue

    handle_queue(service(), [record.body for record in event])


@app.schedule(Rate(max(1, int(CVE_INTERVAL // 60)), unit=Rate.MINUTES), name="cve_db_update")
def cve_db_update(event: Any) -> None:
    """extensions.search.cve.updateInterval: reload a URL source, re-match results, scan what was missed."""
    from chalicelib.adapters.cvejobs import scheduled_update

    access_log.info(json.dumps({"cve_db_update": scheduled_update(service())}, default=str))
