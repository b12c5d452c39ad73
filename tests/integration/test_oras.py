"""oras-py, an artifact client: push files (monolithic and chunked uploads) and pull them back byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from oras.client import OrasClient

from tests.integration.conftest import MiB, RunningRegistry, sha256

pytestmark = pytest.mark.integration


def client(registry: RunningRegistry) -> OrasClient:
    return OrasClient(hostname=registry.host, insecure=True, tls_verify=False)


def pulled_files(paths: list[str]) -> dict[str, bytes]:
    return {Path(p).name: Path(p).read_bytes() for p in paths}


def test_push_and_pull_two_files(each_registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    originals = {"readme.txt": b"hello from oras\n" * 100, "data.bin": os.urandom(300_000)}
    upload = tmp_path / "upload"
    upload.mkdir()
    for name, content in originals.items():
        (upload / name).write_bytes(content)
    target = f"{each_registry.host}/{repo}:v1"

    response = client(each_registry).push(
        target=target, files=[str(upload / "readme.txt") + ":text/plain", str(upload / "data.bin")], disable_path_validation=True, quiet=True
    )
    assert response.status_code == 201

    manifest = client(each_registry).get_manifest(target)
    layers = {layer["annotations"]["org.opencontainers.image.title"]: layer for layer in manifest["layers"]}
    assert layers["readme.txt"]["mediaType"] == "text/plain"
    for name, content in originals.items():
        assert layers[name]["digest"] == sha256(content)
        assert layers[name]["size"] == len(content)
    assert response.headers["Docker-Content-Digest"] == sha256(each_registry("GET", f"/v2/{repo}/manifests/v1").content)

    paths = client(each_registry).pull(target=target, outdir=str(tmp_path / "download"))
    assert pulled_files(paths) == originals


def test_chunked_push(registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    """oras-py's chunked upload: PATCHes with Content-Range of 3 MiB (below S3's part minimum) then a bodiless PUT."""
    content = random.Random(7).randbytes(11 * MiB + 12345)
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    target = f"{registry.host}/{repo}:chunked"

    response = client(registry).push(target=target, files=[str(path)], disable_path_validation=True, do_chunked=True, chunk_size=3 * MiB, quiet=True)
    assert response.status_code == 201

    uploads = f"/v2/{repo}/blobs/uploads/"
    patches = registry.requests_logged("PATCH", uploads)
    assert [status for _, status in patches] == [202] * 4, patches  # 3 + 3 + 3 + 2 MiB; the config goes up monolithically

    layer = json.loads(registry("GET", f"/v2/{repo}/manifests/chunked").content)["layers"][0]
    assert layer["digest"] == sha256(content)
    head = registry("HEAD", f"/v2/{repo}/blobs/{layer['digest']}")
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(content)

    paths = client(registry).pull(target=target, outdir=str(tmp_path / "download"))
    assert len(paths) == 1
    assert hashlib.sha256(Path(paths[0]).read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()
