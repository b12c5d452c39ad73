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
STOP_TIMEOUT = 5.0


class EmulatorError(RuntimeError):
    """moto_server could not be started or never answered HTTP."""


class MotoEmulator:
    """A running moto_server child; stop() (or leaving the with-block, or interpreter exit) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path | None) -> None:
        self.process = process
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
            self.process.wait(timeout=STOP_TIMEOUT)
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


def start_moto(log_path: str | Path | None = None, timeout: float = START_TIMEOUT, attempts: int = 3) -> MotoEmulator:
    """Start moto_server on a free loopback port and return once it answers HTTP."""
    path = Path(log_path) if log_path is not None else None
    for _ in range(attempts):
        emulator = _spawn(free_port(), path)
        if _wait_ready(emulator, timeout):
            return emulator
        emulator.stop()
    raise EmulatorError(f"moto_server did not start after {attempts} attempts (log: {path or 'discarded'})")


def _spawn(port: int, log_path: Path | None) -> MotoEmulator:
    command = [*moto_command(), "-H", HOST, "-p", str(port)]
    env = {**os.environ, "MOTO_PORT": str(port)}  # moto builds self-referencing URLs from MOTO_PORT, not from -p
    log = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    except OSError as exc:
        raise EmulatorError(f"cannot run {command[0]}: {exc}") from exc
    finally:
        if not isinstance(log, int):
            log.close()
    return MotoEmulator(process, port, log_path)


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
