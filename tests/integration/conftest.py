"""Integration fixtures: `zotless serve` as a real subprocess, driven over HTTP by real clients.

The servers keep their data on the embedded emulator, or on real S3 and DynamoDB with ZOTLESS_TEST_AWS=1
(tests/integration/backend.py, docs/testing.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.integration.backend import BACKEND, names_an_endpoint

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_LISTENING = re.compile(r"^zotless: registry listening on (http://([^/\s]+))\s*$")
# Variables that would make the server skip its emulator or read another config.
_SCRUBBED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "ZOTLESS_CONFIG")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def zotless_command() -> list[str]:
    script = Path(sys.executable).with_name("zotless")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "chalicelib.cli.commands"]


@dataclass
class RunningRegistry:
    """A `zotless serve` child process: its base URL, host:port and request log."""

    url: str
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def __call__(self, method: str, path: str, **kwargs: object) -> requests.Response:
        """One request to a path under the registry, or to an absolute URL (redirects are not followed unless asked)."""
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 120)
        url = path if path.startswith(("http://", "https://")) else self.url + path
        return self.session.request(method, url, **kwargs)  # type: ignore[arg-type]

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def log_entries(self, logger: str = "zotless.localserver") -> list[dict]:
        """The server's JSON log lines from one logger (lines that are not JSON, e.g. tracebacks, are skipped)."""
        entries = []
        for line in self.log_lines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("logger") == logger:
                entries.append(entry)
        return entries

    def requests_logged(self, method: str, path_prefix: str) -> list[tuple[str, int]]:
        """(path, status) of every logged request with this method whose path starts with path_prefix."""
        return [(e["path"], e["status"]) for e in self.log_entries() if e.get("method") == method and str(e.get("path", "")).startswith(path_prefix)]

    # Raw-HTTP helpers shared by the tests

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        response = self("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, data=data)
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        return digest

    def push_manifest(self, repo: str, reference: str, manifest: dict, media_type: str = OCI_MANIFEST) -> tuple[str, requests.Response]:
        body = json.dumps(manifest).encode()
        response = self("PUT", f"/v2/{repo}/manifests/{reference}", data=body, headers={"Content-Type": media_type})
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == sha256(body)
        return sha256(body), response

    def push_image(self, repo: str, tag: str, layers: list[bytes] | None = None, architecture: str = "amd64") -> tuple[str, dict]:
        """A small OCI image via monolithic POSTs; returns (manifest digest, manifest)."""
        config = json.dumps({"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        layers = layers if layers is not None else [os.urandom(1000)]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(repo, config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": self.push_blob(repo, layer), "size": len(layer)} for layer in layers],
        }
        digest, _ = self.push_manifest(repo, tag, manifest)
        return digest, manifest

    def pull_blob(self, repo: str, digest: str, headers: dict[str, str] | None = None) -> requests.Response:
        """GET a blob, following a 307 to the presigned URL by hand (the redirect must not carry our session)."""
        response = self("GET", f"/v2/{repo}/blobs/{digest}", headers=headers)
        if response.status_code == 307:
            assert response.headers["Docker-Content-Digest"] == digest
            response = requests.get(response.headers["Location"], headers=headers, timeout=120)
        return response


def _start(tmp: Path, config: dict | None, *options: str) -> RunningRegistry:
    if BACKEND is not None and not names_an_endpoint(config):
        config, options = BACKEND.configure(tmp.name, config), (*options, "--no-emulator")
    keep = () if "--data" in options or "--no-emulator" in options else ("--ephemeral",)  # nothing left in the checkout
    command = [*zotless_command(), "serve", "--port", "0", *keep, *options]
    if config is not None:
        config_path = tmp / "config.json"
        config_path.write_text(json.dumps(config))
        command += ["--config", str(config_path)]
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("ZOTLESS_")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        # Its own process group, so a hung server can be killed together with its emulator child.
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT
    buffered = b""
    try:
        while b"\n" not in buffered:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"zotless serve printed no address within {START_TIMEOUT:.0f}s")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"zotless serve exited with {process.wait()} before listening")
            buffered += chunk
    except RuntimeError as error:
        _stop(process)
        raise RuntimeError(f"{error}; stdout {buffered!r}; log tail:\n{log_path.read_text(errors='replace')[-3000:]}") from None
    finally:
        selector.close()
    first = buffered.split(b"\n", 1)[0].decode()
    found = _LISTENING.match(first)
    if not found:
        _stop(process)
        raise RuntimeError(f"unexpected first line from zotless serve: {first!r}")
    # Later stdout lines are few and short; the pipe buffer holds them, so nobody needs to read on.
    return RunningRegistry(url=found.group(1), host=found.group(2), process=process, log_path=log_path)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _registry(tmp_path_factory: pytest.TempPathFactory, name: str, config: dict | None, *options: str) -> Iterator[RunningRegistry]:
    registry = _start(tmp_path_factory.mktemp(name), config, *options)
    try:
        yield registry
    finally:
        registry.session.close()
        _stop(registry.process)
        assert registry.process.returncode == 0, f"zotless serve exited with {registry.process.returncode}; log {registry.log_path}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On real AWS, the tests that observe the embedded emulator itself (its process, its bucket names) are skipped."""
    if BACKEND is None:
        return
    skip = pytest.mark.skip(reason="observes the embedded emulator; ZOTLESS_TEST_AWS=1 runs on real AWS")
    for item in items:
        if item.get_closest_marker("emulator") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def aws_backend() -> Iterator[None]:
    """With ZOTLESS_TEST_AWS=1: delete the run's objects and tables once every server has stopped."""
    yield
    if BACKEND is not None:
        left = BACKEND.clean_up()
        assert not left, f"left behind in AWS (delete by hand): {left}"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """The default server: dedupe on, blob GETs redirect (307) to presigned emulator URLs."""
    yield from _registry(tmp_path_factory, "registry", None)


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A second server with dedupe off and redirect off: blobs stream through the registry, mounts copy."""
    yield from _registry(tmp_path_factory, "plain-registry", {"storage": {"dedupe": False, "redirect": False}})


@pytest.fixture(scope="session")
def lambda_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """`zotless serve --lambda`: every request goes through app.py as an API Gateway proxy event, within Lambda's limits."""
    yield from _registry(tmp_path_factory, "lambda-registry", None, "--lambda")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """examples/htpasswd users, accessControl and registry-issued tokens (Bearer challenges): test_auth.py."""
    from tests.integration.authconfig import auth_server_config

    yield from _registry(tmp_path_factory, "token-registry", auth_server_config(bearer=True))


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """The same users and accessControl with Basic challenges only (no tokens)."""
    from tests.integration.authconfig import auth_server_config

    yield from _registry(tmp_path_factory, "basic-registry", auth_server_config(bearer=False))


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    return f"it/{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        pytest.skip("skopeo is not on PATH (install it: apt-get install skopeo, or `make` does)")
    return found


def run_skopeo(skopeo: str, *args: str, timeout: float = 120) -> str:
    """Run skopeo, failing the test with its stderr on a non-zero exit."""
    result = subprocess.run([skopeo, "--insecure-policy", *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
    return result.stdout


@pytest.fixture(params=["registry", "plain_registry"], ids=["dedupe-redirect", "no-dedupe-no-redirect"])
def each_registry(request: pytest.FixtureRequest) -> RunningRegistry:
    """Runs a test against both server configurations."""
    return request.getfixturevalue(request.param)
