"""AWS clients and resources for a config: the SDK's own endpoint conventions unless the config names one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from chalicelib.config.schema import Config, ConfigError, location_config
from chalicelib.storage.dynamo import Table

_RETRIES = {"max_attempts": 5, "mode": "standard"}
# One item in the repository table names the bucket and prefix its index describes. "_meta" is not a
# valid repository name, so it never reaches the catalog (whose items live under "_catalog").
LOCATION_MARKER = ("_meta", "location")


class LocationMismatch(ConfigError):
    """The repository index found belongs to another bucket or prefix: every blob would be a 404."""


@dataclass(frozen=True)
class Clients:
    s3: Any
    dynamodb: Any


def make_clients(config: Config, session: boto3.Session | None = None) -> Clients:
    """regionendpoint/endpoint from the config win; else AWS_ENDPOINT_URL(_S3/_DYNAMODB) as boto3 reads them."""
    session = session or boto3.Session()
    storage = config.storage
    s3 = session.client(
        "s3",
        region_name=storage.storageDriver.region,
        endpoint_url=storage.storageDriver.regionendpoint,
        config=BotoConfig(retries=_RETRIES, s3={"addressing_style": "path"}, signature_version="s3v4", max_pool_connections=20),
    )
    dynamodb = session.client(
        "dynamodb",
        region_name=storage.cacheDriver.region or storage.storageDriver.region,
        endpoint_url=storage.cacheDriver.endpoint,
        config=BotoConfig(retries=_RETRIES, max_pool_connections=20),
    )
    return Clients(s3, dynamodb)


def table_definitions(config: Config) -> list[dict[str, Any]]:
    """The three tables, on-demand billing; GC's orphan index on blobs; the uploads table expires items through TTL."""
    cache = config.storage.cacheDriver

    def table(name: str, hash_key: str, range_key: str | None) -> dict[str, Any]:
        keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        attributes = [{"AttributeName": hash_key, "AttributeType": "S"}]
        if range_key:
            keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
            attributes.append({"AttributeName": range_key, "AttributeType": "S"})
        return {"TableName": name, "KeySchema": keys, "AttributeDefinitions": attributes, "BillingMode": "PAY_PER_REQUEST"}

    blobs = table(cache.cacheTablename, "digest", "holder")
    blobs["AttributeDefinitions"] += [{"AttributeName": "gc_shard", "AttributeType": "S"}, {"AttributeName": "orphan", "AttributeType": "N"}]
    blobs["GlobalSecondaryIndexes"] = [
        {
            "IndexName": "orphans",  # sparse: only GC candidates carry both attributes
            "KeySchema": [{"AttributeName": "gc_shard", "KeyType": "HASH"}, {"AttributeName": "orphan", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    sub_tables = [dict(blobs, TableName=location_config(config, p).storage.cacheDriver.cacheTablename) for p in config.storage.subPaths]
    return [
        blobs,
        *sub_tables,
        table(cache.repoMetaTablename, "repo", "key"),
        table(cache.uploadsTablename, "id", None),
    ]


def ensure_resources(config: Config, clients: Clients) -> None:
    """Create the bucket and tables when missing (local server and tests); idempotent."""
    buckets = {config.storage.storageDriver.bucket} | {sub.storageDriver.bucket for sub in config.storage.subPaths.values()}
    for bucket in sorted(buckets):
        _ensure_bucket(clients, bucket)
    existing = set(clients.dynamodb.list_tables().get("TableNames", []))
    for definition in table_definitions(config):
        if definition["TableName"] in existing:
            continue
        clients.dynamodb.create_table(**definition)
        clients.dynamodb.get_waiter("table_exists").wait(TableName=definition["TableName"])
        if definition["TableName"] == config.storage.cacheDriver.uploadsTablename:
            ttl = {"Enabled": True, "AttributeName": "expires"}
            clients.dynamodb.update_time_to_live(TableName=definition["TableName"], TimeToLiveSpecification=ttl)


def _ensure_bucket(clients: Clients, bucket: str) -> None:
    try:
        clients.s3.head_bucket(Bucket=bucket)
    except ClientError:
        region = clients.s3.meta.region_name
        extra = {"CreateBucketConfiguration": {"LocationConstraint": region}} if region and region != "us-east-1" else {}
        clients.s3.create_bucket(Bucket=bucket, **extra)


def claim_index(config: Config, clients: Clients) -> None:
    """Record on first start which bucket and prefix the index describes; refuse to serve another one later.

    One consistent GetItem when the marker exists; the first start adds a conditional PutItem (and reads
    again only if another server won that race).
    """
    driver, table_name = config.storage.storageDriver, config.storage.cacheDriver.repoMetaTablename
    table = Table(clients.dynamodb, table_name, "repo", "key")
    wanted = {"bucket": driver.bucket, "rootdirectory": driver.rootdirectory}
    found = table.get(*LOCATION_MARKER)
    if found is None:
        marker = {"repo": LOCATION_MARKER[0], "key": LOCATION_MARKER[1], **wanted}
        if table.put(marker, condition="attribute_not_exists(repo)"):
            return
        found = table.get(*LOCATION_MARKER) or {}
    recorded = {"bucket": found.get("bucket"), "rootdirectory": found.get("rootdirectory")}
    if recorded != wanted:
        raise LocationMismatch(
            f"the index in table {table_name} belongs to {_where(recorded)} but this config stores content in {_where(wanted)}; "
            "set storage.storageDriver's bucket and rootdirectory to match it, or give this location its own tables (storage.cacheDriver)"
        )


def _where(location: dict[str, str | None]) -> str:
    return f"s3://{location['bucket']}/{location['rootdirectory'] or ''}"
