"""What authentication adds to a manifest GET: anonymous vs Basic vs bearer, and what a login costs.

The registry runs in this process on moto's in-process mock (so the DynamoDB read is cheap and
the auth share shows), or with --http behind the local server on loopback. Each iteration times one
request of every variant in a shuffled order, so drift on a shared machine hits all of them alike and
the added cost is read from paired differences. Run:
  .venv/bin/python bench/bench_auth.py [--requests 3000] [--http]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for variable, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"), ("AWS_DEFAULT_REGION", "us-east-1")):
    os.environ.setdefault(variable, value)

from chalicelib.config.schema import Config  # noqa: E402
from chalicelib.model.access import ANONYMOUS  # noqa: E402
from chalicelib.spec.http import Headers, Request  # noqa: E402

REPO, TAG = "public/app", "1.0"
HTPASSWD = ROOT / "examples" / "htpasswd"  # bcrypt cost 10, as `htpasswd -nbB -C 10` makes
USER, PASSWORD = "alice", "alice-secret"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
Call = Callable[[dict[str, str]], int]


def configs() -> tuple[Config, Config]:
    """The same storage twice: without auth (the baseline) and with htpasswd, tokens and the one-line anonymous-pull policy."""
    storage = {"storageDriver": {"bucket": "zotless-bench-auth"}}
    control = {"repositories": {"**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read", "create", "update", "delete"]}}}
    auth = {"htpasswd": {"path": str(HTPASSWD)}, "bearer": {"key": "bench-signing-key-0123456789abcdef0123"}}
    return Config.model_validate({"storage": storage}), Config.model_validate({"storage": storage, "http": {"auth": auth, "accessControl": control}})


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Request:
    path, _, query = path.partition("?")
    args = {k: [v] for k, _, v in (p.partition("=") for p in query.split("&") if p)}
    return Request(method, path, args, Headers({"Content-Length": str(len(body)), **headers}), io.BytesIO(body), "127.0.0.1")


def push_image(api: Any) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'

    def put_blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert api.handle(request("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}", {}, data), ANONYMOUS).status == 201
        return digest

    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put_blob(config), "size": len(config)}, "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": put_blob(b"layer" * 1000), "size": 5000}]}
    body = json.dumps(manifest).encode()
    assert api.handle(request("PUT", f"/v2/{REPO}/manifests/{TAG}", {"Content-Type": MANIFEST}, body), ANONYMOUS).status == 201


def in_process(api: Any, path: str) -> Call:
    return lambda headers: api.handle(request("GET", path, headers)).status


def over_http(port: int, path: str) -> Call:
    connection = http.client.HTTPConnection("127.0.0.1", port)

    def call(headers: dict[str, str]) -> int:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status

    return call


def timed(call: Call, headers: dict[str, str]) -> float:
    """Seconds for one request, which must answer 200."""
    started = time.perf_counter()
    status = call(headers)
    elapsed = time.perf_counter() - started
    assert status == 200, status
    return elapsed


def once(call: Callable[[], int]) -> float:
    started = time.perf_counter()
    assert call() == 200
    return time.perf_counter() - started


def measure(api_open: Any, api_auth: Any, args: argparse.Namespace, ports: tuple[int, int] | None) -> dict[str, Any]:
    path = f"/v2/{REPO}/manifests/{TAG}"
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), "Accept": MANIFEST}
    make = (lambda api, port: over_http(port, path)) if ports else (lambda api, port: in_process(api, path))
    open_call, auth_call = make(api_open, ports[0] if ports else 0), make(api_auth, ports[1] if ports else 0)
    token_path = f"/auth/token?service=zotless&scope=repository:{REPO}:pull"
    first_login = once(lambda: api_auth.handle(request("GET", token_path, basic)).status)  # bcrypt, then cached
    token_fetch = statistics.median(once(lambda: api_auth.handle(request("GET", token_path, basic)).status) for _ in range(50))
    token = json.loads(api_auth.handle(request("GET", token_path, basic)).body_bytes())["token"]
    variants = {
        "anonymous, no auth configured": (open_call, {"Accept": MANIFEST}),
        "anonymous, auth configured": (auth_call, {"Accept": MANIFEST}),
        "basic (verified-credentials cache)": (auth_call, basic),
        "bearer token": (auth_call, {"Authorization": f"Bearer {token}", "Accept": MANIFEST}),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for iteration in range(args.requests + 50):
        random.shuffle(order)
        for name in order:
            elapsed = timed(*variants[name])
            if iteration >= 50:  # the first 50 warm up
                samples[name].append(elapsed)
    authenticate = {name: micro(api_auth, headers) for name, (_, headers) in list(variants.items())[1:]}
    authenticate["bearer, first use on an instance (PyJWT verify, uncached)"] = uncached_verify(api_auth, token)
    return {"samples": samples, "first_login_s": first_login, "token_fetch_s": token_fetch, "authenticate_us": authenticate}


def micro(api: Any, headers: dict[str, str], count: int = 20000) -> float:
    """Microseconds of Authenticator.authenticate alone: the whole per-request cost of auth."""
    prepared = request("GET", f"/v2/{REPO}/manifests/{TAG}", headers)
    started = time.perf_counter()
    for _ in range(count):
        caller = api.auth.authenticate(prepared)
        caller.may("read", REPO)
    return (time.perf_counter() - started) / count * 1e6


def uncached_verify(api: Any, token: str, count: int = 5000) -> float:
    """Microseconds to verify a token this instance has not seen: signature, expiry, audience, issuer."""
    started = time.perf_counter()
    for _ in range(count):
        api.auth.tokens._decode(token)
    return (time.perf_counter() - started) / count * 1e6


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    samples = results["samples"]
    baseline = "anonymous, no auth configured"
    base = statistics.median(samples[baseline])
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"{'local server over loopback HTTP' if args.http else 'in-process Api'} on moto's in-process mock; "
        f"{len(samples[baseline])} manifest GETs per variant, one of each per iteration in shuffled order.",
        "",
        "| manifest GET | median (µs) | p90 (µs) | ratio of medians | added: median of paired differences (µs) |",
        "|---|---|---|---|---|",
    ]
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        added = statistics.median(v - b for v, b in zip(values, samples[baseline], strict=True))
        lines.append(f"| {name} | {median * 1e6:.0f} | {p90 * 1e6:.0f} | {median / base:.3f}x | {added * 1e6:+.1f} |")
    lines += ["", "| auth alone (authenticate + policy check) | µs per request |", "|---|---|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in results["authenticate_us"].items()]
    lines += ["", "| one-off | ms |", "|---|---|",
              f"| first login (token endpoint, bcrypt cost 10) | {results['first_login_s'] * 1e3:.1f} |",
              f"| later token fetch (credentials cached, median of 50) | {results['token_fetch_s'] * 1e3:.2f} |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="manifest GETs per variant")
    parser.add_argument("--http", action="store_true", help="through the local server on loopback instead of in-process")
    parser.add_argument("--output-dir", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()

    from moto import mock_aws

    from chalicelib.adapters.localserver import start_in_thread
    from chalicelib.api.service import build_service
    from chalicelib.storage.aws import ensure_resources, make_clients

    open_config, auth_config = configs()
    with mock_aws():
        clients = make_clients(open_config)
        ensure_resources(open_config, clients)
        api_open, api_auth = build_service(open_config, clients).api, build_service(auth_config, clients).api
        push_image(api_open)
        servers = [start_in_thread(api.handle)[0] for api in (api_open, api_auth)] if args.http else []
        try:
            results = measure(api_open, api_auth, args, tuple(s.server_address[1] for s in servers) if servers else None)  # type: ignore[arg-type]
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()
    text = report(results, args)
    print(text)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    suffix = "_http" if args.http else ""
    (output / f"auth{suffix}.md").write_text(text + "\n")
    summary = {k: v for k, v in results.items() if k != "samples"} | {"median_us": {k: statistics.median(v) * 1e6 for k, v in results["samples"].items()}}
    (output / f"auth{suffix}.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
