"""The Lambda entry point: Chalice routes that hand every /v2 request to the core."""

from __future__ import annotations

from functools import cache
from typing import Any

from chalice import Chalice, Rate, Response

from chalicelib.apigateway import request_from_event
from chalicelib.config import load_config
from chalicelib.service import Service, build_service

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
GC_SAFETY_SECONDS = 30  # stop before Lambda's limit; the next run continues from the cursor


class RegistryChalice(Chalice):
    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """A request without Accept accepts anything (RFC 9110); Chalice would answer 400 to binary bodies."""
        headers = event.get("headers") or {}
        if not any(k.lower() == "accept" for k in headers):
            event["headers"] = {**headers, "Accept": "*/*"}
        return super().__call__(event, context)


app = RegistryChalice(app_name="zotless")
app.api.binary_types = ["*/*"]  # layer bytes pass through API Gateway untouched


@cache
def service() -> Service:
    """Built on the first request, then reused by every request this Lambda instance serves."""
    return build_service(load_config())


def serve() -> Response:
    current = app.current_request
    result = service().api.handle(request_from_event(current.to_original_event(), current.raw_body or b""))
    return Response(body=result.body_bytes(), headers=dict(result.headers.items()), status_code=result.status)


@app.route("/v2", methods=["GET"])
def base() -> Response:
    return serve()


@app.route("/v2/{proxy+}", methods=ALL_METHODS, content_types=["*/*"])
def registry() -> Response:
    return serve()


@app.schedule(Rate(max(1, int(load_config().storage.gcInterval // 60)), unit=Rate.MINUTES), name="garbage_collect")
def garbage_collect(event: Any) -> None:
    """storage.gcInterval decides the rate when the app is packaged; each run logs a JSON summary."""
    from chalicelib.gc import GarbageCollector

    remaining = event.context.get_remaining_time_in_millis() / 1000 if event.context else 900
    GarbageCollector(service(), time_budget=max(remaining - GC_SAFETY_SECONDS, 1)).run()
