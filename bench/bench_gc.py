"""Garbage collection over a registry of 10,000 manifests: time and AWS calls per run.

Pushes N images (unique config, one shared layer) across R repositories through the core on an
in-process moto (with chalicelib/adapters/motoserver.py's item rollback, so a transaction costs what it touches), makes
about 1% eligible (deleted manifests, orphan uploads), then times three GC runs, counting S3 and DynamoDB calls by operation with botocore event hooks:
  1. the run that collects, 2. an idle run right after (nothing eligible),
  3. an idle run with retention policies matching no repository (blob phases only).
Run: .venv/bin/python bench/bench_gc.py [--manifests 10000] [--repositories 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' Client helper pushes images

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from moto import mock_aws

from chalicelib.adapters.motoserver import install_item_rollback as install_fast_transactions
from chalicelib.api.service import Service, build_service
from chalicelib.config.schema import Config, Retention
from chalicelib.lifecycle.gc import GarbageCollector
from chalicelib.storage.aws import ensure_resources, make_clients
from tests.conftest import Client
from tests.counting import CallCounter

RESULTS = Path(__file__).resolve().parent / "results"


def populate(client: Client, manifests: int, repositories: int) -> list[tuple[str, str]]:
    shared = os.urandom(4096)
    pushed = []
    for n in range(manifests):
        repo = f"bench/r{n % repositories:04d}"
        digest, _ = client.push_image(repo, f"t{n}", [shared], config={"os": "linux", "architecture": "amd64", "n": n})
        pushed.append((repo, digest))
    return pushed


def timed_run(service: Service, counter: CallCounter, hours: float) -> dict[str, Any]:
    started = time.perf_counter()
    report = GarbageCollector(service, clock=lambda: time.time() + hours * 3600).run()
    return {"seconds": round(time.perf_counter() - started, 2), "deleted": report.deleted, "calls": counter.take()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--repositories", type=int, default=100)
    args = parser.parse_args()
    install_fast_transactions()
    with mock_aws():
        config = Config.model_validate({"storage": {"storageDriver": {"bucket": "bench-gc"}}})
        clients = make_clients(config)
        ensure_resources(config, clients)
        service = build_service(config, clients)
        client = Client(service)
        started = time.perf_counter()
        pushed = populate(client, args.manifests, args.repositories)
        populate_seconds = time.perf_counter() - started
        eligible = max(1, args.manifests // 100)
        for repo, digest in pushed[:eligible]:
            client("DELETE", f"/v2/{repo}/manifests/{digest}")
        for n in range(eligible):
            client.push_blob(f"bench/r{n % args.repositories:04d}", os.urandom(1024))
        counter = CallCounter(service.store.client, service.index.table.client)
        collecting = timed_run(service, counter, hours=2)
        idle = timed_run(service, counter, hours=2)
        service.config.storage.retention = Retention.model_validate({"policies": [{"repositories": ["nothing/**"]}]})
        blobs_only = timed_run(service, counter, hours=2)
    result = {
        "manifests": args.manifests,
        "repositories": args.repositories,
        "eligible": {"deleted_manifests": eligible, "orphan_blobs": eligible},
        "populate_seconds": round(populate_seconds, 1),
        "collecting_run": collecting,
        "idle_run": idle,
        "idle_run_without_retention_walk": blobs_only,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gc.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
