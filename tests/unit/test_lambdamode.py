"""The Lambda emulation: payload limits enforced before invoking, events built as API Gateway builds them."""

from __future__ import annotations

import base64
import io
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.adapters import logs
from chalicelib.adapters.lambdamode import LambdaInvoker, lambda_handler, load_app, proxy_event, response_from_result
from chalicelib.api.limits import CHUNK_MAX_LENGTH, LAMBDA_RESPONSE_LIMIT, MAX_LAMBDA_BODY, TOO_LARGE_BODY
from chalicelib.config.schema import Config
from chalicelib.spec.http import Headers, Request
from tests.conftest import OCI_MANIFEST, sha256


class Recorder:
    """A stand-in for app.app: records events and answers with a canned result."""

    def __init__(self, result: dict[str, Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.result = result or {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.aws_request_id and context.get_remaining_time_in_millis() > 0
        self.events.append(event)
        return self.result


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, query: dict | None = None) -> Request:
    return Request(method, path, query or {}, Headers(headers or {}), io.BytesIO(body), "10.1.2.3")


def test_declared_oversize_body_is_refused_unread_and_uninvoked() -> None:
    handler = Recorder()
    oversize = request("PATCH", "/v2/a/blobs/uploads/x", b"y" * 100, {"Content-Length": str(50 << 20)})
    response = LambdaInvoker(handler)(oversize)
    assert response.status == 413
    assert response.body_bytes() == TOO_LARGE_BODY.encode()
    assert handler.events == [] and oversize.body.tell() == 0


def test_streamed_oversize_body_is_refused_without_invoking() -> None:
    handler = Recorder()
    response = LambdaInvoker(handler)(request("PATCH", "/v2/a/blobs/uploads/x", b"y" * (MAX_LAMBDA_BODY + 1), {"Transfer-Encoding": "chunked"}))
    assert response.status == 413 and handler.events == []


def test_body_that_fits_but_event_that_does_not_is_refused() -> None:
    handler = Recorder()
    huge_headers = {"Content-Length": str(MAX_LAMBDA_BODY), "X-Padding": "p" * (100 << 10)}
    response = LambdaInvoker(handler)(request("PUT", "/v2/a/blobs/uploads/x", b"y" * MAX_LAMBDA_BODY, huge_headers))
    assert response.status == 413 and handler.events == []


def test_largest_body_is_delivered_as_api_gateway_does() -> None:
    handler = Recorder()
    body = bytes(range(256)) * (MAX_LAMBDA_BODY // 256)
    headers = {"Transfer-Encoding": "chunked", "Expect": "100-continue", "Connection": "keep-alive", "Authorization": "Bearer t"}
    logs.new_request_id()
    response = LambdaInvoker(handler)(request("PATCH", "/v2/org/app/blobs/uploads/u1", body, headers, {"digest": ["sha256:x"]}))
    assert response.status == 200
    (event,) = handler.events
    assert base64.b64decode(event["body"]) == body and event["isBase64Encoded"] is True
    sent = {k.lower(): v for k, v in event["headers"].items()}
    assert sent["content-length"] == str(len(body))
    assert not {"transfer-encoding", "expect", "connection"} & set(sent)
    assert sent["authorization"] == "Bearer t"  # forwarded to the function, as API Gateway does
    assert event["multiValueQueryStringParameters"] == {"digest": ["sha256:x"]}
    assert event["pathParameters"] == {"proxy": "org/app/blobs/uploads/u1"}
    assert event["requestContext"]["identity"]["sourceIp"] == "10.1.2.3"
    assert event["requestContext"]["requestId"] == logs.current_request_id()


def test_largest_advertised_chunk_fits_with_as_many_headers_as_api_gateway_passes() -> None:
    handler = Recorder()
    headers = {"Authorization": "Bearer " + "t" * 9000, "Content-Range": f"0-{CHUNK_MAX_LENGTH - 1}", "Content-Type": "application/octet-stream"}
    response = LambdaInvoker(handler)(request("PATCH", "/v2/org/app/blobs/uploads/u1", b"y" * CHUNK_MAX_LENGTH, headers))
    assert response.status == 200 and len(handler.events) == 1
    assert CHUNK_MAX_LENGTH > 4 << 20 and 2 * CHUNK_MAX_LENGTH >= 5 << 20  # two chunks make an S3 part


class Gate(Recorder):
    """An instance that holds its invocation until released, so a test can see others run beside it."""

    def __init__(self, entered: threading.Semaphore, release: threading.Event) -> None:
        super().__init__()
        self.entered, self.release = entered, release

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.entered.release()
        assert self.release.wait(10)
        return super().__call__(event, context)


def test_concurrent_invocations_run_on_concurrent_instances_up_to_the_limit() -> None:
    entered, release = threading.Semaphore(0), threading.Event()
    started: list[Gate] = []

    def spawn() -> Gate:
        started.append(Gate(entered, release))
        return started[-1]

    invoker = LambdaInvoker(spawn(), spawn, max_instances=3)
    threads = [threading.Thread(target=invoker, args=(request("GET", "/v2/"),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert all(entered.acquire(timeout=10) for _ in range(3))  # three run at once
    assert not entered.acquire(timeout=0.3) and invoker.instances == 3  # the fourth waits for an idle instance
    release.set()
    for thread in threads:
        thread.join(10)
    assert sum(len(gate.events) for gate in started) == 4 and len(started) == 3


def test_an_idle_instance_is_reused_before_a_new_one_starts() -> None:
    spawned: list[Recorder] = []
    invoker = LambdaInvoker(Recorder(), lambda: spawned.append(Recorder()) or spawned[-1], max_instances=8)
    for _ in range(5):
        assert invoker(request("GET", "/v2/")).status == 200
    assert spawned == [] and invoker.instances == 1


def test_oversize_result_is_a_502() -> None:
    handler = Recorder({"statusCode": 200, "headers": {}, "body": "x" * LAMBDA_RESPONSE_LIMIT})
    response = LambdaInvoker(handler)(request("GET", "/v2/a/blobs/sha256:00"))
    assert response.status == 502 and len(handler.events) == 1
    assert json.loads(response.body_bytes())["errors"][0]["code"] == "UNKNOWN"


def test_result_headers_and_base64_body_are_decoded() -> None:
    result = {
        "statusCode": 206,
        "headers": {"Content-Type": "application/octet-stream", "Content-Length": "3"},
        "multiValueHeaders": {"Link": ["<a>", "<b>"]},
        "body": base64.b64encode(b"\x00\xff\x10").decode(),
        "isBase64Encoded": True,
    }
    response = response_from_result(result)
    assert response.status == 206 and response.body == b"\x00\xff\x10"
    assert response.headers["Link"] == "<a>, <b>" and response.headers["content-length"] == "3"


def test_bodiless_request_gets_no_content_length() -> None:
    event = proxy_event(request("GET", "/v2/"), b"")
    assert event["body"] is None and "Content-Length" not in (event["headers"] or {})
    assert event["resource"] == "/v2"


@pytest.fixture
def lambda_app(aws: None, config: Config, monkeypatch: pytest.MonkeyPatch):
    """app.py's handler over the core on moto, built as app.service() builds it (with the chunk limit)."""
    from chalicelib.api.service import build_service
    from chalicelib.storage.aws import ensure_resources, make_clients

    app_module = load_app()
    clients = make_clients(config)
    ensure_resources(config, clients)
    monkeypatch.setattr(app_module, "service", lambda: build_service(config, clients, chunk_max_length=CHUNK_MAX_LENGTH))
    return LambdaInvoker(app_module.app)


def test_chunked_push_and_heads_through_the_chalice_app(lambda_app: LambdaInvoker) -> None:
    repo, chunk = "org/app", 1 << 20
    blob = bytes(range(256)) * (3 * chunk // 256 + 7)
    started = lambda_app(request("POST", f"/v2/{repo}/blobs/uploads/"))
    assert started.status == 202 and started.headers["OCI-Chunk-Max-Length"] == str(CHUNK_MAX_LENGTH)
    location = started.headers["Location"]
    for offset in range(0, len(blob), chunk):
        part = blob[offset : offset + chunk]
        headers = {"Content-Range": f"{offset}-{offset + len(part) - 1}", "Content-Length": str(len(part))}
        patched = lambda_app(request("PATCH", location, part, headers))
        assert patched.status == 202, patched.body
        assert patched.headers["Range"] == f"0-{offset + len(part) - 1}"
        location = patched.headers["Location"]
    done = lambda_app(request("PUT", location, query={"digest": [sha256(blob)]}))
    assert done.status == 201 and done.headers["Docker-Content-Digest"] == sha256(blob)

    head = lambda_app(request("HEAD", f"/v2/{repo}/blobs/{sha256(blob)}"))
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(len(blob))

    config = b"{}"
    lambda_app(request("POST", f"/v2/{repo}/blobs/uploads/", config, {"Content-Length": "2"}, {"digest": [sha256(config)]}))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha256(config), "size": 2}, "layers": []}).encode()
    put = lambda_app(request("PUT", f"/v2/{repo}/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}))
    assert put.status == 201, put.body
    head_manifest = lambda_app(request("HEAD", f"/v2/{repo}/manifests/v1"))
    assert head_manifest.headers["Content-Length"] == str(len(manifest)) and head_manifest.body == b""


def test_handler_refuses_a_config_other_than_the_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    app_module = load_app()
    served = Config.model_validate({"storage": {"dedupe": False}, "http": {"port": 1234}})
    monkeypatch.setattr(app_module, "service", lambda: SimpleNamespace(config=served))
    assert isinstance(lambda_handler(None, served.model_copy(update={"http": served.http.model_copy(update={"port": 0})})), LambdaInvoker)
    with pytest.raises(RuntimeError, match="different config"):
        lambda_handler(None, Config())


def test_fixed_routes_get_their_own_resource() -> None:
    event = proxy_event(request("GET", "/auth/token", query={"scope": ["repository:a:pull"]}), b"")
    assert event["resource"] == "/auth/token" and event["pathParameters"] is None
    assert event["requestContext"]["resourcePath"] == "/auth/token"


def test_paths_outside_the_api_are_answered_by_the_gateway() -> None:
    handler = Recorder()
    handler.routes = {"/v2": {}, "/v2/{proxy+}": {}, "/auth/token": {}}  # type: ignore[attr-defined]
    response = LambdaInvoker(handler)(request("GET", "/admin"))
    assert response.status == 403 and json.loads(response.body_bytes()) == {"message": "Missing Authentication Token"}
    assert handler.events == []
    assert LambdaInvoker(handler)(request("GET", "/auth/token")).status == 200


def test_payload_size_of_a_base64_event_is_counted_as_its_json() -> None:
    from chalicelib.adapters.lambdamode import proxy_payload_size
    from chalicelib.api.limits import payload_size

    body = bytes(range(256)) * 64 + b"\xff\xfe/+="
    event = proxy_event(request("PATCH", "/v2/a/b/blobs/uploads/u", body, {"Content-Length": str(len(body)), "X-Q": 'a"b\\c'}), body)
    assert proxy_payload_size(event) == payload_size(event)
    text = {"statusCode": 200, "headers": {}, "body": 'plain "text" \\ é', "isBase64Encoded": False}
    assert proxy_payload_size(text) == payload_size(text)


def test_a_chunk_is_not_serialized_again_to_measure_its_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting a 4 MiB chunk's event as JSON cost a copy and a JSON pass of 5.6 MB per PATCH."""
    import chalicelib.adapters.lambdamode as lambdamode

    measured: list[int] = []
    real = lambdamode.payload_size
    monkeypatch.setattr(lambdamode, "payload_size", lambda document: measured.append(len(document.get("body") or "")) or real(document))
    handler = Recorder()
    body = b"z" * (1 << 20)
    response = LambdaInvoker(handler)(request("PATCH", "/v2/a/blobs/uploads/x", body, {"Content-Length": str(len(body))}))
    assert response.status == 200 and base64.b64decode(handler.events[0]["body"]) == body
    assert measured and max(measured) < 1024


def test_the_local_emulation_and_the_function_url_fold_a_result_alike() -> None:
    """One folding for both: multi-value headers joined, and every Set-Cookie (single- or multi-valued) sent on its own."""
    from chalicelib.adapters.apigateway import url_result

    result = {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain", "Set-Cookie": "a=1"},
        "multiValueHeaders": {"Set-Cookie": ["b=2; Path=/", "c=3"], "Vary": ["Accept", "Cookie"]},
        "body": "ok",
        "isBase64Encoded": False,
    }
    local, url = response_from_result(result), url_result(result)
    assert sorted(local.cookies) == sorted(url["cookies"]) == ["a=1", "b=2; Path=/", "c=3"]
    assert dict(local.headers.items()) == url["headers"] == {"Content-Type": "text/plain", "Vary": "Accept, Cookie"}


@pytest.mark.parametrize("size", [1000, 6 << 20])
def test_a_body_that_is_not_base64_is_the_clients_400_not_a_500(lambda_app: LambdaInvoker, size: int) -> None:
    """API Gateway never sends one, but whoever invokes the function directly might."""
    from chalicelib.adapters.apigateway import event_for, response_body
    from chalicelib.adapters.lambdamode import EmulatedContext

    started = lambda_app(request("POST", "/v2/org/app/blobs/uploads/"))
    event = event_for("PATCH", started.headers["Location"], headers={"Content-Type": "application/octet-stream"}, body=b"x")
    event["body"] = "A" * (size + 1)
    result = load_app().app(event, EmulatedContext())
    assert result["statusCode"] == 400, result
    assert json.loads(response_body(result))["errors"][0]["code"] == "UNKNOWN"
