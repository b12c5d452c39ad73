"""An image read from anywhere push, pull and copy take one: an OCI layout, a docker archive, a directory, a registry.

Every source becomes the same Image: its blobs (opened lazily, at an offset, so a push resumes), its manifests
children first, and the referrers that point at them, so indexes, referrers and annotations travel together.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from chalicelib.cli.client.errors import ClientError, not_found
from chalicelib.cli.client.http import Registry
from chalicelib.cli.client.references import ArchiveRef, DirectoryRef, LayoutRef, Ref, RegistryRef, parse_digest
from chalicelib.spec.manifests import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from chalicelib.spec.references import Digest

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
MANIFEST_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST]
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
ARTIFACT_TYPE = "application/vnd.unknown.artifact.v1"  # oras push's default
EMPTY_JSON = b"{}"


def sha256(data: bytes) -> str:
    return str(Digest.of(data))


def _json(body: bytes | str, where: str) -> Any:
    """Parse JSON from a layout or a registry; bad JSON is a one-line error, never a traceback."""
    try:
        return json.loads(body)
    except ValueError as error:
        raise ClientError(f"{where}: not valid JSON ({error})") from None


def json_document(body: bytes | str, where: str) -> dict[str, Any]:
    """A manifest, index or index.json: JSON that must be an object."""
    document = _json(body, where)
    if not isinstance(document, dict):
        raise ClientError(f"{where}: expected a JSON object")
    return document


def descriptor_digest(descriptor: object, where: str) -> str:
    """The digest a descriptor names, checked by the spec's grammar (a `../` digest never becomes a path)."""
    value = descriptor.get("digest") if isinstance(descriptor, dict) else None
    return str(parse_digest(value, where))


@dataclass
class Blob:
    """A layer or config: its digest and size, and how to read it from a byte offset on."""

    digest: str
    size: int
    open: Callable[[int], IO[bytes]]
    media_type: str = "application/octet-stream"


@dataclass
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        return json_document(self.body, f"manifest {self.digest}")


@dataclass
class Image:
    """manifests: children before parents, the last one is what the tag names; referrers are pushed after, by digest."""

    manifests: list[Manifest]
    blobs: dict[str, Blob]
    referrers: list[Manifest] = field(default_factory=list)
    tag: str | None = None

    @property
    def top(self) -> Manifest:
        return self.manifests[-1]


