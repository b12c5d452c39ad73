"""bench/bench_cost.py's counting: request units from item sizes and read modes, S3 classes, requests per operation.

The prices are not tested (they are a table someone re-reads); what is multiplied by them is.
"""

from __future__ import annotations

import contextlib

import boto3
import pytest

from bench.bench_cost import PRICES, Door, Meter, Usage, attach_meter, registry_clients
from tests.conftest import Client, sha256


@pytest.fixture
def dynamo(aws: None):
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}, {"AttributeName": "s", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("k", "s", "g")] + [{"AttributeName": "o", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gidx",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "o", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    meter = Meter()
    attach_meter(meter, [client])
    return client, meter


def key(s: str) -> dict:
    return {"k": {"S": "p"}, "s": {"S": s}}


def test_writes_count_kilobytes_of_the_larger_image_and_transactions_double(dynamo) -> None:
    client, meter = dynamo
    big = {**key("big"), "data": {"B": b"x" * 5000}}  # 5,000 bytes of value plus names and keys: 5 KB started
    with meter.measure() as put:
        client.put_item(TableName="t", Item=big)
    assert put.write_units == 5
    with meter.measure() as shrink:
        client.update_item(TableName="t", Key=key("big"), UpdateExpression="REMOVE #d", ExpressionAttributeNames={"#d": "data"})
    assert shrink.write_units == 5  # the item before the update was the larger
    with meter.measure() as failed, contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
        client.delete_item(TableName="t", Key=key("none"), ConditionExpression="attribute_exists(k)")
    assert failed.write_units == 1  # a failed condition still costs a unit
    with meter.measure() as transaction:
        client.transact_write_items(
            TransactItems=[{"Put": {"TableName": "t", "Item": {**key("a"), "v": {"S": "small"}}}}, {"Delete": {"TableName": "t", "Key": key("big")}}]
        )
    assert transaction.write_units == 4  # two items, one unit each, doubled
    assert transaction.calls == {"dynamodb:TransactWriteItems": 1}


def test_an_item_entering_moving_in_and_leaving_an_index_costs_index_writes(dynamo) -> None:
    client, meter = dynamo
    with meter.measure() as entering:
        client.put_item(TableName="t", Item={**key("a"), "g": {"S": "l0"}, "o": {"N": "1"}})
    assert entering.write_units == 2  # the table and the index
    with meter.measure() as moving:
        client.update_item(TableName="t", Key=key("a"), UpdateExpression="SET o = :o", ExpressionAttributeValues={":o": {"N": "2"}})
    assert moving.write_units == 3  # the table, then the index's delete and put
    with meter.measure() as leaving:
        client.update_item(TableName="t", Key=key("a"), UpdateExpression="REMOVE o")
    assert leaving.write_units == 2


def test_reads_count_four_kilobytes_and_halve_when_eventually_consistent(dynamo) -> None:
    client, meter = dynamo
    client.put_item(TableName="t", Item={**key("big"), "data": {"B": b"x" * 5000}})
    client.put_item(TableName="t", Item={**key("small"), "v": {"S": "x"}})
    with meter.measure() as strong:
        client.get_item(TableName="t", Key=key("big"), ConsistentRead=True)
    with meter.measure() as eventual:
        client.get_item(TableName="t", Key=key("big"))
    with meter.measure() as miss:
        client.get_item(TableName="t", Key=key("none"), ConsistentRead=True)
    with meter.measure() as batch:
        client.batch_get_item(RequestItems={"t": {"Keys": [key("big"), key("small"), key("none")]}})
    with meter.measure() as query:
        client.query(TableName="t", KeyConditionExpression="k = :k", ExpressionAttributeValues={":k": {"S": "p"}}, ConsistentRead=True)
    assert (strong.read_units, eventual.read_units, miss.read_units) == (2, 1, 1)
    assert batch.read_units == 0.5 * (2 + 1 + 1)  # each key on its own, a missing one still costs
    assert query.read_units == 2  # the items it read, summed, then 4 KB per unit
    assert strong.write_units == 0


def test_s3_requests_by_price_class(aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="cost-bucket")
    meter = Meter()
    attach_meter(meter, [s3])
    with meter.measure() as usage:
        s3.put_object(Bucket="cost-bucket", Key="k", Body=b"x")
        s3.list_objects_v2(Bucket="cost-bucket")
        s3.get_object(Bucket="cost-bucket", Key="k")["Body"].read()
        s3.head_object(Bucket="cost-bucket", Key="k")
        s3.delete_object(Bucket="cost-bucket", Key="k")
    assert (usage.s3_tier1, usage.s3_tier2, usage.s3_free) == (2, 2, 1)


@pytest.mark.parametrize("door", ["api-gateway", "function-url"])
def test_an_operation_through_the_app_counts_one_request_per_registry_request(service, monkeypatch: pytest.MonkeyPatch, door: str) -> None:
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    layer = b"layer bytes"
    Client(service).push_image("a/b", "v1", [layer])
    meter = Meter()
    attach_meter(meter, registry_clients(service))
    send = Door(app_module.app, door, meter, 1024)
    try:
        with meter.measure() as head:
            assert send("HEAD", "/v2/a/b/manifests/v1")["statusCode"] == 200
        with meter.measure() as blob:
            assert send("GET", f"/v2/a/b/blobs/{sha256(layer)}")["statusCode"] == 307
    finally:
        send.close()
    assert (head.requests, head.invocations) == (1, 1) and head.billed_ms >= 1  # one access line, rounded up
    assert head.calls == {"dynamodb:GetItem": 1} and head.write_units == 0
    assert blob.requests == 1 and blob.s3_tier2 == 1  # the client's presigned GET


def test_dollars_multiply_the_counts() -> None:
    """With every price at one dollar the parts are the counts themselves (duration in GB-seconds)."""
    ones = {name: (1.0, unit) for name, (_, unit) in PRICES.items()}
    usage = Usage(requests=3, invocations=3, billed_ms=2000, memory_mb=512, read_units=1.5, write_units=4, s3_tier1=2, s3_tier2=5, s3_free=7)
    assert usage.dollars("api-gateway", ones) == {"front door": 3, "lambda": 3 + 1.0, "dynamodb": 5.5, "s3": 7}
    assert usage.dollars(None, ones)["front door"] == 0
    assert PRICES["function_url_request"][0] == 0  # the function URL's only fee is the invocation
