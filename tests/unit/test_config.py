"""Config files in zot's shape, validation messages that name the field, environment overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.config.schema import ConfigError, load_config, parse_duration

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


def test_a_changed_config_file_is_read_again(tmp_path: Path):
    """The file is read once per process while it stays the same; a rewritten file (the CLI, tests) is seen."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"http": {"port": 9999}}))
    assert load_config(path).http.port == 9999
    path.write_text(json.dumps({"http": {"port": 19999}}))
    assert load_config(path).http.port == 19999


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


def test_auth_example_has_users_tokens_and_access_control(monkeypatch: pytest.MonkeyPatch):
    from chalicelib.auth.authn import build_auth

    monkeypatch.chdir(EXAMPLES[0].parents[1])  # the example names examples/htpasswd relative to the repository
    config = load_config(EXAMPLES[0].with_name("config-auth.json"), environ={})
    assert config.http.auth.htpasswd.path == "examples/htpasswd" and config.http.auth.failDelay == 1
    assert config.http.auth.bearer.expiry == 300 and "example-only" not in repr(config)  # the key is a SecretStr
    auth = build_auth(config)
    assert set(auth.passwords.users()) == {"admin", "alice", "bob"}
    assert auth.policy.allows("alice", "create", "team/app") and not auth.policy.allows("bob", "read", "private/x")
    assert auth.policy.allows(None, "read", "team/app") and not auth.policy.allows(None, "create", "team/app")


def _auth_config(tmp_path: Path, auth: dict, **http: object) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"http": {"auth": auth, **http}}))
    return path


def test_token_key_from_the_environment(tmp_path: Path):
    path = _auth_config(tmp_path, {"htpasswd": {"path": "x"}, "bearer": {}})
    with pytest.raises(ConfigError, match=r"http\.auth\.bearer.*ZOTLESS_TOKEN_KEY"):
        load_config(path, environ={})
    config = load_config(path, environ={"ZOTLESS_TOKEN_KEY": "e" * 32})
    assert config.http.auth.bearer.key.get_secret_value() == "e" * 32
    assert "e" * 32 not in repr(config) and "e" * 32 not in config.model_dump_json()
    with pytest.raises(ConfigError, match="at least 32"):
        load_config(_auth_config(tmp_path, {"htpasswd": {"path": "x"}, "bearer": {"key": "short"}}), environ={})
    assert load_config(None, environ={"ZOTLESS_TOKEN_KEY": "e" * 32}).http.auth is None  # never turns auth on


def test_auth_config_errors_name_the_field(tmp_path: Path):
    key = {"key": "k" * 32}
    cases = [
        ({"htpasswd": {"path": "x"}, "bearer": key | {"realm": "/relative"}}, {}, "http.auth.bearer.realm"),
        ({"failDelay": "1s"}, {}, "http.auth.htpasswd"),
        ({"htpasswd": {"path": "x"}, "failDelay": "soon"}, {}, "http.auth.failDelay"),
        ({"htpasswd": {"path": "x"}, "ldap": {}}, {}, "http.auth.ldap"),
        ({"htpasswd": {"path": "x"}}, {"accessControl": {"repositories": {"**": {"defaultPolicy": ["pull"]}}}}, "defaultPolicy"),
    ]
    for auth, http, field in cases:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_config(_auth_config(tmp_path, auth, **http), environ={})


def test_check_auth_fails_early(tmp_path: Path):
    from chalicelib.auth.authn import check_auth

    with pytest.raises(ConfigError, match="cannot read"):
        check_auth(load_config(_auth_config(tmp_path, {"htpasswd": {"path": str(tmp_path / "absent")}}), environ={}))
    bad_glob = {"accessControl": {"repositories": {"team/[z-a]": {"defaultPolicy": ["read"]}}}}
    with pytest.raises(ConfigError, match="bad glob"):
        check_auth(load_config(_auth_config(tmp_path, {"htpasswd": {"path": str(EXAMPLES[0].with_name("htpasswd"))}}, **bad_glob), environ={}))


def load_raw(tmp_path: Path, raw: dict) -> str:
    """The ConfigError message for a config, which the test expects to be refused."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    return str(error.value)


@pytest.mark.parametrize("where", ["storage", "sub-path"])
def test_invalid_keep_tags_regex_names_the_field(tmp_path: Path, where: str):
    retention = {"policies": [{"repositories": ["**"], "keepTags": [{"patterns": ["v1.*", "(unclosed"]}]}]}
    storage = {"retention": retention} if where == "storage" else {"subPaths": {"/infra": {"storageDriver": {"bucket": "infra"}, "retention": retention}}}
    message = load_raw(tmp_path, {"storage": storage})
    prefix = "storage" if where == "storage" else "storage.subPaths./infra"
    assert f"{prefix}.retention.policies.0.keepTags.0.patterns" in message and "(unclosed" in message


@pytest.mark.parametrize("port", [-1, 65536, 700000])
def test_port_out_of_range(tmp_path: Path, port: int):
    assert "http.port" in load_raw(tmp_path, {"http": {"port": port}})


def test_port_bounds_are_accepted(tmp_path: Path):
    path = tmp_path / "config.json"
    for port in (0, 1, 65535):  # 0 asks for any free port, as `zotless serve --port 0` does
        path.write_text(json.dumps({"http": {"port": port}}))
        assert load_config(path, environ={}).http.port == port
    with pytest.raises(ConfigError, match=r"http\.port"):
        load_config(None, environ={"ZOTLESS_PORT": "70000"})


@pytest.mark.parametrize(
    ("storage", "first", "second"),
    [
        (
            {"subPaths": {"/a": {"storageDriver": {"bucket": "b", "rootdirectory": "/x"}}, "/c": {"storageDriver": {"bucket": "b", "rootdirectory": "x/"}}}},
            "storage.subPaths./a.storageDriver",
            "storage.subPaths./c.storageDriver",
        ),
        (
            {"storageDriver": {"rootdirectory": "/main"}, "subPaths": {"/infra": {"storageDriver": {"rootdirectory": "main"}}}},
            "storage.storageDriver",
            "storage.subPaths./infra.storageDriver",
        ),
        ({"subPaths": {"/infra": {"storageDriver": {}}}}, "storage.storageDriver", "storage.subPaths./infra.storageDriver"),
    ],
    ids=["two-sub-paths", "sub-path-and-default", "sub-path-with-no-own-location"],
)
def test_two_locations_on_one_bucket_and_prefix_are_refused(tmp_path: Path, storage: dict, first: str, second: str):
    message = load_raw(tmp_path, {"storage": storage})
    assert first in message and second in message
