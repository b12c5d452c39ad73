"""What zot's search types say about images and repositories, built from index items alone (no S3, no GraphQL).

Dictionaries carry the schema's field names, so GraphQL's default resolvers read them as they are;
keys starting with "_" are ours (sort keys, filters) and never reach a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

# Signature artifacts as zot recognises them: cosign's referrer artifactType and notation's.
SIGNATURE_TYPES = {"application/vnd.dev.cosign.artifact.sig.v1+json": "cosign", "application/vnd.cncf.notary.signature": "notation"}
# cosign's tag scheme: sha256-<hex>.sig (signature), .att (attestation), .sbom; these tags are not images.
COSIGN_TAG = re.compile(r"^(sha256|sha512)-([0-9a-f]{64,128})\.(sig|att|sbom)$")
EMPTY_VULNERABILITIES = {"MaxSeverity": "", "Count": 0, "UnknownCount": 0, "LowCount": 0, "MediumCount": 0, "HighCount": 0, "CriticalCount": 0}
# OCI annotation, then the label-schema label zot falls back to (pkg/extensions/search/convert/annotations.go).
ANNOTATION_FIELDS = {
    "Description": ("org.opencontainers.image.description", "org.label-schema.description"),
    "Licenses": ("org.opencontainers.image.licenses", "org.label-schema.license"),
    "Title": ("org.opencontainers.image.title", "org.label-schema.name"),
    "Documentation": ("org.opencontainers.image.documentation", "org.label-schema.usage"),
    "Source": ("org.opencontainers.image.source", "org.label-schema.vcs-url"),
    "Vendor": ("org.opencontainers.image.vendor", "org.label-schema.vendor"),
    "Authors": ("org.opencontainers.image.authors", "org.opencontainers.image.authors"),
    "Labels": ("org.label-schema.labels", "org.label-schema.labels"),
}
CREATED_KEYS = ("org.opencontainers.image.created", "org.label-schema.build-date")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: Any) -> float | None:
    """Seconds since the epoch from an RFC 3339 text (nanoseconds allowed), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def format_time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def annotated(sources: list[dict[str, str]]) -> dict[str, str]:
    """zot's rule per field: the OCI annotation, else the label-schema key; annotations before config labels."""
    out: dict[str, str] = {}
    for field, keys in ANNOTATION_FIELDS.items():
        out[field] = next((str(source[key]) for source in sources for key in keys if source.get(key)), "")
    return out


def platform(raw: dict[str, Any] | None) -> dict[str, str]:
    raw = raw or {}
    return {"Os": str(raw.get("os") or ""), "Arch": str(raw.get("architecture") or "")}


def _digest(item: dict[str, Any]) -> str:
    return str(item["key"])[2:]