def descriptors(document: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(child manifests, blobs) a manifest or index names."""
    if document.get("manifests") is not None:
        return list(document["manifests"]), []
    blobs = [document["config"]] if document.get("config") else []
    return [], blobs + list(document.get("layers") or [])


class Walker:
    """Collects a manifest tree from a source that can fetch a manifest and open a blob by descriptor."""

    def __init__(self, fetch: Callable[[str, str], Manifest], blob: Callable[[dict], Blob]) -> None:
        self.fetch = fetch
        self.blob = blob
        self.manifests: list[Manifest] = []
        self.blobs: dict[str, Blob] = {}
        self.seen: set[str] = set()

    def walk(self, manifest: Manifest) -> None:
        if manifest.digest in self.seen:
            return
        self.seen.add(manifest.digest)
        children, blobs = descriptors(manifest.document)
        where = f"manifest {manifest.digest}"
        for child in children:
            self.walk(self.fetch(descriptor_digest(child, where), child.get("mediaType", OCI_MANIFEST)))
        for descriptor in blobs:
            digest = descriptor_digest(descriptor, where)
            if digest not in self.blobs:
                self.blobs[digest] = self.blob({**descriptor, "digest": digest})
        self.manifests.append(manifest)


def read_image(ref: Ref, registry: Registry | None = None) -> Image:
    """The image a SOURCE names; registry is the session for a RegistryRef."""
    if isinstance(ref, LayoutRef):
        return read_layout(ref)
    if isinstance(ref, ArchiveRef):
        return read_archive(ref.path)
    if isinstance(ref, DirectoryRef):
        return read_directory(ref.path)
    assert registry is not None
    return read_remote(registry, ref)


# OCI image layout


def _open_file(path: Path) -> Callable[[int], IO[bytes]]:
    def opener(offset: int) -> IO[bytes]:
        handle = path.open("rb")
        handle.seek(offset)
        return handle

    return opener


def read_layout(ref: LayoutRef) -> Image:
    """The manifest tagged ref.tag in index.json (or its only one), its tree, and the untagged manifests that refer to it."""
    root = ref.path
    if not (root / "index.json").is_file():
        raise ClientError(f"{root}: not an OCI image layout (no index.json)")
    index = json_document((root / "index.json").read_bytes(), f"{root / 'index.json'}")
    entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
    chosen = _choose(entries, ref)

    def blob_path(digest: str) -> Path:
        return layout_blob_path(root, digest)

    def fetch(digest: str, media_type: str) -> Manifest:
        path = blob_path(digest)
        if not path.is_file():
            raise ClientError(f"{root}: blob {digest} is missing")
        body = path.read_bytes()
        return Manifest(digest, json_document(body, f"{root}: manifest {digest}").get("mediaType") or media_type, body)

    def blob(descriptor: dict) -> Blob:
        path = blob_path(descriptor["digest"])
        if not path.is_file():
            raise ClientError(f"{root}: blob {descriptor['digest']} is missing")
        return Blob(descriptor["digest"], path.stat().st_size, _open_file(path), descriptor.get("mediaType", "application/octet-stream"))

    walker = Walker(fetch, blob)
    where = f"{root / 'index.json'}"
    walker.walk(fetch(descriptor_digest(chosen, where), chosen.get("mediaType", OCI_MANIFEST)))
    image_manifests = list(walker.manifests)
    subjects = {m.digest for m in image_manifests}
    for entry in entries:
        digest = descriptor_digest(entry, where)
        if digest in walker.seen:
            continue
        candidate = fetch(digest, entry.get("mediaType", OCI_MANIFEST))
        if (candidate.document.get("subject") or {}).get("digest") in subjects:
            walker.walk(candidate)
    referrers = [m for m in walker.manifests if m.digest not in subjects]
    tag = ref.tag or (chosen.get("annotations") or {}).get(REF_NAME)
    return Image(image_manifests, walker.blobs, referrers, tag)


def layout_blob_path(root: Path, digest: str) -> Path:
    """blobs/ALGORITHM/HEX, built only from a parsed digest so it stays inside the layout."""
    parsed = parse_digest(digest, f"{root}")
    return root / "blobs" / parsed.algorithm / parsed.hex


def _choose(entries: list[dict], ref: LayoutRef) -> dict:
    if ref.tag:
        for entry in entries:
            if (entry.get("annotations") or {}).get(REF_NAME) == ref.tag:
                return entry
        raise not_found(f"{ref.path}:{ref.tag}")
    tagged = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME)]
    candidates = tagged or entries
    if len(candidates) != 1:
        raise ClientError(f"{ref.path}: holds {len(candidates)} images; name one as oci:PATH:TAG")
    return candidates[0]


# docker save archives


def read_archive(path: Path) -> Image:
    """`docker save` output: its manifest.json becomes a Docker v2 manifest (layers as uncompressed tars)."""
    try:
        with tarfile.open(path, "r:") as archive:
            return _archive_image(path, archive)
    except (OSError, tarfile.TarError) as error:
        raise ClientError(f"{path}: not a readable docker archive ({error})") from error


def _archive_image(path: Path, archive: tarfile.TarFile) -> Image:
    try:
        entries = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    except (KeyError, ValueError) as error:
        raise ClientError(f"{path}: not a docker archive (no manifest.json)") from error
    if len(entries) != 1:
        raise ClientError(f"{path}: holds {len(entries)} images; only single-image archives are supported")
    entry = entries[0]
    config = _archive_blob(path, archive, entry["Config"], DOCKER_CONFIG)
    layers = [_archive_blob(path, archive, name, DOCKER_LAYER_TAR) for name in entry["Layers"]]
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": DOCKER_LAYER_TAR, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    body = json.dumps(document, indent=3).encode()
    tags = entry.get("RepoTags") or []
    tag = tags[0].rsplit(":", 1)[-1] if tags else None
    return Image([Manifest(sha256(body), DOCKER_MANIFEST, body)], {b.digest: b for b in [config, *layers]}, [], tag)


class _Slice(io.RawIOBase):
    """A member's bytes read straight from the uncompressed archive file, so each reader has its own position."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self.handle = path.open("rb")
        self.handle.seek(start)
        self.remaining = length

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        count = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.handle.read(count)
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()
        super().close()


def _archive_blob(path: Path, archive: tarfile.TarFile, name: str, media_type: str) -> Blob:
    """Hashes the member once; reading later opens the archive at the member's data offset."""
    member = archive.getmember(name)
    handle = archive.extractfile(member)
    if handle is None:
        raise ClientError(f"{path}: {name} is not a file")
    hasher = hashlib.sha256()
    while chunk := handle.read(1 << 20):
        hasher.update(chunk)

    def opener(offset: int) -> IO[bytes]:
        return _Slice(path, member.offset_data + offset, member.size - offset)  # type: ignore[return-value]

    return Blob("sha256:" + hasher.hexdigest(), member.size, opener, media_type)


# a directory of files, as an artifact


def read_directory(path: Path) -> Image:
    """Each regular file a layer titled with its relative path, an empty config, oras's default artifactType."""
    if not path.is_dir():
        raise ClientError(f"{path}: not a directory")
    files = sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise ClientError(f"{path}: no files to push")
    blobs = {sha256(EMPTY_JSON): Blob(sha256(EMPTY_JSON), 2, lambda offset: _bytes_reader(EMPTY_JSON, offset), OCI_EMPTY)}
    layers = []
    for file in files:
        digest = _hash_file(file)
        blobs.setdefault(digest, Blob(digest, file.stat().st_size, _open_file(file), OCI_LAYER_TAR))
        title = str(file.relative_to(path))
        layers.append({"mediaType": OCI_LAYER_TAR, "digest": digest, "size": file.stat().st_size, "annotations": {TITLE: title}})
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(EMPTY_JSON), "size": 2, "data": "e30="},
        "layers": layers,
    }
    body = json.dumps(document).encode()
    return Image([Manifest(sha256(body), OCI_MANIFEST, body)], blobs, [], None)


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _bytes_reader(data: bytes, offset: int) -> IO[bytes]:
    return io.BytesIO(data[offset:])


