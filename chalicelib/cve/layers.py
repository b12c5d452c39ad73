"""Layer tars read as streams, in bounded memory, with whiteouts applied in layer order.

Only the files the package finders want are kept (and those only up to a size cap), so memory
stays at the decompressor's and tarfile's buffers plus the package databases, whatever the layer's
size. A whiteout (`.wh.<name>`) or opaque marker (`.wh..wh..opq`) hides lower layers' files; a
non-directory entry hides whatever a lower layer had at its path.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from typing import IO

READ_BUFFER = 1 << 20
FILE_LIMIT = 64 << 20  # a package database larger than this is not one
COMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "tar",
}
OPAQUE = ".wh..wh..opq"
WHITEOUT = ".wh."

Reducer = Callable[[bytes], bytes | None]  # keeps what a finder needs of a file (None: nothing)
Wanted = Callable[[str], Reducer | None]


class UnreadableLayer(ValueError):
    """A layer this scanner cannot read (media type, compression or tar format): the image is not scanned."""


class ChunkStream(io.RawIOBase):
    """A file over an iterator of byte chunks (an S3 body): tarfile and the decompressors read from it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending = memoryview(chunk)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def open_layer(chunks: Iterator[bytes], media_type: str) -> IO[bytes]:
    """The uncompressed tar stream of a layer; UnreadableLayer for a media type not in COMPRESSION."""
    kind = COMPRESSION.get(media_type)
    if kind is None:
        raise UnreadableLayer(f"layer media type {media_type} is not readable")
    raw = io.BufferedReader(ChunkStream(chunks), READ_BUFFER)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_size=READ_BUFFER, read_across_frames=True)  # type: ignore[return-value]
    return raw


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _hide(files: dict[str, bytes], path: str) -> None:
    """Remove a path and everything under it."""
    files.pop(path, None)
    under = path + "/" if path else ""
    for name in [n for n in files if n.startswith(under)]:
        del files[name]


def apply_layer(stream: IO[bytes], wanted: Wanted, files: dict[str, bytes]) -> None:
    """Read one layer over the files of the layers below: its whiteouts first hide lower files, then its files land."""
    hidden: list[str] = []
    added: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                path = _clean(member.name)
                directory, base = posixpath.split(path)
                if base == OPAQUE:
                    hidden.append(directory)
                elif base.startswith(WHITEOUT):
                    hidden.append(posixpath.join(directory, base[len(WHITEOUT) :]))
                elif not member.isdir():
                    hidden.append(path)  # a file, link or device here hides what lower layers had at this path
                    _keep(tar, member, path, wanted, added, files)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UnreadableLayer(f"layer is not a readable tar: {error}") from error
    except Exception as error:  # zstandard raises its own ZstdError
        if type(error).__module__.startswith("zstandard"):
            raise UnreadableLayer(f"layer is not readable zstd: {error}") from error
        raise
    for path in hidden:
        _hide(files, path)
    files.update(added)


def _keep(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, wanted: Wanted, added: dict[str, bytes], lower: dict[str, bytes]) -> None:
    reducer = wanted(path)
    if reducer is None:
        return
    if member.islnk():  # a hard link to a file this layer or a lower one already holds
        target = _clean(member.linkname)
        data = added.get(target, lower.get(target))
        if data is not None:
            added[path] = data
        return
    if not member.isfile() or member.size > FILE_LIMIT:
        return
    extracted = tar.extractfile(member)
    if extracted is None:
        return
    kept = reducer(extracted.read())
    if kept is not None:
        added[path] = kept
