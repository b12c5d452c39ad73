"""Parsing and validating manifests, and the facts about one that the index keeps for search."""

from __future__ import annotations

import array
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
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
# DynamoDB stores a value nested at most 32 levels deep, the top-level attribute counting as level 1:
# at most 31 maps or lists above a scalar. The deepest copy the index makes of a manifest's JSON is its
# referrer item, whose "descriptor" map holds the manifest's "annotations": a container at depth n of
# the document (the document itself at depth 1, its annotations at 2) is at depth n there. Every other
# copy sits higher: the item's own "annotations" (n - 1), descriptors' annotations and platforms in
# "layers", "config" and "children" (n - 1), "platforms" (n - 2). So a document at most 31 deep fits.
MAX_NESTING = 31
CONFIG_MAX_NESTING = 100  # an image config is only read for search's strings; deeper ones are not read
FACT_TEXT_LIMIT = 1024  # a config string kept for search (label, history step) is cut to this length
MAX_LABELS = 64
MAX_HISTORY = 128
MAX_BLOB_SIZE = (1 << 63) - 1
# DynamoDB's Number: 38 significant digits, magnitude 1E-130 to 9.99...E+125 (or zero). Integers are stored
# as written (boto3 refuses more than 38 digits, trailing zeros included); other numbers as floats.
NUMBER_DIGITS = 38
NUMBER_MIN = Decimal("1E-130")
NUMBER_MAX = Decimal("9.9999999999999999999999999999999999999E+125")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEPS = str.maketrans({"[": "\x01", "{": "\x01", "]": "\xff", "}": "\xff"})
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
    if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB_SIZE:
        raise ManifestInvalid(f"{where} needs a mediaType and a size from 0 to 2^63-1")
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
    document = load_manifest_json(body)
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


def _config_document(config: bytes) -> dict[str, Any] | None:
    """An image config as JSON with every number dropped; None when it cannot be read safely."""
    try:
        text = _json_text(config)
        if _nesting(text) > CONFIG_MAX_NESTING:
            return None
        document = json.loads(text, parse_constant=_ignored, parse_int=_ignored, parse_float=_ignored)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return document if isinstance(document, dict) else None


def _text(value: Any, limit: int = FACT_TEXT_LIMIT) -> str | None:
    return value[:limit] if isinstance(value, str) and _is_unicode(value) else None


def _platform(document: dict[str, Any]) -> dict[str, str] | None:
    platform = {k: document[k] for k in ("os", "architecture", "variant") if _text(document.get(k)) is not None}
    return platform or None


def config_facts(config: bytes) -> dict[str, Any]:
    """What search shows from an image config (platform, created, labels, history), strings only and trimmed.

    Read once at push time so search never reads the config from S3; a config that cannot be read
    safely gives no facts, never a refused push.
    """
    document = _config_document(config)
    if document is None:
        return {}
    inner = document.get("config") if isinstance(document.get("config"), dict) else {}
    raw_labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
    labels = {k[:FACT_TEXT_LIMIT]: value for k, v in raw_labels.items() if _text(k) is not None and (value := _text(v)) is not None}
    history = [_history_entry(h) for h in (document.get("history") or [])[:MAX_HISTORY] if isinstance(h, dict)]
    facts = {
        "platform": _platform(document),
        "created": _text(document.get("created"), 64),
        "labels": dict(list(labels.items())[:MAX_LABELS]) or None,
        "history": history or None,
    }
    return {k: v for k, v in facts.items() if v is not None}


def _history_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One history step: created, created_by, author, comment (trimmed) and empty_layer."""
    out: dict[str, Any] = {k: t for k in ("created", "created_by", "author", "comment") if (t := _text(entry.get(k))) is not None}
    if entry.get("empty_layer") is True:
        out["empty_layer"] = True
    return out


def load_manifest_json(body: bytes) -> Any:
    """JSON the index can store: nesting within MAX_NESTING (checked before parsing, so no recursion
    limit is ever reached), numbers DynamoDB can hold, no NaN or Infinity, strings of valid Unicode."""
    try:
        text = _json_text(body)
    except ValueError as exc:
        raise ManifestInvalid("manifest is not valid JSON", detail={"error": str(exc)[:200]}) from exc
    if _nesting(text) > MAX_NESTING:
        raise ManifestInvalid(f"manifest nests deeper than {MAX_NESTING} levels")
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_int=_storable_int, parse_float=_storable_float)
    except (ValueError, RecursionError) as exc:
        raise ManifestInvalid("manifest is not valid JSON", detail={"error": str(exc)[:200]}) from exc
    if not _is_unicode(text) or _SURROGATE_ESCAPE.search(text):  # the walk only when a surrogate may be there
        _check_strings(document)
    return document


def _json_text(body: bytes) -> str:
    """Decode as json.loads does (UTF-8, -16 or -32), so the depth scan sees what the parser will."""
    return body.decode(json.detect_encoding(body), "surrogatepass")


def _nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, without parsing it (no recursion)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    steps = array.array("b", brackets.translate(_BRACKET_STEPS).encode("latin-1"))
    return max(accumulate(steps), default=0)


def _refuse_constant(name: str) -> Any:
    raise ManifestInvalid(f"manifest holds {name}, which is not a JSON number")


def _storable_int(literal: str) -> int:
    """An integer is stored as written: DynamoDB (and boto3) keep at most 38 digits."""
    if len(literal.lstrip("-")) > NUMBER_DIGITS:
        raise ManifestInvalid(f"manifest holds an integer of more than {NUMBER_DIGITS} digits", detail={"number": literal[:50]})
    return int(literal)


def _storable_float(literal: str) -> float:
    """A fraction or exponent becomes a float, which the index stores with 17 digits: its magnitude must fit."""
    number = float(literal)
    if math.isinf(number) or not _in_number_range(Decimal(repr(number))):
        raise ManifestInvalid("manifest holds a number DynamoDB cannot store", detail={"number": literal[:50]})
    return number


def _in_number_range(value: Decimal) -> bool:
    return value == 0 or NUMBER_MIN <= value.copy_abs() <= NUMBER_MAX


def _ignored(literal: str) -> None:
    return None


def _is_unicode(text: str) -> bool:
    """False for lone surrogates ("\\ud800"), which JSON escapes allow but no store can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_strings(document: Any) -> None:
    """Every key and string must be valid Unicode; walked with a stack, not recursion."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and not _is_unicode(value):
            raise ManifestInvalid("manifest holds a string that is not valid Unicode (a lone surrogate)")
