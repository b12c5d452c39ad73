"""`zotless init-aws`: the bucket and tables of a deployment stage, named by `.chalice/config.json`.

The same description (the stage's environment variables, `aws.table_definitions` and the bucket
settings below) also feeds `chalicelib.deploy.templates`, which writes the CloudFormation template and
IAM policies, so what init-aws creates and what CloudFormation creates cannot drift apart.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.config.schema import Config, ConfigError, load_config
from chalicelib.storage.aws import Clients, table_definitions

PROJECT = Path(__file__).resolve().parents[2]
CHALICE_DIR = PROJECT / ".chalice"

API_FUNCTION = "api_handler"
GC_FUNCTION = "garbage_collect"
SCAN_FUNCTION = "cve_scan"
DB_UPDATE_FUNCTION = "cve_db_update"
FUNCTIONS = (API_FUNCTION, GC_FUNCTION, SCAN_FUNCTION, DB_UPDATE_FUNCTION)
QUEUE_VARIABLE = "ZOTLESS_CVE_QUEUE"  # app.py's on_sqs_message reads it when chalice imports the app with the stage's variables
DEFAULT_QUEUE = "zotless-cve-scans"  # app.py's default
MAX_RECEIVES = 5  # a scan that fails this often goes to the dead-letter queue
VISIBILITY_PER_TIMEOUT = 6  # AWS's advice for a Lambda event source: the queue hides a message 6x the function's timeout
SCAN_RETENTION = 4 * 86400  # SQS's default
DEAD_RETENTION = 14 * 86400  # SQS's maximum: time to look at what failed
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
SSE_ALGORITHM = "AES256"  # SSE-S3: no KMS key, so the functions need no kms:* permission
TTL_ATTRIBUTE = "expires"
LIFECYCLE_RULE_ID = "zotless-abort-incomplete-multipart-uploads"
MIN_ABORT_DAYS = 7
OWNERSHIP_CONTROLS = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}  # ACLs off: the policy alone decides


class ProvisionError(Exception):
    """A stage that cannot be provisioned as configured; the message says what to change."""


Echo = Callable[[str], None]


# The stage's names, from .chalice/config.json


def chalice_config(chalice_dir: Path = CHALICE_DIR) -> dict[str, Any]:
    return json.loads((chalice_dir / "config.json").read_text())


def stage_names(chalice_dir: Path = CHALICE_DIR) -> list[str]:
    return sorted(chalice_config(chalice_dir).get("stages", {}))


def stage_environment(stage: str, chalice_dir: Path = CHALICE_DIR) -> dict[str, str]:
    """The variables every function of the stage gets: top-level, then the stage's (as chalice merges them)."""
    raw = chalice_config(chalice_dir)
    if stage not in raw.get("stages", {}):
        raise ProvisionError(f"no stage {stage!r} in {chalice_dir / 'config.json'} (stages: {', '.join(stage_names(chalice_dir))})")
    return {**raw.get("environment_variables", {}), **raw["stages"][stage].get("environment_variables", {})}


def stage_config(stage: str, chalice_dir: Path = CHALICE_DIR, region: str | None = None) -> Config:
    """The registry config the stage's functions will load: defaults plus the stage's environment only."""
    environ = stage_environment(stage, chalice_dir)
    try:
        config = load_config(None, environ=environ)
    except ConfigError as error:
        raise ProvisionError(f"stage {stage}: {error}") from error
    if region:
        config.storage.storageDriver.region = region
        config.storage.cacheDriver.region = region
    return config


def function_names(stage: str, chalice_dir: Path = CHALICE_DIR) -> dict[str, str]:
    """Lambda function names as chalice deploy sets them (the merged template pins the same ones)."""
    app = chalice_config(chalice_dir)["app_name"]
    return {API_FUNCTION: f"{app}-{stage}"} | {function: f"{app}-{stage}-{function}" for function in FUNCTIONS[1:]}


def function_setting(stage: str, function: str, key: str, chalice_dir: Path = CHALICE_DIR) -> Any:
    """A per-function setting of the stage (lambda_memory_size, lambda_timeout...), as chalice falls back to the stage's."""
    raw = chalice_config(chalice_dir)["stages"][stage]
    return raw.get("lambda_functions", {}).get(function, {}).get(key, raw.get(key))


