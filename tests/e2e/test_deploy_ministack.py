"""End to end: `chalice deploy` onto ministack (Lambda without Docker), skopeo through API Gateway, scheduled GC.

Opt-in (ZOTLESS_TEST_E2E=1, about two minutes): it builds a venv for ministack under
~/.cache/zotless-e2e (ministack pins its own botocore; boto3 stands in for the one Lambda's Python
runtime provides), needs PyPI for Chalice's packaging and skopeo on PATH. docs/testing.md says more.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.emulator import free_port

ROOT = Path(__file__).resolve().parents[2]
MINISTACK = "ministack==1.5.33"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zotless-e2e"
ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.environ.get("ZOTLESS_TEST_E2E") != "1", reason="opt-in: ZOTLESS_TEST_E2E=1 (about two minutes; docs/testing.md)"),
]


def _run(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _ministack_python() -> Path:
    """A venv with ministack and the boto3 that matches its botocore, made once and reused."""
    python = CACHE / "venv" / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(CACHE / "venv")])
        _run([str(python), "-m", "pip", "install", "-q", MINISTACK])
        botocore = _run([str(python), "-c", "import botocore; print(botocore.__version__)"]).strip()
        _run([str(python), "-m", "pip", "install", "-q", f"boto3=={botocore}"])
    return python


def _wait_until_up(endpoint: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ministack exited with {process.returncode}"
        try:
            urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"ministack did not answer within {seconds:.0f}s")


@pytest.fixture(scope="module")
def ministack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python, port = _ministack_python(), free_port()
    log = (tmp_path_factory.mktemp("ministack") / "ministack.log").open("wb")
    env = {**os.environ, **ENV, "GATEWAY_PORT": str(port)}
    process = subprocess.Popen([str(python), str(Path(__file__).with_name("ministack_fixes.py"))], env=env, stdout=log, stderr=log)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def deployed(ministack: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The dev stage, deployed as the docs say: `zotless init-aws`, then `chalice deploy`; returns the REST API id."""
    project = tmp_path_factory.mktemp("project")
    files = _run(["git", "ls-files"], cwd=ROOT).split()
    for name in files:
        if name.startswith(("app.py", "chalicelib/", ".chalice/", "requirements.txt")):
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, project / name)
    env = {**os.environ, **ENV, "AWS_ENDPOINT_URL": ministack, "PYTHONPATH": str(project)}
    bin_dir = Path(sys.executable).parent
    _run([str(bin_dir / "zotless"), "init-aws", "--stage", "dev", "--region", "us-east-1"], cwd=project, env=env)
    output = _run([str(bin_dir / "chalice"), "deploy", "--stage", "dev"], cwd=project, env=env)
    found = re.search(r"Rest API URL: https://([a-z0-9]+)\.execute-api\.", output)
    assert found, output
    return found.group(1)


class _StageForwarder(BaseHTTPRequestHandler):
    """Forwards /v2/... to ministack's /_aws/execute-api/{api}/v2/v2/...: the stage "v2" and the app's /v2 routes.

    A registry must answer at the root of its host. ministack also serves `{api}.execute-api.localhost`
    by host, which skopeo cannot resolve, and there a POST to /v2/<name>/blobs/uploads/ came back 404
    NAME_UNKNOWN while the same request by path got its 202 (not pursued: see docs/testing.md). A request
    without Accept gets `*/*`: ministack answered such requests with a Content-Length and no body.
    """

    protocol_version = "HTTP/1.1"
    upstream: tuple[str, int]
    prefix: str

    def _forward(self) -> None:
        body = self._body()
        dropped = ("host", "transfer-encoding", "content-length", "accept-encoding", "connection")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        headers["Content-Length"] = str(len(body))
        headers.setdefault("Accept", "*/*")  # without one, ministack announces the body's length and sends no body
        connection = http.client.HTTPConnection(*self.upstream, timeout=300)
        try:
            connection.request(self.command, self.prefix + self.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            data = b"" if self.command == "HEAD" else answer.read()
        finally:
            connection.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, *_: object) -> None:
        """Quiet: skopeo's requests are in ministack's log."""


@pytest.fixture(scope="module")
def registry_host(ministack: str, deployed: str) -> Iterator[str]:
    port = int(ministack.rsplit(":", 1)[1])
    handler = type("Handler", (_StageForwarder,), {"upstream": ("127.0.0.1", port), "prefix": f"/_aws/execute-api/{deployed}/v2"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _aws(ministack: str, service: str) -> Any:
    import boto3

    return boto3.session.Session(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test").client(service, endpoint_url=ministack)


def test_skopeo_pushes_and_pulls_through_the_deployed_api(registry_host: str, tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is not on PATH (apt-get install skopeo, or `make` does)"
    _run([sys.executable, str(ROOT / "examples" / "make_image.py"), str(tmp_path / "img"), "latest", "hello from a deployed zotless"])
    _run([skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'img'}:latest", f"docker://{registry_host}/team/app:1.0"])
    _run([skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{registry_host}/team/app:1.0", f"oci:{tmp_path / 'pulled'}:1.0"])
    pushed = json.loads((tmp_path / "img" / "index.json").read_text())["manifests"][0]["digest"]
    pulled = json.loads((tmp_path / "pulled" / "index.json").read_text())["manifests"][0]["digest"]
    assert pushed == pulled
    tags = json.loads(urllib.request.urlopen(f"http://{registry_host}/v2/team/app/tags/list", timeout=60).read())
    assert tags == {"name": "team/app", "tags": ["1.0"]}


def test_the_scheduled_gc_is_wired_and_runs(ministack: str, deployed: str) -> None:
    """The schedule rule targets the GC function; invoked with the event EventBridge sends, it runs to the end."""
    events, functions = _aws(ministack, "events"), _aws(ministack, "lambda")
    gc_arn = functions.get_function(FunctionName="zotless-dev-garbage_collect")["Configuration"]["FunctionArn"]
    scheduled = [r for r in events.list_rules()["Rules"] if r.get("ScheduleExpression", "").startswith("rate(")]
    targets = [t["Arn"] for r in scheduled for t in events.list_targets_by_rule(Rule=r["Name"])["Targets"]]
    assert gc_arn in targets, (scheduled, targets)
    event = {"version": "0", "id": "e2e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "000000000000",
             "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [scheduled[0]["Arn"]], "detail": {}}
    answer = functions.invoke(FunctionName="zotless-dev-garbage_collect", Payload=json.dumps(event).encode(), LogType="Tail")
    assert "FunctionError" not in answer, answer["Payload"].read()
    import base64

    tail = base64.b64decode(answer.get("LogResult", "")).decode(errors="replace")
    reports = [json.loads(entry["message"]) for entry in _json_lines(tail) if entry.get("logger") == "zotless.gc"]
    assert [(r["event"], r["complete"]) for r in reports] == [("gc", True)], tail


def _json_lines(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return [e for e in entries if isinstance(e, dict)]
