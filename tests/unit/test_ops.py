"""Health and metrics in the core: zot's /livez, /readyz, /startupz, Prometheus numbers, and the Lambda's EMF lines."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chalicelib.adapters.apigateway import event_for, response_body, url_event_for
from chalicelib.ops.health import READY_SECONDS
from chalicelib.ops.local import Operations
from tests.conftest import OCI_MANIFEST, Client, make_request
from tests.counting import CallCounter
from tests.faults import Faults, dynamo_error, s3_error


class Clock:
    """A monotonic clock the test moves by hand, so a cache's window needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def operations(service) -> Operations:
    return Operations(service)


@pytest.fixture
def served(service, operations):
    """The core's handler as the local server runs it: health and metrics around it."""
    return operations.wrap(service.api.handle)


def test_live_ready_and_started_answer_200_when_storage_answers(served) -> None:
    for path in ("/livez", "/readyz", "/startupz"):
        response = served(make_request("GET", path))
        assert response.status == 200, (path, response.body_bytes())
    assert json.loads(served(make_request("GET", "/readyz")).body_bytes())["checks"] == {"s3": "ok", "dynamodb": "ok"}


@pytest.mark.parametrize(("operation", "answer", "failed"), [
    ("HeadBucket", s3_error(500, "InternalError"), "s3"),
    ("GetItem", dynamo_error("InternalServerError"), "dynamodb"),
])
def test_readiness_fails_with_503_when_one_store_does_not_answer(served, operations, operation, answer, failed) -> None:
    faults = Faults().attach(*operations.health._probe_clients())
    faults.add(operation, answer)
    response = served(make_request("GET", "/readyz"))
    assert response.status == 503
    checks = json.loads(response.body_bytes())["checks"]
    assert checks[failed].startswith("failed") and all(v == "ok" for k, v in checks.items() if k != failed)
    assert served(make_request("GET", "/livez")).status == 200


def test_readiness_is_probed_once_per_window_on_the_local_server(served, operations) -> None:
    """Anyone may ask /readyz: ten asks in a window cost the two probe calls of one, and a new window probes again."""
    clock = operations.health.clock = Clock()
    counter = CallCounter(*operations.health._probe_clients())
    for _ in range(10):
        assert served(make_request("GET", "/readyz")).status == 200
    assert counter.take() == {"dynamodb:GetItem": 1, "s3:HeadBucket": 1}
    clock.now += READY_SECONDS
    assert served(make_request("GET", "/readyz")).status == 200
    assert sum(counter.take().values()) == 2


def test_a_failed_readiness_is_cached_too(served, operations) -> None:
    """A flood of probes must not hammer a failing backend: the 503 is reused for its window like a 200."""
    operations.health.clock = Clock()
    counter = CallCounter(*operations.health._probe_clients())
    Faults().attach(*operations.health._probe_clients()).add("HeadBucket", s3_error(503, "SlowDown"), times=100)
    for _ in range(10):
        response = served(make_request("GET", "/readyz"))
        assert response.status == 503 and json.loads(response.body_bytes())["checks"]["s3"] == "failed: SlowDown"
    assert sum(counter.take().values()) == 2


