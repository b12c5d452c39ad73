"""Parsing and validating manifests, and the facts about one that the index keeps for search."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib.spec.errors import ManifestInvalid, PayloadTooLarge
from chalicelib.spec.references import Digest, parse_descriptor_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
IMAGE_CONFIG_TYPES = {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
MAX_MANIFEST_SIZE = 4 << 20
# Layers the registry never holds (Windows base layers); their digests need not exist here.
FOREIGN_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: dict[str, str] | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def as_index(self) -> dict[str, Any]:
        """The descriptor as stored in the index and returned by the referrers API."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True)
class Manifest:
    """A validated manifest with what the registry must check and what search will list."""

    digest: Digest
    media_type: str
    body: bytes
    config: Descriptor | None = None
    layers: list[Descriptor] = field(default_factory=list)
    children: list[Descriptor] = field(default_factory=list)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def required_blobs(self) -> list[Digest]:
        blobs = [self.config.digest] if self.config else []
        return blobs + [layer.digest for layer in self.layers if layer.media_type not in FOREIGN_LAYER_TYPES]

    def referrer_artifact_type(self) -> str | None:
        """The spec: artifactType, else the config's media type for an image manifest."""
        if self.artifact_type:
            return self.artifact_type
        return self.config.media_type if self.config else None

    def layers_size(self) -> int:
        return sum(layer.size for layer in self.layers) + (self.config.size if self.config else 0)


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type, size = raw.get("mediaType"), raw.get("size")
    if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where} needs a mediaType and a non-negative size")
    platform = raw.get("platform")
    annotations = raw.get("annotations")
    return Descriptor(
        media_type=media_type,
        digest=parse_descriptor_digest(raw.get("digest")),
        size=size,
        platform=platform if isinstance(platform, dict) else None,
        artifact_type=raw.get("artifactType") if isinstance(raw.get("artifactType"), str) else None,
        annotations=annotations if isinstance(annotations, dict) else None,
    )


def _descriptors(raw: Any, where: str) -> list[Descriptor]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ManifestInvalid(f"{where} must be a list")
    return [_descriptor(item, f"{where}[{n}]") for n, item in enumerate(raw)]


def _inferred_media_type(document: dict[str, Any]) -> str | None:
    """OCI lets mediaType be omitted; when no Content-Type says either (index rebuild), the shape does."""
    if "manifests" in document:
        return OCI_INDEX
    return OCI_MANIFEST if "config" in document else None


def parse_manifest(body: bytes, content_type: str | None, algorithm: str = "sha256") -> Manifest:
    """Check size, JSON, media type and descriptors; the digest is computed here, never trusted."""
    if len(body) > MAX_MANIFEST_SIZE:
        raise PayloadTooLarge(f"manifest larger than {MAX_MANIFEST_SIZE} bytes")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid("manifest is not valid JSON", detail={"error": str(exc)[:200]}) from exc
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    declared = document.get("mediaType")
    media_type = (content_type or "").split(";")[0].strip() or declared or _inferred_media_type(document)
    if media_type not in MANIFEST_TYPES:
        raise ManifestInvalid("unsupported manifest media type", detail={"mediaType": str(media_type)[:200]})
    if declared is not None and declared != media_type:
        raise ManifestInvalid("mediaType does not match Content-Type", detail={"mediaType": str(declared)[:200]})
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    annotations = document.get("annotations")
    common: dict[str, Any] = {
        "digest": Digest.of(body, algorithm),
        "media_type": media_type,
        "body": body,
        "subject": _descriptor(document["subject"], "subject") if document.get("subject") is not None else None,
        "artifact_type": document.get("artifactType") if isinstance(document.get("artifactType"), str) else None,
        "annotations": annotations if isinstance(annotations, dict) else {},
    }
    if media_type in INDEX_TYPES:
        if not isinstance(document.get("manifests"), list):
            raise ManifestInvalid("an index needs a manifests list")
        return Manifest(children=_descriptors(document["manifests"], "manifests"), **common)
    if "config" not in document or not isinstance(document.get("layers"), list):
        raise ManifestInvalid("an image manifest needs config and layers")
    return Manifest(config=_descriptor(document["config"], "config"), layers=_descriptors(document["layers"], "layers"), **common)


def platform_of_config(config: bytes) -> dict[str, str] | None:
    """os/architecture/variant from an image config, for search to list without reading S3."""
    try:
        document = json.loads(config)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    platform = {k: document[k] for k in ("os", "architecture", "variant") if isinstance(document.get(k), str)}
    return platform or None
