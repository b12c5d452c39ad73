"""The page's files, read from the bundle once per process, answered with ETags and content-hashed URLs.

index.html refers to each asset as `name?v=<hash>`, so an asset can be cached for a year and a new
deploy is picked up as soon as index.html (always revalidated, a 304 when unchanged) is fetched.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from chalicelib.spec.errors import NotFound
from chalicelib.spec.http import Headers, Request, Response

STATIC = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The page talks to its own origin only; no inline script or style, no frames.
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_REFERENCE = re.compile(r'(?P<attr>(?:src|href)=")(?P<name>[\w.-]+\.(?:js|css|svg))"')


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


@cache
def _assets() -> dict[str, Asset]:
    """Every file under static/, index.html last so it can name the others by their hashes."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file() and path.suffix in TYPES and path.name != INDEX:
            body = path.read_bytes()
            found[path.name] = Asset(body, TYPES[path.suffix], _etag(body))

    def versioned(match: re.Match[str]) -> str:
        name = match.group("name")
        asset = found.get(name)
        return f'{match.group("attr")}{name}?v={asset.etag.strip(chr(34))}"' if asset else match.group(0)

    index = _REFERENCE.sub(versioned, (STATIC / INDEX).read_text()).encode()
    found[INDEX] = Asset(index, TYPES[".html"], _etag(index))
    return found


def names() -> list[str]:
    """The files the page is made of (index.html included)."""
    return sorted(_assets())


def serve(request: Request, name: str) -> Response:
    """One file: 304 when the browser's copy is current; hashed URLs are immutable, the rest revalidated."""
    asset = _assets().get(name or INDEX)
    if asset is None:
        raise NotFound(detail={"asset": name[:100]})
    cache_control = IMMUTABLE if request.arg("v") == asset.etag.strip('"') else REVALIDATE
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, **SECURITY}
    if asset.etag in _tags(request.headers.get("If-None-Match")):
        return Response(304, Headers(headers), b"")
    headers.update({"Content-Type": asset.content_type, "Content-Length": str(len(asset.body))})
    return Response(200, Headers(headers), asset.body)


def redirect(location: str) -> Response:
    """The bare server root sends a browser to the page."""
    return Response(302, Headers({"Location": location, "Content-Length": "0", "Cache-Control": "no-cache"}), b"")


def _tags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {part.strip().removeprefix("W/") for part in header.split(",")}
