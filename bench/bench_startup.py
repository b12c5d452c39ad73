"""Start-up of `zotless serve --data DIR` at 10 GiB of blobs and 10,000 manifests (issue 13).

Run: .venv/bin/python bench/bench_startup.py --data DIR [--phase fill|restart|all] [--manifests 10000]
     [--big-layers 300] [--big-mib 35] [--workers 4]

fill     pushes --manifests images through a real `zotless serve --data DIR` over HTTP. Image i has
         its own config, its own 1 KiB layer and big layer i % --big-layers (random bytes, --big-mib each),
         in repository bench/repo{(i % --big-layers) % 100}: the first --big-layers images upload one big
         layer each, later ones refer to it again (a blob is pushed once per repository).
         The fill ends with a SIGKILL of the server and its emulator, as a crash would.
restart  times `zotless serve --data DIR` from its command to its "listening" line: after the kill -9
         (replays the journal since the last snapshot), then after a clean stop (snapshot only), then
         on an empty directory; each time the emulator's peak RSS after start and a pull (manifests of
         the first, a middle and the last image; one big and one small layer, their sha256 checked).
full-replay  (run after restart) deletes the snapshot, as a moto upgrade would make it unusable, and times
         a start that replays the whole (compacted) journal.
Writes bench/results/startup.json. The directory is kept (delete it after).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.integration.conftest as fixtures  # noqa: E402
from tests.integration.conftest import RunningRegistry, _start, _stop  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
REPOS = 100
fixtures.START_TIMEOUT = 3600.0  # a replay after a crash may take minutes at this size
fixtures.STOP_TIMEOUT = 1800.0  # a clean stop writes a snapshot (and may compact) before it ends


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """What the fill builds, so that the restart phase can check the same images."""
    return {"manifests": args.manifests, "big_layers": args.big_layers, "big_mib": args.big_mib, "repos": REPOS}


def repository(shape: dict[str, Any], number: int) -> str:
    """Images that share a big layer share a repository (a blob is pushed once per repository)."""
    return f"bench/repo{number % shape['big_layers'] % REPOS}"


def big_layer(number: int, seed: bytes) -> bytes:
    return number.to_bytes(8, "big") + seed[8:]  # distinct blobs without fresh random bytes for each


def small_layer(number: int) -> bytes:
    return number.to_bytes(8, "big") + b"small-layer" + bytes(1013)


def push(registry: RunningRegistry, shape: dict[str, Any], number: int, seed: bytes) -> None:
    """One image: its config and small layer uploaded, its big layer uploaded by the first image that uses it."""
    repo = repository(shape, number)
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": f"image {number}", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    big = number % shape["big_layers"]
    size = shape["big_mib"] * MIB
    digest = registry.push_blob(repo, big_layer(big, seed)) if number == big else BIG_DIGESTS[big]  # a blob goes up once per repository
    manifest = {
        "schemaVersion": 2, "mediaType": fixtures.OCI_MANIFEST,
        "config": {"mediaType": fixtures.OCI_CONFIG, "digest": registry.push_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": fixtures.LAYER, "digest": registry.push_blob(repo, small_layer(number)), "size": len(small_layer(number))},
                   {"mediaType": fixtures.LAYER, "digest": digest, "size": size}],
    }
    registry.push_manifest(repo, f"t{number}", manifest)


def fill(registry: RunningRegistry, shape: dict[str, Any], workers: int, seed: bytes) -> list[dict[str, float]]:
    """Push every image: the first --big-layers, then 1,000 at a time; returns the rate of each batch."""
    rates = []
    started = time.monotonic()
    batches = [range(0, shape["big_layers"])]  # the big layers are in before any image reuses one
    batches += [range(first, min(first + 1000, shape["manifests"])) for first in range(shape["big_layers"], shape["manifests"], 1000)]
    with ThreadPoolExecutor(workers) as pool:
        for batch in batches:
            step = time.monotonic()
            list(pool.map(lambda number: push(registry, shape, number, seed), batch))
            rates.append({"images": batch.stop, "per_minute": round(len(batch) * 60 / (time.monotonic() - step)),
                          "elapsed_s": round(time.monotonic() - started)})
            print(f"fill: {rates[-1]}", file=sys.stderr, flush=True)
    return rates


BIG_DIGESTS: list[str] = []


def emulator_pid(registry: RunningRegistry) -> int:
    children = Path(f"/proc/{registry.process.pid}/task/{registry.process.pid}/children").read_text().split()
    return int(children[0])


def running(pid: int) -> bool:
    """True until the process has exited (a zombie waiting for its reaper has released its files)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def memory(pid: int) -> dict[str, float]:
    """The emulator's peak and current resident memory (MiB) from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"peak_rss_mib": round(int(fields["VmHWM"].split()[0]) / 1024, 1), "rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 1)}


def pull_check(registry: RunningRegistry, shape: dict[str, Any], seed: bytes) -> dict[str, Any]:
    """Manifests of the first, a middle and the last image, and one big and one small layer, each checked."""
    started = time.monotonic()
    last = shape["manifests"] - 1
    for number in (0, last // 2, last):
        response = registry("GET", f"/v2/{repository(shape, number)}/manifests/t{number}", headers={"Accept": fixtures.OCI_MANIFEST})
        assert response.status_code == 200, (number, response.status_code, response.text[:200])
        layers = {layer["digest"] for layer in response.json()["layers"]}
        assert fixtures.sha256(small_layer(number)) in layers
    number = last
    for data in (small_layer(number), big_layer(number % shape["big_layers"], seed)):
        response = registry.pull_blob(repository(shape, number), fixtures.sha256(data))
        assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == fixtures.sha256(data)[7:], response.status_code
    return {"pull_ok": True, "pull_seconds": round(time.monotonic() - started, 2)}


def timed_start(workdir: Path, name: str, *options: str) -> tuple[RunningRegistry, dict[str, Any]]:
    """A server, the seconds from its command to its "listening" line, and its emulator's memory then."""
    directory = workdir / name
    directory.mkdir(exist_ok=True)
    started = time.monotonic()
    registry = _start(directory, None, *options)
    result: dict[str, Any] = {"run": name, "start_seconds": round(time.monotonic() - started, 2)}
    result.update(memory(emulator_pid(registry)))
    return registry, result


