"""The embedded emulator's patches to moto: a Query on a table's key reads only its partition; ETags are hashed fast."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto.dynamodb.models.table import Table

from chalicelib.adapters.motoserver import install_partition_query


@pytest.fixture
def patched(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Installs the patch over a counting all_items (both undone after the test); returns how often moto walked a whole table."""
    walks: list[int] = []
    original = Table.all_items

    def counted(self: Any) -> list[Any]:
        walks.append(len(original(self)))
        return original(self)

    monkeypatch.setattr(Table, "all_items", counted)
    monkeypatch.setattr(Table, "query", Table.query)
    install_partition_query()
    return walks


def test_a_key_query_walks_its_partition_not_the_table(patched: list[int]) -> None:
    """Pushes slowed as the index grew: every Query sorted the whole table. Results and paging stay moto's."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"}, {"AttributeName": "r", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "h", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}])
    for h in ("a", "b", "c"):
        for r in range(5):
            client.put_item(TableName="t", Item={"h": {"S": h}, "r": {"S": f"{4 - r}"}})

    def query(**kwargs: Any) -> list[str]:
        return [i["r"]["S"] for i in client.query(TableName="t", ExpressionAttributeValues={":h": {"S": "b"}, **kwargs.pop("values", {})}, **kwargs)["Items"]]

    assert query(KeyConditionExpression="h = :h") == ["0", "1", "2", "3", "4"]
    assert query(KeyConditionExpression="h = :h", ScanIndexForward=False, Limit=2) == ["4", "3"]
    assert query(KeyConditionExpression="h = :h", ExclusiveStartKey={"h": {"S": "b"}, "r": {"S": "1"}}) == ["2", "3", "4"]
    assert query(KeyConditionExpression="h = :h AND r > :r", values={":r": {"S": "2"}}) == ["3", "4"]
    assert query(KeyConditionExpression="h = :z", values={":z": {"S": "none"}}) == []
    assert patched == []
    client.scan(TableName="t")
    assert patched == [15]  # a Scan still reads every item, as on DynamoDB


def test_the_dispatcher_lists_moto_s_modules_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request listed moto's package directory (13% of a journal replay); the list is read once and kept."""
    import os

    from moto import backends

    from chalicelib.adapters.motoserver import install_module_list_cache

    monkeypatch.setattr(backends, "list_of_moto_modules", backends.list_of_moto_modules)
    listed: list[str] = []
    original = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or original(path))
    install_module_list_cache()
    first = backends.list_of_moto_modules()
    assert "s3" in first and "dynamodb" in first
    assert backends.list_of_moto_modules() == first and len(listed) == 1


@pytest.mark.parametrize("size", [1000, 6 << 20], ids=["in-memory", "spilled-to-disk"])
def test_etags_are_sha256_cut_to_md5s_length_and_multipart_uploads_still_complete(aws: None, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """moto's MD5 ETags were its largest CPU cost in a chunked push; S3 promises only that an ETag follows the content."""
    import hashlib
    import os

    from moto.s3.models import FakeKey

    from chalicelib.adapters.motoserver import install_fast_etags

    monkeypatch.setattr(FakeKey, "etag", FakeKey.etag)
    install_fast_etags()
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="etags")
    body = os.urandom(size)
    put = s3.put_object(Bucket="etags", Key="k", Body=body)
    assert put["ETag"] == '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    assert s3.head_object(Bucket="etags", Key="k")["ETag"] == put["ETag"]
    assert s3.put_object(Bucket="etags", Key="k2", Body=body + b"!")["ETag"] != put["ETag"]
    upload = s3.create_multipart_upload(Bucket="etags", Key="m")["UploadId"]
    parts = [os.urandom(5 << 20), body]
    etags = [s3.upload_part(Bucket="etags", Key="m", UploadId=upload, PartNumber=n, Body=part)["ETag"] for n, part in enumerate(parts, 1)]
    assert etags[1] == put["ETag"]
    listed = [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]
    s3.complete_multipart_upload(Bucket="etags", Key="m", UploadId=upload, MultipartUpload={"Parts": listed})
    assert s3.get_object(Bucket="etags", Key="m")["Body"].read() == b"".join(parts)


@pytest.fixture
def part_budget(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The parts patch with room for two 6 MiB parts (undone after the test)."""
    from moto.s3 import models

    from chalicelib.adapters.motoserver import install_parts_in_memory

    monkeypatch.setattr(models.FakeMultipart, "set_part", models.FakeMultipart.set_part)
    monkeypatch.setattr(models, "get_s3_default_key_buffer_size", models.get_s3_default_key_buffer_size)
    monkeypatch.setattr(models.S3Backend, "complete_multipart_upload", models.S3Backend.complete_multipart_upload)
    return install_parts_in_memory(limit=12 << 20)


def test_parts_stay_in_memory_within_the_budget_and_give_it_back_when_the_upload_ends(part_budget: Any) -> None:
    """A part spilled to a temporary file cost ~20 ms more per 8.9 MiB; past the budget parts spill as before."""
    import os

    from moto.s3.models import s3_backends

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="parts")
    upload = s3.create_multipart_upload(Bucket="parts", Key="blob")["UploadId"]
    parts = [os.urandom(6 << 20) for _ in range(3)]
    etags = [s3.upload_part(Bucket="parts", Key="blob", UploadId=upload, PartNumber=n, Body=part)["ETag"] for n, part in enumerate(parts, 1)]
    stored = s3_backends["123456789012"]["aws"].buckets["parts"].multiparts[upload].parts
    assert [stored[n]._value_buffer._rolled for n in (1, 2, 3)] == [False, False, True]  # the third is past the budget
    assert part_budget.used == 12 << 20
    listed = [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]
    s3.complete_multipart_upload(Bucket="parts", Key="blob", UploadId=upload, MultipartUpload={"Parts": listed})
    del stored
    assert part_budget.used == 0
    assert s3.get_object(Bucket="parts", Key="blob")["Body"].read() == b"".join(parts)
    assert s3.head_object(Bucket="parts", Key="blob")["ETag"].endswith('-3"')
    listed_again = s3.complete_multipart_upload(Bucket="parts", Key="blob", UploadId=upload, MultipartUpload={"Parts": listed})
    assert listed_again["ETag"].endswith('-3"')  # a completion retried after a lost answer still succeeds
    aborted = s3.create_multipart_upload(Bucket="parts", Key="other")["UploadId"]
    s3.upload_part(Bucket="parts", Key="other", UploadId=aborted, PartNumber=1, Body=parts[0])
    s3.upload_part(Bucket="parts", Key="other", UploadId=aborted, PartNumber=1, Body=parts[1])  # a part written again
    assert part_budget.used == 6 << 20
    s3.abort_multipart_upload(Bucket="parts", Key="other", UploadId=aborted)
    assert part_budget.used == 0
