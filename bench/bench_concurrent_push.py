"""Concurrent-push memory benchmark: many large streamed pushes at once against `zotless serve` on the moto emulator.

Run: .venv/bin/python bench/bench_concurrent_push.py [--pushes 32] [--size-mib 128] [--budget-mib N]
Writes bench/results/concurrent_push.json. It is heavy (32 x 128 MiB is 4 GiB through the emulator): run it
alone. The server is this checkout's code (PYTHONPATH is set for it), in its own process, whose peak resident
memory (VmHWM, reset before the concurrent run) is what the uploads' memory budget must bound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # chalicelib and bench, when run as a script

from bench.bench_push_pull import MIB, RssSampler, ServerProcess, counter_chunks, log, proc_status, push_blob, reset_peak, running_server  # noqa: E402

TARGET_PEAK_MIB = 512


def one_push(server: ServerProcess, repo: str, size: int, seed: int) -> float:
    """POST, one chunked PATCH with the whole blob, PUT ?digest=; returns the seconds it took."""
    hasher = hashlib.sha256()
    started = time.perf_counter()
    push_blob(server.host, repo, counter_chunks(size, hasher, seed), lambda: f"sha256:{hasher.hexdigest()}")
    return time.perf_counter() - started


def concurrent_pushes(server: ServerProcess, count: int, size: int) -> dict[str, Any]:
    """count pushes of distinct blobs at once, each on its own connection; the first failure is raised."""
    durations: list[float] = [0.0] * count
    failures: list[BaseException] = []
    start = threading.Barrier(count + 1)

    def push(index: int) -> None:
        start.wait()
        try:
            durations[index] = one_push(server, f"bench/concurrent-{index}", size, seed=1000 + index)
        except BaseException as error:  # noqa: BLE001 - reported once every push has ended
            failures.append(error)

    threads = [threading.Thread(target=push, args=(i,), name=f"push-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    return {"pushes": count, "seconds": round(elapsed, 2), "mib_per_s": round(count * size / MIB / elapsed, 1), "slowest_push_s": round(max(durations), 2)}


def measure(server: ServerProcess, count: int, size: int) -> dict[str, Any]:
    single_s = one_push(server, "bench/single", size, seed=1)
    log(f"single push: {size / MIB / single_s:.1f} MiB/s")
    before = proc_status(server.pid)
    reset = reset_peak(server.pid)
    with RssSampler(server.pid) as sampler:
        together = concurrent_pushes(server, count, size)
    after = proc_status(server.pid)
    peak = after["VmHWM"] if reset else sampler.peak
    log(f"{count} concurrent pushes: {together['mib_per_s']} MiB/s together, peak RSS {peak / MIB:.0f} MiB")
    return {
        "size_mib": size // MIB,
        "single": {"seconds": round(single_s, 2), "mib_per_s": round(size / MIB / single_s, 1)},
        "concurrent": together,
        "rss_before_mib": round(before["VmRSS"] / MIB, 1),
        "peak_mib": round(peak / MIB, 1),
        "peak_source": "VmHWM after clear_refs reset" if reset else "sampled VmRSS (clear_refs refused)",
        "sampled_peak_rss_mib": round(sampler.peak / MIB, 1),
        "rss_after_mib": round(after["VmRSS"] / MIB, 1),
        "target_mib": TARGET_PEAK_MIB,
        "pass": peak < TARGET_PEAK_MIB * MIB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=32)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--budget-mib", type=int, default=None, help="storage.uploadMemoryMiB for the server (default: the config's)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the server runs this checkout
    with tempfile.TemporaryDirectory(prefix="zotless-bench-") as temporary:
        workdir = Path(temporary)
        if args.budget_mib is not None:
            config = workdir / "config.json"
            config.write_text(json.dumps({"storage": {"uploadMemoryMiB": args.budget_mib}}))
            os.environ["ZOTLESS_CONFIG"] = str(config)
        with running_server(workdir) as server:
            result = measure(server, args.pushes, args.size_mib * MIB)
            result["server_log_problems"] = server.problems
        result["budget_mib"] = args.budget_mib or "default"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "concurrent_push.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
