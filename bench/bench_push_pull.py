"""Push/pull benchmark: zotless against plain boto3 on the same S3 emulator, plus server memory and AWS call counts.

Run: .venv/bin/python bench/bench_push_pull.py [--size-mib 200] [--skopeo | --no-skopeo] [--memory-gib 1]
Writes bench/results/push_pull.json and bench/results/push_pull.md; see bench/README.md for how to read them.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # chalicelib and tests.integration.images, when run as a script

import boto3  # noqa: E402
from botocore.config import Config as BotoConfig  # noqa: E402

MIB = 1 << 20
BLOCK = MIB  # client read/write unit
TARGET_PUSH = 1.30
TARGET_PULL = 1.15
TARGET_PEAK_MIB = 256
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB")
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PUSH_PHASES = ("POST", "PATCH", "PUT")
SERVER_START_TIMEOUT = 60.0
HTTP_TIMEOUT = 600.0


class BenchError(RuntimeError):
    """Something the benchmark needs did not behave (wrong status, server did not start, bad digest)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Timings


@dataclass
class Timing:
    """Wall-clock seconds of repeated runs of one operation."""

    name: str
    size: int
    runs: list[float] = field(default_factory=list)
    throughput: bool = True  # False for a part of an operation, where MiB/s would mislead

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bytes": self.size,
            "runs_s": [round(r, 4) for r in self.runs],
            "best_s": round(self.best, 4),
            "median_s": round(self.median, 4),
            "best_mib_s": round(self.size / MIB / self.best, 1) if self.throughput else None,
        }


def timed(timing: Timing, action: Callable[[], object]) -> None:
    """Run action once, add its duration to timing and log it."""
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    timing.runs.append(elapsed)
    log(f"  {timing.name} run {len(timing.runs)}: {elapsed:.2f} s ({timing.size / MIB / elapsed:.0f} MiB/s)")


def ratio(numerator: Timing, denominator: Timing, target: float | None = None) -> dict[str, Any]:
    """numerator / denominator on best and on median runs; pass is judged on best (None when there is no target)."""
    best = numerator.best / denominator.best
    median = numerator.median / denominator.median
    return {
        "label": f"{numerator.name} / {denominator.name}",
        "best": round(best, 3),
        "median": round(median, 3),
        "target": target,
        "pass": None if target is None else best <= target,
    }


def phase_timings(name: str, size: int, phases: list[dict[str, float]]) -> list[Timing]:
    """One Timing per request of a push, so the table shows where a push spends its time."""
    return [Timing(f"{name} [{phase}]", size, [p[phase] for p in phases], throughput=False) for phase in PUSH_PHASES]


# Test data


def write_random_file(path: Path, size: int) -> str:
    """Write size random bytes; return the sha256 digest."""
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        for offset in range(0, size, BLOCK):
            block = os.urandom(min(BLOCK, size - offset))
            hasher.update(block)
            out.write(block)
    return f"sha256:{hasher.hexdigest()}"


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(BLOCK):
            hasher.update(block)
    return f"sha256:{hasher.hexdigest()}"


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(BLOCK):
            yield block


def counter_chunks(size: int, hasher: Any, seed: int = 1) -> Iterator[bytes]:
    """A deterministic body generated on the fly: one random block, each copy stamped with its index; hashed as sent."""
    block = random.Random(seed).randbytes(BLOCK)
    for index, offset in enumerate(range(0, size, BLOCK)):
        chunk = (index.to_bytes(8, "big") + block[8:])[: size - offset]
        hasher.update(chunk)
        yield chunk


# HTTP client (the registry protocol with http.client only)


def connect(url_or_host: str) -> http.client.HTTPConnection:
    netloc = urlsplit(url_or_host).netloc if "://" in url_or_host else url_or_host
    return http.client.HTTPConnection(netloc, timeout=HTTP_TIMEOUT)


