"""The Lambda path: a push queues a scan in SQS, the queue's function scans, the schedule loads and catches up."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from chalicelib.adapters.cvejobs import QUEUE_URL_VARIABLE, cve_service, with_scan_queue
from chalicelib.config.schema import Config
from chalicelib.cve.results import NotScanned, ScanResult
from tests.conftest import Client
from tests.cve_images import DEBIAN_RELEASE, dpkg_entry, dpkg_status, gzip_layer, standard_records, tag_result


@pytest.fixture
def advisories(tmp_path: Path) -> Path:
    for record in standard_records():
        (tmp_path / f"{record['id']}.json").write_text(json.dumps(record))
    return tmp_path


@pytest.fixture
def config(advisories: Path) -> Config:
    search = {"enable": True, "cve": {"source": str(advisories)}}
    return Config.model_validate({"storage": {"storageDriver": {"bucket": "zotless-test"}}, "extensions": {"search": search}})


@pytest.fixture
def app_module(service, monkeypatch):
    import app as module

    monkeypatch.setattr(module, "service", lambda: service)
    return module


IMAGE = [gzip_layer({"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": dpkg_status(dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl"))})]


def sqs_event(messages: list[dict]) -> dict:
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {}, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:zotless-cve-scans", "awsRegion": "us-east-1"}
               for m in messages]  # fmt: skip
    return {"Records": records}


def test_a_push_is_queued_and_the_queue_function_scans_it(app_module, service, client: Client, monkeypatch) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="zotless-cve-scans")["QueueUrl"]
    monkeypatch.setenv(QUEUE_URL_VARIABLE, queue_url)
    with_scan_queue(service)
    cve = cve_service(service)
    cve.db.load(standard_records(), "test")
    digest, _ = client.push_image("lambda", "v1", IMAGE)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [{"repo": "lambda", "digest": digest}]
    assert isinstance(tag_result(cve, "lambda", "v1"), NotScanned), "the push itself never scans"
    app_module.cve_scan(sqs_event(messages), None)
    outcome = tag_result(cve, "lambda", "v1")
    assert isinstance(outcome, ScanResult) and [c["Id"] for c in outcome.cves] == ["CVE-2023-5363"]


def test_the_schedule_scans_what_no_queue_saw(app_module, service, client: Client) -> None:
    client.push_image("sched", "v1", IMAGE)
    cve = cve_service(service)
    cve.db.load(standard_records(), "test")
    app_module.cve_db_update({"detail-type": "Scheduled Event", "source": "aws.events", "resources": [], "time": "2026-01-01T00:00:00Z",
                              "region": "us-east-1", "account": "123456789012", "id": "x", "detail": {}, "version": "0"}, None)  # fmt: skip
    outcome = tag_result(cve, "sched", "v1")
    assert isinstance(outcome, ScanResult) and [c["Id"] for c in outcome.cves] == ["CVE-2023-5363"]
