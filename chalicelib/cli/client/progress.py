"""What a transfer shows: rich bars per blob and overall on a terminal, one plain line per event otherwise, or nothing."""

from __future__ import annotations

import sys
import threading
from types import TracebackType

import click


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class Reporter:
    """Plain lines on stderr (not a terminal), or silence with quiet; Bars overrides for a terminal."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._lock = threading.Lock()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        return None

    def total(self, size: int) -> None:
        """The bytes the whole transfer will move."""

    def start(self, digest: str, size: int, verb: str) -> None:
        self.line(f"{verb} {short(digest)} ({size} bytes)")

    def advance(self, digest: str, count: int) -> None:
        """Bytes moved for a blob (and the overall total)."""

    def done(self, digest: str, size: int, outcome: str) -> None:
        self.line(f"{outcome} {short(digest)}")

    def line(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                click.echo(text, err=True)


class Bars(Reporter):
    """rich's Progress: a bar per blob in flight and one for all bytes; messages print above the bars."""

    def __init__(self) -> None:
        super().__init__(False)
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=Console(stderr=True), transient=False
        )
        self.overall = self.progress.add_task("total", total=0)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> Bars:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        self.progress.stop()

    def total(self, size: int) -> None:
        self.progress.update(self.overall, total=size)

    def start(self, digest: str, size: int, verb: str) -> None:
        with self._lock:
            if digest not in self.tasks:
                self.tasks[digest] = self.progress.add_task(f"{verb} {short(digest)}", total=size)

    def advance(self, digest: str, count: int) -> None:
        with self._lock:
            task = self.tasks.get(digest)
        if task is not None:
            self.progress.advance(task, count)
        self.progress.advance(self.overall, count)

    def done(self, digest: str, size: int, outcome: str) -> None:
        with self._lock:
            task = self.tasks.get(digest)
        if task is None:
            self.progress.advance(self.overall, size)
            self.progress.console.print(f"{outcome} {short(digest)}")
            return
        self.progress.update(task, completed=size, description=f"{outcome} {short(digest)}")

    def line(self, text: str) -> None:
        self.progress.console.print(text)


def reporter(quiet: bool) -> Reporter:
    if not quiet and sys.stderr.isatty():
        return Bars()
    return Reporter(quiet)