def request(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    expected: int,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One exchange; the response body is read whole. A chunked request body is sent for iterables."""
    chunked = body is not None and not isinstance(body, bytes)
    all_headers = {**(headers or {}), **({"Transfer-Encoding": "chunked"} if chunked else {})}
    conn.request(method, target, body=body, headers=all_headers, encode_chunked=chunked)
    response = conn.getresponse()
    data = response.read()
    if response.status != expected:
        raise BenchError(f"{method} {target[:120]}: expected {expected}, got {response.status}: {data[:300]!r}")
    return response, data


def path_of(location: str) -> str:
    """A Location header as a request target on the same server."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def start_upload(conn: http.client.HTTPConnection, repo: str) -> str:
    response, _ = request(conn, "POST", f"/v2/{repo}/blobs/uploads/", 202, b"")
    return path_of(response.getheader("Location") or "")


def patch_upload(conn: http.client.HTTPConnection, location: str, chunks: Iterable[bytes]) -> str:
    """One streamed PATCH (chunked transfer, no Content-Range); returns the next Location."""
    response, _ = request(conn, "PATCH", location, 202, chunks, {"Content-Type": "application/octet-stream"})
    return path_of(response.getheader("Location") or location)


def finish_upload(conn: http.client.HTTPConnection, location: str, digest: str) -> None:
    separator = "&" if "?" in location else "?"
    request(conn, "PUT", f"{location}{separator}digest={digest}", 201, b"")


def push_blob(host: str, repo: str, chunks: Iterable[bytes], digest: str | Callable[[], str], phases: list[dict[str, float]] | None = None) -> None:
    """POST, one streamed PATCH, PUT ?digest= (the digest may be known only once the body was sent).

    Appends the seconds each request took to phases, when given.
    """
    conn = connect(host)
    try:
        marks = [time.perf_counter()]
        location = start_upload(conn, repo)
        marks.append(time.perf_counter())
        location = patch_upload(conn, location, chunks)
        marks.append(time.perf_counter())
        finish_upload(conn, location, digest if isinstance(digest, str) else digest())
        marks.append(time.perf_counter())
    finally:
        conn.close()
    if phases is not None:
        phases.append({name: marks[i + 1] - marks[i] for i, name in enumerate(PUSH_PHASES)})


def stream_to_file(response: http.client.HTTPResponse, out: Path) -> int:
    written = 0
    with out.open("wb") as sink:
        while block := response.read(BLOCK):
            sink.write(block)
            written += len(block)
    return written


def get_blob(host: str, repo: str, digest: str, out: Path) -> int:
    """GET the blob, follow a 307 to the presigned URL, stream the bytes to out; returns the byte count."""
    conn = connect(host)
    try:
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        response = conn.getresponse()
        if response.status == 200:
            return stream_to_file(response, out)
        response.read()
        if response.status != 307:
            raise BenchError(f"GET blob: expected 307 or 200, got {response.status}")
        location = response.getheader("Location") or ""
    finally:
        conn.close()
    storage = connect(location)
    try:
        storage.request("GET", path_of(location))
        response = storage.getresponse()
        if response.status != 200:
            raise BenchError(f"presigned GET: {response.status} {response.read()[:300]!r}")
        return stream_to_file(response, out)
    finally:
        storage.close()


# The `zotless serve` process


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    emulator: str
    children: list[int]
    log_path: Path
    problems: list[str] = field(default_factory=list)  # WARNING/ERROR lines of its log, read when it stops

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def pid(self) -> int:
        return self.process.pid


def start_server(workdir: Path) -> ServerProcess:
    """Start `zotless serve --port 0` with its embedded emulator; wait for both addresses on stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ENDPOINT_VARIABLES}  # an endpoint would turn the emulator off
    out_path, log_path = workdir / "server.out", workdir / "server.log"
    with out_path.open("wb") as out, log_path.open("wb") as err:
        command = [*zotless_command(), "serve", "--port", "0", "--ephemeral"]  # the emulator in memory, as the published figures were measured
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=workdir)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        text = out_path.read_text(errors="replace")
        registry = re.search(r"registry listening on (http://\S+)", text)
        emulator = re.search(r"S3 \+ DynamoDB at (http://\S+)", text)
        if registry and emulator:
            return ServerProcess(process, registry.group(1), emulator.group(1), child_pids(process.pid), log_path)
        time.sleep(0.1)
    stop_process(process, [])
    raise BenchError(f"zotless serve did not start; log tail:\n{log_path.read_text(errors='replace')[-2000:]}")


def zotless_command() -> list[str]:
    """The venv's `zotless` script next to this interpreter, else the CLI module (either way the pid is the server's)."""
    script = Path(sys.executable).with_name("zotless")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chalicelib.cli.commands"]


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def stop_process(process: subprocess.Popen[bytes], children: list[int]) -> None:
    """SIGTERM (the server then stops its emulator), SIGKILL after a grace period, then any orphaned child by pid."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in children:
        if "moto" in _cmdline(pid):  # still ours (not a reused pid)
            os.kill(pid, signal.SIGTERM)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@contextmanager
