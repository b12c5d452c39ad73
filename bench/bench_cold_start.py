"""Lambda cold start and bundle: import time of app.py, time to the first response, size of `chalice package`.

Measured twice: in the repository's venv, and in the unpacked `chalice package` zip with only the SDK
that Lambda's Python runtime provides (boto3 and its dependencies), which is what a cold Lambda imports.

Run: .venv/bin/python bench/bench_cold_start.py [--runs 15] [--no-package]
Writes bench/results/cold_start.json and bench/results/cold_start.md; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # chalicelib, when run as a script

TARGET_IMPORT_MS = 300
# Packages that must never reach the Lambda bundle: tests, the CLI, the emulator, dev tools, the SDK the runtime has.
FORBIDDEN = ("moto", "pytest", "click", "requests", "hypothesis", "oras", "ruff", "werkzeug", "flask", "boto3", "botocore", "s3transfer")
SCRUBBED = ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE", "ZOTLESS_CONFIG", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
# What the Lambda Python runtime ships besides the standard library.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")

FIRST_RESPONSE = """
import json, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
from chalicelib.adapters.apigateway import event_for
first = app.app(event_for("GET", "/v2/"), None)
t2 = time.perf_counter()
second = app.app(event_for("GET", "/v2/bench/cold/tags/list"), None)
t3 = time.perf_counter()
warm = app.app(event_for("GET", "/v2/"), None)
t4 = time.perf_counter()
assert first["statusCode"] == 200 and second["statusCode"] == 404 and warm["statusCode"] == 200, (first, second)
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "dynamodb": t3 - t2, "warm": t4 - t3}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    """This shell's environment without anything that would make app.py behave as if deployed or configured."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("ZOTLESS_")}
    return env | extra


@dataclass(frozen=True)
class Setup:
    """Where app.py is imported from: a directory, extra interpreter flags and environment."""

    name: str
    cwd: Path
    flags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def command(self, code: str, *flags: str) -> list[str]:
        return [sys.executable, *self.flags, *flags, "-c", code]


def wall_ms(setup: Setup, code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(setup.command(code), cwd=setup.cwd, env=env, check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def summary(runs: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(runs), "best": min(runs), "worst": max(runs), "runs": [round(r, 1) for r in runs]}


def importtime_modules(setup: Setup) -> dict[str, float]:
    """-X importtime's account of `import app`: cumulative ms of app and what it imports directly."""
    traced = subprocess.run(setup.command("import app", "-X", "importtime"), cwd=setup.cwd, env=clean_env(**setup.env),
                            check=True, capture_output=True, text=True)
    modules = {}
    for line in traced.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if found and len(found.group(2)) <= 3:
            modules[found.group(3)] = int(found.group(1)) / 1000
    return modules


