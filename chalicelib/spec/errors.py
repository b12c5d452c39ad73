"""The distribution-spec error codes as exceptions, so no handler returns error tuples."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.spec.http import Headers, Response


class RegistryError(Exception):
    """An error the client caused or must see, rendered as the spec's JSON error body."""

    code = "UNKNOWN"
    status = 400
    default_message = "unknown error"

    def __init__(self, message: str | None = None, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.detail = detail
        self.headers = headers or {}

    def to_response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        headers = Headers({"Content-Type": "application/json", **self.headers})
        return Response(self.status, headers, json.dumps({"errors": [error]}).encode())


def _error(code: str, status: int, message: str) -> type[RegistryError]:
    return type(code.title().replace("_", ""), (RegistryError,), {"code": code, "status": status, "default_message": message})


BlobUnknown = _error("BLOB_UNKNOWN", 404, "blob unknown to registry")
BlobUploadInvalid = _error("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
BlobUploadUnknown = _error("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
DigestInvalid = _error("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
ManifestBlobUnknown = _error("MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry")
ManifestInvalid = _error("MANIFEST_INVALID", 400, "manifest invalid")
ManifestUnknown = _error("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
NameInvalid = _error("NAME_INVALID", 400, "invalid repository name")
NameUnknown = _error("NAME_UNKNOWN", 404, "repository name not known to registry")
SizeInvalid = _error("SIZE_INVALID", 400, "provided length did not match content length")
Unauthorized = _error("UNAUTHORIZED", 401, "authentication required")
Denied = _error("DENIED", 403, "requested access to the resource is denied")
Unsupported = _error("UNSUPPORTED", 405, "the operation is unsupported")
TooManyRequests = _error("TOOMANYREQUESTS", 429, "too many requests")


class RangeInvalid(BlobUploadInvalid):
    """Out-of-order chunk or a lost race on an upload session: the spec answers 416."""

    status = 416
    default_message = "requested range not satisfiable"


class PayloadTooLarge(SizeInvalid):
    status = 413
    default_message = "payload too large"


class BlobRangeInvalid(SizeInvalid):
    """A blob GET whose Range cannot be served."""

    status = 416
    default_message = "requested range not satisfiable"


class ReadOnly(RegistryError):
    """storage.readOnly: reads work, every write is refused."""

    code = "DENIED"
    status = 405
    default_message = "the registry is read-only (storage.readOnly): uploads, manifest pushes, mounts and deletes are refused"


class NotFound(RegistryError):
    """A path that matches no route of the API."""

    code = "NOT_FOUND"
    status = 404
    default_message = "no such endpoint"


class MethodNotAllowed(Unsupported):
    default_message = "method not allowed on this endpoint"
