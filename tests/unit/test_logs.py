"""Structured logs: one JSON object per line with the request's fields, and never a credential."""

from __future__ import annotations

import http.client
import io
import json
import logging
import sys
import time

import pytest

from chalicelib.adapters import logs
from chalicelib.adapters.apigateway import event_for
from chalicelib.adapters.localserver import start_in_thread
from chalicelib.spec.http import Headers, Request, Response

SECRET = "s3cr3t-token"
FIELDS = {"requestId", "method", "route", "path", "status", "latencyMs", "repository", "sourceIp"}


def lines(stream: io.StringIO, logger: str) -> list[dict]:
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line must be JSON
    return [entry for entry in parsed if entry["logger"] == logger]


@pytest.mark.parametrize(
    ("path", "route", "repository"),
    [
        ("/v2/", "/v2/", None),
        ("/v2", "/v2/", None),
        ("/v2/_catalog", "/v2/_catalog", None),
        ("/v2/a/b/c/tags/list", "/v2/{name}/tags/list", "a/b/c"),
        ("/v2/team/app/manifests/v1", "/v2/{name}/manifests/{reference}", "team/app"),
        ("/v2/team/blobs/app/blobs/uploads/", "/v2/{name}/blobs/uploads/", "team/blobs/app"),
        ("/v2/team/app/blobs/uploads/abc", "/v2/{name}/blobs/uploads/{session}", "team/app"),
        ("/v2/team/app/blobs/sha256:00", "/v2/{name}/blobs/{digest}", "team/app"),
        ("/v2/team/app/referrers/sha256:00", "/v2/{name}/referrers/{digest}", "team/app"),
        ("/elsewhere", None, None),
    ],
)
def test_describe(path: str, route: str | None, repository: str | None) -> None:
    assert logs.describe(path) == (route, repository)


def test_formatter_emits_fields_and_exceptions() -> None:
    record = logging.LogRecord("zotless.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    record.fields = {"status": 500, "repository": "a/b"}
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["message"] == "failed here" and entry["level"] == "ERROR" and entry["logger"] == "zotless.x"
    assert entry["status"] == 500 and entry["repository"] == "a/b"
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("Z")


def test_request_fields_never_take_a_query() -> None:
    fields = logs.request_fields("id1", "GET", "/v2/a/tags/list", 200, time.monotonic(), "1.2.3.4")
    assert set(fields) == FIELDS
    assert fields["route"] == "/v2/{name}/tags/list" and fields["repository"] == "a" and fields["latencyMs"] >= 0


def test_chalice_app_logs_one_json_line_per_event(service, monkeypatch: pytest.MonkeyPatch, captured: io.StringIO) -> None:
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    event = event_for("GET", "/v2/team/app/tags/list", {"token": [SECRET], "n": ["1"]}, {"Authorization": f"Bearer {SECRET}"})
    result = app_module.app(event, None)
    (entry,) = lines(captured, "zotless.app")
    assert set(entry) >= FIELDS
    assert entry["requestId"] == event["requestContext"]["requestId"]
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/v2/team/app/tags/list", result["statusCode"])
    assert entry["route"] == "/v2/{name}/tags/list" and entry["repository"] == "team/app" and entry["sourceIp"] == "127.0.0.1"
    assert SECRET not in captured.getvalue()


def test_local_server_logs_one_json_line_per_request(captured: io.StringIO) -> None:
    def app(request: Request) -> Response:
        request.body.read()
        return Response(201, Headers({"Content-Length": "0"}))

    server, thread = start_in_thread(app)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("PUT", f"/v2/org/app/manifests/v1?token={SECRET}", body=b"{}", headers={"Authorization": f"Basic {SECRET}"})
        conn.getresponse().read()
        conn.request("GET", "/v2/")  # answered on the same thread: the first line has been written
        conn.getresponse().read()
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    first = lines(captured, "zotless.localserver")[0]
    assert FIELDS | {"bytes"} <= set(first)
    assert (first["method"], first["path"], first["status"], first["repository"]) == ("PUT", "/v2/org/app/manifests/v1", 201, "org/app")
    assert len(first["requestId"]) == 32
    assert SECRET not in captured.getvalue()


def test_setup_puts_json_on_the_root_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler(stream)])
    monkeypatch.setattr(root, "level", root.level)
    logs.setup("warn")
    assert isinstance(root.handlers[0].formatter, logs.JsonFormatter) and root.level == logging.WARNING
    logging.getLogger("zotless.test").warning("hello %d", 1)
    assert json.loads(stream.getvalue())["message"] == "hello 1"


def test_setup_lambda_only_inside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(logs, "setup", calls.append)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    logs.setup_lambda("info")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "zotless-api")
    logs.setup_lambda("debug")
    assert calls == ["debug"]
