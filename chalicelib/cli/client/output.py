"""Rows as a table that fits the terminal, or as JSON or YAML for scripts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from typing import Any

import click

FORMATS = ("text", "json", "yaml")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"


def emit(data: Any, fmt: str, columns: Sequence[tuple[str, str]] | None = None) -> None:
    """json/yaml print the data as it is; text prints `columns` ((header, key) pairs) of a list of rows."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    elif columns is None:
        click.echo(str(data))
    else:
        click.echo(table(data, columns))


def cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key, "")
    if key == "size":
        return human_size(int(value or 0))
    if key == "digest":
        return str(value).split(":", 1)[-1][:8]
    if key == "signed":
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], width: int | None = None) -> str:
    """Left-aligned columns; the widest column is cut (with …) until the line fits the terminal."""
    grid = [[header for header, _ in columns]] + [[cell(row, key) for _, key in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    limit = width or shutil.get_terminal_size((120, 24)).columns
    while sum(widths) + 2 * (len(widths) - 1) > limit and max(widths) > 8:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    lines = []
    for line in grid:
        cells = [_fit(text, widths[i]) for i, text in enumerate(line)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


IMAGE_COLUMNS = [("REPOSITORY", "repo"), ("TAG", "tag"), ("OS/ARCH", "platforms"), ("DIGEST", "digest"), ("SIGNED", "signed"), ("SIZE", "size")]
CVE_COLUMNS = [("ID", "id"), ("SEVERITY", "severity"), ("TITLE", "title")]
REPO_COLUMNS = [("NAME", "name"), ("NEWEST TAG", "newestTag"), ("LAST UPDATED", "lastUpdated"), ("SIZE", "size")]
REFERRER_COLUMNS = [("ARTIFACT TYPE", "artifactType"), ("SIZE", "size"), ("DIGEST", "digest")]
