"""The embedded emulator keeps what was pushed: a clean stop, and a kill -9 of the server and its emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import MiB, RunningRegistry, _start, _stop, sha256, zotless_command

pytestmark = pytest.mark.integration


def kill_everything(registry: RunningRegistry) -> None:
    """SIGKILL the server's process group: `zotless serve` and its moto child die with no chance to flush."""
    os.killpg(registry.process.pid, signal.SIGKILL)
    registry.process.wait()
    assert registry.process.stdout is not None
    registry.process.stdout.close()


def stop_cleanly(registry: RunningRegistry) -> None:
    _stop(registry.process)
    assert registry.process.returncode == 0


def start(tmp_path: Path, data: Path, name: str) -> RunningRegistry:
    directory = tmp_path / name
    directory.mkdir()
    return _start(directory, None, "--data", str(data))


def begin_upload(registry: RunningRegistry, repo: str, chunk: bytes) -> str:
    """A chunked upload left open after its first PATCH (an S3 multipart upload the registry keeps in DynamoDB)."""
    response = registry("POST", f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    response = registry("PATCH", response.headers["Location"], data=chunk, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 202, response.text
    return response.headers["Location"]


@pytest.mark.parametrize("stop", [stop_cleanly, kill_everything], ids=["clean-stop", "kill-9"])
def test_pushed_images_and_open_uploads_survive_a_restart(tmp_path: Path, stop: Callable[[RunningRegistry], None]) -> None:
    data, repo = tmp_path / "data", "keep/me"
    layer, first, rest = os.urandom(3 * MiB), os.urandom(6 * MiB), os.urandom(1000)
    registry = start(tmp_path, data, "first")
    try:
        digest, manifest = registry.push_image(repo, "v1", [layer, b"small layer"])
        location = begin_upload(registry, repo, first)
    finally:
        stop(registry)

    again = start(tmp_path, data, "second")
    try:
        response = again("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": manifest["mediaType"]})
        assert response.status_code == 200 and response.headers["Docker-Content-Digest"] == digest
        assert sha256(response.content) == digest
        pulled = again.pull_blob(repo, manifest["layers"][0]["digest"])
        assert pulled.status_code == 200 and pulled.content == layer
        assert again("GET", f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        # The upload begun before the stop continues: its S3 multipart upload id was kept.
        response = again("PUT", location, params={"digest": sha256(first + rest)}, data=rest, headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 201, response.text
        assert again.pull_blob(repo, sha256(first + rest)).content == first + rest
    finally:
        stop_cleanly(again)


def test_a_data_directory_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = start(tmp_path, data, "first")
    try:
        with pytest.raises(RuntimeError, match="in use by another zotless emulator"):
            start(tmp_path, data, "second")
    finally:
        stop_cleanly(registry)


def test_ephemeral_keeps_nothing(tmp_path: Path) -> None:
    registry = _start(tmp_path, None)  # the fixtures' --ephemeral
    try:
        registry.push_image("gone/soon", "v1")
    finally:
        stop_cleanly(registry)
    again = _start(tmp_path, None)
    try:
        assert again("GET", "/v2/gone/soon/tags/list").status_code == 404
    finally:
        stop_cleanly(again)


def test_writes_after_a_snapshot_survive_a_kill(tmp_path: Path) -> None:
    """A clean stop leaves a snapshot; what is pushed after it lives in the journal only, and survives kill -9."""
    data = tmp_path / "data"
    registry = start(tmp_path, data, "first")
    try:
        before, _ = registry.push_image("keep/old", "v1", [os.urandom(200_000)])
    finally:
        stop_cleanly(registry)
    assert (data / "snapshot.pickle").exists()
    registry = start(tmp_path, data, "second")
    try:
        after, manifest = registry.push_image("keep/new", "v1", [os.urandom(300_000)])
    finally:
        kill_everything(registry)
    again = start(tmp_path, data, "third")
    try:
        assert again("HEAD", "/v2/keep/old/manifests/v1").headers["Docker-Content-Digest"] == before
        assert again("HEAD", "/v2/keep/new/manifests/v1").headers["Docker-Content-Digest"] == after
        assert sha256(again.pull_blob("keep/new", manifest["layers"][0]["digest"]).content) == manifest["layers"][0]["digest"]
    finally:
        stop_cleanly(again)


def unique_bytes(data: Path) -> int:
    """Bytes on disk under the directory, a hard-linked file counted once."""
    seen, total = set(), 0
    for path in data.rglob("*"):
        status = path.stat()
        if path.is_file() and (status.st_dev, status.st_ino) not in seen:
            seen.add((status.st_dev, status.st_ino))
            total += status.st_size
    return total


def journal_header(data: Path) -> dict:
    with (data / "journal.jsonl").open("rb") as file:
        return json.loads(file.readline())


def check_everything_is_there(registry: RunningRegistry, repo: str, digest: str, manifest: dict, layer: bytes, location: str, chunk: bytes) -> None:
    """The image pulls, and the upload begun before the stop continues."""
    response = registry("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": manifest["mediaType"]})
    assert response.status_code == 200 and sha256(response.content) == digest
    assert registry.pull_blob(repo, manifest["layers"][0]["digest"]).content == layer
    assert registry("GET", f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
    rest = b"the end"
    response = registry("PUT", location, params={"digest": sha256(chunk + rest)}, data=rest, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    assert registry.pull_blob(repo, sha256(chunk + rest)).content == chunk + rest


def test_a_clean_stop_compacts_to_one_copy_of_the_live_bytes(tmp_path: Path) -> None:
    """Journal bodies and the snapshot's objects were two copies of every blob; compacted, they are one, and the record stands alone."""
    data, repo = tmp_path / "data", "keep/me"
    layer, chunk = os.urandom(4 * MiB), os.urandom(6 * MiB)
    registry = start(tmp_path, data, "first")
    try:
        digest, manifest = registry.push_image(repo, "v1", [layer, b"small layer"])
        location = begin_upload(registry, repo, chunk)
    finally:
        stop_cleanly(registry)
    assert journal_header(data)["version"] == 2 and "compacted" in journal_header(data)
    assert unique_bytes(data) < 1.2 * (len(layer) + len(chunk))
    (data / "snapshot.pickle").unlink()  # the compacted journal alone rebuilds the state
    again = start(tmp_path, data, "second")
    try:
        check_everything_is_there(again, repo, digest, manifest, layer, location, chunk)
    finally:
        stop_cleanly(again)


@pytest.mark.parametrize("fault", ["compact-writing", "compact-written", "compact-renamed"])
def test_a_compaction_killed_at_any_point_loses_nothing(tmp_path: Path, fault: str) -> None:
    """`zotless compact` SIGKILLed while writing the new journal, after writing it, and after renaming it in."""
    data, repo = tmp_path / "data", "keep/me"
    layer, chunk = os.urandom(1 * MiB), os.urandom(5 * MiB + 1)
    registry = start(tmp_path, data, "first")
    try:
        digest, manifest = registry.push_image(repo, "v1", [layer, b"small layer"])
        registry.push_image("other/repo", "v1", [os.urandom(100_000)])
        location = begin_upload(registry, repo, chunk)
    finally:
        kill_everything(registry)  # no snapshot, no compaction: the journal is all there is
    env = {**os.environ, "ZOTLESS_JOURNAL_FAULT": fault}
    killed = subprocess.run([*zotless_command(), "compact", "--data", str(data)], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    again = start(tmp_path, data, "second")
    try:
        check_everything_is_there(again, repo, digest, manifest, layer, location, chunk)
    finally:
        kill_everything(again)
    done = subprocess.run([*zotless_command(), "compact", "--data", str(data)], capture_output=True, timeout=300)
    assert done.returncode == 0 and b"compacted the journal" in done.stderr, done.stderr.decode()[-2000:]
    (data / "snapshot.pickle").unlink()
    last = start(tmp_path, data, "third")
    try:
        assert last("HEAD", f"/v2/{repo}/manifests/v1").headers["Docker-Content-Digest"] == digest
        assert last.pull_blob(repo, sha256(chunk + b"the end")).content == chunk + b"the end"
    finally:
        stop_cleanly(last)
