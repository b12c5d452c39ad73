"""`zotless init-aws` against moto: creates a stage's bucket and tables locked down and on-demand, and is idempotent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from chalicelib.cli.commands import main
from chalicelib.config.schema import Config
from chalicelib.deploy.provision import LIFECYCLE_RULE_ID, PUBLIC_ACCESS_BLOCK, TTL_ATTRIBUTE, Provisioner, ProvisionError, stage_config, stage_names
from chalicelib.storage.aws import Clients, make_clients, table_definitions

REGION = "eu-west-1"  # not us-east-1: create_bucket needs a LocationConstraint there


@pytest.fixture
def prod(aws: None) -> tuple[Config, Clients]:
    config = stage_config("prod", region=REGION)
    return config, make_clients(config)


def run(config: Config, clients: Clients, dry_run: bool = False) -> list[str]:
    return Provisioner(config, clients, dry_run, echo=lambda _line: None).run()


def describe_tables(config: Config, clients: Clients) -> Iterator[dict[str, Any]]:
    for definition in table_definitions(config):
        yield clients.dynamodb.describe_table(TableName=definition["TableName"])["Table"]


def test_stages_are_dev_and_prod():
    assert stage_names() == ["dev", "prod"]


def test_creates_a_locked_down_bucket_and_on_demand_tables(prod):
    config, clients = prod
    changes = run(config, clients)
    bucket = config.storage.storageDriver.bucket
    assert changes[0] == f"create bucket {bucket}"
    s3 = clients.s3
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == PUBLIC_ACCESS_BLOCK
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in lifecycle] == [LIFECYCLE_RULE_ID]
    assert lifecycle[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 2  # longer than an upload session lives
    for definition, table in zip(table_definitions(config), describe_tables(config, clients), strict=True):
        assert table["KeySchema"] == definition["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        wanted = {i["IndexName"] for i in definition.get("GlobalSecondaryIndexes", [])}
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == wanted
    uploads = config.storage.cacheDriver.uploadsTablename
    ttl = clients.dynamodb.describe_time_to_live(TableName=uploads)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == TTL_ATTRIBUTE


def test_a_second_run_changes_nothing(prod):
    config, clients = prod
    assert run(config, clients)
    assert run(config, clients) == []
    assert run(config, clients, dry_run=True) == []


def test_dry_run_creates_nothing(prod):
    config, clients = prod
    planned = run(config, clients, dry_run=True)
    assert f"create bucket {config.storage.storageDriver.bucket}" in planned
    assert sum(line.startswith("create table") for line in planned) == 3
    assert clients.s3.list_buckets()["Buckets"] == []
    assert clients.dynamodb.list_tables()["TableNames"] == []


def test_repairs_what_someone_made_by_hand(prod):
    """A bucket without settings but with its own lifecycle rule, a provisioned table without its index or TTL."""
    config, clients = prod
    bucket = config.storage.storageDriver.bucket
    clients.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    theirs = {"ID": "theirs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    clients.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]})
    blobs, _, uploads = table_definitions(config)
    bare = {k: v for k, v in blobs.items() if k not in {"GlobalSecondaryIndexes", "BillingMode"}}
    bare["AttributeDefinitions"] = bare["AttributeDefinitions"][:2]
    clients.dynamodb.create_table(**bare, ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    clients.dynamodb.create_table(**uploads)
    changes = run(config, clients)
    assert f"block public access on {bucket}" in changes and f"encrypt {bucket} (AES256)" in changes
    assert f"add lifecycle rule on {bucket}" in changes
    assert f"switch table {blobs['TableName']} to on-demand billing" in changes
    assert f"add index orphans to table {blobs['TableName']}" in changes
    assert f"enable TTL on {uploads['TableName']}.{TTL_ATTRIBUTE}" in changes
    assert {r["ID"] for r in clients.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]} == {"theirs", LIFECYCLE_RULE_ID}
    assert run(config, clients) == []


def test_a_table_with_other_keys_is_an_error_not_a_rewrite(prod):
    config, clients = prod
    name = config.storage.cacheDriver.repoMetaTablename
    clients.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ProvisionError, match=f"table {name} exists with key schema"):
        run(config, clients)


def test_a_bucket_name_taken_by_another_account_says_what_to_change(prod):
    config, clients = prod
    with Stubber(clients.s3) as stub:
        stub.add_client_error("head_bucket", "403", http_status_code=403)
        with pytest.raises(ProvisionError, match="ZOTLESS_BUCKET"):
            run(config, clients)


def test_cli_dry_run_then_create(aws: None):
    runner = CliRunner()
    planned = runner.invoke(main, ["init-aws", "--stage", "dev", "--region", REGION, "--dry-run"])
    assert planned.exit_code == 0, planned.output
    assert "would create bucket zotless-registry-dev" in planned.output
    created = runner.invoke(main, ["init-aws", "--stage", "dev", "--region", REGION])
    assert created.exit_code == 0, created.output
    assert "create table zotless-dev-uploads (on-demand)" in created.output
    again = runner.invoke(main, ["init-aws", "--stage", "dev", "--region", REGION])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_cli_unknown_stage(aws: None):
    result = CliRunner().invoke(main, ["init-aws", "--stage", "staging", "--region", REGION])
    assert result.exit_code != 0 and "no stage 'staging'" in result.output


@pytest.mark.parametrize("stage", stage_names())
def test_the_cloudformation_template_describes_what_init_aws_creates(aws: None, stage: str):
    """deploy/resources-<stage>.json and init-aws, compared on the resources init-aws actually made."""
    from chalicelib.deploy.templates import template_file

    config = stage_config(stage, region=REGION)
    clients = make_clients(config)
    run(config, clients)
    template = json.loads(template_file(stage).read_text())["Resources"]
    tables = {r["Properties"]["TableName"]: r["Properties"] for r in template.values() if r.get("Type") == "AWS::DynamoDB::Table"}
    for table in describe_tables(config, clients):
        wanted = tables.pop(table["TableName"])
        assert table["KeySchema"] == wanted["KeySchema"]
        assert _sorted(table["AttributeDefinitions"]) == _sorted(wanted["AttributeDefinitions"])
        assert wanted["BillingMode"] == table["BillingModeSummary"]["BillingMode"]
        indexes = [{k: i[k] for k in ("IndexName", "KeySchema", "Projection")} for i in table.get("GlobalSecondaryIndexes", [])]
        assert indexes == wanted.get("GlobalSecondaryIndexes", [])
        ttl = clients.dynamodb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
        expected = wanted.get("TimeToLiveSpecification")
        assert (ttl.get("AttributeName") if ttl["TimeToLiveStatus"] == "ENABLED" else None) == (expected and expected["AttributeName"])
    assert not tables, f"the template has tables init-aws does not create: {sorted(tables)}"
    bucket = template["RegistryBucket"]["Properties"]
    name = config.storage.storageDriver.bucket
    assert bucket["BucketName"] == name
    assert clients.s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == bucket["PublicAccessBlockConfiguration"]
    sse = clients.s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [r["ApplyServerSideEncryptionByDefault"] for r in sse] == [
        r["ServerSideEncryptionByDefault"] for r in bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    ]
    assert clients.s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"] == bucket["OwnershipControls"]
    (rule,) = clients.s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    (wanted_rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert (rule["ID"], rule["AbortIncompleteMultipartUpload"]) == (wanted_rule["Id"], wanted_rule["AbortIncompleteMultipartUpload"])


def _sorted(definitions: list[dict[str, str]]) -> list[tuple[str, str]]:
    return sorted((d["AttributeName"], d["AttributeType"]) for d in definitions)
