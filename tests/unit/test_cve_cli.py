"""`zotless cve-db update|status` against moto: directories and zips load, a bad source changes nothing."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.cli.commands import main
from tests.cve_images import osv, standard_records


@pytest.fixture
def config_file(service, tmp_path: Path) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"storage": {"storageDriver": {"bucket": "zotless-test"}}}))
    return str(path)


def write_records(folder: Path, records: list[dict]) -> Path:
    folder.mkdir()
    for record in records:
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    return folder


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_update_from_a_directory_then_status(config_file: str, tmp_path: Path) -> None:
    assert run("cve-db", "status", "--config", config_file)[0] == 1
    folder = write_records(tmp_path / "osv", standard_records())
    code, output = run("cve-db", "update", "--config", config_file, "--from", str(folder))
    assert code == 0, output
    code, output = run("cve-db", "status", "--config", config_file)
    status = json.loads(output)
    assert status["records"] == 5 and status["source"] == str(folder)
    assert status["ecosystems"]["Debian:12"] == {"packages": 2, "advisories": 2}
    assert set(status["ecosystems"]) == {"Debian:12", "Alpine:v3.19", "PyPI", "npm"}


def test_update_from_a_zip_as_osv_publishes_them(config_file: str, tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for record in standard_records():
            zipped.writestr(f"{record['id']}.json", json.dumps(record))
    assert run("cve-db", "update", "--config", config_file, "--from", str(archive))[0] == 0
    assert json.loads(run("cve-db", "status", "--config", config_file)[1])["records"] == 5


def test_a_broken_source_leaves_the_previous_version_serving(config_file: str, tmp_path: Path) -> None:
    run("cve-db", "update", "--config", config_file, "--from", str(write_records(tmp_path / "good", standard_records())))
    before = json.loads(run("cve-db", "status", "--config", config_file)[1])
    bad = write_records(tmp_path / "bad", [osv("GHSA-new", "npm", "x", fixed="1.0.0")])
    (bad / "zz-broken.json").write_text("{not json")
    code, output = run("cve-db", "update", "--config", config_file, "--from", str(bad))
    assert code == 1 and "previous database keeps serving" in output
    assert json.loads(run("cve-db", "status", "--config", config_file)[1])["version"] == before["version"]
