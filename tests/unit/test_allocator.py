"""How each kind of process tells glibc to treat freed upload-sized blocks, checked in a fresh interpreter.

A Lambda instance serves one request at a time, so it keeps freed blocks for the next chunk rather than
fault their pages back in; the local server serves many uploads at once, so its parts are mapped and
returned whole when freed. glibc's mallinfo2 tells which: hblkhd counts the bytes of mapped blocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # each check needs an allocator nobody else has tuned

ROOT = Path(__file__).resolve().parents[2]
PART = 9 << 20  # the size of a part joined from a staged piece and a Lambda-sized chunk

MAPPED_AFTER = """
import ctypes, sys

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
{setup}
block = bytearray({size})
print(libc.mallinfo2().hblkhd)
"""


def mapped_bytes_after(setup: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "PYTHONPATH": str(ROOT)}
    code = MAPPED_AFTER.format(setup=setup, size=PART)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60)
    return int(done.stdout.strip())


needs_glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallinfo2 is glibc's")


@needs_glibc
def test_a_lambda_instance_keeps_a_parts_worth_of_freed_memory_in_its_heap() -> None:
    assert mapped_bytes_after("import app; app.service()") < PART


@needs_glibc
def test_the_local_server_maps_each_part_so_freeing_it_returns_it() -> None:
    setup = "from chalicelib.config.schema import Config; from chalicelib.api.service import build_service; build_service(Config())"
    assert mapped_bytes_after(setup) >= PART
