"""A proxy event's base64 body, both ways, with pybase64's SIMD codec.

A 4.4 MiB chunk arrives as 6 MB of base64. Chalice's `raw_body` decodes it with binascii: ~15-20 ms
of billed CPU per chunk on this machine, holding the GIL the whole call, so every other thread of
the process (concurrent requests, the replies to their AWS calls) stalls behind it. pybase64 takes
~0.3 ms for the same body (bench/bench_client_push.py). The local Lambda emulation encodes events
with it too: there it stands in for API Gateway, whose work costs the function nothing.
"""

from __future__ import annotations

import binascii
import io
from collections.abc import Mapping
from typing import Any, BinaryIO

import pybase64

from chalicelib.spec.errors import RegistryError


class InvalidBody(RegistryError):
    default_message = "the request body is not valid base64"


def encode_body(body: bytes) -> str:
    """base64 as API Gateway puts a binary body in an event."""
    return pybase64.b64encode(body).decode("ascii")


def event_body(event: Mapping[str, Any]) -> BinaryIO:
    """The body of a REST API proxy event (payload 1.0) as the core's stream; bad base64 is refused when read."""
    body = event.get("body")
    if not body:
        return io.BytesIO(b"")
    if not event.get("isBase64Encoded"):
        return io.BytesIO(str(body).encode())
    try:
        return io.BytesIO(decode_body(body))
    except (binascii.Error, ValueError):
        return _Unreadable()  # the client's 400 when the core reads it, like any body it refuses


def decode_body(text: str) -> bytes:
    """Strict first (the fast path, and what API Gateway sends); then as leniently as Chalice's decoder read it."""
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return binascii.a2b_base64(text)


class _Unreadable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise InvalidBody()
