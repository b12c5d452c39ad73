"""Lambda cold start: importing app.py leaves the core and boto3 for the first request, and bundles can carry bytecode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools.bytecode import add_bytecode

pytestmark = pytest.mark.process  # starts Python, chalice or cfn-lint processes

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore", "chalicelib.api.service", "chalicelib.api.endpoints", "chalicelib.model.registry", "jwt", "bcrypt")
HEAVY += ("ariadne", "graphql", "chalicelib.search.http")  # search loads with its first request


def modules_after_import(**env: str) -> set[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "ZOTLESS_"))} | env
    code = "import json, sys, app; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(done.stdout))


def test_import_app_leaves_the_core_for_the_first_request() -> None:
    loaded = modules_after_import()
    assert "chalice" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("kind", ["provisioned-concurrency", "snap-start"])
def test_init_ahead_of_traffic_loads_the_core_during_import(kind: str) -> None:
    assert "chalicelib.api.service" in modules_after_import(AWS_LAMBDA_INITIALIZATION_TYPE=kind)


def test_bytecode_is_added_and_used_without_the_source_timestamps(tmp_path: Path) -> None:
    archive = tmp_path / "deployment.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("pkg/__init__.py", "")
        zipped.writestr("pkg/mod.py", "VALUE = 'compiled'\n")
        zipped.writestr("data.txt", "not python")
    assert add_bytecode(archive) == 2
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        zipped.extractall(tmp_path / "task")
    assert {"pkg/mod.py", "data.txt", f"pkg/__pycache__/mod.{tag}.pyc", f"pkg/__pycache__/__init__.{tag}.pyc"} <= names
    (tmp_path / "task" / "pkg" / "mod.py").write_text("VALUE = 'source'\n")  # unchecked-hash: the .pyc wins
    code = "import pkg.mod; print(pkg.mod.VALUE)"
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path / "task", capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "compiled"


COUNT_CONFIG_OPENS = """
import json, os, sys
path, opened = os.environ["ZOTLESS_CONFIG"], []
sys.addaudithook(lambda event, args: opened.append(event) if event == "open" and str(args[0]) == path else None)
from moto import mock_aws
with mock_aws():
    import app
    app.service()
print(json.dumps({"opened": len(opened), "gc": app.gc_interval_seconds(), "cve": app.CVE_INTERVAL}))
"""


def test_a_cold_start_reads_the_config_file_once(tmp_path: Path) -> None:
    """Importing app.py (two schedule intervals) and building its service (the config) open the file once, not three times."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"storage": {"gcInterval": "2h"}, "extensions": {"search": {"cve": {"updateInterval": "3h"}}}}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "ZOTLESS_"))}
    env = clean | {"ZOTLESS_CONFIG": str(path), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, "-c", COUNT_CONFIG_OPENS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"opened": 1, "gc": 7200.0, "cve": 10800.0}
