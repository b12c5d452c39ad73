"""Where the integration servers keep their data: the embedded emulator (default) or real S3 and DynamoDB.

`ZOTLESS_TEST_AWS=1` runs the same servers with `--no-emulator` against AWS, with credentials from the
usual places (environment, profile, SSO, instance role) and an existing bucket named by
`ZOTLESS_TEST_BUCKET`; `ZOTLESS_TEST_AWS_ENDPOINT` points it at an S3 + DynamoDB-compatible endpoint instead
(a rehearsal on moto's server or LocalStack). Each run writes under its own prefix of that bucket and creates its own
tables (`zotless-test-<run>-...`); the session fixture deletes both at the end. docs/testing.md says more.
"""

from __future__ import annotations

import copy
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

TEST_PREFIX = "zotless-test"


def aws_mode() -> bool:
    """True when the suite runs against real AWS instead of the embedded emulator."""
    return os.environ.get("ZOTLESS_TEST_AWS", "") == "1"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40] or "server"


def names_an_endpoint(config: dict[str, Any] | None) -> bool:
    """A config that names its own endpoint (a test's own emulator) keeps it, whatever the backend."""
    storage = (config or {}).get("storage", {})
    return bool(storage.get("storageDriver", {}).get("regionendpoint") or storage.get("cacheDriver", {}).get("endpoint"))


@dataclass
class AwsBackend:
    """One run's place in AWS: a prefix of the bucket and a table-name prefix, both unique to the run."""

    bucket: str
    region: str | None
    endpoint: str | None = None
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @classmethod
    def from_environment(cls) -> AwsBackend:
        bucket = os.environ.get("ZOTLESS_TEST_BUCKET", "")
        if not bucket:
            raise RuntimeError("ZOTLESS_TEST_AWS=1 needs ZOTLESS_TEST_BUCKET: an existing S3 bucket the tests may write under a prefix of")
        region = os.environ.get("ZOTLESS_TEST_REGION") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return cls(bucket, region, os.environ.get("ZOTLESS_TEST_AWS_ENDPOINT") or None)

    @property
    def root(self) -> str:
        return f"{TEST_PREFIX}/{self.run}"

    @property
    def table_prefix(self) -> str:
        return f"{TEST_PREFIX}-{self.run}"

    def configure(self, server: str, config: dict[str, Any] | None) -> dict[str, Any]:
        """The server's config moved onto this run's bucket prefix and tables; sub-paths get prefixes of their own."""
        configured = copy.deepcopy(config or {})
        storage = configured.setdefault("storage", {})
        slug = f"{_slug(server)}-{uuid.uuid4().hex[:6]}"
        storage["storageDriver"] = self._driver(storage.get("storageDriver", {}), f"{self.root}/{slug}")
        cache = storage.setdefault("cacheDriver", {})
        cache.update(
            cacheTablename=f"{self.table_prefix}-{slug}-blobs",
            repoMetaTablename=f"{self.table_prefix}-{slug}-meta",
            uploadsTablename=f"{self.table_prefix}-{slug}-uploads",
            **({"region": self.region} if self.region else {}),
            **({"endpoint": self.endpoint} if self.endpoint else {}),
        )
        for name, sub in storage.get("subPaths", {}).items():
            sub["storageDriver"] = self._driver(sub.get("storageDriver", {}), f"{self.root}/{slug}/sub-{_slug(name)}")
            sub.pop("cacheTablename", None)  # derived from the main table's name, so it carries the run's prefix
        return configured

    def _driver(self, driver: dict[str, Any], root: str) -> dict[str, Any]:
        moved = {k: v for k, v in driver.items() if k not in ("regionendpoint", "bucket", "rootdirectory", "region")}
        place = {"bucket": self.bucket, "rootdirectory": root} | ({"region": self.region} if self.region else {})
        return moved | place | ({"regionendpoint": self.endpoint} if self.endpoint else {})

    def clean_up(self) -> list[str]:
        """Delete this run's objects, unfinished multipart uploads and tables; returns what could not be deleted."""
        import boto3

        session = boto3.session.Session(region_name=self.region)
        left = self._empty_prefix(session.client("s3", endpoint_url=self.endpoint))
        return left + self._drop_tables(session.client("dynamodb", endpoint_url=self.endpoint))

    def _empty_prefix(self, s3: Any) -> list[str]:
        prefix = self.root + "/"
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        left: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                answer = s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                left += [f"s3://{self.bucket}/{e['Key']}: {e.get('Code')}" for e in answer.get("Errors", [])]
        return left

    def _drop_tables(self, dynamodb: Any) -> list[str]:
        ours = [t for page in dynamodb.get_paginator("list_tables").paginate() for t in page["TableNames"] if t.startswith(self.table_prefix + "-")]
        left: list[str] = []
        for table in ours:
            try:
                dynamodb.delete_table(TableName=table)
            except dynamodb.exceptions.ResourceInUseException as error:  # still being created: a later run's sweep takes it
                left.append(f"table {table}: {error}")
        return left


BACKEND: AwsBackend | None = AwsBackend.from_environment() if aws_mode() else None
