"""Finding installed packages in an image's files: dpkg, apk, Python distributions, npm, and os-release.

`wanted` names the files to keep while layers stream past (reduced to what a finder reads);
`inventory` turns the merged files into packages. RPM is read from SQLite rpmdb (RHEL 9 and its
rebuilds, Fedora 33+): each row is a binary RPM header, of which NAME, EPOCH, VERSION, RELEASE and
SOURCERPM are decoded. Berkeley DB (RHEL 7 and 8) and ndb (SUSE) databases are not read.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.cve.layers import Reducer
from chalicelib.cve.osv import normalize_pypi

OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_DIR = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
RPM_SQLITE = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
RPM_TAGS = {1000: "name", 1001: "version", 1002: "release", 1003: "epoch", 1044: "sourcerpm"}
RPM_STRING, RPM_INT32, RPM_I18N = 6, 4, 9
HEADER_LIMIT = 64 << 10


@dataclass(frozen=True)
class Package:
    """An installed package: `match_*` is what advisories name (a Debian source package, an Alpine origin)."""

    kind: str  # "os", "PyPI" or "npm"
    name: str
    version: str
    path: str
    match_name: str
    match_version: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Inventory:
    distro: str  # os-release ID: "debian", "ubuntu", "alpine"; "" when none
    release: str  # os-release VERSION_ID
    packages: list[Package]

    def as_json(self) -> dict[str, Any]:
        return {"distro": self.distro, "release": self.release, "packages": [p.as_json() for p in self.packages]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        return cls(data.get("distro", ""), data.get("release", ""), [Package(**p) for p in data.get("packages", [])])

    def ecosystems(self, known: list[str]) -> list[str]:
        """The OS ecosystems of the database that apply: "Debian:12", "Alpine:v3.19", "Ubuntu:22.04:LTS"."""
        family = {"debian": "Debian", "ubuntu": "Ubuntu", "alpine": "Alpine", "almalinux": "AlmaLinux", "rocky": "Rocky Linux"}.get(self.distro)
        if not family or not self.release:
            return []
        release = self.release
        if family == "Alpine":
            release = "v" + ".".join(release.split(".")[:2])
        elif family in ("AlmaLinux", "Rocky Linux"):
            release = release.split(".")[0]
        exact = f"{family}:{release}"
        return [e for e in known if e == exact or e.startswith(exact + ":")]


def _whole(data: bytes) -> bytes:
    return data


def _headers(data: bytes) -> bytes:
    """A METADATA or PKG-INFO file's headers: everything before the description."""
    return data[:HEADER_LIMIT].split(b"\n\n", 1)[0]


def _npm_identity(data: bytes) -> bytes | None:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("name"), str) or not isinstance(document.get("version"), str):
        return None
    return json.dumps({"name": document["name"], "version": document["version"]}).encode()


