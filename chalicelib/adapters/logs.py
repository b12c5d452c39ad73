"""Structured logs: one JSON object per line, so CloudWatch Logs Insights can filter and aggregate fields.

Both adapters log one line per request with the same fields (requestId, method, route, path, status,
latencyMs, repository, sourceIp). Only the path is logged, never the query string or a header:
tokens travel in those, and a log line must never hold a credential.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.ops.measures import match_route  # one route table for log lines and metrics

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}
NOISY = ("botocore", "boto3", "urllib3", "s3transfer")
MAX_PATH = 1024

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("zotless_request_id", default=None)


class JsonFormatter(logging.Formatter):
    """Every record as one JSON line; a record's `fields` (passed with extra=) become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        lambda_id = getattr(record, "aws_request_id", None)  # set by the Lambda runtime's log filter
        if lambda_id:
            entry["lambdaRequestId"] = lambda_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str = "info") -> None:
    """JSON lines on the root logger's handlers (the Lambda runtime's own, or stderr when there is none)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    root.setLevel(LEVELS.get(level, logging.INFO))
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def setup_lambda(level: str = "info") -> None:
    """Only inside AWS Lambda: elsewhere (tests, the local server) logging belongs to whoever runs us."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        setup(level)


def new_request_id() -> str:
    """A fresh id for this thread's request; the Lambda emulation reuses it as the event's requestId."""
    value = uuid.uuid4().hex
    _request_id.set(value)
    return value


def current_request_id() -> str | None:
    return _request_id.get()


def describe(path: str) -> tuple[str | None, str | None]:
    """(route template, repository) of a path, or (None, None) for a path no route matches."""
    route, repository = match_route(path)
    return (route.template if route else None), repository


def request_fields(request_id: str, method: str, path: str, status: int, started: float, source_ip: str, **extra: Any) -> dict[str, Any]:
    """The fields of an access line; started is a time.monotonic() reading. Path only: no query, no headers."""
    route, repository = describe(path)
    return {
        "requestId": request_id,
        "method": method,
        "route": route,
        "path": path[:MAX_PATH],
        "status": status,
        "latencyMs": round((time.monotonic() - started) * 1000, 1),
        "repository": repository[:MAX_PATH] if repository else None,
        "sourceIp": source_ip,
        **extra,
    }


def log_invocation(logger: logging.Logger, event: Mapping[str, Any], result: Mapping[str, Any], started: float) -> None:
    """The Chalice app's line for one API Gateway event, keyed by API Gateway's requestId."""
    context = event.get("requestContext") or {}
    method, path, status = str(event.get("httpMethod", "")), str(event.get("path", "")), int(result.get("statusCode", 0))
    source_ip = str((context.get("identity") or {}).get("sourceIp", ""))
    fields = request_fields(str(context.get("requestId", "")), method, path, status, started, source_ip)
    logger.info("%s %s %d", method, path[:MAX_PATH], status, extra={"fields": fields})