def test_metrics_count_pushes_pulls_and_requests(service, served) -> None:
    client = Client(SimpleNamespace(api=SimpleNamespace(handle=served)))  # the Client helper, through the wrapped handler
    _, body = client.push_image("team/app", "v1", [b"a layer"])
    for _ in range(3):
        assert client("GET", "/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST}).status == 200
    assert client("GET", "/v2/team/app/manifests/missing", headers={"Accept": OCI_MANIFEST}).status == 404
    scraped = served(make_request("GET", "/metrics"))
    assert scraped.status == 200 and scraped.headers["Content-Type"].startswith("text/plain")
    found = samples(scraped.body_bytes().decode())
    repo = (("repo", "team/app"),)
    assert found[("zot_repo_uploads_total", repo)] == 1
    assert found[("zot_repo_downloads_total", repo)] == 3
    assert found[("zot_http_requests_total", (("code", "200"), ("method", "GET")))] == 3
    assert found[("zot_http_requests_total", (("code", "404"), ("method", "GET")))] == 1
    assert found[("zot_http_requests_total", (("code", "201"), ("method", "POST")))] == 2  # the config and the layer
    assert found[("zot_http_method_latency_seconds_count", (("method", "GET"),))] == 4
    assert found[("zot_http_repo_latency_seconds_count", repo)] == 6  # the 404 is N/A: errors name no repository
    assert found[("zotless_http_route_latency_seconds_count", (("method", "PUT"), ("route", "manifests")))] == 1
    config_size = len(json.dumps({"architecture": "amd64", "os": "linux"}))
    assert found[("zot_repo_storage_bytes", repo)] == len(body) + len(b"a layer") + config_size


def test_asks_for_unknown_repositories_add_no_series(served) -> None:
    """An anonymous loop over random names (404s, a 400) must not grow /metrics by a series per name."""
    names = [f"random/n{n}" for n in range(5)]
    for name in names:
        assert served(make_request("GET", f"/v2/{name}/manifests/latest", headers={"Accept": OCI_MANIFEST})).status == 404
        assert served(make_request("HEAD", f"/v2/{name}/blobs/sha256:{'0' * 64}")).status == 404
        assert served(make_request("GET", f"/v2/{name}/tags/list")).status == 404
        assert served(make_request("GET", f"/v2/{name}/blobs/not-a-digest")).status == 400
    found = samples(served(make_request("GET", "/metrics")).body_bytes().decode())
    labelled = {dict(labels).get("repo") for _, labels in found} - {None}
    assert labelled == {"N/A"}, labelled


def test_the_repository_label_is_kept_for_answered_requests() -> None:
    """Only a request the registry answered with success names its repository; errors and refusals are N/A."""
    from chalicelib.ops.measures import NO_REPO, measure
    from chalicelib.spec.http import Response

    assert measure("GET", "/v2/team/app/manifests/v1", Response(200), 0.1).repo == "team/app"
    for status in (400, 401, 403, 404, 500):
        assert measure("GET", "/v2/team/app/manifests/v1", Response(status), 0.1).repo == NO_REPO, status


@pytest.mark.parametrize(("path", "repo", "route"), [
    ("/v2/", "N/A", "base"),
    ("/v2/_catalog", "N/A", "catalog"),
    ("/v2/team/app/manifests/v1", "team/app", "manifests"),
    ("/v2/team/blobs/app/manifests/v1", "team/blobs/app", "manifests"),  # "blobs" is a valid path component of a name
    ("/v2/x/manifests/y/blobs/sha256:00", "x/manifests/y", "blobs"),
    ("/v2/team/blobs/app/blobs/uploads/", "team/blobs/app", "uploads"),
    ("/v2/team/app/blobs/uploads/abc", "team/app", "uploads"),
    ("/v2/a/tags/b/tags/list", "a/tags/b", "tags"),
    ("/v2/team/app/referrers/sha256:00", "team/app", "referrers"),
    ("/v2/_zot/ext/search", "N/A", "other"),
])
def test_metrics_and_log_lines_read_a_path_alike(path: str, repo: str, route: str) -> None:
    """One route table names a request's repository and route for the metrics and for the log line."""
    from chalicelib.adapters import logs
    from chalicelib.ops.measures import measure
    from chalicelib.spec.http import Response

    measured = measure("GET", path, Response(200), 0.1)
    assert (measured.repo, measured.route) == (repo, route)
    assert (logs.describe(path)[1] or "N/A") == repo
    assert measured.download == (route == "manifests")


def test_metrics_off_in_the_config_is_not_served(service) -> None:
    service.config.extensions.metrics.enable = False
    served = Operations(service).wrap(service.api.handle)
    assert served(make_request("GET", "/metrics")).status == 404


def test_metrics_path_follows_the_config(service) -> None:
    service.config.extensions.metrics.prometheus.path = "/internal/metrics"
    served = Operations(service).wrap(service.api.handle)
    assert served(make_request("GET", "/internal/metrics")).status == 200
    assert served(make_request("GET", "/metrics")).status == 404


# The Lambda: the same checks through app.py's routes, and the measures as EMF lines


@pytest.fixture
def lambda_app(service, monkeypatch):
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    app_module.health.cache_clear()
    yield app_module.app
    app_module.health.cache_clear()


def test_lambda_health_routes(lambda_app) -> None:
    import app as app_module

    clock = app_module.health().clock = Clock()
    for path in ("/livez", "/readyz", "/startupz"):
        result = lambda_app(event_for("GET", path), None)
        assert result["statusCode"] == 200, (path, response_body(result))
    clock.now += READY_SECONDS  # the 200 above is reused for a few seconds
    Faults().attach(app_module.health()._probe_clients()[0]).add("HeadBucket", s3_error(503, "ServiceUnavailable"))
    result = lambda_app(event_for("GET", "/readyz"), None)
    assert result["statusCode"] == 503
    assert json.loads(response_body(result))["checks"]["s3"] == "failed: ServiceUnavailable"


@pytest.mark.parametrize("build", [event_for, url_event_for], ids=["api-gateway", "function-url"])
def test_lambda_readiness_is_probed_once_per_window(lambda_app, build) -> None:
    """The Lambda instance keeps its answer as the local server does, through either door."""
    import app as app_module

    app_module.health().clock = Clock()
    counter = CallCounter(*app_module.health()._probe_clients())
    for _ in range(10):
        assert lambda_app(build("GET", "/readyz"), None)["statusCode"] == 200
    assert sum(counter.take().values()) == 2


def test_lambda_handler_prints_one_emf_line_per_request(lambda_app, service, monkeypatch, capsys) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "zotless-test")
    layer = b"layer bytes"
    Client(service).push_blob("org/app", layer)
    config = b"{}"
    Client(service).push_blob("org/app", config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config), "size": 2},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer), "size": len(layer)}]}).encode()
    capsys.readouterr()
    put = lambda_app(event_for("PUT", "/v2/org/app/manifests/v1", headers={"Content-Type": OCI_MANIFEST}, body=manifest), None)
    assert put["statusCode"] == 201
    got = lambda_app(event_for("GET", "/v2/org/app/manifests/v1", headers={"Accept": OCI_MANIFEST}), None)
    assert got["statusCode"] == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(lines) == 2
    push, pull = lines
    assert push["zot_repo_uploads_total"] == 1 and push["repo"] == "org/app" and push["code"] == "201" and push["method"] == "PUT"
    assert pull["zot_repo_downloads_total"] == 1 and "zot_repo_uploads_total" not in pull and pull["route"] == "manifests"
    for line in lines:
        directives = line["_aws"]["CloudWatchMetrics"]
        assert all(d["Namespace"] == "zotless" for d in directives)
        names = {m["Name"] for d in directives for m in d["Metrics"]}
        assert {"zot_http_requests_total", "zot_http_method_latency_seconds"} <= names
        for directive in directives:  # EMF: every dimension and metric named must be a member of the line
            assert all(key in line for dims in directive["Dimensions"] for key in dims)
            assert all(m["Name"] in line for m in directive["Metrics"])


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_push_is_answered_even_when_its_storage_bytes_cannot_be_read(service, served) -> None:
    """zot_repo_storage_bytes queries the index after a push; that query failing must not turn the 201 into a 500."""
    client = Client(SimpleNamespace(api=SimpleNamespace(handle=served)))
    faults = Faults().attach(service.index.table.client)
    faults.add("Query", dynamo_error("InternalServerError"), times=10)
    client.push_image("team/app", "v1", [b"layer"])  # asserts the 201


def test_a_push_does_not_read_its_whole_repository_for_the_storage_metric(service, served, monkeypatch) -> None:
    """Pushes slowed as repositories grew: each one read every manifest of its repository. The scrape measures, once per changed repo."""
    reads: list[str] = []
    original = service.index.repository_items
    monkeypatch.setattr(service.index, "repository_items", lambda repo, *args: reads.append(repo) or original(repo, *args))
    client = Client(SimpleNamespace(api=SimpleNamespace(handle=served)))
    client.push_image("team/app", "v1", [b"one layer"])
    client.push_image("team/app", "v2", [b"another layer"])
    assert reads == []
    found = samples(served(make_request("GET", "/metrics")).body_bytes().decode())
    assert reads == ["team/app"] and found[("zot_repo_storage_bytes", (("repo", "team/app"),))] > 0
    served(make_request("GET", "/metrics"))
    assert reads == ["team/app"]  # unchanged since: not read again
