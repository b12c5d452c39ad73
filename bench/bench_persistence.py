"""Start-up of `zotless serve --data DIR` with a large data directory: how long the journal replay takes.

Run: .venv/bin/python bench/bench_persistence.py [--gib 1] [--manifests 1000] [--workers 4] [--data DIR]
Pushes --manifests images (one layer each, --gib of layers in all) through a real server, stops it,
then times restarts on the same directory (command start -> "listening" line) against an empty one.
Writes bench/results/persistence.json; bench/README.md and docs/operations.md say how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import RunningRegistry, _start, _stop  # noqa: E402

GIB = 1 << 30


def timed_start(tmp: Path, name: str, *options: str) -> tuple[RunningRegistry, float]:
    """A server and the seconds from its command to its "listening" line."""
    directory = tmp / name
    directory.mkdir()
    started = time.monotonic()
    registry = _start(directory, None, *options)
    return registry, time.monotonic() - started


def fill(registry: RunningRegistry, manifests: int, layer_bytes: int, workers: int) -> float:
    """Push the images in parallel; returns the seconds it took."""
    seed = os.urandom(layer_bytes)

    def push(number: int) -> None:
        layer = number.to_bytes(8, "big") + seed[8:]  # distinct blobs without generating fresh random bytes each time
        registry.push_image(f"bench/repo{number % 100}", f"t{number}", [layer])

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(push, range(manifests)))
    return time.monotonic() - started


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="Layer bytes pushed in all, in GiB.")
    parser.add_argument("--manifests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--data", type=Path, default=None, help="Data directory to fill (default: a temporary one, removed after).")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-persistence-"))
    data = args.data or tmp / "data"
    try:
        registry, empty_start = timed_start(tmp, "fill", "--data", str(data))
        try:
            push_seconds = fill(registry, args.manifests, int(args.gib * GIB / args.manifests), args.workers)
        finally:
            os.killpg(registry.process.pid, signal.SIGKILL)  # a crash: the next start replays the journal since the last snapshot
            registry.process.wait()
        restarts = []
        for run in ("after-kill-9", "after-clean-stop"):
            registry, seconds = timed_start(tmp, run, "--data", str(data))
            restarts.append({"run": run, "seconds": round(seconds, 2), "replay": _replay_line(data)})
            assert registry("GET", "/v2/bench/repo0/tags/list").status_code == 200
            _stop(registry.process)
        journal = data / "journal.jsonl"
        result = {
            "manifests": args.manifests, "layer_gib": args.gib, "push_seconds": round(push_seconds, 1),
            "empty_start_seconds": round(empty_start, 2), "restart_seconds": restarts,
            "journal_entries": sum(1 for _ in journal.open("rb")) - 1, "journal_mib": round(journal.stat().st_size / (1 << 20), 1),
            "data_gib": round(directory_bytes(data) / GIB, 2), "snapshot_mib": round((data / "snapshot.pickle").stat().st_size / (1 << 20), 1),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "persistence.json").write_text(json.dumps(result, indent=2) + "\n")


def _replay_line(data: Path) -> str:
    lines = [line for line in (data / "emulator.log").read_text(errors="replace").splitlines() if line.startswith("motoserver: replayed")]
    return lines[-1] if lines else ""


if __name__ == "__main__":
    main()
