"""Where OSV records come from: a directory or zip of JSON files, an s3:// object, or an https:// URL.

OSV publishes one `all.zip` per ecosystem; a zip is read member by member, never unpacked to disk.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DOWNLOAD_TIMEOUT = 300


class SourceError(ValueError):
    """The source cannot be read, or holds something other than OSV records."""


def is_remote(source: str) -> bool:
    """Sources a schedule can refresh by itself (a local path is a one-off load)."""
    return source.startswith(("https://", "http://", "s3://"))


def read_records(source: str, s3_client: Any = None) -> Iterator[dict[str, Any]]:
    """Every OSV record in a source; a file that is not a JSON object stops the load (no half database)."""
    if source.startswith(("https://", "http://")):
        with tempfile.TemporaryFile() as spooled:
            _download(source, spooled)
            yield from _from_file(spooled, source)
        return
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if s3_client is None or not bucket or not key:
            raise SourceError(f"cannot read {source}: use s3://bucket/key")
        with tempfile.TemporaryFile() as spooled:
            s3_client.download_fileobj(bucket, key, spooled)
            yield from _from_file(spooled, source)
        return
    path = Path(source)
    if path.is_dir():
        for member in sorted(path.rglob("*.json")):
            yield _record(member.read_bytes(), str(member))
    elif path.is_file():
        with path.open("rb") as opened:
            yield from _from_file(opened, source)
    else:
        raise SourceError(f"{source}: no such file or directory")


def _download(url: str, target: IO[bytes]) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            shutil.copyfileobj(response, target)
    except OSError as error:
        raise SourceError(f"cannot download {url}: {error}") from error


def _from_file(opened: IO[bytes], name: str) -> Iterator[dict[str, Any]]:
    opened.seek(0)
    if zipfile.is_zipfile(opened):
        opened.seek(0)
        with zipfile.ZipFile(opened) as archive:
            for member in archive.namelist():
                if member.endswith(".json"):
                    yield _record(archive.read(member), f"{name}:{member}")
        return
    opened.seek(0)
    data = json.loads(opened.read())
    for record in data if isinstance(data, list) else [data]:
        yield _checked(record, name)


def _record(data: bytes, name: str) -> dict[str, Any]:
    try:
        return _checked(json.loads(data), name)
    except json.JSONDecodeError as error:
        raise SourceError(f"{name}: not JSON ({error})") from error


def _checked(record: Any, name: str) -> dict[str, Any]:
    if not isinstance(record, dict) or "id" not in record:
        raise SourceError(f"{name}: not an OSV record (no id)")
    return record
