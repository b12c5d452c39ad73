"""Several registry processes on one emulator, as Lambda instances share one table, with GC looping at zero delay.

Four clients push images (shared and fresh layers, HEAD before upload, each manifest under a unique
tag) through three `zotless serve` processes, one client moves a shared tag, one deletes older
manifests by digest, and a fifth process runs GC with no delay over and over. At the end every
acknowledged push that nobody deleted must pull whole, `zotless scrub` must find nothing, and a
wiped index rebuilt from S3 must give clients back what they saw. A refusal is allowed only when it
is true: `400 MANIFEST_BLOB_UNKNOWN` (GC took a blob the manifest had not yet claimed) or `429`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from chalicelib.adapters.emulator import start_moto
from tests.integration.conftest import LAYER, OCI_CONFIG, OCI_MANIFEST, ROOT, RunningRegistry, _start, _stop, sha256, zotless_command

SERVERS = 3
PUSHERS = 4
IMAGES_PER_PUSHER = 12
SHARED_LAYERS = [f"shared layer {n}".encode() * 200 for n in range(3)]
REPOS = ["race/one", "race/two"]
GC_LOOP = """
import pathlib, sys, time
from chalicelib.api.service import build_service
from chalicelib.config.schema import load_config
from chalicelib.lifecycle.gc import collect_everywhere
service = build_service(load_config(sys.argv[1]))
stop, runs = pathlib.Path(sys.argv[2]), 0
while not stop.exists():
    collect_everywhere(service)
    runs += 1
