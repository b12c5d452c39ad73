"""Framework-free request and response types shared by the Chalice app and the local server."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from chalicelib.spec.numbers import ascii_int


class Headers:
    """Case-insensitive header map; adapters build it from whatever their framework hands them."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        self._items[key.lower()] = (key, value)

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def get(self, key: str, default: str | None = None) -> str | None:
        found = self._items.get(key.lower())
        return found[1] if found else default

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._items.values())

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass
class Request:
    """One HTTP request as the core sees it: the body is a stream so large blobs never sit in memory."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    body: BinaryIO = field(default_factory=io.BytesIO)
    remote_addr: str = ""

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def content_length(self) -> int | None:
        """The declared length, or None when absent or not ASCII digits (the API refuses the latter)."""
        return ascii_int(self.headers.get("Content-Length"))


@dataclass
class Response:
    """The core's answer: a body of bytes, or an iterator of chunks streamed by the adapter."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes | Iterable[bytes] = b""
    cookies: list[str] = field(default_factory=list)  # Set-Cookie values: one header each, which Headers cannot hold

    def body_bytes(self) -> bytes:
        """Join a streamed body; only for adapters that cannot stream (Lambda) and for tests."""
        if isinstance(self.body, bytes):
            return self.body
        return b"".join(self.body)
