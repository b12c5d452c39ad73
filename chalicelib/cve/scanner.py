"""An image's installed packages from its layers in S3, and their match against one database version."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from chalicelib.cve.database import AdvisoryDb, DbVersion
from chalicelib.cve.layers import COMPRESSION, UnreadableLayer, apply_layer, open_layer
from chalicelib.cve.osv import SEVERITIES
from chalicelib.cve.packages import Inventory, Package, inventory, wanted
from chalicelib.spec.manifests import IMAGE_CONFIG_TYPES
from chalicelib.spec.references import Digest

READERS = 8


class Blobs(Protocol):
    """What the scanner needs of the registry: the model's Registry and RoutedRegistry have it."""

    def blob(self, repo: str, digest: Digest) -> Any: ...

    def blob_bytes(self, repo: str, location: Any, first: int | None = None, last: int | None = None) -> Iterator[bytes]: ...


def check_readable(manifest: dict[str, Any]) -> None:
    """An image whose config or layers this scanner cannot read is not scanned: never reported clean."""
    config_type = (manifest.get("config") or {}).get("mediaType")
    if config_type not in IMAGE_CONFIG_TYPES:
        raise UnreadableLayer(f"config media type {config_type} is not an image's")
    for layer in manifest.get("layers") or []:
        if layer.get("mediaType") not in COMPRESSION:
            raise UnreadableLayer(f"layer media type {layer.get('mediaType')} is not readable")


def read_inventory(blobs: Blobs, repo: str, manifest: dict[str, Any]) -> Inventory:
    """Stream every layer in order, lowest first, keeping only package databases."""
    check_readable(manifest)
    files: dict[str, bytes] = {}
    for layer in manifest.get("layers") or []:
        location = blobs.blob(repo, Digest.parse(layer["digest"]))
        stream = open_layer(blobs.blob_bytes(repo, location), layer["mediaType"])
        try:
            apply_layer(stream, wanted, files)
        finally:
            stream.close()
    return inventory(files)


def _targets(found: Inventory, db: AdvisoryDb, version: DbVersion) -> list[tuple[Package, str]]:
    """(package, ecosystem) pairs whose package has advisories in this version."""
    os_ecosystems = found.ecosystems(list(version.ecosystems))
    pairs = []
    for package in found.packages:
        for ecosystem in os_ecosystems if package.kind == "os" else [package.kind]:
            if package.match_name in db.packages(version, ecosystem):
                pairs.append((package, ecosystem))
    return pairs


def match(found: Inventory, db: AdvisoryDb, version: DbVersion) -> list[dict[str, Any]]:
    """The vulnerabilities of an inventory, one per CVE id, each with the packages it hits (zot's CVE shape)."""
    pairs = _targets(found, db, version)
    wanted_objects = sorted({(eco, p.match_name) for p, eco in pairs})
    with ThreadPoolExecutor(READERS) as pool:
        loaded = dict(zip(wanted_objects, pool.map(lambda key: db.advisories(version, *key), wanted_objects), strict=True))
    cves: dict[str, dict[str, Any]] = {}
    packages: dict[str, dict[tuple[str, str], dict[str, str]]] = defaultdict(dict)
    for package, ecosystem in pairs:
        for advisory in loaded[(ecosystem, package.match_name)]:
            hit, fix = advisory.match(package.match_version, ecosystem)
            if not hit:
                continue
            cve = cves.setdefault(advisory.name, {"Id": advisory.name, "Title": "", "Description": "", "Reference": "", "Severity": "UNKNOWN"})
            cve["Title"] = cve["Title"] or advisory.title
            cve["Description"] = cve["Description"] or advisory.description
            cve["Reference"] = cve["Reference"] or advisory.reference
            cve["Severity"] = max(cve["Severity"], advisory.severity, key=SEVERITIES.index)
            info = {"Name": package.name, "PackagePath": package.path, "InstalledVersion": package.version, "FixedVersion": fix}
            previous = packages[advisory.name].get((package.name, package.path))
            if previous is None or (fix and not previous["FixedVersion"]):
                packages[advisory.name][(package.name, package.path)] = info
    return [dict(cve, PackageList=sorted(packages[name].values(), key=lambda p: (p["Name"], p["PackagePath"]))) for name, cve in sorted(cves.items())]
