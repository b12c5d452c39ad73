"""Config files in zot's shape, validation messages that name the field, environment overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.config import ConfigError, load_config, parse_duration

EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples").glob("*.json"))


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"config-local.json", "config-s3.json", "config-conformance.json"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path: Path):
    config = load_config(path, environ={})
    assert config.storage.storageDriver.bucket


def test_conformance_example_turns_gc_and_dedupe_off():
    config = load_config(Path(EXAMPLES[0]).with_name("config-conformance.json"), environ={})
    assert not config.storage.gc and not config.storage.dedupe


def test_errors_name_the_field(tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"storage": {"dedupe": "maybe", "gcDelay": "soon"}, "http": {"prot": 1}}))
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    message = str(error.value)
    assert "storage.dedupe" in message and "storage.gcDelay" in message and "http.prot" in message


def test_unreadable_config(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(path, environ={})


def test_environment_overrides(tmp_path: Path):
    environ = {"ZOTLESS_BUCKET": "from-env", "ZOTLESS_DEDUPE": "false", "ZOTLESS_GC_DELAY": "2h", "ZOTLESS_ROOTDIRECTORY": "/a/b/"}
    config = load_config(None, environ=environ)
    assert config.storage.storageDriver.bucket == "from-env"
    assert config.storage.dedupe is False
    assert config.storage.gcDelay == 7200
    assert config.storage.storageDriver.rootdirectory == "a/b/"


def test_config_path_from_environment(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"http": {"port": 9999}}))
    assert load_config(None, environ={"ZOTLESS_CONFIG": str(path)}).http.port == 9999


@pytest.mark.parametrize(("text", "seconds"), [("1h", 3600), ("90s", 90), ("1h30m", 5400), ("250ms", 0.25), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "h", "10 minutes", "1h-"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_root_directory_cannot_escape(tmp_path: Path):
    with pytest.raises(ConfigError, match="rootdirectory"):
        load_config(None, environ={"ZOTLESS_ROOTDIRECTORY": "/a/../../b"})
