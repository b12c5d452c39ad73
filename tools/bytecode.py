"""Add compiled bytecode to a Lambda deployment zip, so a cold start does not compile every module from source.

Lambda runs code from a read-only /var/task and `chalice package` ships no .pyc files, so each new
execution environment compiles app.py, chalicelib and pydantic from source (bench/bench_cold_start.py
measures the cost). This rewrites the zip with an unchecked-hash .pyc (PEP 552) next to every module:
valid whatever the files' timestamps, which the zip does not keep. Run it with the same Python minor
version as the Lambda runtime (Chalice already insists on that), after `chalice package`:

    .venv/bin/python tools/bytecode.py out/deployment.zip
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path


def add_bytecode(archive: Path) -> int:
    """Rewrite archive in place with bytecode for every .py entry; returns how many .pyc files it holds."""
    with tempfile.TemporaryDirectory(prefix="zotless-bytecode-") as tmp:
        tree = Path(tmp) / "tree"
        with zipfile.ZipFile(archive) as zipped:
            entries = zipped.infolist()
            zipped.extractall(tree)
        if not compileall.compile_dir(tree, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
            raise RuntimeError(f"some modules in {archive} do not compile")
        known = {entry.filename for entry in entries}
        compiled = sorted(p for p in tree.rglob("*.pyc") if p.relative_to(tree).as_posix() not in known)
        rewritten = Path(tmp) / "rewritten.zip"
        with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as out:
            for entry in entries:
                out.writestr(entry, (tree / entry.filename).read_bytes() if not entry.is_dir() else b"")
            for path in compiled:
                out.write(path, path.relative_to(tree).as_posix())
        shutil.move(rewritten, archive)
    return len(compiled)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    count = add_bytecode(Path(argv[0]))
    print(f"{argv[0]}: added {count} .pyc files for {sys.implementation.cache_tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
