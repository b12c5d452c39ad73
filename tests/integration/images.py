"""Real multi-layer OCI image layouts on disk, for skopeo and oras to push."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any


def _write_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}"


def layer_tar(files: dict[str, bytes]) -> bytes:
    """A gzipped tar of files; compresslevel 0 keeps random payloads at their size."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def make_layout(layout: Path, tag: str, layer_sizes: list[int], architecture: str = "amd64") -> str:
    """Write an OCI image layout holding one image; returns the manifest digest."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layers = [layer_tar({f"file{n}.bin": os.urandom(size)}) for n, size in enumerate(layer_sizes)]
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest() for layer in layers]
    config = json.dumps({"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _write_blob(layout, config), "size": len(config)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _write_blob(layout, layer), "size": len(layer)} for layer in layers
        ],
    }
    body = json.dumps(manifest).encode()
    digest = _write_blob(layout, body)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": manifest["mediaType"], "digest": digest, "size": len(body), "annotations": {"org.opencontainers.image.ref.name": tag}}
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return digest


# The showcase the search and web tests browse: a base image, an app built on its layer (labels,
# history, a description, a cosign signature and an SPDX SBOM as referrers) and a two-platform index.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"


def blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def image(layout: Path, layers: list[bytes], config: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """Write one image's blobs; returns its manifest descriptor."""
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest() for layer in layers]
    config_bytes = json.dumps({**config, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(layout, config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(layout, layer)} for layer in layers],
        **({"annotations": annotations} if annotations else {}),
    }
    return {"mediaType": OCI_MANIFEST, **blob(layout, json.dumps(manifest).encode())}


def write_layout(layout: Path, tag: str, top: dict[str, Any]) -> None:
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {**top, "annotations": {"org.opencontainers.image.ref.name": tag}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def showcase_layouts(tmp: Path, description: str, history: list[str]) -> dict[str, Any]:
    """OCI layouts base:1, app:1.0 (on base's layer) and multi:2.0 (amd64 + arm64) under tmp."""
    base_layer, app_layer = layer_tar({"etc/os-release": b"ID=base\n"}), layer_tar({"app/run": b"#!/bin/sh\necho app\n"})
    write_layout(tmp / "base", "1", image(tmp / "base", [base_layer], {"os": "linux", "architecture": "amd64", "created": "2024-01-01T00:00:00Z"}))
    app_config = {
        "os": "linux",
        "architecture": "amd64",
        "created": "2024-06-01T00:00:00Z",
        "config": {"Labels": {"org.opencontainers.image.vendor": "Acme", "org.opencontainers.image.licenses": "MIT"}},
        "history": [{"created_by": step} for step in history],
    }
    app = image(tmp / "app", [base_layer, app_layer], app_config, {"org.opencontainers.image.description": description})
    write_layout(tmp / "app", "1.0", app)
    children = []
    for arch in ("amd64", "arm64"):
        child = image(tmp / "multi", [layer_tar({"arch": arch.encode()})], {"os": "linux", "architecture": arch, "created": "2023-01-01T00:00:00Z"})
        children.append({**child, "platform": {"os": "linux", "architecture": arch}})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children}
    write_layout(tmp / "multi", "2.0", {"mediaType": index["mediaType"], **blob(tmp / "multi", json.dumps(index).encode())})
    return {"app": app, "base_layer": blob(tmp, base_layer)["digest"]}


def push_showcase(skopeo: str, host: str, tmp: Path, prefix: str, description: str, history: list[str], signed_at: str | None = None) -> dict[str, Any]:
    """Push the showcase with skopeo (indexes whole, digests kept) and its referrers with oras; returns the app's digest."""
    from oras.client import OrasClient
    from oras.oci import Subject

    from tests.integration.conftest import run_skopeo

    built = showcase_layouts(tmp, description, history)
    for name, tag in (("base", "1"), ("app", "1.0"), ("multi", "2.0")):
        run_skopeo(skopeo, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false", f"oci:{tmp / name}:{tag}", f"docker://{host}/{prefix}/{name}:{tag}")
    oras = OrasClient(hostname=host, insecure=True, tls_verify=False)
    app = built["app"]
    subject = Subject(mediaType=OCI_MANIFEST, digest=app["digest"], size=app["size"])
    annotations = {"org.opencontainers.image.created": signed_at} if signed_at else None
    for artifact_type, name, content in ((COSIGN_SIG, "sig.json", b'{"critical": {}}'), (SPDX, "sbom.spdx.json", b'{"spdxVersion": "SPDX-2.3"}')):
        (tmp / name).write_bytes(content)
        (tmp / f"{name}.config").write_bytes(b"{}")
        oras.push(target=f"{host}/{prefix}/app:{name}", files=[str(tmp / name)], manifest_config=f"{tmp / name}.config:{artifact_type}",
                  subject=subject, manifest_annotations=annotations, disable_path_validation=True, quiet=True)  # fmt: skip
    return {"prefix": prefix, "app": app["digest"], "base_layer": built["base_layer"]}