def running_server(workdir: Path) -> Iterator[ServerProcess]:
    server = start_server(workdir)
    log(f"zotless serve pid {server.pid} at {server.url}, emulator {server.emulator} (pids {server.children})")
    try:
        yield server
    finally:
        stop_process(server.process, server.children)
        server.problems = log_problems(server.log_path)
        for line in server.problems[:10]:
            log(f"  server log: {line}")


def log_problems(path: Path) -> list[str]:
    """Lines of the server's log at WARNING or above (the server logs one INFO line per request)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if re.search(r" (WARNING|ERROR|CRITICAL) |Traceback", line)]


# 1-3: the floor (boto3) and zotless, same emulator, same file


def s3_client(endpoint: str) -> Any:
    """A plain boto3 S3 client with default settings, path-style like the server's."""
    return boto3.client("s3", endpoint_url=endpoint, config=BotoConfig(s3={"addressing_style": "path"}), **CREDENTIALS)


def put_object_file(s3: Any, bucket: str, key: str, source: Path) -> None:
    """Reference only: the whole file as one PutObject, no multipart and no parallelism."""
    with source.open("rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def get_object_file(s3: Any, bucket: str, key: str, target: Path) -> None:
    """Reference only: one GetObject streamed to a file, as a registry client follows the 307."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with target.open("wb") as sink:
        for block in body.iter_chunks(BLOCK):
            sink.write(block)


def bench_transfers(server: ServerProcess, source: Path, digest: str, repeat: int, workdir: Path) -> dict[str, Any]:
    """Interleave floor and zotless runs so drift on a shared machine hits both alike."""
    size = source.stat().st_size
    s3 = s3_client(server.emulator)
    bucket, key, repo = "bench-floor", "floor.bin", "bench/blob"
    s3.create_bucket(Bucket=bucket)
    upload, download = Timing("boto3 upload_file", size), Timing("boto3 download_file", size)
    push, pull = Timing("zotless push", size), Timing("zotless pull", size)
    put_single, get_single = Timing("ref: boto3 put_object (1 request)", size), Timing("ref: boto3 get_object (1 stream)", size)
    target = workdir / "pulled.bin"
    phases: list[dict[str, float]] = []
    for run in range(repeat):
        log(f"[transfer] round {run + 1}/{repeat}")
        timed(upload, lambda: s3.upload_file(str(source), bucket, key))
        timed(push, lambda: push_blob(server.host, repo, file_chunks(source), digest, phases))
        timed(put_single, lambda: put_object_file(s3, bucket, f"{key}.single", source))
        timed(download, lambda: s3.download_file(bucket, key, str(target)))
        target.unlink()
        timed(get_single, lambda: get_object_file(s3, bucket, key, target))
        target.unlink()
        timed(pull, lambda: get_blob(server.host, repo, digest, target))
        if file_sha256(target) != digest:  # verified outside the timed section: boto3 is not timed hashing either
            raise BenchError("pulled blob does not match the pushed digest")
        target.unlink()
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}, {"Key": f"{key}.single"}]})
    return {
        "timings": [t.summary() for t in (upload, push, *phase_timings("zotless push", size, phases), put_single, download, pull, get_single)],
        "ratios": {
            "push_vs_upload": ratio(push, upload, TARGET_PUSH),
            "pull_vs_download": ratio(pull, download, TARGET_PULL),
            "push_vs_put_object": ratio(push, put_single),
            "pull_vs_get_object": ratio(pull, get_single),
        },
        "pulled_sha256_verified": True,
    }


# 4: skopeo


def oci_layout_digests(layout: Path) -> list[str]:
    """The config and layer digests of the one image in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_bytes())
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


