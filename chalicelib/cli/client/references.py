"""Image references as skopeo and oras spell them: registry `HOST[:PORT]/REPO[:TAG|@DIGEST]`, `oci:PATH[:TAG]`,
`docker-archive:PATH` and `dir:PATH` (a directory of files pushed as an artifact)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from chalicelib.cli.client.errors import ClientError
from chalicelib.spec.errors import DigestInvalid, NameInvalid
from chalicelib.spec.references import Digest, is_tag, validate_name


@dataclass(frozen=True)
class RegistryRef:
    """An image in a registry: host (with port), repository, and a tag or digest (neither: the tag `latest`)."""

    host: str
    repo: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when given, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        suffix = f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"
        return f"{self.host}/{self.repo}{suffix}"


@dataclass(frozen=True)
class LayoutRef:
    """An OCI image layout directory and the tag (org.opencontainers.image.ref.name) inside it."""

    path: Path
    tag: str | None = None


@dataclass(frozen=True)
class ArchiveRef:
    """A `docker save` tarball."""

    path: Path


@dataclass(frozen=True)
class DirectoryRef:
    """A directory whose files become the layers of an artifact, as `oras push` makes them."""

    path: Path


Ref = RegistryRef | LayoutRef | ArchiveRef | DirectoryRef


def parse_reference(text: str) -> Ref:
    """Any SOURCE or DEST of push, pull and copy; a bad one is a one-line ClientError."""
    for prefix, kind in (("oci:", "oci"), ("docker-archive:", "archive"), ("dir:", "dir")):
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if not rest:
                raise ClientError(f"{text!r}: a path is needed after {prefix}")
            if kind == "oci":
                return _layout(rest)
            return ArchiveRef(Path(rest)) if kind == "archive" else DirectoryRef(Path(rest))
    return parse_registry_reference(text.removeprefix("docker://"))


def _layout(rest: str) -> LayoutRef:
    """oci:PATH[:TAG]; the tag is what follows the last colon, when it is a valid tag and not a path part."""
    path, sep, tag = rest.rpartition(":")
    if sep and path and is_tag(tag) and "/" not in tag:
        return LayoutRef(Path(path), tag)
    return LayoutRef(Path(rest), None)


def parse_registry_reference(text: str) -> RegistryRef:
    """HOST[:PORT]/REPO[:TAG|@DIGEST]; the host is required (there is no default registry)."""
    remainder, _, digest = text.partition("@")
    host, slash, path = remainder.partition("/")
    if not slash or not path or not _looks_like_host(host):
        raise ClientError(f"{text!r}: expected HOST[:PORT]/REPO[:TAG|@DIGEST], oci:PATH[:TAG], docker-archive:PATH or dir:PATH")
    repo, tag = path, None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = path.rsplit(":", 1)
        if not is_tag(tag):
            raise ClientError(f"{text!r}: invalid tag {tag!r}")
    try:
        validate_name(repo)
    except NameInvalid:
        raise ClientError(f"{text!r}: invalid repository name {repo!r} (lowercase letters, digits, . _ - and /)") from None
    if digest:
        parse_digest(digest, repr(text))
    return RegistryRef(host, repo, tag, digest or None)


def _looks_like_host(host: str) -> bool:
    return bool(host) and ("." in host or ":" in host or host == "localhost" or host.startswith("["))


def is_loopback(host: str) -> bool:
    """Loopback hosts speak plain HTTP by default, as oras and skopeo's local use expects."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_image(text: str) -> tuple[str, str]:
    """zli's IMAGE argument, REPO:TAG or REPO@DIGEST (no host), as (repo, reference)."""
    if "@" in text:
        repo, _, digest = text.partition("@")
        return repo, digest
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = text.rsplit(":", 1)
        return repo, tag
    return text, "latest"


def parse_digest(text: object, where: str) -> Digest:
    """A digest from the user, a layout or a registry, checked before it can become a file path or URL."""
    if not isinstance(text, str):
        raise ClientError(f"{where}: a digest is missing")
    try:
        return Digest.parse(text)
    except DigestInvalid:
        raise ClientError(f"{where}: invalid digest {text[:200]!r}") from None
