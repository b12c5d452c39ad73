"""CVE scan throughput for a ~200 MiB image: MiB/s against a raw S3 download of the same layers, peak memory, AWS calls.

Pushes one Debian image (a dpkg status with 400 packages, site-packages, node_modules, and bulk files of
incompressible data in four gzip layers plus one zstd layer) through the core on an in-process moto,
loads an OSV database of 2,000 advisories, then in one run: downloads every layer raw (the S3 floor),
scans the image once from nothing (layers streamed, inventory kept), and re-matches it once (a database
update: no layer read). Peak memory is tracemalloc's peak during each phase.
Run: .venv/bin/python bench/bench_scan.py [--mib 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from moto import mock_aws

from chalicelib.api.service import build_service
from chalicelib.config.schema import Config
from chalicelib.cve.scanner import read_inventory
from chalicelib.cve.service import CveService
from chalicelib.spec.references import Digest
from chalicelib.storage.aws import ensure_resources, make_clients
from tests.conftest import Client
from tests.cve_images import DEBIAN_RELEASE, dist_info, dpkg_entry, dpkg_status, gzip_layer, npm_package, osv, standard_records, zstd_layer

MIB = 1 << 20


class Calls:
    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.operations[model.name] += 1


def image_layers(total_mib: int) -> list[tuple[bytes, str]]:
    entries = [dpkg_entry(f"pkg{n}", f"1.{n}-1", f"src{n % 150}") for n in range(400)] + [dpkg_entry("libssl3", "3.0.11-1~deb12u1", "openssl")]
    base = {"etc/os-release": DEBIAN_RELEASE, "var/lib/dpkg/status": dpkg_status(*entries)}
    for n in range(200):
        base |= dist_info(f"lib{n}", "1.0.0") | npm_package(f"mod{n}", "1.0.0")
    per_layer = total_mib * MIB // 5
    layers = [(gzip_layer(base | {"bulk/0.bin": os.urandom(per_layer)}), "application/vnd.oci.image.layer.v1.tar+gzip")]
    layers += [(gzip_layer({f"bulk/{n}.bin": os.urandom(per_layer)}), "application/vnd.oci.image.layer.v1.tar+gzip") for n in range(1, 4)]
    layers.append((zstd_layer({"bulk/4.bin": os.urandom(per_layer)}), "application/vnd.oci.image.layer.v1.tar+zstd"))
    return layers


def measure(action: Callable[[], Any], calls: Calls, reset: Callable[[], Any] = lambda: None) -> dict[str, Any]:
    """Timed without tracing (tracemalloc slows Python code several-fold), then run again for the memory peak."""
    reset()
    calls.operations.clear()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    counted = dict(calls.operations)
    reset()
    tracemalloc.start()
    action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": round(seconds, 3), "peak_mib": round(peak / MIB, 1), "calls": counted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    args = parser.parse_args(argv)
    with mock_aws():
        config = Config.model_validate({"storage": {"storageDriver": {"bucket": "bench-scan"}}})
        clients = make_clients(config)
        ensure_resources(config, clients)
        service = build_service(config, clients)
        client = Client(service)
        layers = image_layers(args.mib)
        from tests.unit.test_cve_scan import push_raw

        digest, _ = push_raw(client, "bench", "v1", layers)
        cve = CveService(service.api.registry, service.index, service.store)
        records = standard_records() + [osv(f"DEBIAN-CVE-2024-{n}", "Debian:12", f"src{n % 300}", fixed=f"1.{n}-2") for n in range(2000)]
        cve.db.load(records, "bench")
        calls = Calls()
        for aws in (clients.s3, clients.dynamodb):
            aws.meta.events.register("provide-client-params", calls)
        size = sum(len(data) for data, _ in layers)

        def download() -> None:
            for data, _ in layers:
                location = service.registry.blob("bench", Digest.parse(client_digest(data)))
                for _chunk in service.registry.blob_bytes("bench", location):
                    pass

        def forget() -> None:
            cve.cache.table.delete("_cve", f"s#{digest}")
            cve.db._cache.clear()
            cve.db._indexes.clear()

        manifest = json.loads(service.registry.get_manifest("bench", digest).body)
        raw = measure(download, calls)
        layers_only = measure(lambda: read_inventory(service.registry, "bench", manifest), calls)
        scan = measure(lambda: cve.scan("bench", digest), calls, forget)
        result = cve.result(digest)
        cve.db.load(records[:-10], "bench again")
        rematch = measure(cve.rematch_all, calls, lambda: cve.cache.table.update(("_cve", f"s#{digest}"), "SET dbVersion = :v", {":v": "stale"}))
        report = {
            "image_mib": round(size / MIB, 1),
            "layers": len(layers),
            "raw_download": raw | {"mib_per_s": round(size / MIB / raw["seconds"], 1)},
            "layer_read": layers_only | {"mib_per_s": round(size / MIB / layers_only["seconds"], 1)},
            "scan": scan | {"mib_per_s": round(size / MIB / scan["seconds"], 1)},
            "rematch": rematch,
            "findings": getattr(result, "summary", None) and result.summary.as_graphql(),  # type: ignore[union-attr]
        }
    print(json.dumps(report, indent=2))
    return 0


def client_digest(data: bytes) -> str:
    from tests.conftest import sha256

    return sha256(data)


if __name__ == "__main__":
    sys.exit(main())
