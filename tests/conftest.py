"""Shared fixtures: the core on moto, and small helpers to build OCI content."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from chalicelib.config.schema import Config
from chalicelib.spec.http import Headers, Request, Response

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
