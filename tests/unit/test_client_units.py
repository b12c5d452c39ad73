"""The client's pure parts: reference grammar, the ~/.zotless file, auth files, challenges, tables, and its import boundary."""

from __future__ import annotations

import ast
import base64
import json
import stat
from pathlib import Path

import pytest

from chalicelib.cli.client import authfiles, output, transfer
from chalicelib.cli.client.errors import ClientError
from chalicelib.cli.client.http import parse_challenge
from chalicelib.cli.client.references import (
    ArchiveRef,
    DirectoryRef,
    LayoutRef,
    RegistryRef,
    is_loopback,
    parse_reference,
    split_image,
)
from chalicelib.cli.client.settings import ConfigFile

CLIENT = Path(__file__).resolve().parents[2] / "chalicelib" / "cli" / "client"
DIGEST = "sha256:" + "a" * 64


# references


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000/app", RegistryRef("localhost:5000", "app")),
        ("127.0.0.1:8080/team/app:v1.2", RegistryRef("127.0.0.1:8080", "team/app", "v1.2")),
        (f"registry.example.com/a/b@{DIGEST}", RegistryRef("registry.example.com", "a/b", None, DIGEST)),
        (f"docker://ghcr.io/o/r:t@{DIGEST}", RegistryRef("ghcr.io", "o/r", "t", DIGEST)),
        ("oci:/tmp/layout:v1", LayoutRef(Path("/tmp/layout"), "v1")),
        ("oci:/tmp/layout", LayoutRef(Path("/tmp/layout"), None)),
        ("oci:relative/dir", LayoutRef(Path("relative/dir"), None)),
        ("docker-archive:/tmp/img.tar", ArchiveRef(Path("/tmp/img.tar"))),
        ("dir:./files", DirectoryRef(Path("./files"))),
    ],
)
def test_references_parse_as_skopeo_and_oras_spell_them(text: str, expected: object) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", ["app:v1", "localhost:5000/", "localhost:5000/App", "localhost:5000/app:bad tag", "host.io/app@sha256", "oci:"])
def test_bad_references_are_one_line_errors(text: str) -> None:
    with pytest.raises(ClientError) as raised:
        parse_reference(text)
    assert "\n" not in raised.value.message


def test_reference_defaults_to_latest_and_prints_back() -> None:
    ref = parse_reference("localhost:5000/app")
    assert isinstance(ref, RegistryRef)
    assert (ref.reference, str(ref)) == ("latest", "localhost:5000/app:latest")


