"""Go-style durations, and schedule intervals read without pydantic: app.py needs them at import (cold start).

The config file's document is read here too, once per process (and again only if the file changes):
app.py's two schedules and its service's config all come from it at a cold start.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_INTERVAL = 86400.0


def parse_duration(value: str | int | float) -> float:
    """Go-style durations ("1h", "90s", "1h30m") as zot writes them; plain numbers are seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"invalid duration {value!r}: use forms like 90s, 30m, 1h, 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))


def config_document(path: str | Path) -> dict[str, Any]:
    """The config file's JSON, a fresh dict each call (callers change theirs); the file is read once while unchanged.

    OSError and json.JSONDecodeError pass to the caller, as a direct read would raise them.
    """
    stat = Path(path).stat()
    return json.loads(_config_text(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _config_text(path: str, mtime_ns: int, size: int) -> str:
    """The file's text, by its path and the stat that says it has not changed since (mtime_ns, size)."""
    return Path(path).read_text()


def interval_seconds(variable: str, section: str, field: str, environ: Mapping[str, str] | None = None) -> float:
    """A schedule's interval as load_config would give it: the variable, else the config file, else 24h."""
    environ = os.environ if environ is None else environ
    if variable in environ:
        return parse_duration(environ[variable])
    path = environ.get("ZOTLESS_CONFIG")
    node: Any = config_document(path) if path else {}
    for part in section.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    raw = node.get(field) if isinstance(node, dict) else None
    return DEFAULT_INTERVAL if raw is None else parse_duration(raw)


def gc_interval_seconds(environ: Mapping[str, str] | None = None) -> float:
    return interval_seconds("ZOTLESS_GC_INTERVAL", "storage", "gcInterval", environ)

