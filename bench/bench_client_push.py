"""Client push benchmark: `zotless push` through `zotless serve --lambda` (4 MiB bodies) against skopeo to the plain server.

The target (issue 11): the client, chunking to fit Lambda, within 1.5x of skopeo pushing the same image to the
plain local server, measured in the same run. The client's push to the plain server is timed too: it separates
what the client costs from what 4 MiB bodies through the Lambda emulation cost the server.
Each run pushes a freshly generated image, so no blob is deduplicated.

Two image shapes in each run: a typical one (5 layers, uneven) and the worst case for chunking, one 200 MiB layer.

Run: .venv/bin/python bench/bench_client_push.py [--size-mib 200] [--repeat 3]
Writes bench/results/client_push.json and client_push.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.integration.images, when run as a script

from tests.integration.images import make_layout  # noqa: E402

MIB = 1 << 20
TARGET = 1.5
LISTENING = re.compile(rb"registry listening on http://(\S+)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def zotless() -> list[str]:
    script = Path(sys.executable).with_name("zotless")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chalicelib.cli.commands"]


@contextmanager
def server(*options: str) -> Iterator[str]:
    """A `zotless serve` child on a free port; yields host:port and stops it (and its emulator) after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOTLESS_", "AWS_ENDPOINT_URL"))}
    process = subprocess.Popen([*zotless(), "serve", "--port", "0", "--ephemeral", *options], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline, buffered = time.monotonic() + 60, b""
    try:
        while not LISTENING.search(buffered):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"zotless serve {' '.join(options)} did not start: {buffered!r}")
            if selector.select(1):
                buffered += os.read(process.stdout.fileno(), 4096)
        found = LISTENING.search(buffered)
        assert found is not None
        yield found.group(1).decode()
    finally:
        selector.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


# Layer shares of a typical image (a distribution base, a language runtime, its libraries, the application, a
# small config layer), so a 200 MiB image has layers of 80, 60, 36, 20 and 4 MiB; and the worst case, one layer.
SHAPES: dict[str, list[float]] = {"typical (5 layers)": [0.40, 0.30, 0.18, 0.10, 0.02], "one layer": [1.0]}


def image(work: Path, name: str, size_mib: int, shares: list[float]) -> Path:
    layout = work / name
    make_layout(layout, "v1", [max(1, int(size_mib * MIB * share)) for share in shares])
    return layout


def measure(work: Path, env: dict[str, str], plain: str, lambda_host: str, label: str, size_mib: int, shares: list[float], run: int) -> dict[str, float | str]:
    """skopeo to the plain server, then zotless through --lambda, then zotless to the plain server: fresh images each."""
    skopeo = shutil.which("skopeo")
    assert skopeo is not None
    key = f"{run}-{len(shares)}"
    first, second, third = (image(work, f"{who}-{key}", size_mib, shares) for who in ("skopeo", "client", "plain"))
    skopeo_seconds = timed(
        [skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{first}:v1", f"docker://{plain}/bench/skopeo-{key}:v1"]
    )
    client_seconds = timed([*zotless(), "push", "-q", f"oci:{second}:v1", f"{lambda_host}/bench/client-{key}:v1"], env)
    plain_seconds = timed([*zotless(), "push", "-q", f"oci:{third}:v1", f"{plain}/bench/plain-{key}:v1"], env)
    log(f"  {label}: skopeo -> plain {skopeo_seconds:.2f}s, zotless -> --lambda {client_seconds:.2f}s, zotless -> plain {plain_seconds:.2f}s")
    for layout in (first, second, third):
        shutil.rmtree(layout)
    ratio = client_seconds / skopeo_seconds
    return {"shape": label, "skopeo_plain_s": skopeo_seconds, "client_lambda_s": client_seconds, "client_plain_s": plain_seconds, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=200, help="image size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not on PATH (apt-get install skopeo)")
    runs: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp, server() as plain, server("--lambda") as lambda_host:
        work = Path(tmp)
        env = {**os.environ, "HOME": str(work), "XDG_CACHE_HOME": str(work / "cache")}
        for run in range(args.repeat):
            log(f"run {run + 1} of {args.repeat}: {args.size_mib} MiB images")
            runs.extend(measure(work, env, plain, lambda_host, label, args.size_mib, shares, run) for label, shares in SHAPES.items())
    best = {label: min(float(r["ratio"]) for r in runs if r["shape"] == label) for label in SHAPES}
    median = {label: statistics.median(float(r["ratio"]) for r in runs if r["shape"] == label) for label in SHAPES}
    result = {"size_mib": args.size_mib, "shapes": SHAPES, "runs": runs, "target_ratio": TARGET, "best_ratio": best, "median_ratio": median}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "client_push.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# zotless push through --lambda vs skopeo to the plain server ({args.size_mib} MiB images, {args.repeat} runs)",
        "",
        "| run | image | skopeo → plain (s) | zotless push → --lambda (s) | ratio | zotless push → plain (s) |",
        "| --- | --- | --- | --- | --- | --- |",
        *[
            f"| {n // len(SHAPES) + 1} | {r['shape']} | {r['skopeo_plain_s']:.2f} | {r['client_lambda_s']:.2f} | {r['ratio']:.2f} | {r['client_plain_s']:.2f} |"
            for n, r in enumerate(runs)
        ],
        "",
        *[f"{label}: median {median[label]:.2f}x, best {best[label]:.2f}x (target ≤ {TARGET}x)" for label in SHAPES],
    ]
    (args.output_dir / "client_push.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
