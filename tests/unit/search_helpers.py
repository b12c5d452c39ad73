"""Helpers for the search tests: GraphQL over the core's API, OCI content with referrers, AWS call counting."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tests.conftest import OCI_INDEX, OCI_MANIFEST, Client, sha256

COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
NOTATION_SIG = "application/vnd.cncf.notary.signature"
SPDX = "application/spdx+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"


def gql(client: Client, text: str, method: str = "GET", variables: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One GraphQL request as zot's clients send it: GET ?query= (zui, zli) or a POST JSON body."""
    if method == "GET":
        target = "/v2/_zot/ext/search?query=" + quote(text, safe="")
        if variables is not None:
            target += "&variables=" + quote(json.dumps(variables), safe="")
        response = client("GET", target)
    else:
        payload = json.dumps({"query": text, "variables": variables or {}, "operationName": None}).encode()
        response = client("POST", "/v2/_zot/ext/search", payload, {"Content-Type": "application/json"})
    return response.status, json.loads(response.body_bytes())


def data(client: Client, text: str) -> dict[str, Any]:
    status, document = gql(client, text)
    assert status == 200 and "errors" not in document, document
    return document["data"]


def push_referrer(client: Client, repo: str, subject: str, subject_size: int, artifact_type: str, payload: bytes, tag: str | None = None) -> str:
    """An artifact manifest whose subject is another manifest (a signature or an SBOM), as oras and cosign push them."""
    empty = client.push_blob(repo, b"{}")
    layer = client.push_blob(repo, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": len(payload)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    body = json.dumps(manifest).encode()
    digest = sha256(body)
    response = client("PUT", f"/v2/{repo}/manifests/{tag or digest}", body, {"Content-Type": OCI_MANIFEST})
    assert response.status == 201, response.body_bytes()
    return digest


def push_index(client: Client, repo: str, tag: str, children: list[tuple[str, bytes, dict[str, str]]], annotations: dict[str, str] | None = None) -> str:
    """A multi-platform image: an index over already pushed manifests (digest, body, platform)."""
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(b), "platform": p} for d, b, p in children],
        **({"annotations": annotations} if annotations else {}),
    }
    body = json.dumps(index).encode()
    response = client("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_INDEX})
    assert response.status == 201, response.body_bytes()
    return sha256(body)


