"""`zotless serve --lambda`: the local server hands each request to app.py as API Gateway + Lambda would.

Each HTTP request is read whole (API Gateway buffers too), checked against Lambda's payload limits,
turned into the REST API proxy event the deployed function receives, and passed to the Chalice
app's handler; the proxy result becomes the HTTP response. A body too large for Lambda gets the
413 that the deployed gateway answers, and the function is not invoked; a result too large for
Lambda becomes a 502. So real clients exercise the deployed code path on one machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from chalicelib.adapters import logs
from chalicelib.adapters.apigateway import event_for, fold_headers, response_body
from chalicelib.api.limits import LAMBDA_REQUEST_LIMIT, LAMBDA_RESPONSE_LIMIT, MAX_LAMBDA_BODY, payload_size, response_too_large, too_large
from chalicelib.config.schema import Config
from chalicelib.spec.http import Headers, Request, Response

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_TIMEOUT_MS = 900_000
# Instances the emulation starts at most: enough for a client's parallel blob uploads; Lambda's own default
# account limit is 1,000 concurrent executions.
MAX_INSTANCES = 8
# Per-connection headers that a proxy consumes rather than forwards (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"})

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class EmulatedContext:
    """The parts of Lambda's context object that handlers read."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "zotless-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:zotless-local"

    def get_remaining_time_in_millis(self) -> int:
        return FUNCTION_TIMEOUT_MS


def proxy_event(request: Request, body: bytes) -> dict[str, Any]:
    """The REST API proxy event for a request whose body has been read whole."""
    headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"}
    if body or request.content_length is not None:
        headers["Content-Length"] = str(len(body))  # the gateway buffered the body, so its length is known
    headers.setdefault("X-Forwarded-For", request.remote_addr)
    headers.setdefault("X-Forwarded-Proto", "http")
    event = event_for(request.method, request.path, request.query, headers, body)
    context = event["requestContext"]
    context["identity"]["sourceIp"] = request.remote_addr
    context["requestId"] = logs.current_request_id() or context["requestId"]
    return event


def response_from_result(result: Mapping[str, Any]) -> Response:
    """An HTTP response from a proxy result: headers and cookies folded as a function URL folds them, base64 bodies decoded."""
    headers, cookies = fold_headers(result)
    return Response(int(result["statusCode"]), Headers(headers), response_body(result), cookies)


def proxy_payload_size(document: Mapping[str, Any]) -> int:
    """payload_size of an event or result without re-encoding a base64 body: its text needs no JSON escaping.

    A 4 MiB chunk's body is 5.6 MB of base64; serializing it only to count it cost a copy and a JSON pass per request.
    """
    body = document.get("body")
    if not document.get("isBase64Encoded") or not isinstance(body, str) or not body.isascii():
        return payload_size(document)
    return payload_size({**document, "body": ""}) + len(body)  # the quotes are counted with the empty body


def missing_route() -> Response:
    """API Gateway's own answer to a path that matches no resource; the function is not invoked."""
    body = json.dumps({"message": "Missing Authentication Token"}).encode()
    return Response(403, Headers({"Content-Type": "application/json", "Content-Length": str(len(body))}), body)


class LambdaInvoker:
    """The local server's handler: each invocation runs on a warm instance that serves one event at a time.

    As Lambda does, concurrent requests run on concurrent instances: an idle instance is reused (the most
    recently used first, as Lambda keeps warm ones busy), and a new one is started (`spawn`, a cold start
    of app.py) while fewer than `max_instances` exist. Chalice keeps the current request on its app object,
    so an instance never serves two events at once.
    """

    def __init__(self, handler: LambdaHandler, spawn: Callable[[], LambdaHandler] | None = None, max_instances: int = 1) -> None:
        self._spawn = spawn
        self._max_instances = max_instances if spawn is not None else 1
        self._idle: list[LambdaHandler] = [handler]
        self._started = 1
        self._available = threading.Condition()
        self.routes = getattr(handler, "routes", None)  # the Chalice app's resources, as deployed to API Gateway

    @property
    def instances(self) -> int:
        """Instances started so far (cold starts)."""
        return self._started

    def __call__(self, request: Request) -> Response:
        declared = request.content_length
        if declared is not None and declared > MAX_LAMBDA_BODY:
            return too_large()  # answered before the body is read, like the gateway
        body = request.body.read(MAX_LAMBDA_BODY + 1)
        if len(body) > MAX_LAMBDA_BODY:
            return too_large()
        event = proxy_event(request, body)
        if self.routes is not None and event["resource"] not in self.routes:
            return missing_route()
        if proxy_payload_size(event) > LAMBDA_REQUEST_LIMIT:
            return too_large()
        with self._instance() as handler:
            result = handler(event, EmulatedContext())
        if proxy_payload_size(result) > LAMBDA_RESPONSE_LIMIT:
            return response_too_large()
        return response_from_result(result)

    @contextmanager
    def _instance(self) -> Iterator[LambdaHandler]:
        """An idle instance, a new one while under the limit, or the next to finish."""
        with self._available:
            while not self._idle and self._started >= self._max_instances:
                self._available.wait()
            handler = self._idle.pop() if self._idle else None
            if handler is None:
                self._started += 1
        if handler is None:
            handler = self._start_instance()
        try:
            yield handler
        finally:
            with self._available:
                self._idle.append(handler)
                self._available.notify()

    def _start_instance(self) -> LambdaHandler:
        assert self._spawn is not None
        try:
            return self._spawn()
        except BaseException:
            with self._available:
                self._started -= 1
                self._available.notify()
            raise


def load_app(config_path: str | None = None) -> ModuleType:
    """Import the project's app.py (the deployed entry point itself), configured from config_path if given."""
    if config_path is not None:
        os.environ["ZOTLESS_CONFIG"] = str(Path(config_path).resolve())
    if "app" in sys.modules:
        return sys.modules["app"]
    module = _exec_app("app")
    sys.modules["app"] = module
    return module


def _exec_app(name: str) -> ModuleType:
    """A fresh copy of app.py: its own Chalice app and its own service, as a new Lambda instance has."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {ROOT / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lambda_handler(config_path: str | None, config: Config, max_instances: int = MAX_INSTANCES) -> LambdaInvoker:
    """Load app.py, build its service now and check it sees the same config as `serve` did."""
    app_module = load_app(config_path)
    seen = app_module.service().config
    ignored = {"http": {"address", "port"}}  # --host/--port are the local server's, not the function's
    if seen.model_dump(exclude=ignored) != config.model_dump(exclude=ignored):
        raise RuntimeError("app.py built its service from a different config than `zotless serve` loaded")
    return LambdaInvoker(app_module.app, lambda: _exec_app(f"app_instance_{uuid.uuid4().hex[:8]}").app, max_instances)
