"""Fixture images for CVE scanning: layers holding real package database files, and small OSV records."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.cve.results import NotScanned, ScanResult
    from chalicelib.cve.service import CveService



def tag_result(cve: CveService, repo: str, tag: str) -> ScanResult | NotScanned:
    """The cached scan result of a tag's manifest, as search's CVEListForImage reads it (the tag must exist)."""
    stored = cve.index.tagged(repo, tag)
    assert stored is not None, f"{repo}:{tag} is not tagged"
    return cve.result(stored.digest)


DEBIAN_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
ALPINE_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n'


def tar_bytes(files: dict[str, bytes | None]) -> bytes:
    """A tar of files; None makes a directory."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def gzip_layer(files: dict[str, bytes | None]) -> bytes:
    return gzip.compress(tar_bytes(files), compresslevel=1, mtime=0)


def zstd_layer(files: dict[str, bytes | None]) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(tar_bytes(files))


def dpkg_entry(name: str, version: str, source: str | None = None) -> str:
    lines = [f"Package: {name}", "Status: install ok installed", "Architecture: amd64", f"Version: {version}"]
    if source:
        lines.insert(2, f"Source: {source}")
    lines.append("Description: a package\n long description line")
    return "\n".join(lines) + "\n"


def dpkg_status(*entries: str) -> bytes:
    return "\n".join(entries).encode()


def apk_installed(*packages: tuple[str, str, str]) -> bytes:
    """(name, version, origin) triples as /lib/apk/db/installed lists them."""
    return "\n".join(f"C:Q1abc=\nP:{n}\nV:{v}\nA:x86_64\no:{o}\n" for n, v, o in packages).encode()


def dist_info(name: str, version: str) -> dict[str, bytes]:
    folder = f"usr/lib/python3/dist-packages/{name.replace('-', '_')}-{version}.dist-info"
    return {f"{folder}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nLong description\nName: wrong\n".encode()}


def npm_package(name: str, version: str, root: str = "app") -> dict[str, bytes]:
    return {f"{root}/node_modules/{name}/package.json": json.dumps({"name": name, "version": version, "description": "x"}).encode()}


def osv(record_id: str, ecosystem: str, package: str, *, fixed: str | None = None, introduced: str = "0", aliases: list[str] | None = None,
        severity: list[dict[str, str]] | None = None, summary: str = "", **extra: object) -> dict[str, object]:
    events: list[dict[str, str]] = [{"introduced": introduced}] + ([{"fixed": fixed}] if fixed else [])
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": "2024-01-01T00:00:00Z",
        "aliases": aliases or [],
        "summary": summary or f"{record_id} in {package}",
        "details": f"details of {record_id}",
        "severity": severity or [],
        "references": [{"type": "ADVISORY", "url": f"https://example.test/{record_id}"}],
        "affected": [{"package": {"ecosystem": ecosystem, "name": package}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}],
        **extra,
    }


CRITICAL = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]


def standard_records() -> list[dict[str, object]]:
    """Advisories for the fixture packages: openssl (Debian), musl (Alpine), requests (PyPI), lodash (npm)."""
    return [
        osv("DSA-5532-1", "Debian:12", "openssl", fixed="3.0.11-1~deb12u2", aliases=["CVE-2023-5363"], severity=CRITICAL),
        osv("DEBIAN-CVE-2023-9999", "Debian:12", "zlib", upstream=["CVE-2023-9999"]),
        osv("ALPINE-CVE-2024-0001", "Alpine:v3.19", "musl", fixed="1.2.4_git20230717-r5", aliases=["CVE-2024-0001"],
            database_specific={"severity": "moderate"}),
        osv("GHSA-j8r2-6x86-q33q", "PyPI", "requests", fixed="2.31.0", aliases=["CVE-2023-32681"],
            severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"}]),
        osv("GHSA-35jh-r3h4-6jhm", "npm", "lodash", fixed="4.17.21", aliases=["CVE-2021-23337"]),
    ]


ALMA_RELEASE = b'NAME="AlmaLinux"\nID="almalinux"\nVERSION_ID="9.3"\n'


def rpm_header_blob(name: str, version: str, release: str, epoch: int | None, sourcerpm: str) -> bytes:
    """An RPM header as rpmdb.sqlite stores it: counts, 16-byte index entries (tag, type, offset, count), data."""
    import struct

    entries, data = [], b""
    fields: list[tuple[int, int, bytes]] = [(1000, 6, name.encode() + b"\0"), (1001, 6, version.encode() + b"\0"), (1002, 6, release.encode() + b"\0")]
    if epoch is not None:
        fields.append((1003, 4, struct.pack(">i", epoch)))
    fields.append((1044, 6, sourcerpm.encode() + b"\0"))
    for tag, kind, value in fields:
        if kind == 4:
            data += b"\0" * (-len(data) % 4)  # INT32 data is 4-aligned
        entries.append(struct.pack(">iiii", tag, kind, len(data), 1))
        data += value
    return struct.pack(">ii", len(entries), len(data)) + b"".join(entries) + data


def rpmdb_sqlite(*headers: bytes) -> bytes:
    """A SQLite rpmdb: the Packages table rpm 4.16+ writes, one header blob per row."""
    import sqlite3

    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(h,) for h in headers])
    connection.commit()
    data = connection.serialize()
    connection.close()
    return data
