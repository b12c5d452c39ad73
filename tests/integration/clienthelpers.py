"""Running `zotless` client commands as a user does, and image layouts with platforms and referrers to push."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import HTTPServer
from pathlib import Path

from tests.integration.conftest import ROOT, zotless_command

REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class Client:
    """`zotless` with its own HOME (so ~/.zotless, auth files and upload state are the test's)."""

    home: Path

    def env(self) -> dict[str, str]:
        scrubbed = ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")
        env = {k: v for k, v in os.environ.items() if k not in scrubbed}
        env.update(HOME=str(self.home), XDG_RUNTIME_DIR=str(self.home / "run"), COLUMNS="200")
        return env

    def run(self, *args: str, expect: int | None = 0, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run and check the exit code (expect None: any); stdout and stderr as text."""
        result = subprocess.run([*zotless_command(), *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)
        if expect is not None:
            assert result.returncode == expect, f"zotless {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*zotless_command(), *args], cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def write_blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_multiplatform_layout(layout: Path, tag: str) -> tuple[str, str]:
    """An index of amd64 and arm64 images (annotated), and an SBOM-like artifact whose subject is the index.

    Returns (index digest, referrer digest); the referrer is in index.json untagged, as oras and skopeo leave one.
    """
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    children = []
    for arch in ("amd64", "arm64"):
        config = write_blob(layout, json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode())
        layer = write_blob(layout, os.urandom(2000))
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            "annotations": {"org.example.arch": arch},
        }
        written = write_blob(layout, json.dumps(manifest).encode())
        children.append({"mediaType": manifest["mediaType"], **written, "platform": {"os": "linux", "architecture": arch}})
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children,
        "annotations": {"org.opencontainers.image.description": "two platforms"},
    }
    index_blob = write_blob(layout, json.dumps(index).encode())
    empty = write_blob(layout, b"{}")
    sbom = write_blob(layout, b'{"spdxVersion": "SPDX-2.3"}')
    referrer = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
        "layers": [{"mediaType": "application/spdx+json", **sbom}],
        "subject": {"mediaType": index["mediaType"], **index_blob},
        "annotations": {"org.example.kind": "sbom"},
    }
    referrer_blob = write_blob(layout, json.dumps(referrer).encode())
    entries = [
        {"mediaType": index["mediaType"], **index_blob, "annotations": {REF_NAME: tag}},
        {"mediaType": referrer["mediaType"], **referrer_blob},
    ]
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return index_blob["digest"], referrer_blob["digest"]


@contextmanager
def serving(server: HTTPServer) -> Iterator[HTTPServer]:
    """A stub registry answering on its own thread for the block's length, then shut and closed."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