def first_response(setup: Setup, aws_env: dict[str, str]) -> dict[str, float]:
    """One fresh process against the emulator: import, first GET /v2/, first DynamoDB-backed request, a warm one (ms)."""
    done = subprocess.run(setup.command(FIRST_RESPONSE), cwd=setup.cwd, env=clean_env(**setup.env, **aws_env), check=True, capture_output=True, text=True)
    return {key: seconds * 1000 for key, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def measure(setups: list[Setup], runs: int, with_first_response: bool) -> dict[str, Any]:
    """Every measurement of every setup, round-robin, so a busy moment on the machine hits all setups alike."""
    samples: dict[str, dict[str, list[float]]] = {setup.name: {} for setup in setups}

    def record(setup: Setup, key: str, value: float) -> None:
        samples[setup.name].setdefault(key, []).append(value)

    for _ in range(runs):
        for setup in setups:
            env = clean_env(**setup.env)
            record(setup, "interpreter_ms", wall_ms(setup, "pass", env))
            record(setup, "import_app_ms", wall_ms(setup, "import app", env))
    if with_first_response:
        from chalicelib.adapters.emulator import start_moto
        from chalicelib.config.schema import load_config
        from chalicelib.storage.aws import ensure_resources, make_clients

        with start_moto() as moto:
            aws_env = {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
            os.environ.update(aws_env)
            config = load_config(environ={})
            ensure_resources(config, make_clients(config))
            log(f"first responses: {runs} fresh processes per setup against moto")
            for _ in range(runs):
                for setup in setups:
                    for key, value in first_response(setup, aws_env).items():
                        record(setup, key, value)
    results: dict[str, Any] = {}
    for setup in setups:
        series = samples[setup.name]
        results[setup.name] = {
            "imports": {"interpreter_ms": summary(series["interpreter_ms"]), "import_app_ms": summary(series["import_app_ms"]),
                        "importtime_ms": importtime_modules(setup)},
        }
        if with_first_response:
            results[setup.name]["first_response"] = {key: summary(series[key]) for key in ("import", "first", "dynamodb", "warm")}
    return results


def lambda_setup(workdir: Path, archive: Path, name: str) -> Setup:
    """An unpacked zip plus only the runtime's SDK, imported without site-packages (python -S), as in Lambda."""
    unpacked, sdk = workdir / name.replace(" ", "-"), workdir / "runtime-sdk"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    if not sdk.exists():
        sdk.mkdir()
        site = Path(boto3_path()).parent
        for module in RUNTIME_SDK:
            (sdk / module).symlink_to(site / module)
    return Setup(name, unpacked, ("-S",), {"PYTHONPATH": str(sdk), "PYTHONDONTWRITEBYTECODE": "1"})  # /var/task is read-only


def with_bytecode(archive: Path) -> tuple[Path, int, int]:
    """A copy of the zip with tools/bytecode.py applied: (path, .pyc files added, zip bytes)."""
    from tools.bytecode import add_bytecode

    compiled = archive.with_name("deployment-bytecode.zip")
    shutil.copy2(archive, compiled)
    count = add_bytecode(compiled)
    return compiled, count, compiled.stat().st_size


def boto3_path() -> str:
    import boto3

    return str(Path(boto3.__file__).parent)


def bundle(workdir: Path) -> dict[str, Any]:
    """`chalice package` of a copy of the project (the repo's .chalice is left alone); what the zip holds."""
    project = workdir / "project"
    project.mkdir()
    shutil.copy2(ROOT / "app.py", project)
    shutil.copy2(ROOT / "requirements.txt", project)
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    chalice_dir = ROOT / ".chalice"
    if (chalice_dir / "config.json").exists():
        shutil.copytree(chalice_dir, project / ".chalice", ignore=shutil.ignore_patterns("deployments", "venv"))
    else:
        (project / ".chalice").mkdir()
        (project / ".chalice" / "config.json").write_text(json.dumps({"version": "2.0", "app_name": "zotless", "stages": {"dev": {}}}))
    chalice = Path(sys.executable).with_name("chalice")
    env = clean_env(AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    started = time.perf_counter()
    subprocess.run([str(chalice), "package", str(workdir / "out")], cwd=project, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    archive = workdir / "out" / "deployment.zip"
    with zipfile.ZipFile(archive) as zipped:
        infos = zipped.infolist()
    top = sorted({info.filename.split("/", 1)[0] for info in infos})
    packages = sorted({re.split(r"[-.]", name, maxsplit=1)[0].lower() for name in top if not name.endswith(".dist-info")})
    return {
        "zip_bytes": archive.stat().st_size,
        "unzipped_bytes": sum(info.file_size for info in infos),
        "files": len(infos),
        "top_level": [name for name in top if not name.endswith(".dist-info")],
        "forbidden_found": sorted(set(packages) & set(FORBIDDEN)),
        "requirements": [r for line in (ROOT / "requirements.txt").read_text().splitlines() if (r := line.split("#", 1)[0].strip())],
        "package_seconds": round(seconds, 1),
    }


def machine_facts() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "unknown")
    return {"date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def cell(entry: dict[str, Any] | None, digits: int = 0) -> str:
    return "-" if entry is None else f"{entry['median']:.{digits}f} ({entry['best']:.{digits}f})"


def markdown(results: dict[str, Any]) -> str:
    machine, setups = results["machine"], results["setups"]
    names = list(setups)
    runs = len(next(iter(setups.values()))["imports"]["import_app_ms"]["runs"])

    def row(label: str, pick, digits: int = 0) -> str:
        return f"| {label} | " + " | ".join(cell(pick(setups[name]), digits) for name in names) + " |"

    def first(key: str):
        return lambda setup: setup.get("first_response", {}).get(key)

    def import_ms(setup: dict[str, Any]) -> float:
        """In-process import when measured (Lambda's runtime is already up when it imports app), else the whole process."""
        return setup.get("first_response", {}).get("import", setup["imports"]["import_app_ms"])["median"]

    verdicts = ", ".join(f"{name}: {'PASS' if import_ms(setups[name]) < TARGET_IMPORT_MS else 'MISS'}" for name in names)
    rows = [
        f"Measured {machine['date_utc']}; {machine['nproc']} cores ({machine['cpu']}); Python {machine['python']}; "
        f"median (best) of {runs} fresh processes, in ms. Target: in-process `import app` < {TARGET_IMPORT_MS} ms ({verdicts}).",
        "",
        "| measurement | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        row("`python -c pass` (the interpreter alone)", lambda setup: setup["imports"]["interpreter_ms"]),
        row("`python -c 'import app'`", lambda setup: setup["imports"]["import_app_ms"]),
        row("in process: `import app`", first("import")),
        row("first `GET /v2/` (loads the core, builds boto3 clients)", first("first")),
        row("first DynamoDB-backed request (`tags/list` on moto)", first("dynamodb")),
        row("warm `GET /v2/`", first("warm"), 1),
    ]
    for name in names:
        heavy = sorted(setups[name]["imports"]["importtime_ms"].items(), key=lambda item: -item[1])[:5]
        rows += ["", f"Largest imports under `import app` ({name}, cumulative ms): " + ", ".join(f"`{module}` {ms:.0f}" for module, ms in heavy)]
    package = results.get("bundle")
    if package:
        rows += [
            "",
            f"`chalice package`: deployment.zip **{package['zip_bytes'] / 1e6:.2f} MB** ({package['unzipped_bytes'] / 1e6:.1f} MB unzipped, "
            f"{package['files']} files). requirements.txt: {', '.join(package['requirements'])}. "
            f"Top level: {', '.join(package['top_level'])}. Test, CLI or dev packages in it: {', '.join(package['forbidden_found']) or 'none'}. "
            f"With `tools/bytecode.py` ({package['bytecode_files']} .pyc files added): {package['bytecode_zip_bytes'] / 1e6:.2f} MB.",
        ]
    return "\n".join(rows) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per measurement; the median is reported")
    parser.add_argument("--package", action=argparse.BooleanOptionalAction, default=True, help="run `chalice package` and report the zip")
    parser.add_argument("--first-response", action=argparse.BooleanOptionalAction, default=True, help="time the first requests against moto")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"machine": machine_facts()}
    with tempfile.TemporaryDirectory(prefix="zotless-bench-") as tmp:
        workdir = Path(tmp)
        setups = [Setup("repository venv", ROOT)]
        if args.package:
            log("chalice package")
            results["bundle"] = bundle(workdir)
            archive = workdir / "out" / "deployment.zip"
            compiled, count, size = with_bytecode(archive)
            results["bundle"] |= {"bytecode_files": count, "bytecode_zip_bytes": size}
            setups += [lambda_setup(workdir, archive, "lambda bundle"), lambda_setup(workdir, compiled, "bundle + bytecode")]
        log(f"import app: {args.runs} fresh interpreters per setup")
        results["setups"] = measure(setups, args.runs, args.first_response)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "cold_start.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (args.output_dir / "cold_start.md").write_text(report)
    print(report)
    return 1 if results.get("bundle", {}).get("forbidden_found") else 0


if __name__ == "__main__":
    sys.exit(main())
