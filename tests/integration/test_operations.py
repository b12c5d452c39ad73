"""Operating `zotless serve`: zot's health endpoints and Prometheus metrics over real HTTP, and the Lambda's EMF lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from chalicelib.ops.health import READY_SECONDS
from tests.integration.authconfig import PASSWORDS, auth_server_config
from tests.integration.conftest import OCI_MANIFEST, RunningRegistry, _start, _stop, run_skopeo

pytestmark = pytest.mark.integration


def scrape(registry: RunningRegistry, **kwargs: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = registry("GET", "/metrics", **kwargs)
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A server of its own, so its counters hold only this test's requests."""
    registry = _start(tmp_path, None)
    try:
        yield registry
    finally:
        _stop(registry.process)


def test_metrics_count_pushes_and_pulls(fresh: RunningRegistry, skopeo: str, tmp_path: Path) -> None:
    repo = "metrics/app"
    _, manifest = fresh.push_image(repo, "v1", [b"x" * 5000])
    fresh.push_image(repo, "v2", [b"y" * 7000])
    for _ in range(3):
        assert fresh("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    assert fresh.pull_blob(repo, manifest["layers"][0]["digest"]).status_code == 200
    run_skopeo(skopeo, "copy", "--src-tls-verify=false", f"docker://{fresh.host}/{repo}:v2", f"oci:{tmp_path / 'layout'}:v2")

    found = scrape(fresh)
    labels = (("repo", repo),)
    assert found[("zot_repo_uploads_total", labels)] == 2
    assert found[("zot_repo_downloads_total", labels)] == 4  # three GETs and skopeo's pull
    assert found[("zot_http_requests_total", (("code", "201"), ("method", "PUT")))] == 2
    assert found[("zot_http_requests_total", (("code", "307"), ("method", "GET")))] >= 1  # blob GETs redirect to S3
    assert found[("zot_http_method_latency_seconds_count", (("method", "PUT"),))] == 2
    assert found[("zot_repo_storage_bytes", labels)] > 12000


def test_health_endpoints_answer(fresh: RunningRegistry) -> None:
    for path in ("/livez", "/readyz", "/startupz"):
        response = fresh("GET", path)
        assert response.status_code == 200, (path, response.text)
    assert response.headers["Content-Type"] == "application/json"


@pytest.fixture
def external_moto() -> Iterator[object]:
    from chalicelib.adapters.emulator import start_moto

    with start_moto() as moto:
        yield moto


def test_readiness_fails_when_storage_stops_answering(tmp_path: Path, external_moto) -> None:
    """S3 and DynamoDB behind an endpoint the server does not own: when it goes, /readyz says 503 and /livez stays 200."""
    endpoint = external_moto.endpoint  # type: ignore[attr-defined]
    config = {"storage": {"storageDriver": {"regionendpoint": endpoint}, "cacheDriver": {"endpoint": endpoint}}}
    registry = _start(tmp_path, config)
    try:
        assert registry("GET", "/readyz").status_code == 200
        external_moto.stop()  # type: ignore[attr-defined]
        response = _ready_after_the_cached_answer(registry)
        assert response.status_code == 503
        assert response.json()["checks"]["s3"].startswith("failed") and response.json()["checks"]["dynamodb"].startswith("failed")
        assert registry("GET", "/livez").status_code == 200
    finally:
        _stop(registry.process)


def _ready_after_the_cached_answer(registry: RunningRegistry) -> requests.Response:
    """/readyz once the answer cached before (READY_SECONDS) has expired: asked until it changes, within a bound."""
    deadline = time.monotonic() + READY_SECONDS + 20
    response = registry("GET", "/readyz")
    while response.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        response = registry("GET", "/readyz")
    return response


def test_metrics_need_credentials_when_auth_is_on(tmp_path: Path) -> None:
    registry = _start(tmp_path, auth_server_config(bearer=False))
    try:
        assert registry("GET", "/metrics").status_code == 401
        assert registry("GET", "/metrics", auth=("alice", "wrong")).status_code == 401
        scrape(registry, auth=("alice", PASSWORDS["alice"]))
        assert registry("GET", "/readyz").status_code == 200  # health stays open, as zot's is
    finally:
        _stop(registry.process)


def test_metrics_off_in_the_config(tmp_path: Path) -> None:
    registry = _start(tmp_path, {"extensions": {"metrics": {"enable": False}}})
    try:
        assert registry("GET", "/metrics").status_code == 404
    finally:
        _stop(registry.process)


def test_lambda_mode_serves_health_through_app_py_and_logs_emf_lines(tmp_path: Path) -> None:
    registry = _start(tmp_path, None, "--lambda")
    try:
        assert registry("GET", "/readyz").status_code == 200
        registry.push_image("emf/app", "v1")
    finally:
        _stop(registry.process)
    lines = [json.loads(line) for line in registry.log_lines() if line.startswith('{"_aws"')]
    assert [line["repo"] for line in lines if line.get("zot_repo_uploads_total") == 1] == ["emf/app"]
