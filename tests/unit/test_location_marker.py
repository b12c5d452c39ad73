"""The index and the bucket never silently disagree: the local example is the built-in default, and a
server refuses an index recorded for another bucket or prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.config.schema import Config, ConfigError, load_config
from chalicelib.storage.aws import Clients, LocationMismatch, claim_index, ensure_resources, make_clients

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_local_example_is_the_built_in_default() -> None:
    """`make run` uses the example; a config that omits everything must find the same objects."""
    assert load_config(EXAMPLES / "config-local.json", environ={}) == load_config(None, environ={})


def located(bucket: str = "zotless", root: str = "") -> Config:
    return Config.model_validate({"storage": {"storageDriver": {"bucket": bucket, "rootdirectory": root}}})


@pytest.fixture
def clients(aws: None) -> Iterator[Clients]:
    config = located()
    clients = make_clients(config)
    ensure_resources(config, clients)
    ensure_resources(located("other"), clients)
    yield clients


def dynamodb_calls(clients: Clients) -> list[str]:
    calls: list[str] = []
    clients.dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def test_first_start_records_the_location_and_later_starts_read_one_item(clients: Clients) -> None:
    claim_index(located(root="/zotless"), clients)
    calls = dynamodb_calls(clients)
    claim_index(located(root="zotless/"), clients)  # the same prefix, spelled differently
    assert calls == ["GetItem"]


@pytest.mark.parametrize(("bucket", "root"), [("zotless", ""), ("other", "/zotless"), ("zotless", "/zotless/sub")])
def test_another_location_is_refused_naming_both(clients: Clients, bucket: str, root: str) -> None:
    claim_index(located(root="/zotless"), clients)
    with pytest.raises(LocationMismatch) as refused:
        claim_index(located(bucket, root), clients)
    assert isinstance(refused.value, ConfigError)
    message = str(refused.value)
    assert "s3://zotless/zotless/" in message and f"s3://{bucket}/{root.strip('/') + '/' if root else ''}" in message
    assert "\n" not in message


def test_the_marker_stays_out_of_the_catalog(client, service) -> None:
    claim_index(service.config, make_clients(service.config))
    client.push_image("team/app", "v1", [b"layer"])
    response = client("GET", "/v2/_catalog")
    assert response.status == 200 and response.body_bytes() == b'{"repositories": ["team/app"]}'
