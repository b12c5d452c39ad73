"""The README's quick start, executed as written against `make run`'s equivalent, from a scratch directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, _start, _stop

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
_SH = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def first_push_block() -> str:
    """The first sh block that pushes with skopeo: the one a newcomer runs right after `make run`."""
    return next(block for block in _SH.findall(README.read_text()) if "skopeo copy" in block)


def test_the_quick_start_push_works_from_a_fresh_directory(tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not on PATH (apt-get install skopeo, or `make` does)")
    config = json.loads((ROOT / "examples" / "config-local.json").read_text())  # what `make run` serves
    registry = _start(tmp_path, config)
    try:
        work = tmp_path / "checkout"
        work.mkdir()
        (work / "examples").symlink_to(ROOT / "examples")
        script = "set -euo pipefail\n" + first_push_block().replace("127.0.0.1:8000", registry.host)
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("ZOTLESS_", "AWS_"))}
        environ["PATH"] = f"{os.environ.get('PATH', '')}{os.pathsep}{Path(sys.executable).parent}"  # the system python3 first
        result = subprocess.run(["bash", "-c", script], cwd=work, env=environ, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, f"the README's quick start failed:\n{result.stdout}\n{result.stderr}"
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"name": "team/app", "tags": ["1.0"]}
        assert (work / "pulled" / "index.json").exists()
    finally:
        _stop(registry.process)