def skopeo(*args: str) -> None:
    command = ["skopeo", "--insecure-policy", "copy", "--quiet", *args]
    done = subprocess.run(command, capture_output=True, timeout=HTTP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')[-1000:]}")


def delete_blobs(host: str, repo: str, digests: list[str]) -> None:
    """Drop the image's blobs from repo (tombstoned, so HEAD says 404) so the next skopeo push uploads them again."""
    conn = connect(host)
    try:
        for digest in digests:
            request(conn, "DELETE", f"/v2/{repo}/blobs/{digest}", 202)
    finally:
        conn.close()


def blob_present(host: str, repo: str, digest: str) -> bool:
    conn = connect(host)
    try:
        conn.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    finally:
        conn.close()


def bench_skopeo(server: ServerProcess, size: int, repeat: int, workdir: Path) -> dict[str, Any]:
    from tests.integration.images import make_layout

    layout, repo = workdir / "layout", "bench/img"
    started = time.perf_counter()
    make_layout(layout, "1", [size])
    log(f"[skopeo] built a {size // MIB} MiB single-layer OCI layout in {time.perf_counter() - started:.1f} s")
    digests = oci_layout_digests(layout)
    layer_size = (layout / "blobs" / "sha256" / digests[-1].split(":", 1)[1]).stat().st_size
    remote = f"docker://{server.host}/{repo}:1"
    push, pull = Timing("skopeo push", layer_size), Timing("skopeo pull", layer_size)
    for run in range(repeat):
        if run:
            delete_blobs(server.host, repo, digests)
        timed(push, lambda: skopeo("--dest-tls-verify=false", f"oci:{layout}:1", remote))
        if not blob_present(server.host, repo, digests[-1]):
            raise BenchError("skopeo push did not upload the layer")
    for run in range(repeat):
        target = workdir / f"pulled-{run}"
        timed(pull, lambda target=target: skopeo("--src-tls-verify=false", remote, f"oci:{target}:1"))
        shutil.rmtree(target)
    shutil.rmtree(layout)
    return {"layer_bytes": layer_size, "timings": [push.summary(), pull.summary()], "version": tool_version(["skopeo", "--version"])}


# 5: server memory during a large streamed push


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Polls VmRSS in a thread: a cross-check on VmHWM, and a fallback where clear_refs is refused."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, proc_status(self.pid).get("VmRSS", 0))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bench_memory(server: ServerProcess, size: int) -> dict[str, Any]:
    before = proc_status(server.pid)
    reset = reset_peak(server.pid)
    hasher = hashlib.sha256()
    phases: list[dict[str, float]] = []
    timing = Timing("zotless push (memory run)", size)
    with RssSampler(server.pid) as sampler:
        timed(timing, lambda: push_blob(server.host, "bench/big", counter_chunks(size, hasher), lambda: f"sha256:{hasher.hexdigest()}", phases))
    after = proc_status(server.pid)
    peak = after["VmHWM"] if reset else sampler.peak
    return {
        "bytes": size,
        "push": timing.summary(),
        "push_phases_s": {k: round(v, 3) for k, v in phases[0].items()},
        "rss_before_mib": round(before["VmRSS"] / MIB, 1),
        "hwm_before_reset_mib": round(before["VmHWM"] / MIB, 1),
        "peak_mib": round(peak / MIB, 1),
        "peak_source": "VmHWM after clear_refs reset" if reset else "sampled VmRSS (clear_refs refused)",
        "sampled_peak_rss_mib": round(sampler.peak / MIB, 1),
        "samples": sampler.samples,
        "rss_after_mib": round(after["VmRSS"] / MIB, 1),
        "target_mib": TARGET_PEAK_MIB,
        "pass": peak < TARGET_PEAK_MIB * MIB,
    }


# 6: AWS call counts, with the registry in this process


class CallCounter:
    """Counts API calls per (service, operation) through botocore's before-call event; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def count(model: Any, **_: Any) -> None:
            with self._lock:
                self._counts[(service, model.name)] += 1

        client.meta.events.register("before-call.*.*", count)

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self._counts)


@dataclass
class CallRecorder:
    counter: CallCounter
    steps: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def step(self, group: str, name: str, client_s3_get: int = 0) -> Iterator[None]:
        before = self.counter.snapshot()
        yield
        delta = self.counter.snapshot() - before
        by_service: dict[str, dict[str, int]] = {"s3": {}, "dynamodb": {}}
        for (service, operation), n in sorted(delta.items()):
            by_service.setdefault(service, {})[operation] = n
        self.steps.append({"group": group, "step": name, **by_service, "client_s3_get": client_s3_get})


def total_step(group: str, name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the counts of steps into one row."""
    total: dict[str, Any] = {"group": group, "step": name, "s3": Counter(), "dynamodb": Counter(), "client_s3_get": 0}
    for step in steps:
        total["s3"].update(step["s3"])
        total["dynamodb"].update(step["dynamodb"])
        total["client_s3_get"] += step["client_s3_get"]
    return {**total, "s3": dict(sorted(total["s3"].items())), "dynamodb": dict(sorted(total["dynamodb"].items()))}


def distinct_clients(service: Any) -> list[Any]:
    """The S3 client and every DynamoDB client the service's parts hold (normally one of each)."""
    candidates = [service.store.client, service.index.table.client, service.blobs.table.client]
    sessions = getattr(service.registry, "sessions", None)
    if sessions is not None:
        candidates.append(sessions.table.client)
    return list({id(c): c for c in candidates}.values())


def call_scenario(host: str, recorder: CallRecorder, layer_size: int) -> None:
    """Push a one-layer image as skopeo does, then HEAD, GET manifest and pull it; one step per request."""
    repo, tag = "bench/calls", "1"
    layer = random.Random(2).randbytes(layer_size)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {}}).encode()
    blobs = [(f"layer {layer_size / MIB:g} MiB", layer), ("config", config)]
    conn = connect(host)
    try:
        with recorder.step("push", "GET /v2/ (ping)"):
            request(conn, "GET", "/v2/", 200)
        for label, data in blobs:
            push_one_blob(conn, recorder, repo, label, data)
        manifest = image_manifest(config, layer)
        with recorder.step("push", "PUT manifest (by tag)"):
            request(conn, "PUT", f"/v2/{repo}/manifests/{tag}", 201, manifest, {"Content-Type": OCI_MANIFEST})
        with recorder.step("single", "HEAD blob (existing)"):
            request(conn, "HEAD", f"/v2/{repo}/blobs/{sha256(layer)}", 200)
        with recorder.step("single", "GET manifest by tag"):
            request(conn, "GET", f"/v2/{repo}/manifests/{tag}", 200, headers={"Accept": OCI_MANIFEST})
        with recorder.step("pull", "GET manifest by tag"):
            request(conn, "GET", f"/v2/{repo}/manifests/{tag}", 200, headers={"Accept": OCI_MANIFEST})
        for label, data in reversed(blobs):
            pull_one_blob(conn, recorder, repo, label, data)
    finally:
        conn.close()


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def image_manifest(config: bytes, layer: bytes) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }
    return json.dumps(manifest).encode()


