"""Shared fixtures: the core on moto, and small helpers to build OCI content."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

if os.environ.get("ZOTLESS_TEST_AWS") != "1":  # on real AWS the credentials come from the usual places
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import botocore.loaders
import botocore.session

from chalicelib.config.schema import Config
from chalicelib.spec.http import Headers, Request, Response

_loaders: dict[object, botocore.loaders.Loader] = {}


def _shared_loader(data_path: object = "") -> botocore.loaders.Loader:
    """One botocore loader for the whole run: every test makes new clients, and each new session would
    read and parse the S3 and DynamoDB models again (about 0.2 s a test). The models are read-only."""
    key = data_path or ""
    if key not in _loaders:
        _loaders[key] = botocore.loaders.create_loader(data_path)
    return _loaders[key]


botocore.session.create_loader = _shared_loader  # type: ignore[assignment]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_request(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Request:
    parts = urlsplit(target)
    all_headers = Headers(headers or {})
    if body and "Content-Length" not in all_headers:
        all_headers["Content-Length"] = str(len(body))
    return Request(method, parts.path, parse_qs(parts.query, keep_blank_values=True), all_headers, io.BytesIO(body))


@dataclass
class Client:
    """Calls the core's Api directly, as both adapters do."""

    service: object

    def __call__(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
        return self.service.api.handle(make_request(method, target, body, headers))  # type: ignore[attr-defined]

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        response = self("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        assert response.status == 201, response.body_bytes()
        return digest

    def push_image(self, repo: str, tag: str, layers: list[bytes], config: dict | None = None, **extra: object) -> tuple[str, bytes]:
        config_bytes = json.dumps(config or {"architecture": "amd64", "os": "linux"}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(repo, config_bytes), "size": len(config_bytes)},
            "layers": [{"mediaType": LAYER, "digest": self.push_blob(repo, layer), "size": len(layer)} for layer in layers],
            **extra,
        }
        body = json.dumps(manifest).encode()
        response = self("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST})
        assert response.status == 201, response.body_bytes()
        return sha256(body), body


def error_code(response: Response) -> str:
    return json.loads(response.body_bytes())["errors"][0]["code"]


@pytest.fixture
def config() -> Config:
    return Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}}})


@pytest.fixture
def aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def service(aws: None, config: Config):
    from chalicelib.api.service import build_service
    from chalicelib.storage.aws import ensure_resources, make_clients

    clients = make_clients(config)
    ensure_resources(config, clients)
    return build_service(config, clients)


@pytest.fixture
def client(service) -> Client:
    return Client(service)


@pytest.fixture
def atomic_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """What DynamoDB and S3 apply atomically runs one at a time on in-process moto, as on the embedded server.

    The rule is the server's (motoserver.serialised): DynamoDB requests and S3 conditional writes;
    plain S3 reads and writes run in parallel. A failed transaction restores only its own items.
    """
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.dynamodb.models import DynamoDBBackend

    from chalicelib.adapters.motoserver import install_item_rollback, serialised

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items)  # undone after the test
    install_item_rollback()
    lock = threading.Lock()
    original = BotocoreStubber.__call__

    def atomic(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if not serialised(_environ(request)):
            return original(self, event_name, request, **kwargs)
        with lock:
            return original(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", atomic)


def _environ(request: Any) -> dict[str, str]:
    """The WSGI view of a botocore request that motoserver.serialised reads."""
    environ = {"REQUEST_METHOD": request.method, "HTTP_X_AMZ_TARGET": request.headers.get("X-Amz-Target", "")}
    for header in ("If-None-Match", "If-Match"):
        if header in request.headers:
            environ["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in environ.items()}


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together by a barrier; each one's result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = calls[n]()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcomes[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything the zotless loggers emit, formatted by the JSON formatter."""
    from chalicelib.adapters import logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("zotless")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
