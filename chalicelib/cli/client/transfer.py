"""Writing an Image to a registry (chunked, parallel, resumable) or to an OCI layout.

Uploads follow what fits through API Gateway + Lambda: chunks no larger than the server's
OCI-Chunk-Max-Length, blobs the destination has are skipped (HEAD, then a cross-repository mount),
a failed chunk is retried from the offset the server reports, and each upload's URL is kept in a
state file so a killed push resumes where the server's upload stands.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from chalicelib.cli.client.errors import ClientError
from chalicelib.cli.client.http import Registry
from chalicelib.cli.client.images import OCI_INDEX, REF_NAME, Blob, Image, Manifest, descriptor_digest, json_document, layout_blob_path
from chalicelib.cli.client.progress import Reporter
from chalicelib.cli.client.references import LayoutRef, RegistryRef

MONOLITHIC_LIMIT = 4 * 1024 * 1024  # one POST carries a blob this small, even through Lambda
DEFAULT_CHUNK = 64 * 1024 * 1024  # where the server names no maximum
RETRIES = 5
READ_SIZE = 1 << 20


def state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path(os.environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "zotless" / "uploads"


@dataclass
class PushOptions:
    chunk_size: int | None = None
    jobs: int = 4
    mount_from: str | None = None  # a repository on the same registry that may already hold the blobs


class UploadState:
    """The upload URL of one blob being pushed to one repository, on disk until the blob is complete."""

    def __init__(self, registry: Registry, repo: str, digest: str) -> None:
        key = hashlib.sha256(f"{registry.base_url}/{repo}@{digest}".encode()).hexdigest()[:32]
        self.path = state_dir() / f"{key}.json"

    def load(self) -> tuple[str, int | None] | None:
        """(location, the chunk maximum the server named when the upload started)."""
        try:
            data = json.loads(self.path.read_text())
            return data["location"], data.get("maxChunk")
        except (OSError, ValueError, KeyError):
            return None

    def save(self, location: str, max_chunk: int | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"location": location, "maxChunk": max_chunk}))
        os.replace(temporary, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class BlobUploader:
    """Pushes one blob to registry/repo, or finds that it need not."""

    def __init__(self, registry: Registry, repo: str, options: PushOptions, reporter: Reporter) -> None:
        self.registry = registry
        self.repo = repo
        self.options = options
        self.reporter = reporter

    def push(self, blob: Blob) -> None:
        if self._exists(blob) or self._mounted(blob):
            self.reporter.done(blob.digest, blob.size, "exists")
            return
        state = UploadState(self.registry, self.repo, blob.digest)
        location, offset, max_chunk = self._resume(state)
        if location is None and blob.size <= min(MONOLITHIC_LIMIT, self.options.chunk_size or MONOLITHIC_LIMIT):
            self._monolithic(blob)
            return
        if location is None:
            location, max_chunk = self._start()
            state.save(location, max_chunk)
        elif offset:
            self.reporter.line(f"resuming {blob.digest.split(':')[-1][:12]} at byte {offset}")
        self.reporter.start(blob.digest, blob.size, "pushing")
        self.reporter.advance(blob.digest, offset)
        chunk = self._chunk_size(max_chunk)
        location, offset = self._send_chunks(blob, location, offset, chunk, state, max_chunk)
        while smaller := self._finish(blob, location, offset):  # the closing PUT was too large: chunk what is left
            location, offset = self._send_chunks(blob, location, offset, smaller, state, smaller)
        state.clear()
        self.reporter.done(blob.digest, blob.size, "pushed")

    def _finish(self, blob: Blob, location: str, offset: int) -> int | None:
        """The closing PUT carries the last chunk, as the spec allows: one request fewer, and a server never stages it.

        None when done; the largest body the server takes when it answered 413 SIZE_INVALID naming one (a server
        that never advertised its limit), so the caller can send the rest in chunks that fit.
        """
        with blob.open(offset) as reader:
            data = _read(reader, blob.size - offset)
        headers = {"Content-Length": str(len(data))}
        if data:
            headers |= {"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + len(data) - 1}"}
        response = self.registry.raw("PUT", location, params={"digest": blob.digest}, data=data, headers=headers)
        smaller = _smaller_chunk(response, len(data)) if data else None
        if response.status_code == 413 and smaller:
            return smaller
        if response.status_code != 201:
            raise self.registry.error(response, f"PUT {blob.digest}")
        self.reporter.advance(blob.digest, len(data))
        return None

    def _exists(self, blob: Blob) -> bool:
        return self.registry.raw("HEAD", f"/v2/{self.repo}/blobs/{blob.digest}").status_code == 200

    def _mounted(self, blob: Blob) -> bool:
        source = self.options.mount_from
        if not source or source == self.repo:
            return False
        response = self.registry.raw("POST", f"/v2/{self.repo}/blobs/uploads/", params={"mount": blob.digest, "from": source})
        if response.status_code == 201:
            return True
        if response.status_code == 202 and response.headers.get("Location"):  # mount refused: drop the session it opened
            self.registry.raw("DELETE", self.registry.absolute(response.headers["Location"]))
        return False

    def _monolithic(self, blob: Blob) -> None:
        self.reporter.start(blob.digest, blob.size, "pushing")
        with blob.open(0) as reader:
            data = reader.read()
        self.registry.request(
            "POST",
            f"/v2/{self.repo}/blobs/uploads/",
            expect=(201,),
            params={"digest": blob.digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.reporter.advance(blob.digest, blob.size)
        self.reporter.done(blob.digest, blob.size, "pushed")

    def _start(self) -> tuple[str, int | None]:
        response = self.registry.request("POST", f"/v2/{self.repo}/blobs/uploads/", expect=(202,), headers={"Content-Length": "0"})
        return self.registry.absolute(response.headers["Location"]), _max_chunk(response)

    def _resume(self, state: UploadState) -> tuple[str | None, int, int | None]:
        """(location, offset, max chunk) of an upload a killed push left, when the server still has it."""
        saved = state.load()
        if saved is None:
            return None, 0, None
        location, max_chunk = saved
        status = self._status(location)
        if status is None:
            state.clear()
            return None, 0, None
        return location, status[0], status[1] or max_chunk

    def _status(self, location: str) -> tuple[int, int | None] | None:
        """GET upload status: the next offset (Range's end + 1) and the chunk maximum; None when the session is gone."""
        response = self.registry.raw("GET", location)
        if response.status_code != 204:
            return None
        return _offset(response), _max_chunk(response)

    def _chunk_size(self, server_max: int | None) -> int:
        wanted = self.options.chunk_size or server_max or DEFAULT_CHUNK
        return min(wanted, server_max) if server_max else wanted

    def _send_chunks(self, blob: Blob, location: str, offset: int, chunk: int, state: UploadState, max_chunk: int | None) -> tuple[str, int]:
        """PATCH every chunk but the last (the closing PUT carries it); (the upload's location, the offset reached)."""
        failures = 0
        reader = blob.open(offset)
        try:
            while blob.size - offset > chunk:
                data = _read(reader, min(chunk, blob.size - offset))
                if not data:
                    raise ClientError(f"{blob.digest}: the source ended at byte {offset} of {blob.size}")
                end = offset + len(data) - 1
                try:
                    response = self.registry.raw(
                        "PATCH",
                        location,
                        data=data,
                        headers={"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}", "Content-Length": str(len(data))},
                    )
                except ClientError:
                    response = None
                if response is not None and response.status_code == 202:
                    location = self.registry.absolute(response.headers.get("Location", location))
                    state.save(location, max_chunk)
                    offset = end + 1
                    failures = 0
                    self.reporter.advance(blob.digest, len(data))
                    continue
                smaller = _smaller_chunk(response, chunk)
                if smaller:  # 413: the server named the largest body it takes; resend this range in pieces that fit
                    chunk = max_chunk = smaller
                    reader.close()
                    reader = blob.open(offset)
                    continue
                failures += 1
                if failures > RETRIES:
                    if response is not None:
                        raise self.registry.error(response, f"PATCH {blob.digest}")
                    raise ClientError(f"{blob.digest}: upload failed at byte {offset} after {RETRIES} retries")
                time.sleep(min(0.5 * 2**failures, 8))
                status = self._status(location)
                if status is None:
                    raise ClientError(f"{blob.digest}: the server dropped the upload at byte {offset}")
                reader.close()
                self.reporter.advance(blob.digest, status[0] - offset)
                offset = status[0]
                reader = blob.open(offset)
        finally:
            reader.close()
        return location, offset


def _read(reader: IO[bytes], count: int) -> bytes:
    parts, remaining = [], count
    while remaining:
        part = reader.read(min(remaining, READ_SIZE) if count > READ_SIZE * 8 else remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _offset(response: requests.Response) -> int:
    """Range: 0-N means N+1 bytes are in; "0-0" (or none) is read as an empty upload, since chunks are never 1 byte."""
    value = response.headers.get("Range", "")
    end = value.split("-", 1)[1] if "-" in value else ""
    return int(end) + 1 if end.isdigit() and int(end) > 0 else 0


def _smaller_chunk(response: requests.Response | None, chunk: int) -> int | None:
    """The maxChunkLength of a 413 SIZE_INVALID (zotless's Lambda answer) when smaller than the chunk sent."""
    if response is None or response.status_code != 413:
        return None
    try:
        detail = response.json()["errors"][0].get("detail") or {}
        limit = int(detail.get("maxChunkLength") or response.headers.get("OCI-Chunk-Max-Length") or 0)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return limit if 0 < limit < chunk else None


def _max_chunk(response: requests.Response) -> int | None:
    value = response.headers.get("OCI-Chunk-Max-Length")
    return int(value) if value and value.isdigit() else None


def push_image(image: Image, registry: Registry, dest: RegistryRef, options: PushOptions, reporter: Reporter) -> str:
    """Blobs in parallel, then manifests children first, the top one under the tag, then referrers; returns the top digest."""
    reporter.total(sum(blob.size for blob in image.blobs.values()))
    uploader = BlobUploader(registry, dest.repo, options, reporter)
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        for future in [pool.submit(uploader.push, blob) for blob in image.blobs.values()]:
            future.result()
    for manifest in image.manifests[:-1]:
        put_manifest(registry, dest.repo, manifest.digest, manifest)
    tag = dest.tag or (None if dest.digest else image.tag) or "latest"
    put_manifest(registry, dest.repo, dest.digest or tag, image.top)
    for manifest in image.referrers:
        put_manifest(registry, dest.repo, manifest.digest, manifest)
    reporter.line(f"{dest.host}/{dest.repo}:{tag if not dest.digest else dest.digest} {image.top.digest}")
    return image.top.digest


def put_manifest(registry: Registry, repo: str, reference: str, manifest: Manifest) -> None:
    registry.request("PUT", f"/v2/{repo}/manifests/{reference}", expect=(201,), data=manifest.body, headers={"Content-Type": manifest.media_type})


def write_layout(image: Image, dest: LayoutRef, reporter: Reporter, jobs: int = 4) -> str:
    """Blobs and manifests into blobs/, the top manifest into index.json under the tag, referrers untagged."""
    root = dest.path
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    reporter.total(sum(blob.size for blob in image.blobs.values()))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(_write_blob, root, blob, reporter) for blob in image.blobs.values()]:
            future.result()
    for manifest in [*image.manifests, *image.referrers]:
        _write_bytes(root, manifest.digest, manifest.body)
    index_path = root / "index.json"
    index = json_document(index_path.read_bytes(), str(index_path)) if index_path.exists() else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    tag = dest.tag or image.tag or "latest"
    kept = [e for e in index["manifests"] if (e.get("annotations") or {}).get(REF_NAME) != tag]
    top = image.top
    entries = [{"mediaType": top.media_type, "digest": top.digest, "size": len(top.body), "annotations": {REF_NAME: tag}}]
    known = {descriptor_digest(e, str(index_path)) for e in kept}
    entries += [{"mediaType": m.media_type, "digest": m.digest, "size": len(m.body)} for m in image.referrers if m.digest not in known]
    index["manifests"] = kept + entries
    index_path.write_text(json.dumps(index, indent=2))
    reporter.line(f"{root}:{tag} {top.digest}")
    return top.digest


def _blob_path(root: Path, digest: str) -> Path:
    return layout_blob_path(root, digest)


def _write_bytes(root: Path, digest: str, data: bytes) -> None:
    path = _blob_path(root, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_blob(root: Path, blob: Blob, reporter: Reporter) -> None:
    """Downloads to a .part file and checks the digest before the blob gets its name."""
    path = _blob_path(root, blob.digest)
    if path.exists() and path.stat().st_size == blob.size:
        reporter.done(blob.digest, blob.size, "exists")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    hasher = hashlib.new(blob.digest.split(":", 1)[0])
    reporter.start(blob.digest, blob.size, "pulling")
    with blob.open(0) as reader, partial.open("wb") as out:
        while chunk := reader.read(READ_SIZE):
            hasher.update(chunk)
            out.write(chunk)
            reporter.advance(blob.digest, len(chunk))
    if f"{blob.digest.split(':', 1)[0]}:{hasher.hexdigest()}" != blob.digest:
        partial.unlink()
        raise ClientError(f"{blob.digest}: the bytes received do not match the digest")
    os.replace(partial, path)
    reporter.done(blob.digest, blob.size, "pulled")