@dataclass(frozen=True)
class ScanQueues:
    """The CVE scan queue and its dead-letter queue: names, and how long a message stays hidden while a scan runs."""

    name: str
    dead_letter: str
    visibility_timeout: int

    def attributes(self) -> dict[str, int]:
        return {"VisibilityTimeout": self.visibility_timeout, "MessageRetentionPeriod": SCAN_RETENTION}

    def dead_letter_attributes(self) -> dict[str, int]:
        return {"MessageRetentionPeriod": DEAD_RETENTION}

    def redrive_policy(self, dead_letter_arn: Any) -> dict[str, Any]:
        return {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVES}


def scan_queues(stage: str, chalice_dir: Path = CHALICE_DIR) -> ScanQueues:
    """Named by the stage's ZOTLESS_CVE_QUEUE (as app.py names the scan function's event source)."""
    name = stage_environment(stage, chalice_dir).get(QUEUE_VARIABLE, DEFAULT_QUEUE)
    timeout = int(function_setting(stage, SCAN_FUNCTION, "lambda_timeout", chalice_dir) or 60)  # chalice's default timeout
    return ScanQueues(name, f"{name}-failed", VISIBILITY_PER_TIMEOUT * timeout)


# What the bucket and tables look like


def abort_incomplete_days(config: Config) -> int:
    """A lifecycle backstop for multipart uploads GC missed; never shorter than an upload session may live."""
    return max(MIN_ABORT_DAYS, math.ceil(config.storage.uploadTTL / 86400) + 1)


def lifecycle_rule(config: Config) -> dict[str, Any]:
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": config.storage.storageDriver.rootdirectory},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_incomplete_days(config)},
    }


def encryption_configuration() -> dict[str, Any]:
    return {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE_ALGORITHM}}]}


def ttl_table(config: Config) -> str:
    return config.storage.cacheDriver.uploadsTablename


# zotless init-aws


