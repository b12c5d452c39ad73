"""Wires one storage location's pieces together from a config: store, tables, registry, API."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.api import Api
from chalicelib.aws import Clients, make_clients
from chalicelib.blobs import BlobStore
from chalicelib.config import Config
from chalicelib.dynamo import Table
from chalicelib.index import RepoIndex
from chalicelib.objectstore import ObjectStore
from chalicelib.registry import Registry
from chalicelib.uploads import SessionTable


@dataclass(frozen=True)
class Service:
    config: Config
    store: ObjectStore
    blobs: BlobStore
    index: RepoIndex
    registry: Registry
    api: Api


def build_service(config: Config, clients: Clients | None = None) -> Service:
    clients = clients or make_clients(config)
    storage = config.storage
    tables = storage.cacheDriver
    store = ObjectStore(clients.s3, storage.storageDriver.bucket, storage.storageDriver.rootdirectory)
    blobs = BlobStore(store, Table(clients.dynamodb, tables.cacheTablename, "digest", "holder"), storage.dedupe)
    index = RepoIndex(Table(clients.dynamodb, tables.repoMetaTablename, "repo", "key"))
    sessions = SessionTable(Table(clients.dynamodb, tables.uploadsTablename, "id"), storage.uploadTTL)
    registry = Registry(store, blobs, sessions, index)
    return Service(config, store, blobs, index, registry, Api(registry, store, redirect=storage.redirect, read_only=storage.readOnly))
