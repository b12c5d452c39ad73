"""Go-style durations, and the GC interval read without pydantic: app.py needs it at import (cold start)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_GC_INTERVAL = 86400.0


def parse_duration(value: str | int | float) -> float:
    """Go-style durations ("1h", "90s", "1h30m") as zot writes them; plain numbers are seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"invalid duration {value!r}: use forms like 90s, 30m, 1h, 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))


def gc_interval_seconds(environ: Mapping[str, str] | None = None) -> float:
    """storage.gcInterval as load_config would give it: ZOTLESS_GC_INTERVAL, else the config file, else 24h."""
    environ = os.environ if environ is None else environ
    if "ZOTLESS_GC_INTERVAL" in environ:
        return parse_duration(environ["ZOTLESS_GC_INTERVAL"])
    path = environ.get("ZOTLESS_CONFIG")
    raw = json.loads(Path(path).read_text()).get("storage", {}).get("gcInterval") if path else None
    return DEFAULT_GC_INTERVAL if raw is None else parse_duration(raw)