@dataclass
class Provisioner:
    """Brings one stage's bucket, tables and scan queues to the described state; every step checks first, so reruns change nothing."""

    config: Config
    clients: Clients
    dry_run: bool = False
    echo: Echo = print
    queues: ScanQueues | None = None
    sqs: Any = None

    def run(self) -> list[str]:
        """The changes made (or, with dry_run, that would be made), in order."""
        changes = self._bucket()
        for definition in table_definitions(self.config):
            changes += self._table(definition)
        if self.queues is not None:
            changes += self._scan_queues(self.queues)
        for line in changes:
            self.echo(("would " if self.dry_run else "") + line)
        if not changes:
            self.echo("nothing to do: bucket and tables are as described")
        return changes

    # Bucket

    def _bucket(self) -> list[str]:
        bucket = self.config.storage.storageDriver.bucket
        if not self._bucket_exists(bucket):
            if not self.dry_run:
                self._create_bucket(bucket)
            return [
                f"create bucket {bucket}",
                f"block public access on {bucket}",
                f"encrypt {bucket} ({SSE_ALGORITHM})",
                f"disable ACLs on {bucket}",
                f"add lifecycle rule on {bucket}",
            ]
        return self._public_access(bucket) + self._encryption(bucket) + self._ownership(bucket) + self._lifecycle(bucket)

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            self.clients.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return False
            if status == 403 or _code(exc) in {"403", "Forbidden", "AccessDenied"}:
                raise ProvisionError(_taken(bucket)) from exc
            raise
        return True

    def _create_bucket(self, bucket: str) -> None:
        s3 = self.clients.s3
        region = s3.meta.region_name
        extra = {"CreateBucketConfiguration": {"LocationConstraint": region}} if region and region != "us-east-1" else {}
        try:
            s3.create_bucket(Bucket=bucket, **extra)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyExists":
                raise ProvisionError(_taken(bucket)) from exc
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise
        s3.get_waiter("bucket_exists").wait(Bucket=bucket)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_configuration())
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=OWNERSHIP_CONTROLS)
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [lifecycle_rule(self.config)]})

    def _public_access(self, bucket: str) -> list[str]:
        current = _absent_as_none(lambda: self.clients.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"])
        if current == PUBLIC_ACCESS_BLOCK:
            return []
        if not self.dry_run:
            self.clients.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        return [f"block public access on {bucket}"]

    def _encryption(self, bucket: str) -> list[str]:
        current = _absent_as_none(lambda: self.clients.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"])
        algorithms = {r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in (current or {}).get("Rules", [])}
        if SSE_ALGORITHM in algorithms:
            return []
        if algorithms - {None}:
            self.echo(f"warning: {bucket} is encrypted with {', '.join(sorted(a for a in algorithms if a))}; left as is (the IAM policy grants no kms:*)")
            return []
        if not self.dry_run:
            self.clients.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_configuration())
        return [f"encrypt {bucket} ({SSE_ALGORITHM})"]

    def _ownership(self, bucket: str) -> list[str]:
        current = _absent_as_none(lambda: self.clients.s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"])
        if current == OWNERSHIP_CONTROLS:
            return []
        if not self.dry_run:
            self.clients.s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=OWNERSHIP_CONTROLS)
        return [f"disable ACLs on {bucket}"]

    def _lifecycle(self, bucket: str) -> list[str]:
        """Adds or updates our rule only; rules someone else wrote stay."""
        current = _absent_as_none(lambda: self.clients.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) or []
        wanted = lifecycle_rule(self.config)
        ours = [r for r in current if r.get("ID") == LIFECYCLE_RULE_ID]
        if ours and _same_rule(ours[0], wanted):
            return []
        if not self.dry_run:
            rules = [r for r in current if r.get("ID") != LIFECYCLE_RULE_ID] + [wanted]
            self.clients.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        return [f"{'update' if ours else 'add'} lifecycle rule on {bucket}"]

    # Tables

    def _table(self, definition: dict[str, Any]) -> list[str]:
        name = definition["TableName"]
        ttl = name == ttl_table(self.config)
        described = self._describe(name)
        if described is None:
            if not self.dry_run:
                self.clients.dynamodb.create_table(**definition)
                self.clients.dynamodb.get_waiter("table_exists").wait(TableName=name)
                if ttl:
                    self._enable_ttl(name)
            return [f"create table {name} (on-demand)"] + ([f"enable TTL on {name}.{TTL_ATTRIBUTE}"] if ttl else [])
        if _keys(described["KeySchema"]) != _keys(definition["KeySchema"]):
            raise ProvisionError(f"table {name} exists with key schema {described['KeySchema']}, expected {definition['KeySchema']}")
        changes = self._billing(described) + self._indexes(definition, described)
        if ttl and not self._ttl_enabled(name):
            if not self.dry_run:
                self._enable_ttl(name)
            changes.append(f"enable TTL on {name}.{TTL_ATTRIBUTE}")
        return changes

    def _describe(self, name: str) -> dict[str, Any] | None:
        try:
            return self.clients.dynamodb.describe_table(TableName=name)["Table"]
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise

    def _billing(self, described: dict[str, Any]) -> list[str]:
        name = described["TableName"]
        if described.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST":
            return []
        if not self.dry_run:
            self.clients.dynamodb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
            self._wait_active(name)
        return [f"switch table {name} to on-demand billing"]

    def _indexes(self, definition: dict[str, Any], described: dict[str, Any]) -> list[str]:
        """Global secondary indexes added to the code after the table was made (one creation at a time, as DynamoDB requires)."""
        name = definition["TableName"]
        present = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
        changes = []
        for index in definition.get("GlobalSecondaryIndexes", []):
            if index["IndexName"] in present:
                continue
            changes.append(f"add index {index['IndexName']} to table {name}")
            if not self.dry_run:
                self.clients.dynamodb.update_table(
                    TableName=name, AttributeDefinitions=definition["AttributeDefinitions"], GlobalSecondaryIndexUpdates=[{"Create": index}]
                )
                self._wait_active(name)
        return changes

    def _wait_active(self, name: str, timeout: float = 900.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            table = self.clients.dynamodb.describe_table(TableName=name)["Table"]
            statuses = [table["TableStatus"], *(i.get("IndexStatus", "ACTIVE") for i in table.get("GlobalSecondaryIndexes", []))]
            if all(s == "ACTIVE" for s in statuses):
                return
            time.sleep(5)
        raise ProvisionError(f"table {name} did not become ACTIVE within {timeout:.0f}s")

    def _ttl_enabled(self, name: str) -> bool:
        ttl = self.clients.dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        return ttl.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"} and ttl.get("AttributeName") == TTL_ATTRIBUTE

    def _enable_ttl(self, name: str) -> None:
        spec = {"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        self.clients.dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec)

    # Queues

    def _scan_queues(self, queues: ScanQueues) -> list[str]:
        """The dead-letter queue first: the scan queue's redrive policy names its ARN."""
        changes = self._queue(queues.dead_letter, _sqs_attributes(queues.dead_letter_attributes()))
        dead_url = self._queue_url(queues.dead_letter)
        dead_arn = self.sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"] if dead_url else None
        wanted = _sqs_attributes(queues.attributes())
        if dead_arn:
            wanted["RedrivePolicy"] = json.dumps(queues.redrive_policy(dead_arn))
        return changes + self._queue(queues.name, wanted)

    def _queue(self, name: str, wanted: dict[str, str]) -> list[str]:
        url = self._queue_url(name)
        if url is None:
            if not self.dry_run:
                self.sqs.create_queue(QueueName=name, Attributes={**wanted, "SqsManagedSseEnabled": "true"})
            return [f"create queue {name}"]
        current = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        differing = {k: v for k, v in wanted.items() if not _same_attribute(k, current.get(k), v)}
        if not differing:
            return []
        if not self.dry_run:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=differing)
        return [f"set {', '.join(sorted(differing))} on queue {name}"]

    def _queue_url(self, name: str) -> str | None:
        try:
            return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if _code(exc) in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
                return None
            raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _taken(bucket: str) -> str:
    return (
        f"bucket {bucket} belongs to another AWS account (S3 bucket names are global): set another ZOTLESS_BUCKET for this stage "
        "in .chalice/config.json, then run `python -m chalicelib.deploy.templates` to rewrite the policy and template files"
    )


_ABSENT = {
    "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchLifecycleConfiguration",
    "OwnershipControlsNotFoundError",
}


def _absent_as_none(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ClientError as exc:
        if _code(exc) in _ABSENT:
            return None
        raise


def _same_rule(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    prefix = current.get("Filter", {}).get("Prefix", current.get("Prefix", ""))
    days = current.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
    wanted_days = wanted["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    return current.get("Status") == "Enabled" and prefix == wanted["Filter"]["Prefix"] and days == wanted_days


def _sqs_attributes(attributes: dict[str, int]) -> dict[str, str]:
    return {key: str(value) for key, value in attributes.items()}


def _same_attribute(key: str, current: str | None, wanted: str) -> bool:
    """RedrivePolicy comes back as JSON with its own spacing and maxReceiveCount as a number or a string."""
    if key == "RedrivePolicy" and current:
        ours, theirs = json.loads(wanted), json.loads(current)
        same_target = str(ours["deadLetterTargetArn"]) == str(theirs.get("deadLetterTargetArn"))
        return same_target and int(ours["maxReceiveCount"]) == int(theirs.get("maxReceiveCount", 0))
    return current == wanted


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def init_aws(stage: str, region: str | None, dry_run: bool, echo: Echo = print, chalice_dir: Path = CHALICE_DIR) -> list[str]:
    """`zotless init-aws`: the stage's names from config.json, the region from --region or the AWS configuration."""
    import boto3

    from chalicelib.storage.aws import make_clients

    region = region or boto3.Session().region_name
    if not region:
        raise ProvisionError("no AWS region: pass --region or set AWS_DEFAULT_REGION (the bucket and tables must be in the functions' region)")
    config = stage_config(stage, chalice_dir, region)
    cache = config.storage.cacheDriver
    tables = f"{cache.cacheTablename}, {cache.repoMetaTablename}, {cache.uploadsTablename}"
    queues = scan_queues(stage, chalice_dir)
    echo(f"stage {stage} in {region}: bucket {config.storage.storageDriver.bucket}, tables {tables}, queues {queues.name}, {queues.dead_letter}")
    sqs = boto3.client("sqs", region_name=region)
    changes = Provisioner(config, make_clients(config), dry_run, echo, queues, sqs).run()
    if not dry_run:
        url = sqs.get_queue_url(QueueName=queues.name)["QueueUrl"]
        echo(f"scan queue URL: {url} (for `chalice deploy`: set it as ZOTLESS_CVE_QUEUE_URL of the stage's api_handler in .chalice/config.json)")
    return changes