print(runs)
"""


@dataclass
class Ledger:
    """What clients were told: acknowledged pushes, refusals, and the deletes that remove an acknowledged push."""

    acknowledged: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # tag -> (repo, digest, body)
    deleted: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[RunningRegistry], Path]]:
    tmp = tmp_path_factory.mktemp("cluster")
    emulator = start_moto(tmp / "moto.log")
    config = {
        "storage": {
            "storageDriver": {"bucket": "zotless-cluster", "regionendpoint": emulator.endpoint},
            "cacheDriver": {"endpoint": emulator.endpoint},
            "gcDelay": "0s",
            "retention": {"delay": "0s"},
        }
    }
    config_path = tmp / "config.json"
    config_path.write_text(json.dumps(config))
    servers = [_start(tmp_path_factory.mktemp(f"server{n}"), config, "--no-emulator") for n in range(SERVERS)]
    try:
        yield servers, config_path
    finally:
        for server in servers:
            server.session.close()
            _stop(server.process)
        emulator.stop()


def push(server: RunningRegistry, repo: str, tag: str, rng: random.Random, ledger: Ledger) -> None:
    config = json.dumps({"os": "linux", "architecture": "amd64", "tag": tag}).encode()
    blobs = [(config, OCI_CONFIG), (rng.choice(SHARED_LAYERS), LAYER), (os.urandom(2048), LAYER)]
    descriptors = []
    for blob, media_type in blobs:
        if server("HEAD", f"/v2/{repo}/blobs/{sha256(blob)}").status_code != 200:
            response = server("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, data=blob)
            if response.status_code != 201:
                ledger.failures.append(f"blob upload {response.status_code}: {response.text[:200]}")
                return
        descriptors.append({"mediaType": media_type, "digest": sha256(blob), "size": len(blob)})
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0], "layers": descriptors[1:]}).encode()
    response = server("PUT", f"/v2/{repo}/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST})
    with ledger.lock:
        if response.status_code == 201:
            ledger.acknowledged[tag] = (repo, sha256(body), body)
        elif response.status_code == 429 or (response.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in response.text):
            ledger.refused.append(tag)
        else:
            ledger.failures.append(f"manifest {tag}: {response.status_code} {response.text[:200]}")


def pusher(servers: list[RunningRegistry], worker: int, ledger: Ledger) -> None:
    rng = random.Random(worker)
    for n in range(IMAGES_PER_PUSHER):
        push(servers[(worker + n) % SERVERS], REPOS[n % len(REPOS)], f"w{worker}-{n}", rng, ledger)


def mover(servers: list[RunningRegistry], ledger: Ledger, done: threading.Event) -> None:
    """Moves a shared tag onto acknowledged manifests; the tag never makes a manifest deletable."""
    rng = random.Random(99)
    while not done.is_set():
        with ledger.lock:
            choices = [(t, v) for t, v in ledger.acknowledged.items() if t not in ledger.deleted]
        if choices:
            _, (repo, _, body) = rng.choice(choices)
            response = rng.choice(servers)("PUT", f"/v2/{repo}/manifests/latest", data=body, headers={"Content-Type": OCI_MANIFEST})
            if response.status_code not in (201, 400, 429):
                ledger.failures.append(f"tag move {response.status_code}: {response.text[:200]}")
        time.sleep(0.05)


def deleter(servers: list[RunningRegistry], ledger: Ledger, done: threading.Event) -> None:
    """Deletes one in four acknowledged manifests by digest, as a cleanup job would."""
    rng = random.Random(7)
    while not done.is_set():
        with ledger.lock:
            choices = [t for t in ledger.acknowledged if t not in ledger.deleted and hash(t) % 4 == 0]
        if choices:
            tag = rng.choice(choices)
            repo, digest, _ = ledger.acknowledged[tag]
            with ledger.lock:
                ledger.deleted.add(tag)  # counted as deleted from the moment the request leaves
            response = rng.choice(servers)("DELETE", f"/v2/{repo}/manifests/{digest}")
            if response.status_code not in (202, 404, 429):
                ledger.failures.append(f"delete {response.status_code}: {response.text[:200]}")
        time.sleep(0.1)


def visible(server: RunningRegistry, ledger: Ledger) -> dict[str, tuple[str, bytes]]:
    """What a client sees for each surviving acknowledged tag: (digest header, body); pulls every blob too."""
    seen = {}
    for tag, (repo, digest, body) in sorted(ledger.acknowledged.items()):
        if tag in ledger.deleted:
            continue
        response = server("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200, f"acknowledged {repo}:{tag} ({digest}) is gone: {response.status_code} {response.text}"
        assert response.content == body
        assert server("GET", f"/v2/{repo}/manifests/{digest}").status_code == 200
        for descriptor in [json.loads(body)["config"], *json.loads(body)["layers"]]:
            blob = server.pull_blob(repo, descriptor["digest"])
            assert blob.status_code == 200 and sha256(blob.content) == descriptor["digest"], f"{repo}:{tag} lost {descriptor['digest']}"
        seen[tag] = (response.headers["Docker-Content-Digest"], response.content)
    return seen


def run_cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*zotless_command(), *args, "--config", str(config_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_every_acknowledged_push_survives_parallel_servers_deletes_and_gc(cluster):
    servers, config_path = cluster
    ledger, done = Ledger(), threading.Event()
    stop_file = config_path.parent / "stop-gc"
    gc = subprocess.Popen([sys.executable, "-c", GC_LOOP, str(config_path), str(stop_file)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    helpers = [threading.Thread(target=mover, args=(servers, ledger, done)), threading.Thread(target=deleter, args=(servers, ledger, done))]
    try:
        for thread in helpers:
            thread.start()
        with ThreadPoolExecutor(PUSHERS) as pool:
            list(pool.map(lambda w: pusher(servers, w, ledger), range(PUSHERS)))
    finally:
        done.set()
        for thread in helpers:
            thread.join()
        stop_file.touch()
        gc_runs = int(gc.communicate(timeout=300)[0].strip() or 0)
    assert ledger.failures == []
    assert gc_runs > 0 and len(ledger.acknowledged) > PUSHERS * IMAGES_PER_PUSHER // 2, (gc_runs, len(ledger.acknowledged), ledger.refused)
    seen = visible(servers[0], ledger)

    scrub = run_cli(config_path, "scrub")
    assert scrub.returncode == 0, scrub.stdout + scrub.stderr

    tables = json.loads(config_path.read_text())["storage"]["cacheDriver"]["endpoint"]
    dynamodb = boto3.client("dynamodb", endpoint_url=tables, region_name="us-east-1")
    for table in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=table)
    rebuilt = run_cli(config_path, "rebuild-index")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert visible(servers[1], ledger) == seen
