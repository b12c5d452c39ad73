"""The advisory database in S3: one object per (ecosystem, package) under a version prefix, one pointer.

Layout (keys relative to the default storage location's prefix):
  _cve/db/<version>/<ecosystem>/_index.json         the package names that have advisories
  _cve/db/<version>/<ecosystem>/<package>.json      that package's advisories
  repo table item ("_cve", "db")                    the serving version: written last, conditionally

S3 rather than DynamoDB because one package (the Linux kernel, OpenSSL) can carry thousands of
advisories, far past DynamoDB's 400 KB item; a scan reads the pointer (one GetItem), one index per
ecosystem it found, and one object per installed package that has advisories, never the rest.
An update writes a new prefix and flips the pointer only after every object is written, so a scan
sees one whole version; a failed update leaves the pointer, and so the previous version, serving.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from chalicelib.cve.osv import Advisory, advisories_of
from chalicelib.storage.dynamo import Table
from chalicelib.storage.objectstore import ObjectStore

log = logging.getLogger("zotless.cve")
PARTITION = "_cve"  # not a valid repository name: never in the catalog
POINTER_KEY = "db"
PREFIX = "_cve/db/"
WRITERS = 16
CACHE_ENTRIES = 4096


class UpdateLost(RuntimeError):
    """Another update flipped the pointer while this one was writing: its version serves, this one is dropped."""


@dataclass(frozen=True)
class DbVersion:
    """The serving version: what `cve-db status` shows and what every scan result names."""

    version: str
    loaded: int
    source: str
    records: int
    ecosystems: dict[str, dict[str, int]] = field(default_factory=dict)
    previous: str | None = None

    def status(self, now: float | None = None) -> dict[str, Any]:
        age = int((now or time.time()) - self.loaded)
        return {
            "version": self.version,
            "loaded": self.loaded,
            "ageSeconds": age,
            "source": self.source,
            "records": self.records,
            "ecosystems": self.ecosystems,
        }


def _segment(text: str) -> str:
    return quote(text, safe="")


def package_object(version: str, ecosystem: str, package: str) -> str:
    return f"{PREFIX}{version}/{_segment(ecosystem)}/{_segment(package)}.json"


def index_object(version: str, ecosystem: str) -> str:
    return f"{PREFIX}{version}/{_segment(ecosystem)}/_index.json"


def new_version() -> str:
    """Sortable and unique: the load time, then randomness for two loads in one second."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class AdvisoryDb:
    """Reads and replaces the advisory database; reads are cached per version (a version never changes)."""

    def __init__(self, store: ObjectStore, table: Table) -> None:
        self.store = store
        self.table = table
        self._cache: dict[tuple[str, str, str], list[Advisory]] = {}
        self._indexes: dict[tuple[str, str], frozenset[str]] = {}
        self._lock = threading.Lock()

    def current(self) -> DbVersion | None:
        item = self.table.get(PARTITION, POINTER_KEY)
        if item is None:
            return None
        source, records = str(item.get("source", "")), int(item.get("records", 0))
        return DbVersion(str(item["dbVersion"]), int(item["loaded"]), source, records, item.get("ecosystems") or {}, item.get("previous"))

    def packages(self, version: DbVersion, ecosystem: str) -> frozenset[str]:
        """The packages of an ecosystem that have advisories: one read per ecosystem per version."""
        if ecosystem not in version.ecosystems:
            return frozenset()
        key = (version.version, ecosystem)
        if key not in self._indexes:
            body = self.store.get(index_object(version.version, ecosystem))
            self._indexes[key] = frozenset(json.loads(body) if body else [])
        return self._indexes[key]

    def advisories(self, version: DbVersion, ecosystem: str, package: str) -> list[Advisory]:
        key = (version.version, ecosystem, package)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        body = self.store.get(package_object(version.version, ecosystem, package))
        found = [Advisory.from_json(a) for a in json.loads(body)] if body else []
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = found
        return found

    def load(self, records: Iterable[dict[str, Any]], source: str) -> DbVersion:
        """Write a whole new version, then make it the serving one; on any failure the old one keeps serving."""
        previous = self.current()
        grouped, counts = _group(records)
        version = new_version()
        objects = {package_object(version, eco, pkg): [a.as_json() for a in advs] for (eco, pkg), advs in grouped.items()}
        ecosystems: dict[str, list[str]] = defaultdict(list)
        for eco, pkg in grouped:
            ecosystems[eco].append(pkg)
        objects |= {index_object(version, eco): sorted(pkgs) for eco, pkgs in ecosystems.items()}
        try:
            self._write_all(objects)
            loaded = DbVersion(
                version,
                int(time.time()),
                source,
                counts["records"],
                {eco: {"packages": len(pkgs), "advisories": counts[eco]} for eco, pkgs in sorted(ecosystems.items())},
                previous.version if previous else None,
            )
            self._flip(loaded, previous)
        except BaseException:
            self._drop_version(version)
            raise
        if previous and previous.previous:
            self._drop_version(previous.previous)  # two versions stay: a scan that read the old pointer still finds its objects
        return loaded

    def _write_all(self, objects: dict[str, Any]) -> None:
        with ThreadPoolExecutor(WRITERS) as pool:
            for done in [pool.submit(self.store.put, key, json.dumps(body).encode(), content_type="application/json") for key, body in objects.items()]:
                done.result()

    def _flip(self, loaded: DbVersion, previous: DbVersion | None) -> None:
        """One conditional write: it succeeds only if the pointer still names the version this load started from."""
        fields = {k: v for k, v in loaded.__dict__.items() if v is not None and k != "version"}
        item = {"repo": PARTITION, "key": POINTER_KEY, "dbVersion": loaded.version, **fields}
        if previous is None:
            written = self.table.put(item, "attribute_not_exists(repo)")
        else:
            written = self.table.put(item, "dbVersion = :old", {":old": previous.version})
        if not written:
            raise UpdateLost(f"another update replaced version {previous.version if previous else '(none)'} meanwhile")

    def _drop_version(self, version: str) -> None:
        try:
            self.store.delete(*[o.key for o in self.store.list(f"{PREFIX}{version}/")])
        except Exception:  # cleanup is best effort: an unreferenced prefix costs storage, never a wrong answer
            log.exception("could not remove advisory database version %s", version)


def _group(records: Iterable[dict[str, Any]]) -> tuple[dict[tuple[str, str], list[Advisory]], dict[str, int]]:
    grouped: dict[tuple[str, str], list[Advisory]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        counts["records"] += 1
        for ecosystem, package, advisory in advisories_of(record):
            grouped[(ecosystem, package)].append(advisory)
            counts[ecosystem] += 1
    return grouped, counts
