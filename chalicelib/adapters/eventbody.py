"""A proxy event's body as the core's stream: large base64 bodies are decoded beside the request's first AWS calls.

A 4.4 MiB chunk arrives as 6 MB of base64 whose decoding takes ~20 ms of CPU, about as long as the
upload session's claim waits on DynamoDB. Chalice's `raw_body` decodes it all before the handler
runs; here a thread decodes it in slices (letting the request thread run between them) while the
handler claims its session, and the core reads the bytes as they are ready.
"""

from __future__ import annotations

import binascii
import io
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, BinaryIO

from chalicelib.spec.errors import RegistryError

DECODE_SLICE = 256 * 1024  # base64 characters per slice: a multiple of 4, about a millisecond of decoding
DECODE_IN_THREAD = 4 * DECODE_SLICE  # shorter bodies are decoded at once: a thread would cost more than it hides


class InvalidBody(RegistryError):
    default_message = "the request body is not valid base64"


def event_body(event: Mapping[str, Any]) -> BinaryIO:
    """The body of a REST API proxy event (payload 1.0), as a stream of its bytes."""
    body = event.get("body")
    if not body:
        return io.BytesIO(b"")
    if not event.get("isBase64Encoded"):
        return io.BytesIO(str(body).encode())
    if len(body) >= DECODE_IN_THREAD:
        return io.BufferedReader(_DecodingBody(body), buffer_size=DECODE_SLICE)
    try:
        return io.BytesIO(binascii.a2b_base64(body))
    except (binascii.Error, ValueError):
        return _Unreadable()  # refused when the core reads it, as the client's error, like a large body


class _Unreadable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise InvalidBody()


class _DecodingBody(io.RawIOBase):
    """Decoded slices, queued by a thread as it goes; a read waits only for the slice it needs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._slices: deque[memoryview] = deque()
        self._finished = False
        self._failed = False
        self._ready = threading.Condition()
        threading.Thread(target=self._decode_all, args=(text,), name="body-decode", daemon=True).start()

    def _decode_all(self, text: str) -> None:
        try:
            for start in range(0, len(text), DECODE_SLICE):
                decoded = memoryview(binascii.a2b_base64(text[start : start + DECODE_SLICE]))
                with self._ready:
                    self._slices.append(decoded)
                    self._ready.notify()
        except (binascii.Error, ValueError):
            self._failed = True
        finally:
            with self._ready:
                self._finished = True
                self._ready.notify()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._ready:
            while not self._slices and not self._finished:
                self._ready.wait()
            if self._failed:
                raise InvalidBody()
            if not self._slices:
                return 0
            piece = self._slices[0]
            count = min(len(buffer), len(piece))
            buffer[:count] = piece[:count]
            if count == len(piece):
                self._slices.popleft()
            else:
                self._slices[0] = piece[count:]
            return count
