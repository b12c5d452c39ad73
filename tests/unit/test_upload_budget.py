"""The process-wide memory budget of uploads: concurrent writers never hold more than it, and waiters get their turn.

No timing: threads are synchronised with events, and "is waiting" is read from the budget itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from chalicelib.storage.memory import MemoryBudget
from chalicelib.storage.uploads import PART_SIZE, SEAT, BlobWriter, UploadSession

MIB = 1 << 20
LONG = 60.0  # a bound on how long a broken test may hang, never an assertion


def wait_until(condition: Callable[[], bool]) -> None:
    """Synchronise with another thread; fails only if the condition never comes true."""
    event = threading.Event()
    for _ in range(int(LONG * 100)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition never came true")


class Body:
    """A streamed request body of size bytes, produced as it is read; it can pause after `pause_at` bytes."""

    def __init__(self, size: int, pause_at: int | None = None) -> None:
        self.left = size
        self.sent = 0
        self.pause_at = pause_at
        self.paused = threading.Event()
        self.resume = threading.Event()

    def read(self, size: int = -1) -> bytes:
        if self.pause_at is not None and self.sent >= self.pause_at and not self.resume.is_set():
            self.paused.set()
            self.resume.wait(LONG)
        count = min(self.left, size if size >= 0 else self.left)
        self.left -= count
        self.sent += count
        return b"x" * count


class FakeStore:
    """Records the bytes of parts being uploaded at once and the order of events; parts can be held at a gate."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.uploading = 0
        self.peak_uploading = 0
        self.events: list[str] = []
        self.objects: dict[str, bytes] = {}

    def start_multipart(self, key: str) -> str:
        return f"upload-{key}"

    def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> None:
        with self.lock:
            self.uploading += len(data)
            self.peak_uploading = max(self.peak_uploading, self.uploading)
            self.events.append(f"{key}:{number}")
        self.gate.wait(LONG)
        with self.lock:
            self.uploading -= len(data)

    def put(self, key: str, data: bytes, **_: object) -> bool:
        self.objects[key] = data
        return True

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.objects.pop(key, None)


def writer(store: FakeStore, name: str) -> BlobWriter:
    return BlobWriter(store, UploadSession(id=name, repo="team/app"), store.budget)  # type: ignore[arg-type]


# The budget on its own


def test_a_waiter_proceeds_when_another_releases():
    budget = MemoryBudget(10)
    budget.acquire(8)
    got = threading.Event()
    thread = threading.Thread(target=lambda: (budget.acquire(5), got.set()), daemon=True)
    thread.start()
    wait_until(lambda: budget._waiting == 1)
    assert not got.is_set() and budget.used == 8
    assert not budget.try_acquire(1), "nobody grows while a writer waits for its seat"
    budget.release(8)
    thread.join(LONG)
    assert got.is_set() and budget.used == 5 and budget.peak == 8


def test_more_than_the_whole_budget_is_granted_only_alone():
    budget = MemoryBudget(4)
    budget.acquire(9)  # nothing else held: granted, so a small budget never deadlocks
    assert not budget.try_acquire(1)
    budget.release(9)
    assert budget.try_acquire(4) and budget.used == 4


# Writers sharing it


def test_concurrent_writers_never_hold_more_than_the_budget():
    """Eight 48 MiB streamed PATCHes with room for two seats and three extra parts: parts wait, uploads finish."""
    capacity = 2 * SEAT + 3 * PART_SIZE
    budget = MemoryBudget(capacity)
    store = FakeStore(budget)
    store.gate.clear()  # hold every part until the writers have piled up against the budget
    writers = [writer(store, f"w{i}") for i in range(8)]
    errors: list[BaseException] = []

    def push(blob_writer: BlobWriter) -> None:
        try:
            blob_writer.append(Body(48 * MIB))  # type: ignore[arg-type]
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=push, args=(w,), daemon=True) for w in writers]
    for thread in threads:
        thread.start()
    wait_until(lambda: budget._waiting >= 6)  # two writers seated, six waiting for a seat
    assert budget.used <= capacity
    store.gate.set()
    for thread in threads:
        thread.join(LONG)
    assert not errors and all(not t.is_alive() for t in threads)
    assert budget.peak <= capacity and budget.used == 0
    assert store.peak_uploading <= capacity - 2 * (SEAT - PART_SIZE)  # each seat also holds its buffer
    assert all(w.session.offset == 48 * MIB for w in writers)


def test_a_waiting_writer_proceeds_when_the_seated_one_finishes():
    budget = MemoryBudget(SEAT)  # exactly one seat
    store = FakeStore(budget)
    first_body, second_body = Body(30 * MIB, pause_at=20 * MIB), Body(30 * MIB)
    first, second = writer(store, "first"), writer(store, "second")
    done: list[str] = []
    one = threading.Thread(target=lambda: (first.append(first_body), done.append("first")), daemon=True)  # type: ignore[arg-type]
    one.start()
    first_body.paused.wait(LONG)
    two = threading.Thread(target=lambda: (second.append(second_body), done.append("second")), daemon=True)  # type: ignore[arg-type]
    two.start()
    wait_until(lambda: budget._waiting == 1)
    assert second_body.sent <= 64 * 1024 and not any(e.startswith("_data/second") for e in store.events)
    first_body.resume.set()
    one.join(LONG)
    two.join(LONG)
    assert done == ["first", "second"] and budget.used == 0
    assert store.events.index("_data/second:1") > max(i for i, e in enumerate(store.events) if e.startswith("_data/first"))


@pytest.mark.parametrize("size", [0, 1000, 64 * 1024 - 1])
def test_small_bodies_never_wait_for_the_budget(size: int):
    budget = MemoryBudget(SEAT)
    budget.acquire(SEAT)  # the whole budget is taken by someone else
    store = FakeStore(budget)
    blob_writer = writer(store, "small")
    blob_writer.append(Body(size))  # type: ignore[arg-type]
    assert blob_writer.session.offset == size and budget.used == SEAT
