"""The process's budget for upload bytes in memory, so concurrent pushes to one server share a ceiling.

Only memory accounting: correctness rests on DynamoDB and S3 conditions, never on this.
"""

from __future__ import annotations

import threading

DEFAULT_UPLOAD_MEMORY = 384 << 20
MMAP_THRESHOLD = 4 << 20  # parts and buffers are larger: glibc maps them and unmaps them when freed
KEPT_BLOCKS = 64 << 20  # one request's largest blocks (a 6 MB event body, an 8.9 MiB part) fit well under it
M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers in glibc's malloc.h
M_MMAP_THRESHOLD = -3


class MemoryBudget:
    """Bytes of upload data the whole process may hold at once; writers wait for their turn rather than fail.

    Only memory accounting: correctness rests on DynamoDB and S3 conditions. A waiting writer holds
    nothing, and a writer that holds a seat only ever tries for more (`try_acquire`), so nobody waits
    while holding: no deadlock. Once a writer waits, others stop growing, so it is served next.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.peak = 0
        self._waiting = 0
        self._changed = threading.Condition()

    def acquire(self, size: int) -> None:
        """Block until size bytes fit; more than the whole budget is granted only when nothing else is held."""
        with self._changed:
            self._waiting += 1
            try:
                self._changed.wait_for(lambda: self.used == 0 or self.used + size <= self.capacity)
            finally:
                self._waiting -= 1
            self._take(size)

    def try_acquire(self, size: int) -> bool:
        """Take size bytes only if they fit now and no writer is waiting for its seat."""
        with self._changed:
            if self._waiting or self.used + size > self.capacity:
                return False
            self._take(size)
            return True

    def release(self, size: int) -> None:
        with self._changed:
            self.used -= size
            self._changed.notify_all()

    def resize(self, capacity: int) -> None:
        """Set from the config when a service is built; holders keep what they have."""
        with self._changed:
            self.capacity = capacity
            self._changed.notify_all()

    def _take(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)


UPLOAD_MEMORY = MemoryBudget(DEFAULT_UPLOAD_MEMORY)  # one per process: every upload of every location shares it


def release_freed_parts() -> bool:
    """For a server of many concurrent uploads: make memory the budget released leave the process.

    glibc raises its mmap threshold each time a mapped block is freed, so after the first part later
    parts come from per-thread arenas, which fragment and keep hundreds of MiB resident under
    concurrent uploads. A fixed threshold keeps every part mapped, returned whole when freed. False
    where the C library has no mallopt (not glibc).
    """
    return _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def keep_freed_blocks() -> bool:
    """For a process that serves one request at a time (a Lambda instance): keep freed blocks for the next request.

    Every chunk allocates and frees the same few large blocks. Handed back to the kernel, each returns
    as fresh pages that fault in one at a time: a third of the server's CPU in a chunked push
    (bench/bench_client_push.py). One request's blocks are all such a process ever holds, so keeping
    them costs it no more than its busiest request. False where the C library has no mallopt.
    """
    return _mallopt(M_MMAP_THRESHOLD, KEPT_BLOCKS) and _mallopt(M_TRIM_THRESHOLD, KEPT_BLOCKS)


def _mallopt(parameter: int, value: int) -> bool:
    import ctypes

    try:
        return bool(ctypes.CDLL(None).mallopt(parameter, value))
    except (OSError, AttributeError):
        return False
