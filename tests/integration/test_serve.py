"""`zotless serve` as a user runs it: a port already taken, and an embedded emulator that dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, RunningRegistry, _start, _stop, zotless_command

pytestmark = pytest.mark.integration

EXIT_TIMEOUT = 60.0


def server_env() -> dict[str, str]:
    """No endpoint and no config from the caller's environment, as the integration fixtures run it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ZOTLESS_", "AWS_ENDPOINT_URL"))}


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_port_already_in_use_is_one_line_and_a_non_zero_exit(taken_port: int) -> None:
    command = [*zotless_command(), "serve", "--port", str(taken_port)]
    result = subprocess.run(command, cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=EXIT_TIMEOUT, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(taken_port) in lines[0] and "already in use" in lines[0], result.stderr


@pytest.mark.parametrize("port", ["700000", "-1"])
def test_port_out_of_range_is_refused(port: str) -> None:
    command = [*zotless_command(), "serve", "--port", port]
    result = subprocess.run(command, cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=EXIT_TIMEOUT, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--port" in result.stderr, result.stderr


def children(pid: int) -> list[int]:
    """Direct child processes, from /proc (every thread's list: a child belongs to the thread that forked it)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningRegistry]:
    registry = _start(tmp_path, None)
    try:
        yield registry
    finally:
        _stop(registry.process)


@pytest.mark.emulator
def test_server_stops_when_its_emulator_dies(server: RunningRegistry) -> None:
    assert server("GET", "/v2/").status_code == 200
    (moto,) = children(server.process.pid)
    assert "moto" in Path(f"/proc/{moto}/cmdline").read_bytes().decode(errors="replace")
    os.kill(moto, signal.SIGKILL)
    try:
        code = server.process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"zotless serve still running after its emulator was killed; /v2/ answers {server('GET', '/v2/').status_code}")
    assert code != 0
    died = [line for line in server.log_lines() if "emulator" in line and "died" in line]
    assert len(died) == 1 and "exit code -9" in died[0], server.log_lines()[-5:]


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """An S3 + DynamoDB endpoint that outlives one server, like LocalStack or AWS itself."""
    from chalicelib.adapters.emulator import start_moto

    with start_moto() as moto:
        yield moto.endpoint


def storage_config(endpoint: str, root: str | None) -> dict:
    driver = {"regionendpoint": endpoint, **({"rootdirectory": root} if root is not None else {})}
    return {"storage": {"storageDriver": driver, "cacheDriver": {"endpoint": endpoint}}}


def test_server_refuses_an_index_of_another_prefix(tmp_path: Path, moto_endpoint: str) -> None:
    first = _start(tmp_path, storage_config(moto_endpoint, "/zotless"))
    try:
        first.push_image("team/app", "1.0")
    finally:
        _stop(first.process)
    assert first.process.returncode == 0
    again = _start(tmp_path, storage_config(moto_endpoint, "zotless/"))  # the same prefix: serves what it finds
    try:
        assert again("GET", "/v2/team/app/tags/list").json()["tags"] == ["1.0"]
    finally:
        _stop(again.process)

    (tmp_path / "omitted.json").write_text(json.dumps(storage_config(moto_endpoint, None)))
    command = [*zotless_command(), "serve", "--port", "0", "--config", str(tmp_path / "omitted.json")]
    result = subprocess.run(command, cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=EXIT_TIMEOUT, check=False)
    assert result.returncode == 1 and "listening" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "s3://zotless/zotless/" in lines[0] and "stores content in s3://zotless/;" in lines[0], result.stderr