def _is_npm_package(path: str) -> bool:
    """node_modules/<name>/package.json or node_modules/@scope/<name>/package.json, at any depth."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith("@")
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


def wanted(path: str) -> Reducer | None:
    """Which files the finders read, and how much of each."""
    if path in OS_RELEASE or path in (DPKG_STATUS, APK_INSTALLED) or path in RPM_SQLITE:
        return _whole
    if path.startswith(DPKG_STATUS_DIR) and not path.endswith(".md5sums"):
        return _whole
    if path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO")):
        return _headers
    if _is_npm_package(path):
        return _npm_identity
    return None


def _paragraphs(text: str) -> list[dict[str, str]]:
    """Debian control paragraphs: `Field: value` lines, continuation lines start with a space."""
    found = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and last:
                continue  # continuation (descriptions, conffiles): nothing a finder needs
            name, sep, value = line.partition(":")
            if sep:
                last = name.strip()
                fields[last] = value.strip()
        if fields:
            found.append(fields)
    return found


def dpkg_packages(text: str, path: str) -> list[Package]:
    packages = []
    for fields in _paragraphs(text):
        name, version = fields.get("Package"), fields.get("Version")
        status = fields.get("Status", "install ok installed").split()
        if not name or not version or status[-1:] != ["installed"]:
            continue
        source, _, source_version = fields.get("Source", name).partition(" ")
        source_version = source_version.strip("() ") or version
        packages.append(Package("os", name, version, path, source or name, source_version))
    return packages


def apk_packages(text: str, path: str) -> list[Package]:
    packages = []
    for block in re.split(r"\n\s*\n", text):
        fields = dict(line.split(":", 1) for line in block.splitlines() if len(line) > 2 and line[1] == ":")
        name, version = fields.get("P"), fields.get("V")
        if name and version:
            packages.append(Package("os", name, version, path, fields.get("o") or name, version))
    return packages


def python_package(text: str, path: str) -> Package | None:
    fields = _paragraphs(text)
    if not fields or not fields[0].get("Name") or not fields[0].get("Version"):
        return None
    name, version = fields[0]["Name"], fields[0]["Version"]
    return Package("PyPI", name, version, posixpath.dirname(path), normalize_pypi(name), version)


def rpm_header(blob: bytes) -> dict[str, str | int]:
    """The tags a scan needs from one header blob: index count, data length, 16-byte entries, then data."""
    import struct

    count, length = struct.unpack(">ii", blob[:8])
    data = blob[8 + 16 * count : 8 + 16 * count + length]
    found: dict[str, str | int] = {}
    for n in range(count):
        tag, kind, offset, _ = struct.unpack(">iiii", blob[8 + 16 * n : 24 + 16 * n])
        if tag not in RPM_TAGS:
            continue
        if kind in (RPM_STRING, RPM_I18N):
            found[RPM_TAGS[tag]] = data[offset : data.index(b"\0", offset)].decode(errors="replace")
        elif kind == RPM_INT32:
            found[RPM_TAGS[tag]] = struct.unpack(">i", data[offset : offset + 4])[0]
    return found


def rpm_packages(database: bytes, path: str) -> list[Package]:
    """Installed RPMs from a SQLite rpmdb, matched by source RPM name and the package's [epoch:]version-release."""
    import sqlite3
    import struct

    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(database)
        rows = connection.execute("SELECT blob FROM Packages").fetchall()
    except sqlite3.Error:
        return []
    finally:
        connection.close()
    packages = []
    for (blob,) in rows:
        try:
            header = rpm_header(bytes(blob))
        except (struct.error, ValueError):
            continue
        if "name" not in header or "version" not in header or header["name"] == "gpg-pubkey":
            continue
        evr = f"{header['version']}-{header.get('release', '')}".rstrip("-")
        evr = f"{header['epoch']}:{evr}" if header.get("epoch") else evr
        source = str(header.get("sourcerpm") or "").removesuffix(".src.rpm").rsplit("-", 2)[0] or str(header["name"])
        packages.append(Package("os", str(header["name"]), evr, path, source, evr))
    return packages


def os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip().strip("\"'")
    return values


def inventory(files: dict[str, bytes]) -> Inventory:
    """The packages installed in the merged file system."""
    release_file = next((files[p] for p in OS_RELEASE if p in files), b"")
    release = os_release(release_file.decode(errors="replace"))
    packages: list[Package] = []
    for path in sorted(files):
        if path in RPM_SQLITE:
            packages += rpm_packages(files[path], path)
            continue
        text = files[path].decode(errors="replace")
        if path == DPKG_STATUS or path.startswith(DPKG_STATUS_DIR):
            packages += dpkg_packages(text, path)
        elif path == APK_INSTALLED:
            packages += apk_packages(text, path)
        elif path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO")):
            found = python_package(text, path)
            packages += [found] if found else []
        elif path.endswith("package.json"):
            identity = json.loads(files[path])
            packages.append(Package("npm", identity["name"], identity["version"], path, identity["name"], identity["version"]))
    return Inventory(release.get("ID", ""), release.get("VERSION_ID", ""), packages)