@dataclass
class RepoContent:
    """One repository's manifest and tag items (one walk over its partition) and what search derives from them."""

    repo: str
    manifests: dict[str, dict[str, Any]]
    tags: dict[str, dict[str, Any]]

    @classmethod
    def from_items(cls, repo: str, manifests: list[dict[str, Any]], tags: list[dict[str, Any]]) -> RepoContent:
        return cls(repo, {_digest(m): m for m in manifests}, {str(t["key"])[2:]: t for t in tags})

    @cached_property
    def signatures(self) -> dict[str, list[dict[str, Any]]]:
        """Signatures per signed digest: cosign or notation referrers, and cosign's sha256-<hex>.sig tags."""
        found: dict[str, list[dict[str, Any]]] = {}
        for item in self.manifests.values():
            tool = SIGNATURE_TYPES.get(str(item.get("artifactType") or ""))
            if tool and item.get("subject"):
                found.setdefault(str(item["subject"]), []).append({"Tool": tool, "IsTrusted": False, "Author": ""})
        for tag in self.tags:
            matched = COSIGN_TAG.match(tag)
            if matched and matched.group(3) == "sig":
                found.setdefault(f"{matched.group(1)}:{matched.group(2)}", []).append({"Tool": "cosign", "IsTrusted": False, "Author": ""})
        return found

    @cached_property
    def referrers(self) -> dict[str, list[dict[str, Any]]]:
        """The schema's Referrer objects per subject digest."""
        found: dict[str, list[dict[str, Any]]] = {}
        for digest, item in self.manifests.items():
            if item.get("subject"):
                found.setdefault(str(item["subject"]), []).append(referrer(digest, item))
        return found

    def image_tags(self) -> list[str]:
        """Tags that name images: signatures (cosign's tag scheme, attestations, SBOMs, signature artifacts) are not listed, as in zot."""
        return sorted(t for t, item in self.tags.items() if not COSIGN_TAG.match(t) and self._is_image(str(item.get("digest"))))

    def _is_image(self, digest: str) -> bool:
        item = self.manifests.get(digest)
        return item is not None and str(item.get("artifactType") or "") not in SIGNATURE_TYPES

    def image(self, tag: str) -> dict[str, Any] | None:
        item = self.tags.get(tag)
        if item is None or str(item.get("digest")) not in self.manifests:
            return None
        return self.image_summary(tag, str(item["digest"]), item)

    def image_summary(self, tag: str, digest: str, tag_item: dict[str, Any] | None = None) -> dict[str, Any]:
        """The schema's ImageSummary of one tag (an image manifest, or an index with a ManifestSummary per child)."""
        item = self.manifests[digest]
        children = [self.manifests[str(c["digest"])] for c in item.get("children") or [] if str(c.get("digest")) in self.manifests]
        images = children if item.get("children") else [item]
        manifests = [self.manifest_summary(_digest(m), m) for m in images]
        sources = [s for m in [item, *images] for s in (m.get("annotations") or {}, m.get("labels") or {})]
        updated = max((m["_updated"] for m in manifests), default=None) or self.updated(item)
        size = int(item.get("size", 0)) + sum(int(m.get("totalSize", 0)) for m in children) if item.get("children") else int(item.get("totalSize", 0))
        signatures = self.signatures.get(digest, [])
        return {
            "RepoName": self.repo,
            "Tag": tag,
            "Digest": digest,
            "MediaType": item.get("mediaType"),
            "Manifests": manifests,
            "Size": str(size),
            "DownloadCount": int(item.get("downloads", 0)),
            "LastPullTimestamp": None,
            "PushTimestamp": format_time(item.get("pushed")),
            "PushedBy": None,
            "TaggedTimestamp": format_time((tag_item or {}).get("pushed") or item.get("pushed")),
            "LastUpdated": format_time(updated),
            "IsSigned": bool(signatures),
            "SignatureInfo": signatures,
            "Vulnerabilities": dict(EMPTY_VULNERABILITIES),
            "Referrers": self.referrers.get(digest, []),
            "ArtifactType": item.get("artifactType") if item.get("children") else item.get("artifactType") or (item.get("config") or {}).get("mediaType"),
            "_updated": updated or 0,
            "_platforms": [m["Platform"] for m in manifests],
            "_layers": [str(layer["digest"]) for layer in item.get("layers") or []],
            **annotated(sources),
        }

    def updated(self, item: dict[str, Any]) -> float | None:
        """zot's LastUpdated: the config's created (or the created annotation), else when it was pushed."""
        created = parse_time(item.get("created"))
        if created is None:
            annotations = item.get("annotations") or {}
            created = next((t for key in CREATED_KEYS if (t := parse_time(annotations.get(key))) is not None), None)
        return created if created is not None else (float(item["pushed"]) if item.get("pushed") is not None else None)

    def manifest_summary(self, digest: str, item: dict[str, Any]) -> dict[str, Any]:
        """The schema's ManifestSummary: one image manifest with its layers and history."""
        layers = [{"Size": str(layer.get("size", 0)), "Digest": layer.get("digest")} for layer in item.get("layers") or []]
        updated = self.updated(item)
        signatures = self.signatures.get(digest, [])
        return {
            "Digest": digest,
            "ConfigDigest": (item.get("config") or {}).get("digest"),
            "LastUpdated": format_time(updated),
            "Size": str(item.get("totalSize", 0)),
            "IsSigned": bool(signatures),
            "SignatureInfo": signatures,
            "Platform": platform((item.get("platforms") or [None])[0]),
            "DownloadCount": int(item.get("downloads", 0)),
            "Layers": layers,
            "History": history(item.get("history") or [], layers),
            "Vulnerabilities": dict(EMPTY_VULNERABILITIES),
            "Referrers": self.referrers.get(digest, []),
            "ArtifactType": item.get("artifactType") or (item.get("config") or {}).get("mediaType"),
            "_updated": updated or 0,
        }

    def images(self) -> list[dict[str, Any]]:
        return [summary for tag in self.image_tags() if (summary := self.image(tag)) is not None]

    def summary(self) -> dict[str, Any]:
        """The RepoSummary facts that depend on nobody's identity (`_images` 0: no tagged image, listed nowhere)."""
        images = self.images()
        sizes: dict[str, int] = {}
        for digest, item in self.manifests.items():
            sizes[digest] = int(item.get("size", 0))
            for blob in [item.get("config"), *(item.get("layers") or [])]:
                if blob:
                    sizes[str(blob["digest"])] = int(blob.get("size", 0))
        newest = max(images, key=lambda image: (image["_updated"], image["Tag"]), default=None)
        platforms = list({(p["Os"], p["Arch"]): p for image in images for p in image["_platforms"] if p["Os"] or p["Arch"]}.values())
        return {
            "Name": self.repo,
            "LastUpdated": newest["LastUpdated"] if newest else None,
            "Size": str(sum(sizes.values())),
            "Platforms": platforms,
            "Vendors": sorted({image["Vendor"] for image in images if image["Vendor"]}),
            "NewestImage": newest,
            "DownloadCount": sum(int(item.get("downloads", 0)) for item in self.manifests.values()),
            "_updated": newest["_updated"] if newest else 0,
            "_signed": any(image["IsSigned"] for image in images),
            "_images": len(images),
        }

    def listing(self) -> list[dict[str, Any]]:
        """One listing row per image (cached apart from the summary, in the LISTINGS partition)."""
        return [listing_row(image) for image in self.images()]


