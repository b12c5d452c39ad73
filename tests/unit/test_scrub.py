"""Scrub finds what changed behind the registry's back, and can repair the index from S3."""

from __future__ import annotations

import json

from click.testing import CliRunner

from chalicelib.cli.commands import main
from chalicelib.lifecycle.scrub import Scrubber
from chalicelib.model.registry import manifest_object_key
from chalicelib.spec.references import Digest
from tests.conftest import sha256


def findings(service, repos=None, repair=False):
    scrubber = Scrubber(service)
    return [(f.kind, f.problem, f.repository, f.digest, tuple(f.affects)) for f in scrubber.run(repos, repair)], scrubber.summary


def test_a_clean_registry_has_no_findings(client, service):
    client.push_image("team/app", "1.0", [b"a", b"b"])
    client.push_image("team/other", "1.0", [b"a"])
    found, summary = findings(service)
    assert found == []
    assert summary.manifests == 2 and summary.blobs == 3, "shared bytes (the config and layer a) are read once"


def test_a_corrupted_blob_is_reported_with_the_images_it_breaks(client, service):
    client.push_image("team/app", "1.0", [b"good layer", b"victim layer"])
    client.push_image("team/app", "latest", [b"good layer", b"victim layer"])
    client.push_image("team/other", "2.0", [b"victim layer"])
    location = service.blobs.stat("team/app", Digest.parse(sha256(b"victim layer")))
    service.store.put(location.data_key, b"bit rot layer")
    found, summary = findings(service)
    corrupt = [f for f in found if f[1] == "corrupt"]
    assert {(f[2], f[4]) for f in corrupt} == {("team/app", ("team/app:1.0", "team/app:latest")), ("team/other", ("team/other:2.0",))}
    assert all(f[3] == sha256(b"victim layer") for f in corrupt)
    assert summary.problems == 2


def test_missing_objects_and_index_disagreements(client, service):
    digest, _ = client.push_image("team/app", "1.0", [b"x"])
    client.push_image("team/app", "2.0", [b"y"])
    service.store.delete(service.blobs.stat("team/app", Digest.parse(sha256(b"y"))).data_key)
    service.index.table.delete("team/app", "t#1.0")
    found, _ = findings(service)
    assert ("blob", "missing", "team/app", sha256(b"y"), ("team/app:2.0",)) in found
    assert ("tag", "not-indexed", "team/app", digest, ("team/app:1.0",)) in found


def test_repair_index_restores_and_drops_entries(client, service):
    digest, _ = client.push_image("team/app", "1.0", [b"x"])
    gone, _ = client.push_image("team/app", "2.0", [b"y"])
    service.index.table.delete("team/app", "t#1.0")
    service.store.delete(manifest_object_key("team/app", gone), "repositories/team/app/_manifests/tags/2.0")
    found, summary = findings(service, repair=True)
    assert found and summary.repaired
    assert client("GET", "/v2/team/app/manifests/1.0").headers["Docker-Content-Digest"] == digest
    assert client("GET", "/v2/team/app/manifests/2.0").status == 404
    assert findings(service)[0] == []


def test_scrub_command_exits_non_zero_on_problems(client, service, tmp_path):
    client.push_image("team/app", "1.0", [b"x"])
    path = tmp_path / "config.json"
    path.write_text(service.config.model_dump_json())
    clean = CliRunner().invoke(main, ["scrub", "--config", str(path)])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output.strip().splitlines()[-1])["problems"] == 0
    service.index.table.delete("team/app", "t#1.0")
    broken = CliRunner().invoke(main, ["scrub", "--config", str(path), "team/app"])
    assert broken.exit_code == 1
    assert json.loads(broken.output.strip().splitlines()[0])["problem"] == "not-indexed"


def test_the_scheduled_scrub_resumes_where_it_stopped(client, service, caplog):
    from chalicelib.lifecycle.scrub import Scrubber, scrub_everywhere

    for n in range(3):
        client.push_image(f"team/r{n}", "1", [f"layer {n}".encode()])
    service.index.table.delete("team/r2", "t#1")
    stopped = Scrubber(service, time_budget=0)
    assert list(stopped.run(resume=True)) == [] and not stopped.summary.complete
    service.index.save_cursor(stopped.cursor_name, "team/r1")  # as a run cut off after team/r1 leaves it
    with caplog.at_level("WARNING", logger="zotless.scrub"):
        summaries = scrub_everywhere(service)
    assert summaries[0].repositories == 1, "only team/r2 was left"
    assert summaries[0].problems == 1 and "not-indexed" in caplog.text
    assert service.index.cursor(stopped.cursor_name) is None, "a finished run starts from the beginning next time"


def test_the_command_and_the_schedule_share_one_scrub_loop(client, service):
    """scrub_everywhere serves `zotless scrub` too: chosen repositories, no cursor, each finding and summary reported as it comes."""
    from chalicelib.lifecycle.scrub import Finding, Scrubber, ScrubSummary, scrub_everywhere

    for n in range(2):
        client.push_image(f"team/r{n}", "1", [f"layer {n}".encode()])
    service.index.table.delete("team/r1", "t#1")
    reported: list[Finding | ScrubSummary] = []
    summaries = scrub_everywhere(service, repositories=["team/r1"], resume=False, report=reported.append)
    assert [(type(r).__name__, getattr(r, "repository", None)) for r in reported] == [("Finding", "team/r1"), ("ScrubSummary", None)]
    assert summaries == [reported[-1]] and summaries[0].repositories == 1 and summaries[0].problems == 1
    assert service.index.cursor(Scrubber(service).cursor_name) is None, "a chosen set of repositories leaves the schedule's cursor alone"
