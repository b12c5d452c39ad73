"""examples/walkthrough.md, executed: its ```sh blocks run in order in one bash, each ```text block checked.

The ports are swapped for free ones and the working directory is a temporary one (with `examples`
linked in), so the steps run exactly as written without touching the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.adapters.emulator import free_port

ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH = ROOT / "examples" / "walkthrough.md"
_BLOCK = re.compile(r"^```(sh|text)\n(.*?)^```", re.S | re.M)
_STEP = "::walkthrough-step {}"


@dataclass
class Step:
    script: str
    expected: list[str]


def steps(text: str) -> list[Step]:
    """Each sh block, with the lines of the text block that follows it (if any) as its expected output."""
    found: list[Step] = []
    for kind, body in _BLOCK.findall(text):
        if kind == "sh":
            found.append(Step(body, []))
        elif found:
            found[-1].expected += [line for line in body.splitlines() if line.strip()]
    return found


def test_the_walkthrough_runs(tmp_path: Path):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not on PATH (apt-get install skopeo, or `make` does)")
    walkthrough = steps(WALKTHROUGH.read_text())
    assert len(walkthrough) >= 6 and any("skopeo copy" in s.script for s in walkthrough)
    assert any("zotless gc" in s.script for s in walkthrough), "the walkthrough shows GC"
    registry, emulator = free_port(), free_port()
    prelude = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    body = "\n".join(f"echo '{_STEP.format(n)}'\n{s.script}" for n, s in enumerate(walkthrough))
    script = prelude + body.replace("5000", str(registry)).replace("5001", str(emulator))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ZOTLESS_", "AWS_"))}
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300, check=False)
    logs = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in tmp_path.glob("*.log"))
    assert result.returncode == 0, f"walkthrough failed:\n{result.stdout}\n{result.stderr}{logs}"
    outputs = re.split(r"^::walkthrough-step \d+\n", result.stdout, flags=re.M)[1:]
    assert len(outputs) == len(walkthrough)
    for step, output in zip(walkthrough, outputs, strict=True):
        for line in step.expected:
            assert line in output.splitlines(), f"expected {line!r} from:\n{step.script}\ngot:\n{output}"
        if "zotless gc" in step.script:
            report = json.loads(output.strip().splitlines()[-1])
            assert report["deleted"].get("blobs", 0) >= 2 and report["bytes_freed"] > 0, report