def listing_row(image: dict[str, Any]) -> dict[str, Any]:
    """What a cross-repository listing sorts, filters and matches an image by, kept in the repository's cached summary.

    ImageListForCVE and Derived/BaseImageList read these for every readable repository at once (the
    `_listings` partition) and read a repository's partition only for the images their page shows.
    """
    stacks = [[str(layer["Digest"]) for layer in m["Layers"]] for m in image["Manifests"]]
    kept = {key: image[key] for key in ("Tag", "Digest", "_updated", "_platforms", "IsSigned")}
    return {**kept, "_stacks": stacks}


def referrer(digest: str, item: dict[str, Any]) -> dict[str, Any]:
    annotations = item.get("annotations") or {}
    return {
        "MediaType": item.get("mediaType"),
        "ArtifactType": item.get("artifactType"),
        "Size": int(item.get("size", 0)),
        "Digest": digest,
        "Annotations": [{"Key": k, "Value": str(v)} for k, v in sorted(annotations.items())],
    }


def history(steps: list[dict[str, Any]], layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """zot's pairing: each history step that is not an empty layer takes the next layer in order."""
    out, remaining = [], iter(layers)
    for step in steps:
        empty = bool(step.get("empty_layer"))
        description = {
            "Created": format_time(parse_time(step.get("created"))),
            "CreatedBy": step.get("created_by", ""),
            "Author": step.get("author", ""),
            "Comment": step.get("comment", ""),
            "EmptyLayer": empty,
        }
        out.append({"Layer": None if empty else next(remaining, None), "HistoryDescription": description})
    return out