@pytest.mark.parametrize(
    ("host", "loopback"), [("localhost:5000", True), ("127.0.0.1:80", True), ("[::1]:5000", True), ("10.0.0.1:5000", False), ("ghcr.io", False)]
)
def test_loopback_hosts_speak_plain_http(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_zli_image_arguments_split_into_repo_and_reference() -> None:
    assert split_image("a/b:v1") == ("a/b", "v1")
    assert split_image("a/b") == ("a/b", "latest")
    assert split_image(f"a/b@{DIGEST}") == ("a/b", DIGEST)


# ~/.zotless


def test_config_add_set_default_and_remove(tmp_path: Path) -> None:
    path = tmp_path / ".zotless"
    configs = ConfigFile(path)
    configs.add("main", "http://localhost:5000/")
    configs.add("other", "https://registry.example.com")
    configs.set_default("other")
    reread = ConfigFile(path)
    assert reread.default()["_name"] == "other"
    assert reread.get("main", "url") == "http://localhost:5000"
    reread.set("main", "verify-tls", "false")
    assert ConfigFile(path).get("main", "verify-tls") is False
    ConfigFile(path).reset("main", "verify-tls")
    assert ConfigFile(path).get("main", "verify-tls") is True
    ConfigFile(path).remove("main")
    assert [c["_name"] for c in ConfigFile(path).configs] == ["other"]


def test_config_refuses_duplicates_unknown_keys_bad_values_and_bad_urls(tmp_path: Path) -> None:
    configs = ConfigFile(tmp_path / ".zotless")
    configs.add("main", "http://localhost:5000")
    for call in (
        lambda: configs.add("main", "http://x:1"),
        lambda: configs.set("main", "colour", "red"),
        lambda: configs.set("main", "verify-tls", "maybe"),
        lambda: configs.add("bad", "localhost:5000"),
        lambda: configs.find("missing"),
    ):
        with pytest.raises(ClientError):
            call()


def test_config_file_becomes_private_once_it_holds_a_credential(tmp_path: Path) -> None:
    path = tmp_path / ".zotless"
    configs = ConfigFile(path)
    configs.add("main", "http://localhost:5000")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    configs.set("main", "user", "alice:secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["configs"][0]["user"] == "alice:secret"


def test_a_corrupt_config_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / ".zotless"
    path.write_text("{not json")
    with pytest.raises(ClientError, match="not a readable JSON config"):
        ConfigFile(path)


# auth files


def _auth_file(path: Path, auths: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": auths}))
    return path


def _basic(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_auth_files_are_read_in_skopeos_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    _auth_file(tmp_path / ".docker" / "config.json", {"https://reg.example.com/v1/": _basic("docker", "d"), "other.io": _basic("o", "p")})
    assert authfiles.credentials_for("reg.example.com") == ("docker", "d")
    _auth_file(tmp_path / "run" / "containers" / "auth.json", {"reg.example.com": _basic("podman", "p")})
    assert authfiles.credentials_for("reg.example.com") == ("podman", "p")
    assert authfiles.credentials_for("other.io") == ("o", "p")
    assert authfiles.credentials_for("unknown.io") is None


def test_a_repository_scoped_entry_wins_over_the_host(tmp_path: Path) -> None:
    path = _auth_file(tmp_path / "auth.json", {"reg.io": _basic("host", "h"), "reg.io/team": _basic("team", "t")})
    assert authfiles.credentials_for("reg.io", "team/app", [path]) == ("team", "t")
    assert authfiles.credentials_for("reg.io", "other/app", [path]) == ("host", "h")


def test_unreadable_or_odd_auth_files_are_skipped(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    odd = _auth_file(tmp_path / "odd.json", {"reg.io": {"auth": "!!notbase64"}})
    good = _auth_file(tmp_path / "good.json", {"reg.io": {"username": "u", "password": "p"}})
    assert authfiles.credentials_for("reg.io", "", [broken, odd, good]) == ("u", "p")


# wire details


def test_bearer_challenges_parse_like_dockers() -> None:
    scheme, params = parse_challenge('Bearer realm="http://h/auth/token",service="zotless",scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "http://h/auth/token", "service": "zotless", "scope": "repository:a/b:pull,push"}


class _Answer:
    def __init__(self, status: int, headers: dict[str, str], body: dict | None = None) -> None:
        self.status_code, self.headers, self._body = status, headers, body

    def json(self) -> dict:
        if self._body is None:
            raise ValueError("no body")
        return self._body


def test_upload_offsets_come_from_the_inclusive_range_header() -> None:
    assert transfer._offset(_Answer(204, {"Range": "0-4194303"})) == 4194304  # type: ignore[arg-type]
    assert transfer._offset(_Answer(204, {"Range": "0-0"})) == 0  # type: ignore[arg-type]
    assert transfer._offset(_Answer(204, {})) == 0  # type: ignore[arg-type]


def test_a_413_names_the_chunk_size_to_fall_back_to() -> None:
    body = {"errors": [{"code": "SIZE_INVALID", "detail": {"maxChunkLength": 4194304}}]}
    assert transfer._smaller_chunk(_Answer(413, {}, body), 64 << 20) == 4194304  # type: ignore[arg-type]
    assert transfer._smaller_chunk(_Answer(500, {}, body), 64 << 20) is None  # type: ignore[arg-type]


def test_tables_fit_the_terminal_width() -> None:
    rows = [{"repo": "x" * 80, "tag": "v1", "digest": DIGEST, "size": 12_345_678}]
    text = output.table(rows, [("REPOSITORY", "repo"), ("TAG", "tag"), ("DIGEST", "digest"), ("SIZE", "size")], width=60)
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "12.3MB" in text and "aaaaaaaa" in text


def test_the_client_imports_no_server_package() -> None:
    """It speaks HTTP to any registry: no chalicelib package but its own (the spec vocabulary would be allowed)."""
    reached = set()
    for path in CLIENT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            reached |= {n for n in names if n.startswith("chalicelib.") and not n.startswith(("chalicelib.cli.client", "chalicelib.spec"))}
    assert not reached


def test_config_commands_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zli's config subcommands, end to end through click; a stored password is never shown."""
    from click.testing import CliRunner

    from chalicelib.cli.commands import main

    monkeypatch.setenv("HOME", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return result.output

    run("config", "add", "a", "http://localhost:5000")
    run("config", "add", "b", "https://reg.example.com")
    run("config", "set-default", "b")
    assert json.loads(run("config", "list", "-f", "json")) == [
        {"name": "a", "url": "http://localhost:5000", "default": False},
        {"name": "b", "url": "https://reg.example.com", "default": True},
    ]
    assert run("config", "list").splitlines()[1:] == [" a    http://localhost:5000", "*b    https://reg.example.com"]
    run("config", "set", "a", "user", "alice:secret")
    shown = run("config", "show", "a")
    assert "user = alice:***" in shown and "secret" not in shown
    assert stat.S_IMODE((tmp_path / ".zotless").stat().st_mode) == 0o600
    assert run("config", "get", "a", "verify-tls") == "true\n"
    run("config", "set", "a", "verify-tls", "no")
    assert run("config", "get", "a", "verify-tls") == "false\n"
    run("config", "reset", "a", "verify-tls")
    assert run("config", "get", "a", "verify-tls") == "true\n"
    run("config", "remove", "a")
    assert "does not exist" in run("config", "get", "a", "url", code=1)
    assert "not a registry URL" in run("config", "add", "c", "ftp://x", code=2)


class _Rows:
    """A search backend holding two tags of one digest in one repository."""

    def images(self, repo: str = "", tag: str | None = None) -> list[dict]:
        rows = [{"repo": "app", "tag": "1", "digest": "sha256:" + "a" * 64}, {"repo": "app", "tag": "2", "digest": "sha512:" + "b" * 128}]
        return [r for r in rows if r["repo"] == repo and (tag is None or r["tag"] == tag)]


def test_image_name_and_images_name_split_references_like_every_image_argument() -> None:
    from chalicelib.cli.client.commands import _named_images

    assert [r["tag"] for r in _named_images(_Rows(), "app")] == ["1", "2"]
    assert [r["tag"] for r in _named_images(_Rows(), "app:2")] == ["2"]
    assert [r["tag"] for r in _named_images(_Rows(), "app@sha512:" + "b" * 128)] == ["2"]


def test_malformed_digests_from_anywhere_are_one_line_client_errors(tmp_path: Path) -> None:
    from chalicelib.cli.client.images import descriptor_digest, layout_blob_path

    with pytest.raises(ClientError, match="invalid digest"):
        layout_blob_path(tmp_path, "sha256:../../x")
    with pytest.raises(ClientError, match="digest is missing"):
        descriptor_digest({"mediaType": "x"}, "here")
    assert layout_blob_path(tmp_path, "sha512:" + "c" * 128) == tmp_path / "blobs" / "sha512" / ("c" * 128)
