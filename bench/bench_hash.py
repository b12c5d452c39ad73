"""Resumable SHA-256 for upload sessions: throughput and the cost of saving/restoring state.

Compares hashlib (cannot save state; the ceiling), rehashes (Rust, serialises state to bytes:
what zotless uses) and OpenSSL's SHA256_CTX through ctypes (raw struct bytes, tied to the
OpenSSL build). Run: .venv/bin/python bench/bench_hash.py [--mib 256]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import os
import statistics
import time
from collections.abc import Callable

import rehashes

CHUNK = 1 << 20


def _openssl() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypto")
    if not name:
        return None
    library = ctypes.CDLL(name)
    return library if hasattr(library, "SHA256_Init") else None


def time_best(run: Callable[[], object], repeats: int = 3) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def hashlib_run(data: bytes) -> str:
    hasher = hashlib.sha256()
    for start in range(0, len(data), CHUNK):
        hasher.update(data[start : start + CHUNK])
    return hasher.hexdigest()


def rehashes_run(data: bytes, resume_every: int = 0) -> str:
    hasher = rehashes.PySha256()
    for n, start in enumerate(range(0, len(data), CHUNK)):
        hasher.update(data[start : start + CHUNK])
        if resume_every and n % resume_every == 0:
            hasher = rehashes.PySha256.deserialize(hasher.serialize())
    return hasher.finalize()


def openssl_run(library: ctypes.CDLL, data: bytes, resume_every: int = 0) -> str:
    context = ctypes.create_string_buffer(112)  # sizeof(SHA256_CTX) is 112 on 64-bit builds
    library.SHA256_Init(context)
    for n, start in enumerate(range(0, len(data), CHUNK)):
        block = data[start : start + CHUNK]
        library.SHA256_Update(context, block, ctypes.c_size_t(len(block)))
        if resume_every and n % resume_every == 0:
            context = ctypes.create_string_buffer(context.raw, 112)
    digest = ctypes.create_string_buffer(32)
    library.SHA256_Final(digest, context)
    return digest.raw.hex()


def resume_cost_us(rounds: int = 20000) -> float:
    hasher = rehashes.PySha256()
    hasher.update(b"x" * 100)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            hasher = rehashes.PySha256.deserialize(hasher.serialize())
        timings.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    data = os.urandom(args.mib << 20)
    expected = hashlib_run(data)
    rows = [("hashlib (no saved state)", time_best(lambda: hashlib_run(data)))]
    assert rehashes_run(data, resume_every=4) == expected
    rows.append(("rehashes, state saved every 4 MiB", time_best(lambda: rehashes_run(data, resume_every=4))))
    library = _openssl()
    if library is not None:
        assert openssl_run(library, data, resume_every=4) == expected
        rows.append(("OpenSSL SHA256_CTX via ctypes, saved every 4 MiB", time_best(lambda: openssl_run(library, data, 4))))
    baseline = rows[0][1]
    print(f"SHA-256 over {args.mib} MiB in 1 MiB updates (best of 3):")
    for name, seconds in rows:
        print(f"  {name:52s} {args.mib / seconds:8.0f} MiB/s  {seconds / baseline:5.2f}x hashlib")
    state = rehashes.PySha256().serialize()
    print(f"  rehashes state: {len(state)} bytes (SHA-512: {len(rehashes.PySha512().serialize())}); save+restore {resume_cost_us():.1f} µs")


if __name__ == "__main__":
    main()
