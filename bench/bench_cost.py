"""What a million registry operations cost on AWS, per front door: counted requests times us-east-1 list prices.

Each operation runs through app.py as the deployed function receives it (a REST API proxy event, or a
function URL event), on an in-process moto, and is metered:
  * front-door requests and Lambda invocations: one per registry request (an S3 redirect's GET is S3's);
  * billed duration: the handler's own timing (the `latencyMs` of app.py's access line), rounded up to
    the millisecond as Lambda bills, times the stage's memory size. Measured here, against moto on
    this machine, not against AWS: read it as an order of magnitude (AWS adds ~5-20 ms per call);
  * DynamoDB read and write request units, computed from the requests and the items they touch (moto's
    ConsumedCapacity is a constant, so it is not used): reads 4 KB per unit, halved when eventually
    consistent, a missing item still one; writes 1 KB per unit of the larger of the item before and
    after, doubled in a transaction, plus the writes of the global secondary indexes an item enters,
    changes in or leaves;
  * S3 requests by price class: PUT/COPY/POST/LIST (and multipart steps), GET/HEAD, and the free
    DELETE/abort; a presigned GET the client follows after a 307 is counted as a GET.
Operations: pull and push of a 1- and a 5-layer image as a client sends them (layers pushed in
OCI-Chunk-Max-Length chunks, as a client of the Lambda must), HEAD manifest, tag list, a GC run over
1,000 manifests (a scheduled invocation: no front door), and search once chalicelib/search exists.
Not counted: data transfer (the same for both doors: blobs leave S3 through presigned URLs), CloudWatch
Logs ingestion, storage per GB-month, free tiers.

Run: .venv/bin/python bench/bench_cost.py [--layer-mib 10] [--gc-manifests 1000] [--stage prod]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py and the tests' Client helper

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

RESULTS = Path(__file__).resolve().parent / "results"

# AWS's public list prices for us-east-1, in dollars per unit. NOT read from the pricing pages: this
# machine cannot browse, so they are the author's knowledge of those pages as of early 2025 (DynamoDB
# on-demand after its November 2024 price cut). Check them before quoting a bill; the counts do not change.
PRICES_AS_OF = "early 2025 (from the author's knowledge, not re-read from aws.amazon.com/pricing)"
PRICES: dict[str, tuple[float, str]] = {
    "api_gateway_rest_request": (3.50e-6, "API Gateway REST API request (first 333 million a month)"),
    "function_url_request": (0.0, "Lambda function URL request: no charge beyond the invocation"),
    "lambda_request": (0.20e-6, "Lambda invocation"),
    "lambda_gb_second": (0.0000166667, "Lambda duration per GB-second (x86; arm64 is 0.0000133334)"),
    "dynamodb_read_unit": (0.125e-6, "DynamoDB on-demand read request unit"),
    "dynamodb_write_unit": (0.625e-6, "DynamoDB on-demand write request unit"),
    "s3_tier1_request": (0.005e-3, "S3 Standard PUT, COPY, POST, LIST request (multipart steps included)"),
    "s3_tier2_request": (0.0004e-3, "S3 Standard GET, SELECT and other request (HEAD included)"),
}
DOORS = {"api-gateway": "api_gateway_rest_request", "function-url": "function_url_request"}

S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}
S3_TIER2 = {"GetObject", "HeadObject", "GetObjectTagging", "GetObjectAttributes", "HeadBucket", "GetBucketLocation"}
READ_UNIT_BYTES, WRITE_UNIT_BYTES, INDEX_ENTRY_OVERHEAD = 4096, 1024, 100


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one typed value ({"S": ...}, {"N": ...}, {"B": ...}, lists, maps, sets)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "").lstrip("0")) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: v}) for v in inner)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """An item's size: attribute names plus values (0 for no item)."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in (item or {}).items())


