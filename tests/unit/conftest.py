"""Unit tests that start a process carry @pytest.mark.process; `make fast` leaves them out.

The mark is enforced: any other unit test (or the fixtures it sets up) that starts a process fails,
so the fast loop can never quietly grow slow.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

_current: list[pytest.Item] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Remember the test being run, its fixtures' setup and teardown included."""
    _current.append(item)
    try:
        yield
    finally:
        _current.pop()


def _unmarked() -> pytest.Item | None:
    item = _current[-1] if _current else None
    return item if item is not None and item.get_closest_marker("process") is None else None


_original_init = subprocess.Popen.__init__


def _guarded_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
    item = _unmarked()
    if item is not None:
        raise AssertionError(f"{item.nodeid} starts a process: mark it @pytest.mark.process so `make fast` leaves it out")
    _original_init(self, *args, **kwargs)


subprocess.Popen.__init__ = _guarded_init  # type: ignore[method-assign]
