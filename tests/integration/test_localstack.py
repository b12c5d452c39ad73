"""localstack/: the compose file is valid, and the init hook creates what `zotless init-aws` creates.

Docker is not available here, so the hook runs with the AWS CLI against moto's server; the same
resources are then made by the Provisioner behind init-aws on a reset server, and both are compared.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from chalicelib.adapters.emulator import MotoEmulator, start_moto
from chalicelib.config.schema import Config, load_config
from chalicelib.deploy.provision import Provisioner
from chalicelib.storage.aws import make_clients

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "localstack" / "docker-compose.yml"
HOOK = ROOT / "localstack" / "init" / "ready.d" / "init-zotless.sh"
EXAMPLE = ROOT / "examples" / "config-s3.json"
_DEFAULT = re.compile(r"^\$\{(\w+):-(.*)\}$")


def test_the_compose_file_parses_and_mounts_the_hook():
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["localstack"]
    image = service["image"]
    assert image.startswith("localstack/localstack:") and not image.endswith(":latest"), "pin the image"
    assert "127.0.0.1:4566:4566" in service["ports"]
    assert "./init/ready.d:/etc/localstack/init/ready.d:ro" in service["volumes"]
    environment = {k: _DEFAULT.sub(r"\2", str(v)) for k, v in service["environment"].items()}
    assert {"s3", "dynamodb"} <= set(environment["SERVICES"].split(","))
    config = load_config(EXAMPLE, environ={})
    cache = config.storage.cacheDriver
    assert environment["ZOTLESS_BUCKET"] == config.storage.storageDriver.bucket
    assert environment["ZOTLESS_ROOTDIRECTORY"] == config.storage.storageDriver.rootdirectory
    assert [environment[v] for v in ("ZOTLESS_BLOB_TABLE", "ZOTLESS_META_TABLE", "ZOTLESS_UPLOADS_TABLE")] == [
        cache.cacheTablename,
        cache.repoMetaTablename,
        cache.uploadsTablename,
    ]
    assert set(compose["volumes"]) == {"localstack-data"}


def test_the_hook_is_an_executable_bash_script():
    assert os.access(HOOK, os.X_OK), "LocalStack runs init hooks as executables"
    assert subprocess.run(["bash", "-n", str(HOOK)], check=False).returncode == 0


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEmulator]:
    with start_moto() as emulator:
        yield emulator


def _aws_cli() -> str:
    found = shutil.which("aws")
    if found is None:
        pytest.skip("the AWS CLI is not on PATH (apt-get install awscli, or pip install awscli outside the venv)")
    return found


def _run_hook(endpoint: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ZOTLESS_", "AWS_"))}
    environ |= {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([str(HOOK)], env=environ, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"hook failed:\n{result.stdout}\n{result.stderr}"
    return result


def _config(endpoint: str) -> Config:
    config = load_config(EXAMPLE, environ={})
    config.storage.storageDriver.regionendpoint = endpoint
    config.storage.cacheDriver.endpoint = endpoint
    return config


def _snapshot(endpoint: str, config: Config) -> dict[str, Any]:
    """What a registry depends on: bucket settings, table keys, indexes, billing and TTL."""
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=endpoint)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    bucket = config.storage.storageDriver.bucket
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    snapshot: dict[str, Any] = {
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "public_access_block": s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        "encryption": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"],
        "ownership": s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"],
        "lifecycle": [(r["ID"], r["Status"], r.get("Filter"), r["AbortIncompleteMultipartUpload"]) for r in rules],
        "tables": {},
    }
    for name in sorted(dynamodb.list_tables()["TableNames"]):
        table = dynamodb.describe_table(TableName=name)["Table"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        snapshot["tables"][name] = {
            "keys": table["KeySchema"],
            "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
            "indexes": [(i["IndexName"], i["KeySchema"], i["Projection"]) for i in table.get("GlobalSecondaryIndexes", [])],
            "billing": table["BillingModeSummary"]["BillingMode"],
            "ttl": (ttl["TimeToLiveStatus"], ttl.get("AttributeName")),
        }
    return snapshot


def _reset(moto: MotoEmulator) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{moto.endpoint}/moto-api/reset", method="POST"), timeout=10).read()


def test_the_hook_creates_what_init_aws_creates_and_can_rerun(moto: MotoEmulator):
    _aws_cli()
    config = _config(moto.endpoint)
    _reset(moto)
    Provisioner(config, make_clients(config), echo=lambda _line: None).run()
    expected = _snapshot(moto.endpoint, config)
    _reset(moto)
    first = _run_hook(moto.endpoint)
    assert "created bucket" in first.stdout and "enabled TTL" in first.stdout
    assert _snapshot(moto.endpoint, config) == expected
    again = _run_hook(moto.endpoint)
    assert "created" not in again.stdout and "enabled" not in again.stdout
    assert _snapshot(moto.endpoint, config) == expected
    assert Provisioner(config, make_clients(config), echo=lambda _line: None).run() == []  # init-aws finds nothing to fix