def push_one_blob(conn: http.client.HTTPConnection, recorder: CallRecorder, repo: str, label: str, data: bytes) -> None:
    """HEAD (missing), POST, one streamed PATCH, PUT ?digest=: what skopeo sends per blob."""
    digest = sha256(data)
    with recorder.step("push", f"HEAD blob, missing ({label})"):
        request(conn, "HEAD", f"/v2/{repo}/blobs/{digest}", 404)
    with recorder.step("push", f"POST upload ({label})"):
        location = start_upload(conn, repo)
    with recorder.step("push", f"PATCH streamed ({label})"):
        location = patch_upload(conn, location, (data[i : i + BLOCK] for i in range(0, len(data), BLOCK)))
    with recorder.step("push", f"PUT ?digest= ({label})"):
        finish_upload(conn, location, digest)


def pull_one_blob(conn: http.client.HTTPConnection, recorder: CallRecorder, repo: str, label: str, data: bytes) -> None:
    """GET the blob: the registry answers 307; the client's presigned GET is counted apart, not through botocore."""
    with recorder.step("pull", f"GET blob ({label}) -> 307 + client GET", client_s3_get=1):
        response, _ = request(conn, "GET", f"/v2/{repo}/blobs/{sha256(data)}", 307)
        location = response.getheader("Location") or ""
    storage = connect(location)
    try:
        _, body = request(storage, "GET", path_of(location), 200)
    finally:
        storage.close()
    if body != data:
        raise BenchError(f"pulled {label} differs from what was pushed")