# a registry


def fetch_manifest(registry: Registry, repo: str, reference: str) -> Manifest:
    response = registry.raw("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
    if response.status_code == 404:
        raise not_found(f"{registry.host}/{repo}:{reference}" if ":" not in reference else f"{registry.host}/{repo}@{reference}")
    if response.status_code != 200:
        raise registry.error(response, f"{repo}:{reference}")
    body = response.content
    where = f"{registry.host}/{repo}@{reference}"
    media_type = response.headers.get("Content-Type", "").split(";")[0] or json_document(body, where).get("mediaType", OCI_MANIFEST)
    return Manifest(_checked_digest(body, reference, response.headers.get("Docker-Content-Digest"), where), media_type, body)


def _checked_digest(body: bytes, reference: str, header: str | None, where: str) -> str:
    """The manifest's digest: a requested digest or the registry's header must be the hash of the bytes received."""
    wanted = parse_digest(reference, where) if ":" in reference else None
    named = parse_digest(header, f"{where}: Docker-Content-Digest") if header else None
    for expected in (wanted, named):
        if expected is not None and Digest.of(body, expected.algorithm) != expected:
            raise ClientError(f"{where}: the manifest received does not match digest {expected}")
    return str(wanted or named or Digest.of(body))


def read_remote(registry: Registry, ref: RegistryRef) -> Image:
    """The manifest tree under ref and its referrers (as the referrers API lists them; none where it is missing)."""
    repo = ref.repo

    def blob(descriptor: dict) -> Blob:
        digest = descriptor_digest(descriptor, f"{registry.host}/{repo}")

        def opener(offset: int) -> IO[bytes]:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            response = registry.request("GET", f"/v2/{repo}/blobs/{digest}", expect=(200, 206), headers=headers, stream=True)
            raw = response.raw
            if offset and response.status_code == 200:
                raw.read(offset)
            return raw

        return Blob(digest, int(descriptor["size"]), opener, descriptor.get("mediaType", "application/octet-stream"))

    walker = Walker(lambda digest, _media_type: fetch_manifest(registry, repo, digest), blob)
    walker.walk(fetch_manifest(registry, repo, ref.reference))
    image_manifests = list(walker.manifests)
    queue = [m.digest for m in image_manifests]
    while queue:
        for descriptor in list_referrers(registry, repo, queue.pop()):
            digest = descriptor_digest(descriptor, f"{registry.host}/{repo} referrers")
            if digest not in walker.seen:
                before = len(walker.manifests)
                walker.walk(fetch_manifest(registry, repo, digest))
                queue += [m.digest for m in walker.manifests[before:]]
    referrers = walker.manifests[len(image_manifests) :]
    return Image(image_manifests, walker.blobs, referrers, ref.tag if not ref.digest else None)


def list_referrers(registry: Registry, repo: str, digest: str) -> list[dict]:
    response = registry.raw("GET", f"/v2/{repo}/referrers/{digest}")
    if response.status_code != 200:
        return []
    try:
        return list(response.json().get("manifests") or [])
    except ValueError:
        return []
