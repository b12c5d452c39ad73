"""Configuration in zot's JSON shape, validated by pydantic; a few environment variables override it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | int | float) -> float:
    """Go-style durations ("1h", "90s", "1h30m") as zot writes them; plain numbers are seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"invalid duration {value!r}: use forms like 90s, 30m, 1h, 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StorageDriver(_Model):
    name: Literal["s3"] = "s3"
    bucket: str = "zotless"
    region: str | None = None
    regionendpoint: str | None = None
    rootdirectory: str = ""

    @field_validator("rootdirectory")
    @classmethod
    def _normalise_root(cls, value: str) -> str:
        """Store the prefix as "a/b/" (or "") so keys join without double slashes."""
        cleaned = value.strip("/")
        if ".." in cleaned.split("/"):
            raise ValueError("rootdirectory must not contain '..'")
        return f"{cleaned}/" if cleaned else ""


class CacheDriver(_Model):
    name: Literal["dynamodb"] = "dynamodb"
    endpoint: str | None = None
    region: str | None = None
    cacheTablename: str = "ZotlessBlobTable"
    repoMetaTablename: str = "ZotlessRepoMetaTable"
    uploadsTablename: str = "ZotlessUploadsTable"


class KeepTags(_Model):
    """A rule that keeps tags (zot's shape); pull-based criteria are accepted but pulls are not recorded."""

    patterns: list[str] = Field(default_factory=lambda: [".*"])
    pushedWithin: float | None = None
    pulledWithin: float | None = None
    mostRecentlyPushedCount: int | None = None
    mostRecentlyPulledCount: int | None = None

    @field_validator("pushedWithin", "pulledWithin", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            re.compile(pattern)
        return value


class RetentionPolicy(_Model):
    repositories: list[str]
    deleteReferrers: bool = False
    deleteUntagged: bool = True
    keepTags: list[KeepTags] = Field(default_factory=list)


class Retention(_Model):
    dryRun: bool = False
    delay: float = 86400.0
    policies: list[RetentionPolicy] = Field(default_factory=list)

    @field_validator("delay", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class Storage(_Model):
    rootDirectory: str | None = None  # zot's local path; unused with S3 but accepted so zot configs load
    dedupe: bool = True
    gc: bool = True
    gcDelay: float = Field(default=3600.0)
    gcInterval: float = Field(default=86400.0)
    uploadTTL: float = Field(default=86400.0)
    readOnly: bool = False
    redirect: bool = True
    retention: Retention = Field(default_factory=Retention)
    storageDriver: StorageDriver = Field(default_factory=StorageDriver)
    cacheDriver: CacheDriver = Field(default_factory=CacheDriver)

    @field_validator("gcDelay", "gcInterval", "uploadTTL", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class Http(_Model):
    address: str = "127.0.0.1"
    port: int = 8000
    realm: str = "zotless"


class Log(_Model):
    level: Literal["debug", "info", "warn", "warning", "error"] = "info"


class Config(_Model):
    distSpecVersion: str = "1.1.0"
    storage: Storage = Field(default_factory=Storage)
    http: Http = Field(default_factory=Http)
    log: Log = Field(default_factory=Log)


class ConfigError(Exception):
    """A config file that cannot be used; the message names the bad field."""


# Environment variable -> dotted config path. Booleans and numbers are parsed by pydantic.
ENV_OVERRIDES: dict[str, str] = {
    "ZOTLESS_BUCKET": "storage.storageDriver.bucket",
    "ZOTLESS_ROOTDIRECTORY": "storage.storageDriver.rootdirectory",
    "ZOTLESS_REGION": "storage.storageDriver.region",
    "ZOTLESS_BLOB_TABLE": "storage.cacheDriver.cacheTablename",
    "ZOTLESS_META_TABLE": "storage.cacheDriver.repoMetaTablename",
    "ZOTLESS_UPLOADS_TABLE": "storage.cacheDriver.uploadsTablename",
    "ZOTLESS_DEDUPE": "storage.dedupe",
    "ZOTLESS_GC": "storage.gc",
    "ZOTLESS_GC_DELAY": "storage.gcDelay",
    "ZOTLESS_REDIRECT": "storage.redirect",
    "ZOTLESS_READ_ONLY": "storage.readOnly",
    "ZOTLESS_PORT": "http.port",
    "ZOTLESS_LOG_LEVEL": "log.level",
}


def _apply_overrides(raw: dict[str, Any], environ: dict[str, str]) -> None:
    for variable, dotted in ENV_OVERRIDES.items():
        if variable not in environ:
            continue
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = environ[variable]


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read a config file (or none: defaults), apply environment overrides, validate."""
    environ = dict(os.environ) if environ is None else environ
    path = path or environ.get("ZOTLESS_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    _apply_overrides(raw, environ)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {path or '(defaults)'}: {_describe(exc)}") from exc