def directory_report(data: Path) -> dict[str, Any]:
    """Bytes on disk by part of the data directory, a hard-linked file counted once (in the first part that has it)."""
    seen: set[tuple[int, int]] = set()

    def size(path: Path) -> int:
        total = 0
        for file in ([path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []):
            status = file.stat()
            if file.is_file() and (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                total += status.st_size
        return total

    parts = {name: round(size(data / name) / MIB, 1) for name in ("journal.jsonl", "snapshot.pickle", "objects", "bodies")}
    lines = sum(1 for _ in (data / "journal.jsonl").open("rb")) - 1 if (data / "journal.jsonl").exists() else 0
    return {"mib_unique": parts, "total_gib_unique": round(sum(parts.values()) / 1024, 2), "journal_entries": lines}


def replay_lines(data: Path) -> list[str]:
    return [line for line in (data / "emulator.log").read_text(errors="replace").splitlines()
            if line.startswith(("motoserver: replayed", "motoserver: snapshot", "motoserver: compact"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Data directory (kept: delete it when done).")
    parser.add_argument("--phase", choices=("fill", "restart", "all", "full-replay"), default="all",
                        help="full-replay (after restart): delete the snapshot, as another moto version would ignore it, and time the start")
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--big-layers", type=int, default=300)
    parser.add_argument("--big-mib", type=int, default=35)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = parser.parse_args()
    shape = plan(args)
    seed = os.urandom(args.big_mib * MIB)
    seed_file = args.data.with_name(args.data.name + ".seed")
    if args.phase in ("restart", "full-replay"):
        seed = seed_file.read_bytes()
    BIG_DIGESTS.extend(fixtures.sha256(big_layer(n, seed)) for n in range(args.big_layers))
    result_path = args.output
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = json.loads(result_path.read_text()) if args.phase in ("restart", "full-replay") and result_path.exists() else {}
    result["shape"] = {**shape, "blob_gib_distinct": round((args.big_layers * args.big_mib * MIB + args.manifests * 1024) / GIB, 2)}
    workdir = Path(tempfile.mkdtemp(prefix="bench-startup-"))  # the servers' logs; removed at the end
    try:
        run_phases(args, shape, seed, seed_file, result, result_path, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_phases(args: argparse.Namespace, shape: dict[str, Any], seed: bytes, seed_file: Path, result: dict[str, Any],
               result_path: Path, workdir: Path) -> None:
    """The phases --phase asks for, each writing the results so far."""
    if args.phase in ("fill", "all"):
        seed_file.write_bytes(seed)
        registry, empty = timed_start(workdir, "fill", "--data", str(args.data))
        emulator, started = emulator_pid(registry), time.monotonic()
        try:
            result["fill_rates"] = fill(registry, shape, args.workers, seed)
        finally:
            os.killpg(registry.process.pid, signal.SIGKILL)  # a crash: the next start replays the journal since the last snapshot
            registry.process.wait()
            while running(emulator):  # it holds the directory's lock until it has exited
                time.sleep(0.1)
        result["fill_seconds"] = round(time.monotonic() - started)
        result["after_fill"] = directory_report(args.data)
        _write(result_path, result)
    if args.phase in ("restart", "all"):
        runs = []
        for name in ("after-kill-9", "after-clean-stop"):
            registry, run = timed_start(workdir, name, "--data", str(args.data))
            run.update(pull_check(registry, shape, seed))
            stopping = time.monotonic()
            _stop(registry.process)
            run["clean_stop_seconds"] = round(time.monotonic() - stopping, 2)
            run["directory_after_stop"] = directory_report(args.data)
            runs.append(run)
            print(f"restart: {run}", file=sys.stderr, flush=True)
        registry, empty = timed_start(workdir, "empty", "--data", str(workdir / "empty-data"))
        _stop(registry.process)
        runs.append(empty)
        result["starts"] = runs
        result["emulator_log"] = replay_lines(args.data)
        _write(result_path, result)
    if args.phase == "full-replay":
        (args.data / "snapshot.pickle").unlink()
        result["directory_before_full_replay"] = directory_report(args.data)
        registry, run = timed_start(workdir, "full-replay", "--data", str(args.data))
        run.update(pull_check(registry, shape, seed))
        _stop(registry.process)
        result["full_replay"] = run
        result["emulator_log"] = replay_lines(args.data)
        _write(result_path, result)


def _write(path: Path, result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
