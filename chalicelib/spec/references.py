"""The spec's grammars for names, tags and digests, and resumable hashing of blob bytes.

Everything here runs before a value can reach an S3 key or a DynamoDB key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import rehashes

from chalicelib.spec.errors import DigestInvalid, ManifestInvalid, NameInvalid

# distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_NAME = re.compile(rf"^{NAME_PATTERN}$")
TAG_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
_TAG = re.compile(rf"^{TAG_PATTERN}$")
MAX_NAME_LENGTH = 255

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HASHERS = {"sha256": rehashes.PySha256, "sha512": rehashes.PySha512}


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise NameInvalid(detail={"name": name[:MAX_NAME_LENGTH]})
    return name


def is_tag(reference: str) -> bool:
    return bool(_TAG.match(reference))


@dataclass(frozen=True)
class Digest:
    """A validated digest of a supported algorithm."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str | None) -> Digest:
        """Parse or raise DIGEST_INVALID; only lowercase hex of the algorithm's length passes."""
        algorithm, _, hexpart = (text or "").partition(":")
        expected = _HEX_LENGTH.get(algorithm)
        if expected is None or len(hexpart) != expected or not re.fullmatch(r"[0-9a-f]+", hexpart):
            raise DigestInvalid("invalid digest", detail={"digest": (text or "")[:200]})
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def parse_descriptor_digest(text: object) -> Digest:
    """A digest inside a manifest: a bad one makes the manifest invalid, not the request."""
    if not isinstance(text, str):
        raise ManifestInvalid("descriptor digest missing")
    try:
        return Digest.parse(text)
    except DigestInvalid as exc:
        raise ManifestInvalid("descriptor has an invalid digest", detail={"digest": text[:200]}) from exc


class ResumableHash:
    """A hash whose state is saved as raw bytes between requests (never pickled: see Quay's RCE)."""

    def __init__(self, algorithm: str, state: bytes | None = None) -> None:
        hasher_type = _HASHERS.get(algorithm)
        if hasher_type is None:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._hasher = hasher_type.deserialize(state) if state else hasher_type()

    def update(self, data: bytes) -> None:
        self._hasher.update(data)

    def state(self) -> bytes:
        return bytes(self._hasher.serialize())

    def digest(self) -> Digest:
        """The digest so far; finalising a copy keeps this hasher usable."""
        copy = type(self._hasher).deserialize(self._hasher.serialize())
        return Digest(self.algorithm, copy.finalize())
