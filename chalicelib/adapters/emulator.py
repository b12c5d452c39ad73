"""Run moto's server as a child process so local runs and tests get real S3/DynamoDB HTTP endpoints."""

from __future__ import annotations

import atexit
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
REPLAY_TIMEOUT = 1800.0  # with a data directory the port opens once the journal is replayed
STOP_TIMEOUT = 5.0
SNAPSHOT_TIMEOUT = 120.0  # with a data directory a clean stop writes a snapshot first (killing it only costs replay time)


class EmulatorError(RuntimeError):
    """moto_server could not be started or never answered HTTP."""


class MotoEmulator:
    """A running moto_server child; stop() (or leaving the with-block, or interpreter exit) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path | None, stop_timeout: float = STOP_TIMEOUT) -> None:
        self.process = process
        self.stop_timeout = stop_timeout
        self.port = port
        self.endpoint = f"http://{HOST}:{port}"
        self.log_path = log_path
        self.stopping = False
        atexit.register(self.stop)

    def watch(self, on_exit: Callable[[int], None]) -> threading.Thread:
        """Call on_exit(returncode) from a daemon thread if the child ends without stop() being asked to end it."""

        def wait() -> None:
            code = self.process.wait()
            if not self.stopping:
                on_exit(code)

        thread = threading.Thread(target=wait, name=f"moto-watch-{self.port}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Terminate, then kill if it ignores SIGTERM; always reap so no zombie or orphan is left."""
        self.stopping = True
        atexit.unregister(self.stop)
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> MotoEmulator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def free_port(host: str = HOST) -> int:
    """Ask the kernel for an unused port; racy in theory, so start_moto retries if the bind is lost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def moto_command() -> list[str]:
    """moto's server behind our atomicity wrapper (adapters/motoserver.py), in this interpreter."""
    return [sys.executable, "-m", "chalicelib.adapters.motoserver"]


def start_moto(log_path: str | Path | None = None, timeout: float | None = None, attempts: int = 3, data: str | Path | None = None) -> MotoEmulator:
    """Start moto_server on a free loopback port and return once it answers HTTP.

    With `data`, its state is kept in that directory (replayed at start, journaled as it changes)
    and its log goes to data/emulator.log unless log_path says otherwise.
    """
    if data is not None:
        Path(data).mkdir(parents=True, exist_ok=True)
    path = Path(log_path) if log_path is not None else Path(data) / "emulator.log" if data is not None else None
    wait = timeout if timeout is not None else REPLAY_TIMEOUT if data is not None else START_TIMEOUT
    for _ in range(attempts):
        emulator = _spawn(free_port(), path, data)
        if _wait_ready(emulator, wait):
            return emulator
        emulator.stop()
        if data is not None and emulator.process.returncode == 2:  # the data directory was refused: retrying cannot help
            break
    raise EmulatorError(f"moto_server did not start (log: {path or 'discarded'}){_tail(path)}")


def _tail(path: Path | None) -> str:
    """The log's last motoserver line, which says why a data directory was refused."""
    if path is None or not path.exists():
        return ""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.startswith("motoserver:")]
    return f": {lines[-1]}" if lines else ""


def _spawn(port: int, log_path: Path | None, data: str | Path | None = None) -> MotoEmulator:
    command = [*moto_command(), "-H", HOST, "-p", str(port)] + (["--data", str(data)] if data is not None else [])
    env = {**os.environ, "MOTO_PORT": str(port)}  # moto builds self-referencing URLs from MOTO_PORT, not from -p
    log = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    except OSError as exc:
        raise EmulatorError(f"cannot run {command[0]}: {exc}") from exc
    finally:
        if not isinstance(log, int):
            log.close()
    return MotoEmulator(process, port, log_path, STOP_TIMEOUT if data is None else SNAPSHOT_TIMEOUT)


def _wait_ready(emulator: MotoEmulator, timeout: float) -> bool:
    """Poll until any HTTP response arrives; False if the child exits (e.g. lost the port) or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            return False
        if _answers_http(emulator.port):
            return True
        time.sleep(0.1)
    return False


def _answers_http(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/moto-api/")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
