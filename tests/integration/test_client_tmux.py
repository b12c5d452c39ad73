"""The push progress display as a user sees it: bars in a real terminal (tmux), plain lines in a pipe, nothing with --quiet."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.clienthelpers import Client
from tests.integration.conftest import MiB, RunningRegistry, zotless_command
from tests.integration.images import make_layout

pytestmark = pytest.mark.integration


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True, timeout=30).stdout


def short(digest: str) -> str:
    return digest.split(":")[1][:12]


def test_push_in_a_terminal_draws_a_bar_per_blob_and_a_total(lambda_registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not on PATH (apt-get install tmux, or `make` does)")
    digest = make_layout(tmp_path / "layout", "v1", [9 * MiB, 2 * MiB])
    blobs = [p.name for p in (tmp_path / "layout" / "blobs" / "sha256").iterdir() if p.name != digest.split(":")[1]]
    client = Client(tmp_path / "home")
    client.home.mkdir()
    env = client.env()
    command = " ".join(shlex.quote(part) for part in [*zotless_command(), "push", f"oci:{tmp_path / 'layout'}:v1", f"{lambda_registry.host}/{repo}:v1"])
    socket = f"zotless-test-{uuid.uuid4().hex[:8]}"
    exports = [f"-e{key}={env[key]}" for key in ("HOME", "XDG_RUNTIME_DIR", "PYTHONPATH") if key in env]
    tmux(socket, "new-session", "-d", "-s", "push", "-x", "160", "-y", "40", *exports, f"{command}; echo EXIT=$?; sleep 600")
    try:
        deadline = time.monotonic() + 180
        screen = ""
        while "EXIT=" not in screen and time.monotonic() < deadline:
            time.sleep(0.2)
            screen = tmux(socket, "capture-pane", "-p", "-t", "push")
    finally:
        tmux(socket, "kill-server")
    assert "EXIT=0" in screen, screen
    lines = [line.strip() for line in screen.splitlines() if line.strip()]
    total = next(line for line in lines if line.startswith("total"))
    assert "━" in total and "MB" in total, screen
    for name in blobs:
        assert any(line.startswith(f"pushed {name[:12]}") and "━" in line for line in lines), screen
    assert any(line.endswith(digest) for line in lines), screen


def test_push_into_a_pipe_prints_plain_lines_and_quiet_prints_none(registry: RunningRegistry, repo: str, tmp_path: Path) -> None:
    digest = make_layout(tmp_path / "layout", "v1", [1000])
    client = Client(tmp_path / "home")
    client.home.mkdir()
    piped = client.run("push", f"oci:{tmp_path / 'layout'}:v1", f"{registry.host}/{repo}:v1")
    assert "\x1b" not in piped.stderr and "━" not in piped.stderr
    lines = piped.stderr.splitlines()
    assert sorted(line.split()[0] for line in lines[:-1]) == ["pushed", "pushed", "pushing", "pushing"], lines  # config and layer
    assert lines[-1] == f"{registry.host}/{repo}:v1 {digest}"
    assert piped.stdout.strip() == digest
    quiet = client.run("push", "-q", f"oci:{tmp_path / 'layout'}:v1", f"{registry.host}/{repo}:v2")
    assert (quiet.stdout, quiet.stderr) == ("", "")
