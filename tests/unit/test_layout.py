"""The package tree is the architecture: imports only go down the layers, and every package says what it owns.

Layers, top to bottom (a package may import its own modules and any package below it, never one
above it or beside it): the CLI; adapters and deploy; operations (health, metrics); lifecycle; the API; search and web;
auth and cve (beside each other); the registry model;
storage; config; the spec's vocabulary. Lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
CORE = PROJECT / "chalicelib"
LAYERS: list[set[str]] = [
    {"cli"},
    {"adapters", "deploy"},
    {"ops"},
    {"lifecycle"},
    {"api"},
    {"search", "web"},
    {"auth", "cve"},
    {"model"},
    {"storage"},
    {"config"},
    {"spec"},
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def package_of(module: str) -> str:
    """"chalicelib.storage.blobs" -> "storage"."""
    return module.split(".")[1]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT).with_suffix("").parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every chalicelib module a file imports, at any depth (lazy and TYPE_CHECKING imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("chalicelib.")]


def core_files() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_lives_in_a_layered_package() -> None:
    loose = [str(p.relative_to(PROJECT)) for p in core_files() if p.parent == CORE and p.name != "__init__.py"]
    assert not loose, f"put these in a package: {loose}"
    unknown = {p.relative_to(CORE).parts[0] for p in core_files() if p.parent != CORE} - set(RANK)
    assert not unknown, f"add these packages to LAYERS in {Path(__file__).name}: {sorted(unknown)}"


@pytest.mark.parametrize("package", sorted(RANK))
def test_each_package_says_what_it_owns_and_may_import(package: str) -> None:
    init = CORE / package / "__init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text()))
    assert docstring and "import" in docstring, f"{init.relative_to(PROJECT)} needs a docstring saying what it owns and may import"


def test_imports_only_go_down_the_layers() -> None:
    upward = []
    for path in core_files():
        if path.parent == CORE:
            continue
        importer = package_of(module_name(path))
        for line, name in imported_modules(path):
            target = package_of(name)
            if target != importer and RANK.get(target, -1) <= RANK[importer]:
                upward.append(f"{path.relative_to(PROJECT)}:{line} imports {name} ({importer} may not import {target})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule is only as good as its parser: a lazy import inside a function must be found."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from chalicelib.api.endpoints import Api\n    import chalicelib.cli.commands\n")
    assert [name for _, name in imported_modules(sample)] == ["chalicelib.api.endpoints.Api", "chalicelib.cli.commands"]


def test_app_py_reaches_the_core_only_through_adapters_api_lifecycle_and_config() -> None:
    """app.py is a table of routes: it adapts events and schedules, it holds no registry logic (ops: health, metrics)."""
    allowed = {"adapters", "ops", "api", "lifecycle", "config", "spec"}  # spec: the HTTP message type, for annotations
    reached = {package_of(name) for _, name in imported_modules(PROJECT / "app.py")}
    assert reached <= allowed, f"app.py imports {sorted(reached - allowed)}"