def write_units(before: int, after: int) -> int:
    """One unit per started KB of the larger image of the item; a write that finds nothing still costs one."""
    return max(1, math.ceil(max(before, after) / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    """One unit per started 4 KB (a miss still costs one), half for an eventually consistent read."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units if consistent else units / 2


@dataclass
class Usage:
    """What one operation consumed, summed over its requests."""

    requests: int = 0  # front-door requests, each one Lambda invocation
    invocations: int = 0
    billed_ms: int = 0
    memory_mb: int = 1024
    read_units: float = 0.0
    write_units: float = 0.0
    s3_tier1: int = 0
    s3_tier2: int = 0
    s3_free: int = 0
    calls: Counter[str] = field(default_factory=Counter)

    def add(self, other: Usage) -> None:
        for name in ("requests", "invocations", "billed_ms", "read_units", "write_units", "s3_tier1", "s3_tier2", "s3_free"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.calls.update(other.calls)

    def dollars(self, door: str | None, prices: dict[str, tuple[float, str]] = PRICES) -> dict[str, float]:
        """Dollars per part; door None for an invocation no front door carries (the GC schedule)."""
        price = {name: value for name, (value, _) in prices.items()}
        return {
            "front door": self.requests * price[DOORS[door]] if door else 0.0,
            "lambda": self.invocations * price["lambda_request"] + self.billed_ms / 1000 * self.memory_mb / 1024 * price["lambda_gb_second"],
            "dynamodb": self.read_units * price["dynamodb_read_unit"] + self.write_units * price["dynamodb_write_unit"],
            "s3": self.s3_tier1 * price["s3_tier1_request"] + self.s3_tier2 * price["s3_tier2_request"],
        }

    def aws_calls(self, service: str) -> int:
        return sum(n for name, n in self.calls.items() if name.startswith(f"{service}:"))


class Meter:
    """Counts S3 requests by class and DynamoDB request units from botocore events on the registry's clients.

    DynamoDB writes need the item as it was before the call: it is read from moto's backend (in this
    process) when botocore is handed the parameters, and again after the call.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        if service == "s3":
            client.meta.events.register("before-call.s3.*", self._s3)
        elif service == "dynamodb":
            region = client.meta.region_name
            client.meta.events.register(
                "provide-client-params.dynamodb.*", lambda params, model, context, **_: self._before(region, model.name, params, context)
            )
            client.meta.events.register("after-call.dynamodb.*", lambda parsed, model, context, **_: self._after(region, model.name, parsed, context))

    @contextmanager
    def measure(self) -> Iterator[Usage]:
        """A fresh Usage for what runs inside the block."""
        with self._lock:
            outer, self.usage = self.usage, Usage()
        measured = self.usage
        try:
            yield measured
        finally:
            with self._lock:
                self.usage = outer
                outer.add(measured)

    def client_get(self) -> None:
        """A presigned GET a client follows (no botocore call here)."""
        with self._lock:
            self.usage.s3_tier2 += 1
            self.usage.calls["s3:GetObject (client, presigned)"] += 1

    def _s3(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.usage.calls[f"s3:{model.name}"] += 1
            if model.name in S3_FREE:
                self.usage.s3_free += 1
            elif model.name in S3_TIER2:
                self.usage.s3_tier2 += 1
            else:
                self.usage.s3_tier1 += 1

    # DynamoDB

    def _before(self, region: str, operation: str, params: dict[str, Any], context: dict[str, Any]) -> None:
        writes = []
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            writes = [(params["TableName"], params.get("Key") or params["Item"])]
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (body,) = entry.values()
                writes.append((body["TableName"], body.get("Key") or body["Item"]))  # a ConditionCheck costs as a write too
        context["cost_writes"] = [(table, key, _stored(region, table, key)) for table, key in writes]
        if operation == "Scan":
            context["cost_scanned"] = sum(item_size(i) for i in _all_items(region, params["TableName"]))

    def _after(self, region: str, operation: str, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        units = self._reads(operation, parsed, context) if operation in ("GetItem", "BatchGetItem", "Query", "Scan") else 0.0
        written = self._writes(region, operation, context)
        with self._lock:
            self.usage.calls[f"dynamodb:{operation}"] += 1
            self.usage.read_units += units
            self.usage.write_units += written

    def _reads(self, operation: str, parsed: dict[str, Any], context: dict[str, Any]) -> float:
        request = context.get("cost_request") or {}
        if operation == "GetItem":
            return read_units(item_size(parsed.get("Item")), bool(request.get("ConsistentRead")))
        if operation == "BatchGetItem":
            total = 0.0
            for table, asked in request.get("RequestItems", {}).items():
                found = parsed.get("Responses", {}).get(table, [])
                unprocessed = len((parsed.get("UnprocessedKeys") or {}).get(table, {}).get("Keys", []))
                misses = max(0, len(asked["Keys"]) - len(found) - unprocessed)
                consistent = bool(asked.get("ConsistentRead"))
                total += sum(read_units(item_size(i), consistent) for i in found) + misses * read_units(0, consistent)
            return total
        if operation == "Query":
            consistent = bool(request.get("ConsistentRead")) and "IndexName" not in request  # a GSI is always eventual
            return read_units(sum(item_size(i) for i in parsed.get("Items", [])), consistent)
        return read_units(int(context.get("cost_scanned", 0)), bool(request.get("ConsistentRead")))

    def _writes(self, region: str, operation: str, context: dict[str, Any]) -> float:
        total = 0.0
        factor = 2 if operation == "TransactWriteItems" else 1  # cancelled transactions are counted as charged too
        for table, key, before in context.get("cost_writes", []):
            after = _stored(region, table, key)
            total += factor * write_units(item_size(before), item_size(after))
            total += _index_writes(region, table, before, after)
        return total


def _remember_request(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["cost_request"] = params


def _backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][region]


def _stored(region: str, table: str, key_or_item: dict[str, Any]) -> dict[str, Any] | None:
    """The item as moto holds it now, as typed values (None when absent)."""
    found = _backend(region).get_table(table)
    keys = {name: key_or_item[name] for name in (found.hash_key_attr, found.range_key_attr) if name}
    item = _backend(region).get_item(table, keys)
    return item.to_json()["Attributes"] if item is not None else None


def _all_items(region: str, table: str) -> Iterator[dict[str, Any]]:
    for item in _backend(region).get_table(table).all_items():
        yield item.to_json()["Attributes"]


def _index_entry(item: dict[str, Any]) -> int:
    """An index entry's size: the projected item (the orphans index projects ALL) plus DynamoDB's 100 bytes."""
    return item_size(item) + INDEX_ENTRY_OVERHEAD


def _index_writes(region: str, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """Writes to each global secondary index: entering or leaving is one, a moved key two (delete and put), a change one."""
    total = 0
    for index in _backend(region).get_table(table).global_indexes:
        names = [k["AttributeName"] for k in index.schema]
        old = before if before is not None and all(n in before for n in names) else None
        new = after if after is not None and all(n in after for n in names) else None
        if old is not None and new is not None:
            if any(old[n] != new[n] for n in names):
                total += write_units(_index_entry(old), 0) + write_units(_index_entry(new), 0)
            elif old != new:
                total += write_units(_index_entry(old), _index_entry(new))
        elif old is not None or new is not None:
            total += write_units(_index_entry(old or new or {}), 0)
    return total


def attach_meter(meter: Meter, clients: list[Any]) -> None:
    """The meter on each distinct client, and the request parameters kept for the read-unit rules."""
    for client in {id(c): c for c in clients}.values():
        meter.attach(client)
        if client.meta.service_model.service_name == "dynamodb":
            client.meta.events.register("provide-client-params.dynamodb.*", _remember_request)


def registry_clients(service: Any) -> list[Any]:
    """The S3 client and every DynamoDB client the service's parts hold (normally one of each)."""
    candidates = [service.store.client, service.index.table.client, service.blobs.table.client]
    sessions = getattr(service.registry, "sessions", None)
    if sessions is not None:
        candidates.append(sessions.table.client)
    return candidates


# Driving app.py


class Timings(logging.Handler):
    """app.py's access lines: the handler's own latency of each invocation."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.latencies: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and "latencyMs" in fields:
            self.latencies.append(float(fields["latencyMs"]))


@dataclass
class Door:
    """Sends registry requests through app.py as one front door's events, metering each invocation."""

    app: Callable[[dict[str, Any], Any], dict[str, Any]]
    name: str
    meter: Meter
    memory_mb: int
    timings: Timings = field(default_factory=Timings)

    def __post_init__(self) -> None:
        logger = logging.getLogger("zotless.app")
        self._level = logger.level
        logger.addHandler(self.timings)
        logger.setLevel(logging.INFO)

    def close(self) -> None:
        """Stop listening to app.py's access lines."""
        logger = logging.getLogger("zotless.app")
        logger.removeHandler(self.timings)
        logger.setLevel(self._level)

    def __call__(
        self, method: str, path: str, query: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> dict[str, Any]:
        from chalicelib.adapters.apigateway import event_for, url_event_for

        build = url_event_for if self.name == "function-url" else event_for
        seen = len(self.timings.latencies)
        result = self.app(build(method, path, query, headers, body), None)
        usage = self.meter.usage
        usage.requests += 1
        usage.invocations += 1
        usage.memory_mb = self.memory_mb
        usage.billed_ms += sum(math.ceil(ms) or 1 for ms in self.timings.latencies[seen:])
        if result["statusCode"] == 307:
            self.meter.client_get()
        return result


def header(result: dict[str, Any], name: str) -> str:
    for key, value in (result.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    raise KeyError(name)


def expect(result: dict[str, Any], status: int) -> dict[str, Any]:
    if result["statusCode"] != status:
        raise RuntimeError(f"expected {status}, got {result['statusCode']}: {result}"[:600])
    return result


def digest_of(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(door: Door, repo: str, data: bytes, chunk: int) -> None:
    """HEAD (missing), POST, PATCH per chunk, PUT ?digest=: a client that knows the Lambda's chunk limit."""
    digest = digest_of(data)
    expect(door("HEAD", f"/v2/{repo}/blobs/{digest}"), 404)
    location = header(expect(door("POST", f"/v2/{repo}/blobs/uploads/"), 202), "Location")
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(piece) - 1}"}
        location = header(expect(door("PATCH", location, headers=headers, body=piece), 202), "Location")
    expect(door("PUT", location, {"digest": [digest]}), 201)


def image(layers: list[bytes], name: str) -> tuple[bytes, bytes]:
    """A config (unique per image name, so no other repository holds it) and the manifest naming it and the layers."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name, "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(x), "size": len(x)} for x in layers],
    }
    return config, json.dumps(manifest).encode()


def push_image(door: Door, repo: str, tag: str, layers: list[bytes], chunk: int) -> None:
    config, manifest = image(layers, f"{repo}:{tag}")
    expect(door("GET", "/v2/"), 200)
    for data in [*layers, config]:
        push_blob(door, repo, data, chunk)
    expect(door("PUT", f"/v2/{repo}/manifests/{tag}", headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body=manifest), 201)


def pull_image(door: Door, repo: str, tag: str) -> None:
    """GET /v2/, the manifest by tag, then config and layers (each a 307 the client follows to S3)."""
    expect(door("GET", "/v2/"), 200)
    manifest = json.loads(_body(expect(door("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}), 200)))
    for descriptor in [manifest["config"], *manifest["layers"]]:
        expect(door("GET", f"/v2/{repo}/blobs/{descriptor['digest']}"), 307)


def _body(result: dict[str, Any]) -> bytes:
    from chalicelib.adapters.apigateway import response_body

    return response_body(result)


SEARCH_QUERY = '{GlobalSearch(query:"bench"){Repos{Name}}}'  # zot's GraphQL, as zui's search box sends it


def search_available() -> bool:
    """Search is another engineer's work (chalicelib/search, zot's /v2/_zot/ext/search): counted once it is there."""
    return importlib.util.find_spec("chalicelib.search") is not None


def search_request(door: Door) -> None:
    expect(door("GET", "/v2/_zot/ext/search", {"query": [SEARCH_QUERY]}), 200)


def door_operations(door: Door, layer: int, chunk: int, seed: int) -> dict[str, Usage]:
    """Every front-door operation once, each on its own images; returns what each consumed."""
    rng = random.Random(seed)
    measured: dict[str, Usage] = {}
    for count in (1, 5):
        repo, layers = f"bench/cost{count}", [rng.randbytes(layer) for _ in range(count)]
        with door.meter.measure() as usage:
            push_image(door, repo, "v1", layers, chunk)
        measured[f"push, {count}-layer image"] = usage
        with door.meter.measure() as usage:
            pull_image(door, repo, "v1")
        measured[f"pull, {count}-layer image"] = usage
    with door.meter.measure() as usage:
        expect(door("HEAD", "/v2/bench/cost1/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}), 200)
    measured["HEAD manifest"] = usage
    with door.meter.measure() as usage:
        expect(door("GET", "/v2/bench/cost5/tags/list"), 200)
    measured["tag list"] = usage
    if search_available():
        with door.meter.measure() as usage:
            search_request(door)
        measured["search query"] = usage
    return measured


def gc_run(service: Any, meter: Meter, manifests: int, memory_mb: int) -> Usage:
    """One scheduled GC invocation over `manifests` images (1% deleted, as many orphan blobs), billed by its wall time."""
    from chalicelib.lifecycle.gc import GarbageCollector
    from tests.conftest import Client

    client = Client(service)
    shared = os.urandom(4096)
    pushed = [client.push_image(f"gc/r{n % 20:02d}", f"t{n}", [shared], config={"os": "linux", "architecture": "amd64", "n": n})[0] for n in range(manifests)]
    for n, digest in enumerate(pushed[: max(1, manifests // 100)]):
        client("DELETE", f"/v2/gc/r{n % 20:02d}/manifests/{digest}")
        client.push_blob(f"gc/r{n % 20:02d}", os.urandom(512))
    with meter.measure() as usage:
        started = time.perf_counter()
        GarbageCollector(service, clock=lambda: time.time() + 2 * 3600).run()
        usage.billed_ms = math.ceil((time.perf_counter() - started) * 1000)
        usage.invocations, usage.memory_mb = 1, memory_mb
    return usage


# Reporting


def function_memory(stage: str) -> dict[str, int]:
    from chalicelib.deploy.provision import API_FUNCTION, GC_FUNCTION, chalice_config

    functions = chalice_config()["stages"][stage].get("lambda_functions", {})
    return {name: int(functions.get(name, {}).get("lambda_memory_size", 128)) for name in (API_FUNCTION, GC_FUNCTION)}


def per_million(usage: Usage, door: str | None) -> dict[str, float]:
    parts = usage.dollars(door)
    return {**{k: round(v * 1e6, 2) for k, v in parts.items()}, "total": round(sum(parts.values()) * 1e6, 2)}


def rows(results: dict[str, dict[str, Usage]]) -> list[dict[str, Any]]:
    """One row per operation: the counts through API Gateway, and dollars per million through each door."""
    table = []
    gateway, url = results["api-gateway"], results["function-url"]
    for name, usage in gateway.items():
        door = None if name.startswith("GC") else "api-gateway"
        via_url = url.get(name, usage)
        rest_cost, url_cost = per_million(usage, door), per_million(via_url, None if door is None else "function-url")
        table.append(
            {
                "operation": name,
                "requests": usage.requests,
                "billed_ms": usage.billed_ms,
                "read_units": usage.read_units,
                "write_units": usage.write_units,
                "dynamodb_calls": usage.aws_calls("dynamodb"),
                "s3_tier1": usage.s3_tier1,
                "s3_tier2": usage.s3_tier2,
                "usd_per_million_api_gateway": rest_cost["total"],
                "usd_per_million_function_url": url_cost["total"],
                "api_gateway_share": round(rest_cost["front door"] / rest_cost["total"], 2) if rest_cost["total"] else 0.0,
            }
        )
    return table


MD_HEADERS = [
    "operation",
    "requests",
    "billed ms",
    "DDB RRU",
    "DDB WRU",
    "DDB calls",
    "S3 PUT/LIST",
    "S3 GET",
    "$ / M via API Gateway",
    "$ / M via function URL",
    "gateway share",
]


def markdown(table: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    lines = [
        f"Measured {facts['date_utc']} with `bench/bench_cost.py` (stage {facts['stage']}: API function {facts['memory_mb']['api_handler']} MB, "
        f"GC {facts['memory_mb']['garbage_collect']} MB; layers of {facts['layer_mib']:g} MiB pushed in {facts['chunk_mib']:g} MiB chunks). "
        f"Prices: us-east-1 list prices as of {PRICES_AS_OF}. Billed ms is the handler's own timing against moto on this machine.",
        "",
        "| " + " | ".join(MD_HEADERS) + " |",
        "|" + "---|" * len(MD_HEADERS),
    ]
    for r in table:
        cells = [
            r["operation"],
            r["requests"],
            r["billed_ms"],
            f"{r['read_units']:g}",
            f"{r['write_units']:g}",
            r["dynamodb_calls"],
            r["s3_tier1"],
            r["s3_tier2"],
        ]
        cells += [f"{r['usd_per_million_api_gateway']:.2f}", f"{r['usd_per_million_function_url']:.2f}", f"{r['api_gateway_share']:.0%}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def run(layer: int, chunk: int, gc_manifests: int, stage: str) -> dict[str, dict[str, Usage]]:
    """Everything on one in-process moto: both doors over the same operations, then the GC run."""
    from moto import mock_aws

    from chalicelib.adapters.motoserver import install_item_rollback
    from chalicelib.api.limits import CHUNK_MAX_LENGTH
    from chalicelib.api.service import build_service
    from chalicelib.config.schema import Config
    from chalicelib.storage.aws import ensure_resources, make_clients

    install_item_rollback()
    memory = function_memory(stage)
    results: dict[str, dict[str, Usage]] = {}
    import app as app_module

    for door_name in DOORS:
        with mock_aws():  # a fresh emulator per door: both start from an empty registry
            settings: dict[str, Any] = {"storage": {"storageDriver": {"bucket": "zotless-cost"}}}
            if search_available():
                settings["extensions"] = {"search": {"enable": True}}
            config = Config.model_validate(settings)
            clients = make_clients(config)
            ensure_resources(config, clients)
            service = build_service(config, clients, chunk_max_length=CHUNK_MAX_LENGTH, one_request_at_a_time=True)  # as app.service() builds it
            app_module.service = lambda service=service: service  # type: ignore[assignment]
            meter = Meter()
            attach_meter(meter, registry_clients(service))
            door = Door(app_module.app, door_name, meter, memory["api_handler"])
            try:
                results[door_name] = door_operations(door, layer, chunk, seed=14)
            finally:
                door.close()
            if door_name == "api-gateway" and gc_manifests:
                results[door_name][f"GC run, {gc_manifests} manifests"] = gc_run(service, meter, gc_manifests, memory["garbage_collect"])
    return results


def main() -> None:
    from datetime import UTC, datetime

    from chalicelib.api.limits import CHUNK_MAX_LENGTH

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer-mib", type=float, default=10.0, help="size of each layer pushed and pulled")
    parser.add_argument("--gc-manifests", type=int, default=1000, help="images in the registry the GC run walks (0 skips it)")
    parser.add_argument("--stage", default="prod", help="the .chalice/config.json stage whose memory sizes are billed")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    layer = int(args.layer_mib * 1024 * 1024)
    results = run(layer, CHUNK_MAX_LENGTH, args.gc_manifests, args.stage)
    table = rows(results)
    facts = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "stage": args.stage,
        "memory_mb": function_memory(args.stage),
        "layer_mib": args.layer_mib,
        "chunk_mib": CHUNK_MAX_LENGTH / 1024 / 1024,
    }
    document = {
        **facts,
        "prices_as_of": PRICES_AS_OF,
        "prices": {k: {"usd": v, "unit": d} for k, (v, d) in PRICES.items()},
        "rows": table,
        "usage": {door: {op: {**asdict(u), "calls": dict(sorted(u.calls.items()))} for op, u in ops.items()} for door, ops in results.items()},
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "cost.json").write_text(json.dumps(document, indent=2))
    text = markdown(table, facts)
    (args.output_dir / "cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
