"""Named registry configs in `$HOME/.zotless` (JSON, zli's `~/.zot` shape), and the keys each may set."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from chalicelib.cli.client.errors import EXIT_USAGE, ClientError

# Key -> default value; its type is the type a `config set` value is parsed to.
KEYS: dict[str, Any] = {"url": "", "verify-tls": True, "showspinner": True, "user": ""}
CREDENTIAL_KEYS = {"user"}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def config_path() -> Path:
    return Path(os.environ.get("HOME") or Path.home()) / ".zotless"


def check_url(url: str) -> str:
    """Only http(s) URLs with a host: a typo fails at `config add`, not at the first request."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ClientError(f"{url!r}: not a registry URL (expected http://HOST[:PORT] or https://HOST[:PORT])", EXIT_USAGE)
    return url.rstrip("/")


class ConfigFile:
    """Read on each command, written whole; mode 600 from the moment it holds a credential."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()
        self.data: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"configs": []}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            raise ClientError(f"{self.path}: not a readable JSON config ({error})") from error
        if not isinstance(data, dict) or not isinstance(data.get("configs"), list):
            raise ClientError(f'{self.path}: expected {{"configs": [...]}}')
        return data

    @property
    def configs(self) -> list[dict[str, Any]]:
        return self.data["configs"]

    def find(self, name: str) -> dict[str, Any]:
        for entry in self.configs:
            if entry.get("_name") == name:
                return entry
        raise ClientError(f"config {name!r} does not exist (see `zotless config list`)")

    def default(self) -> dict[str, Any] | None:
        marked = [entry for entry in self.configs if entry.get("_default")]
        if marked:
            return marked[0]
        return self.configs[0] if len(self.configs) == 1 else None

    def add(self, name: str, url: str) -> None:
        if any(entry.get("_name") == name for entry in self.configs):
            raise ClientError(f"config {name!r} already exists")
        self.configs.append({"_name": name, "url": check_url(url), "verify-tls": True, "showspinner": True})
        self.save()

    def remove(self, name: str) -> None:
        self.data["configs"] = [entry for entry in self.configs if entry is not self.find(name)]
        self.save()

    def set_default(self, name: str) -> None:
        chosen = self.find(name)
        for entry in self.configs:
            entry.pop("_default", None)
        chosen["_default"] = True
        self.save()

    def get(self, name: str, key: str) -> Any:
        return self.find(name).get(_known(key), KEYS[key])

    def set(self, name: str, key: str, value: str) -> None:
        self.find(name)[_known(key)] = parse_value(key, value)
        self.save()

    def reset(self, name: str, key: str) -> None:
        if _known(key) == "url":
            raise ClientError("url cannot be reset; use `config set NAME url URL`")
        self.find(name).pop(key, None)
        self.save()

    def save(self) -> None:
        """Written through a temporary file; created 600 when it holds credentials, so no reader sees them."""
        secret = any(entry.get(key) for entry in self.configs for key in CREDENTIAL_KEYS)
        temporary = self.path.with_name(self.path.name + ".tmp")
        mode = 0o600 if secret else 0o644
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.data, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, mode)
        os.replace(temporary, self.path)


def _known(key: str) -> str:
    if key not in KEYS:
        raise ClientError(f"unknown config key {key!r} (known: {', '.join(KEYS)})")
    return key


def parse_value(key: str, value: str) -> Any:
    if isinstance(KEYS[_known(key)], bool):
        lowered = value.lower()
        if lowered not in _TRUE | _FALSE:
            raise ClientError(f"{key} takes true or false, not {value!r}")
        return lowered in _TRUE
    return check_url(value) if key == "url" else value
