"""Search over a registry of N images in R repositories: latency and AWS calls per query.

Pushes N images (unique config and layer, one tag each) across R repositories through the core on
an in-process moto (with chalicelib/adapters/motoserver.py's item rollback), then sends zot's UI
queries: RepoListWithNewestImage and GlobalSearch (a name search and a `repo:tag` search), each
first cold (every repository summary stale: recomputed once and cached, 500 per request, so the
cold query is retried until it answers) and then warm, counting S3
and DynamoDB calls by operation with botocore event hooks. A push then marks one summary stale
and the next query pays for that one repository only.
Run: .venv/bin/python bench/bench_search.py [--images 10000] [--repositories 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' Client helper pushes images

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from moto import mock_aws

from chalicelib.adapters.motoserver import install_item_rollback as install_fast_transactions
from chalicelib.api.service import build_service
from chalicelib.config.schema import Config
from chalicelib.storage.aws import ensure_resources, make_clients
from tests.conftest import Client
from tests.counting import CallCounter

RESULTS = Path(__file__).resolve().parent / "results"
# zui's texts (src/api.js): the home page's repository list and the search page.
REPO_LIST = "{RepoListWithNewestImage(requestedPage: {limit:15 offset:0}){Results {Name LastUpdated Size Platforms {Os Arch}  NewestImage { Tag Vulnerabilities {MaxSeverity Count} Description  Licenses Title Source IsSigned SignatureInfo { Tool IsTrusted Author } Documentation Vendor Labels} IsStarred IsBookmarked StarCount DownloadCount}}}"  # noqa: E501
GLOBAL = '{GlobalSearch(query:"%s", requestedPage: {limit:15 offset:0 sortBy: RELEVANCE} ) {Page {TotalCount ItemCount} Repos {Name LastUpdated Size Platforms { Os Arch } IsStarred IsBookmarked NewestImage { Tag Vulnerabilities {MaxSeverity Count} Description IsSigned SignatureInfo { Tool IsTrusted Author } Licenses Vendor Labels } StarCount DownloadCount}}}'  # noqa: E501
TAGS = '{GlobalSearch(query:"%s", requestedPage: {limit:15 offset:0 sortBy:RELEVANCE}) {Images {RepoName Tag}}}'


def populate(client: Client, images: int, repositories: int) -> None:
    for n in range(images):
        config = {"os": "linux", "architecture": "amd64", "created": f"2024-01-01T00:00:{n % 60:02d}Z", "n": n}
        client.push_image(f"bench/r{n % repositories:04d}", f"t{n}", [os.urandom(64)], config=config)


def query(client: Client, counter: CallCounter, text: str) -> dict[str, Any]:
    """One query, retried while it reports summaries still being computed (at most 500 a request): seconds, calls, attempts."""
    calls: dict[str, int] = {}
    started, attempts = time.perf_counter(), 0
    while True:
        attempts += 1
        body = client("GET", "/v2/_zot/ext/search?query=" + quote(text, safe="")).body_bytes()
        for name, count in counter.take().items():
            calls[name] = calls.get(name, 0) + count
        if b"out of date" not in body:
            break
    assert b'"errors"' not in body, body[:300]
    return {"seconds": round(time.perf_counter() - started, 4), "calls": calls, "attempts": attempts}


def measure(client: Client, counter: CallCounter, text: str, repeat: int) -> dict[str, Any]:
    """The first (cold) query, then `repeat` warm ones: seconds and calls of each."""
    runs = [query(client, counter, text) for _ in range(repeat + 1)]
    warm = [r["seconds"] for r in runs[1:]]
    return {"cold": runs[0], "warm_median_seconds": round(statistics.median(warm), 4) if warm else None, "warm_calls": runs[-1]["calls"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    install_fast_transactions()
    with mock_aws():
        config = Config.model_validate({"storage": {"storageDriver": {"bucket": "bench-search"}}})
        clients = make_clients(config)
        ensure_resources(config, clients)
        service = build_service(config, clients)
        client = Client(service)
        started = time.perf_counter()
        populate(client, args.images, args.repositories)
        populate_seconds = time.perf_counter() - started
        counter = CallCounter(service.store.client, service.index.table.client)
        queries = {
            "RepoListWithNewestImage": measure(client, counter, REPO_LIST, args.repeat),
            "GlobalSearch name": measure(client, counter, GLOBAL % "r00", args.repeat),
            "GlobalSearch repo:tag": measure(client, counter, TAGS % "bench/r0001:t1", args.repeat),
        }
        client.push_image("bench/r0000", "fresh", [os.urandom(64)])
        counter.take()
        queries["RepoListWithNewestImage after one push"] = measure(client, counter, REPO_LIST, 0)
    result = {"images": args.images, "repositories": args.repositories, "populate_seconds": round(populate_seconds, 1), "queries": queries}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