def bench_calls(layer_size: int) -> dict[str, Any]:
    """Build the service in this process on its own emulator, count botocore calls per registry request."""
    from chalicelib.adapters.emulator import start_moto
    from chalicelib.adapters.localserver import start_in_thread
    from chalicelib.api.service import build_service
    from chalicelib.config.schema import Config
    from chalicelib.storage.aws import ensure_resources, make_clients

    with start_moto() as moto:
        driver = {"bucket": "zotless-calls", "regionendpoint": moto.endpoint, "region": CREDENTIALS["region_name"]}
        config = Config.model_validate({"storage": {"storageDriver": driver, "cacheDriver": {"endpoint": moto.endpoint}}})
        clients = make_clients(config, boto3.Session(**CREDENTIALS))
        ensure_resources(config, clients)
        service = build_service(config, clients)
        counter = CallCounter()
        for client in distinct_clients(service):
            counter.attach(client)
        server, thread = start_in_thread(service.api.handle)
        recorder = CallRecorder(counter)
        try:
            call_scenario(f"127.0.0.1:{server.server_address[1]}", recorder, layer_size)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
    steps = recorder.steps
    totals = [total_step(group, f"total: {group}", [s for s in steps if s["group"] == group]) for group in ("push", "pull")]
    return {"layer_bytes": layer_size, "steps": steps, "totals": totals}


# Reporting


def tool_version(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "boto3": version("boto3"),
        "moto": version("moto"),
    }


def fmt_calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in calls.items()) or "-"


def call_rows(calls: dict[str, Any]) -> list[list[str]]:
    rows = []
    for step in [*calls["steps"], *calls["totals"]]:
        s3, dynamo = sum(step["s3"].values()), sum(step["dynamodb"].values())
        rows.append([step["group"], step["step"], fmt_calls(step["s3"]), fmt_calls(step["dynamodb"]), str(s3), str(dynamo), str(step["client_s3_get"])])
    return rows


CALL_HEADERS = ["group", "request", "S3 calls", "DynamoDB calls", "S3", "DDB", "client S3 GET"]
TIME_HEADERS = ["operation", "best (s)", "median (s)", "best MiB/s", "runs (s)"]


def time_rows(timings: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            t["name"],
            f"{t['best_s']:.2f}",
            f"{t['median_s']:.2f}",
            "-" if t["best_mib_s"] is None else f"{t['best_mib_s']:.0f}",
            " ".join(f"{r:.2f}" for r in t["runs_s"]),
        ]
        for t in timings
    ]


def ratio_rows(ratios: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in ratios.values():
        target = "-" if r["target"] is None else f"<= {r['target']:.2f}x"
        result = "reference" if r["pass"] is None else "PASS" if r["pass"] else "MISS"
        rows.append([r["label"], f"{r['best']:.2f}x", f"{r['median']:.2f}x", target, result])
    return rows


RATIO_HEADERS = ["ratio", "best", "median", "target", "result"]


def memory_rows(memory: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"{memory['bytes'] / (1 << 30):g} GiB streamed PATCH",
            f"{memory['push']['best_s']:.1f} ({memory['push']['best_mib_s']:.0f} MiB/s)",
            f"{memory['push_phases_s']['PATCH']:.1f} / {memory['push_phases_s']['PUT']:.1f}",
            f"{memory['rss_before_mib']:.0f}",
            f"{memory['peak_mib']:.0f}",
            f"{memory['sampled_peak_rss_mib']:.0f}",
            f"< {memory['target_mib']}",
            "PASS" if memory["pass"] else "MISS",
        ]
    ]


