"""Credentials from the files skopeo, podman and docker log in to, so `zotless` needs no login of its own."""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path


def auth_files() -> list[Path]:
    """In skopeo's order: $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, docker's."""
    home = Path(os.environ.get("HOME") or Path.home())
    found = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        found.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    found.append(Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "containers" / "auth.json")
    found.append(Path(os.environ["DOCKER_CONFIG"]) / "config.json" if os.environ.get("DOCKER_CONFIG") else home / ".docker" / "config.json")
    return found


def credentials_for(host: str, repo: str = "", files: list[Path] | None = None) -> tuple[str, str] | None:
    """The first file with an entry for host (or host/repo-prefix, the most specific first) wins, as in containers/image."""
    for path in auth_files() if files is None else files:
        auths = _auths(path)
        for key in _keys(host, repo):
            if key in auths:
                decoded = _decode(auths[key])
                if decoded:
                    return decoded
    return None


def _auths(path: Path) -> dict[str, dict]:
    """The `auths` map with its keys normalised (no scheme, no trailing /v1/ or /v2/); unreadable files count as empty."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return {}
    normalised = {}
    for key, value in auths.items():
        name = key.split("://", 1)[-1].rstrip("/")
        for suffix in ("/v1", "/v2"):
            name = name.removesuffix(suffix)
        if isinstance(value, dict):
            normalised.setdefault(name, value)
    return normalised


def _keys(host: str, repo: str) -> list[str]:
    parts = repo.split("/") if repo else []
    scoped = [f"{host}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
    return [*scoped, host]


def _decode(entry: dict) -> tuple[str, str] | None:
    raw = entry.get("auth")
    if isinstance(raw, str) and raw:
        try:
            user, sep, password = base64.b64decode(raw).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None
    if entry.get("username"):
        return str(entry["username"]), str(entry.get("password", ""))
    return None
