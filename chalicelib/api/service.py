"""Wires the storage locations together from a config: stores, tables, registries, one API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.api.endpoints import Api
from chalicelib.auth.authn import build_auth
from chalicelib.config.schema import Config, location_config
from chalicelib.model.locations import RoutedRegistry, owner
from chalicelib.model.registry import Registry
from chalicelib.storage.aws import Clients, make_clients
from chalicelib.storage.blobs import BlobStore
from chalicelib.storage.dynamo import Table
from chalicelib.storage.index import RepoIndex
from chalicelib.storage.memory import UPLOAD_MEMORY, keep_freed_blocks, release_freed_parts
from chalicelib.storage.objectstore import ObjectStore
from chalicelib.storage.uploads import SessionTable


@dataclass(frozen=True)
class Service:
    """One storage location (its config, store, blob table and registry) plus the shared index and API.

    The default location's Service lists every location, itself first, in `locations`; GC, rebuild
    and scrub run once per location.
    """

    config: Config
    store: ObjectStore
    blobs: BlobStore
    index: RepoIndex
    registry: Registry
    api: Api
    owns: Callable[[str], bool] = lambda repo: True
    locations: list[Service] = field(default_factory=list, repr=False, compare=False)


def build_service(config: Config, clients: Clients | None = None, chunk_max_length: int | None = None, one_request_at_a_time: bool = False) -> Service:
    """Both set by the Lambda entry point: its requests carry at most chunk_max_length bytes, and an instance serves one at a time."""
    clients = clients or make_clients(config)
    UPLOAD_MEMORY.resize(config.storage.uploadMemoryMiB << 20)  # one budget per process, shared by every location
    if one_request_at_a_time:
        keep_freed_blocks()
    else:
        release_freed_parts()
    tables = config.storage.cacheDriver
    index = RepoIndex(Table(clients.dynamodb, tables.repoMetaTablename, "repo", "key"))
    sessions = Table(clients.dynamodb, tables.uploadsTablename, "id")
    prefixes = list(config.storage.subPaths)
    parts = {"": _location(config, clients, index, sessions)}
    parts |= {prefix: _location(location_config(config, prefix), clients, index, sessions) for prefix in prefixes}
    registry = RoutedRegistry({prefix: part[2] for prefix, part in parts.items()})
    auth = build_auth(config, clients.s3, sessions)  # failed logins are counted in the uploads table
    api = Api(registry, redirect=config.storage.redirect, auth=auth, chunk_max_length=chunk_max_length, config=config)
    services = [
        Service(part_config, store, registry_part.blobs, index, registry_part, api, _owner_test(prefixes, prefix))
        for prefix, (part_config, store, registry_part) in parts.items()
    ]
    services[0].locations.extend(services)
    return services[0]


def _location(config: Config, clients: Clients, index: RepoIndex, sessions: Table) -> tuple[Config, ObjectStore, Registry]:
    storage = config.storage
    store = ObjectStore(clients.s3, storage.storageDriver.bucket, storage.storageDriver.rootdirectory)
    blobs = BlobStore(store, Table(clients.dynamodb, storage.cacheDriver.cacheTablename, "digest", "holder"), storage.dedupe)
    downloads = config.extensions.search.enable and config.extensions.search.downloadCount
    registry = Registry(store, blobs, SessionTable(sessions, storage.uploadTTL), index, read_only=storage.readOnly, count_downloads=downloads)
    return config, store, registry


def _owner_test(prefixes: list[str], prefix: str) -> Callable[[str], bool]:
    return lambda repo: owner(prefixes, repo) == prefix
