"""Configuration in zot's JSON shape, validated by pydantic; a few environment variables override it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from chalicelib.config.durations import config_document, parse_duration
from chalicelib.spec.references import NAME_PATTERN


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
        """A ValueError, not re.error, so the message names the field path like every other mistake."""
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
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


class LocationSettings(_Model):
    """What every storage location decides for itself: the default one and each sub-path."""

    rootDirectory: str | None = None  # zot's local path; unused with S3 but accepted so zot configs load
    dedupe: bool = True
    gc: bool = True
    gcDelay: float = Field(default=3600.0)
    gcInterval: float = Field(default=86400.0)
    uploadTTL: float = Field(default=86400.0)
    readOnly: bool = False
    retention: Retention = Field(default_factory=Retention)

    @field_validator("gcDelay", "gcInterval", "uploadTTL", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class SubPath(LocationSettings):
    """A storage location for the repositories under a name prefix (zot's storage.subPaths).

    It has its own bucket or prefix, blob table and settings; the repository index and the upload
    sessions are shared, so the catalog lists every location.
    """

    storageDriver: StorageDriver
    cacheTablename: str | None = None  # default: the main blob table's name with the sub-path appended


SUBPATH = re.compile(rf"^/{NAME_PATTERN}$")


class Storage(LocationSettings):
    redirect: bool = True
    uploadMemoryMiB: int = Field(default=384, ge=1)  # upload bytes the whole process holds at once; uploads wait beyond it
    storageDriver: StorageDriver = Field(default_factory=StorageDriver)
    cacheDriver: CacheDriver = Field(default_factory=CacheDriver)
    subPaths: dict[str, SubPath] = Field(default_factory=dict)

    @field_validator("subPaths")
    @classmethod
    def _subpath_names(cls, value: dict[str, SubPath]) -> dict[str, SubPath]:
        for prefix in value:
            if not SUBPATH.match(prefix):
                raise ValueError(f"sub-path {prefix!r} must be '/' followed by a repository name prefix, e.g. /infra")
        return value

    @model_validator(mode="after")
    def _distinct_locations(self) -> Storage:
        """Two locations on one bucket and prefix would collect (GC) and rebuild each other's content."""
        owners: dict[tuple[str, str], str] = {}
        drivers = [("storage.storageDriver", self.storageDriver)] + [(f"storage.subPaths.{p}.storageDriver", s.storageDriver) for p, s in self.subPaths.items()]
        for field, driver in drivers:
            where = (driver.bucket, driver.rootdirectory)
            if where in owners:
                place = f"s3://{driver.bucket}/{driver.rootdirectory}"
                raise ValueError(f"{owners[where]} and {field} both store in {place}: give each its own bucket or rootdirectory")
            owners[where] = field
        return self


ActionName = Literal["read", "create", "update", "delete"]
TOKEN_KEY_VARIABLE = "ZOTLESS_TOKEN_KEY"
MIN_TOKEN_KEY_LENGTH = 32


class Htpasswd(_Model):
    path: str = Field(min_length=1)  # a local file (bundled with the deployment) or s3://bucket/key


class Bearer(_Model):
    """Tokens the registry issues itself (Docker's token spec), HS256-signed with one key shared by every instance."""

    realm: str | None = None  # absolute URL of the token endpoint; default: derived from the request's Host
    service: str = "zotless"
    key: SecretStr | None = None  # or ZOTLESS_TOKEN_KEY; never generated, so tokens verify on every instance
    expiry: float = 300.0

    @field_validator("expiry", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("realm")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """Clients fetch tokens from the realm as given, so it must be an absolute URL."""
        if value is not None and not re.match(r"^https?://[^/\s\"]+(/[^\s\"]*)?$", value):
            raise ValueError("realm must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _key_present(self) -> Bearer:
        if self.key is None or len(self.key.get_secret_value()) < MIN_TOKEN_KEY_LENGTH:
            raise ValueError(f"key: a signing key of at least {MIN_TOKEN_KEY_LENGTH} characters is required (or set {TOKEN_KEY_VARIABLE})")
        return self


class Lockout(_Model):
    """Failed logins counted per user name and per source address (in DynamoDB); past a limit within a window, logins get 429."""

    perUser: int = Field(default=10, ge=0)  # 0: not counted
    perSource: int = Field(default=100, ge=0)  # higher: many users may share an address (NAT, CI runners)
    window: float = Field(default=300.0, gt=0)

    @field_validator("window", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class Auth(_Model):
    htpasswd: Htpasswd
    failDelay: float = 0.0  # zot's field, accepted so zot configs load; zotless never sleeps: `lockout` limits guessing
    bearer: Bearer | None = None
    lockout: Lockout = Field(default_factory=Lockout)

    @field_validator("failDelay", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class AccessPolicy(_Model):
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    actions: list[ActionName] = Field(default_factory=list)


class PolicyGroup(_Model):
    policies: list[AccessPolicy] = Field(default_factory=list)
    defaultPolicy: list[ActionName] = Field(default_factory=list)
    anonymousPolicy: list[ActionName] = Field(default_factory=list)


class Group(_Model):
    users: list[str] = Field(default_factory=list)


class AccessControl(_Model):
    """zot's shape: repository globs to policies, plus adminPolicy (every repository) and groups of users."""

    repositories: dict[str, PolicyGroup] = Field(default_factory=dict)
    adminPolicy: AccessPolicy = Field(default_factory=AccessPolicy)
    groups: dict[str, Group] = Field(default_factory=dict)


class Http(_Model):
    address: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)  # 0: any free port, as `zotless serve --port 0`
    realm: str = "zotless"
    auth: Auth | None = None
    accessControl: AccessControl | None = None


class Log(_Model):
    level: Literal["debug", "info", "warn", "warning", "error"] = "info"


class Scrub(_Model):
    """zot's extensions.scrub: re-read and verify stored content on a schedule."""

    enable: bool = False
    interval: float = 86400.0

    @field_validator("interval", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class Cve(_Model):
    """zot's extensions.search.cve; `source` (zotless's own) is where `cve-db update` and the schedule load OSV from."""

    updateInterval: float = 7200.0  # zot's default: 2h
    source: str | None = None  # a directory or zip of OSV JSON, s3://bucket/key or https:// URL
    trivy: dict[str, Any] | None = None  # zot's trivy settings: accepted, unused (OSV replaces trivy's database)

    @field_validator("updateInterval", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)


class SearchExtension(_Model):
    """zot's extensions.search: the GraphQL search API (on by default here), and whether pulls are counted."""

    enable: bool = True
    downloadCount: bool = False  # a DynamoDB write per manifest GET, so off unless asked for
    cve: Cve | None = None  # CVE scanning of pushed images (docs/cve.md); off unless configured


class UI(_Model):
    """zot's extensions.ui, accepted so zot configs load: zotless does not serve the UI's files."""

    enable: bool = False


class Prometheus(_Model):
    path: str = Field(default="/metrics", pattern=r"^/[A-Za-z0-9._~/-]*$")


class Metrics(_Model):
    """zot's extensions.metrics: Prometheus at prometheus.path (local server), EMF lines on Lambda; on by default."""

    enable: bool = True
    prometheus: Prometheus = Field(default_factory=Prometheus)


class Extensions(_Model):
    scrub: Scrub = Field(default_factory=Scrub)
    search: SearchExtension = Field(default_factory=SearchExtension)
    ui: UI = Field(default_factory=UI)
    metrics: Metrics = Field(default_factory=Metrics)


class Config(_Model):
    distSpecVersion: str = "1.1.0"
    storage: Storage = Field(default_factory=Storage)
    http: Http = Field(default_factory=Http)
    log: Log = Field(default_factory=Log)
    extensions: Extensions = Field(default_factory=Extensions)


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
    "ZOTLESS_GC_INTERVAL": "storage.gcInterval",
    "ZOTLESS_SCRUB": "extensions.scrub.enable",
    "ZOTLESS_SCRUB_INTERVAL": "extensions.scrub.interval",
    "ZOTLESS_CVE_SOURCE": "extensions.search.cve.source",
    "ZOTLESS_CVE_UPDATE_INTERVAL": "extensions.search.cve.updateInterval",
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


def _token_key(raw: dict[str, Any], environ: dict[str, str]) -> None:
    """The signing key may come from the environment (a Lambda secret); it never turns tokens on by itself."""
    node: Any = raw
    for part in ("http", "auth", "bearer"):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and environ.get(TOKEN_KEY_VARIABLE):
        node["key"] = environ[TOKEN_KEY_VARIABLE]


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read a config file (or none: defaults), apply environment overrides, validate."""
    environ = dict(os.environ) if environ is None else environ
    path = path or environ.get("ZOTLESS_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = config_document(path)  # read once per process: app.py's schedules read it at import
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    _apply_overrides(raw, environ)
    _token_key(raw, environ)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {path or '(defaults)'}: {_describe(exc)}") from exc


def location_config(config: Config, prefix: str) -> Config:
    """The config one sub-path's location runs with: its own storage settings, the shared index tables."""
    sub = config.storage.subPaths[prefix]
    slug = prefix.strip("/").replace("/", "-")
    default_cache = config.storage.cacheDriver
    cache = default_cache.model_copy(update={"cacheTablename": sub.cacheTablename or f"{default_cache.cacheTablename}-{slug}"})
    settings = sub.model_dump(exclude={"cacheTablename", "storageDriver", "retention"})
    update = {**settings, "retention": sub.retention, "storageDriver": sub.storageDriver, "cacheDriver": cache, "subPaths": {}}
    storage = config.storage.model_copy(update=update)
    return config.model_copy(update={"storage": storage})