MEMORY_HEADERS = [
    "server process (zotless serve, not moto)",
    "push (s)",
    "PATCH / PUT (s)",
    "RSS before (MiB)",
    "peak (MiB)",
    "sampled peak RSS (MiB)",
    "target",
    "result",
]


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def sections(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) for every table, shared by the console and the markdown output."""
    transfers = results["transfers"]
    found = [
        (f"Times, {transfers['timings'][0]['bytes'] / MIB:g} MiB blob", TIME_HEADERS, time_rows(transfers["timings"])),
        ("Ratios (zotless / boto3 on the same emulator)", RATIO_HEADERS, ratio_rows(transfers["ratios"])),
    ]
    skopeo = results.get("skopeo") or {}
    if "timings" in skopeo:
        found.append((f"skopeo, single-layer image ({skopeo['layer_bytes'] / MIB:.1f} MiB layer)", TIME_HEADERS, time_rows(skopeo["timings"])))
    if results.get("memory"):
        found.append(("Peak memory of the server process", MEMORY_HEADERS, memory_rows(results["memory"])))
    if results.get("calls"):
        found.append((f"AWS calls per registry request ({results['calls']['layer_bytes'] / MIB:g} MiB layer)", CALL_HEADERS, call_rows(results["calls"])))
    return found


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['date_utc']}; {machine['nproc']} cores ({machine['cpu']}); Python {machine['python']}; "
        f"boto3 {machine['boto3']}; moto {machine['moto']} (S3 + DynamoDB emulator on loopback)"
    )


def print_report(results: dict[str, Any]) -> None:
    print(f"\nzotless push/pull benchmark: {machine_line(results['machine'])}")
    for title, headers, rows in sections(results):
        print(f"\n{title}\n{text_table(headers, rows)}")
    if (results.get("skopeo") or {}).get("error"):
        print(f"\nskopeo: {results['skopeo']['error']}")
    problems = results.get("server_log_problems") or []
    print(f"\nserver log: {len(problems)} line(s) at WARNING or above" + "".join(f"\n  {line}" for line in problems[:10]))
    print(f"\ntotal benchmark time {results['elapsed_s']:.0f} s")


def markdown_report(results: dict[str, Any]) -> str:
    parts = [
        "### Push/pull benchmark",
        "",
        f"Measured {machine_line(results['machine'])}. Best of {results['args']['repeat']} runs, median alongside. "
        "The floor is plain boto3 (`upload_file` / `download_file`, default TransferConfig) against the same emulator; "
        "zotless is one streamed PATCH per blob and a 307 to a presigned GET. Timings on a shared machine are noisy.",
    ]
    for title, headers, rows in sections(results):
        parts += ["", f"**{title}**", "", markdown_table(headers, rows)]
    return "\n".join(parts) + "\n"


def write_outputs(results: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "push_pull.json").write_text(json.dumps(results, indent=2) + "\n")
    (directory / "push_pull.md").write_text(markdown_report(results))
    log(f"wrote {directory / 'push_pull.json'} and {directory / 'push_pull.md'}")


# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200, help="blob size for the timed push/pull (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timed operation (default 3)")
    parser.add_argument("--skopeo", action=argparse.BooleanOptionalAction, default=shutil.which("skopeo") is not None, help="time skopeo too")
    parser.add_argument("--memory-gib", type=float, default=1.0, help="size of the streamed push for the memory peak (0 skips)")
    parser.add_argument("--calls-layer-mib", type=float, default=10.0, help="layer size for the AWS call counts (0 skips them)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine_facts(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    size = args.size_mib * MIB
    source = workdir / "blob.bin"
    digest = write_random_file(source, size)
    log(f"[setup] wrote {args.size_mib} MiB test file {digest[:19]}...")
    with running_server(workdir) as server:
        results["transfers"] = bench_transfers(server, source, digest, args.repeat, workdir)
        source.unlink()
        if args.skopeo:
            log("[skopeo]")
            try:
                results["skopeo"] = bench_skopeo(server, size, args.repeat, workdir)
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                results["skopeo"] = {"error": str(exc)}
        if args.memory_gib > 0:
            log(f"[memory] {args.memory_gib:g} GiB streamed push, sampling pid {server.pid}")
            results["memory"] = bench_memory(server, int(args.memory_gib * (1 << 30)))
    results["server_log_problems"] = server.problems
    if args.calls_layer_mib > 0:
        log("[calls] in-process registry with botocore counters")
        results["calls"] = bench_calls(int(args.calls_layer_mib * MIB))
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="zotless-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too
    try:
        results = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_outputs(results, args.output_dir)
    print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
