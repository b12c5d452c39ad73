"""`zotless init-aws` makes the CVE scan queue and its dead-letter queue as the merge template describes them, idempotently."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from chalicelib.cli.commands import main
from chalicelib.deploy.provision import MAX_RECEIVES, Provisioner, ScanQueues, scan_queues, stage_config, stage_names
from chalicelib.deploy.templates import template_file
from chalicelib.storage.aws import make_clients

REGION = "eu-west-1"


def provision(stage: str, dry_run: bool = False) -> tuple[list[str], Any]:
    config = stage_config(stage, region=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    changes = Provisioner(config, make_clients(config), dry_run, lambda _line: None, scan_queues(stage), sqs).run()
    return changes, sqs


def attributes(sqs: Any, name: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


@pytest.mark.parametrize("stage", stage_names())
def test_init_aws_makes_the_queues_the_template_describes(aws: None, stage: str):
    changes, sqs = provision(stage)
    queues = scan_queues(stage)
    assert [c for c in changes if "queue" in c] == [f"create queue {queues.dead_letter}", f"create queue {queues.name}"]
    template = json.loads(template_file(stage).read_text())["Resources"]
    scans, dead = attributes(sqs, queues.name), attributes(sqs, queues.dead_letter)
    wanted = template["CveScanQueue"]["Properties"]
    assert int(scans["VisibilityTimeout"]) == wanted["VisibilityTimeout"] and int(scans["MessageRetentionPeriod"]) == wanted["MessageRetentionPeriod"]
    assert int(dead["MessageRetentionPeriod"]) == template["CveScanDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
    redrive = json.loads(scans["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dead["QueueArn"] and int(redrive["maxReceiveCount"]) == wanted["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES
    assert scans["SqsManagedSseEnabled"] == dead["SqsManagedSseEnabled"] == "true"


def test_a_second_run_changes_no_queue(aws: None):
    provision("prod")
    changes, _ = provision("prod")
    assert changes == []


def test_dry_run_creates_no_queue(aws: None):
    changes, sqs = provision("dev", dry_run=True)
    assert f"create queue {scan_queues('dev').name}" in changes
    assert sqs.list_queues().get("QueueUrls", []) == []


def test_a_queue_made_by_hand_gets_its_redrive_and_timeout(aws: None):
    """A scan queue someone created without a dead-letter queue: init-aws adds the redrive policy, keeps the queue."""
    queues = scan_queues("prod")
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=queues.name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    changes, _ = provision("prod")
    assert f"set RedrivePolicy, VisibilityTimeout on queue {queues.name}" in changes
    assert sqs.get_queue_url(QueueName=queues.name)["QueueUrl"] == url
    assert int(json.loads(attributes(sqs, queues.name)["RedrivePolicy"])["maxReceiveCount"]) == MAX_RECEIVES


def test_a_message_that_keeps_failing_ends_in_the_dead_letter_queue(aws: None):
    """What the redrive policy does for a scan that raises every time: after MAX_RECEIVES receives, SQS moves it."""
    queues = ScanQueues("scans", "scans-failed", 0)  # visible again at once, so the test need not wait
    sqs = boto3.client("sqs", region_name=REGION)
    config = stage_config("dev", region=REGION)
    Provisioner(config, make_clients(config), False, lambda _line: None, queues, sqs).run()
    url = sqs.get_queue_url(QueueName=queues.name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"repo": "gone", "digest": "sha256:" + "0" * 64}))
    receives = 0
    while sqs.receive_message(QueueUrl=url).get("Messages"):  # never deleted: the function raised
        receives += 1
    assert receives == MAX_RECEIVES
    dead_url = sqs.get_queue_url(QueueName=queues.dead_letter)["QueueUrl"]
    assert [json.loads(m["Body"])["repo"] for m in sqs.receive_message(QueueUrl=dead_url)["Messages"]] == ["gone"]


def test_cli_prints_the_queue_url_for_chalice_deploy(aws: None):
    result = CliRunner().invoke(main, ["init-aws", "--stage", "dev", "--region", REGION])
    assert result.exit_code == 0, result.output
    assert f"create queue {scan_queues('dev').name}" in result.output
    assert f"/{scan_queues('dev').name} " in result.output and "ZOTLESS_CVE_QUEUE_URL" in result.output
