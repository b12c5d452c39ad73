"""Garbage collection: delays, retention, dedupe reference counts, stale uploads, and the race with pushes."""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest

from chalicelib.api.service import build_service
from chalicelib.config.schema import Config
from chalicelib.lifecycle.gc import GarbageCollector
from chalicelib.spec.references import Digest
from chalicelib.storage.aws import ensure_resources, make_clients
from tests.conftest import LAYER, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Client, sha256
from tests.faults import Faults

HOUR = 3600


def later(hours: float):
    return lambda: time.time() + hours * HOUR


def collect(service, hours: float = 0, dry_run: bool = False):
    return GarbageCollector(service, clock=later(hours)).run(dry_run=dry_run)


def data_objects(service) -> list[str]:
    return [o.key for o in service.store.list("_data/")]


def build(aws, config: Config, **storage):
    for key, value in storage.items():
        setattr(config.storage, key, value)
    clients = make_clients(config)
    ensure_resources(config, clients)
    return build_service(config, clients)


def test_a_fresh_orphan_survives_and_an_old_one_goes(client, service):
    digest = client.push_blob("team/app", b"orphan layer")
    assert collect(service, hours=0.5).deleted.get("blob_links", 0) == 0
    assert client("HEAD", f"/v2/team/app/blobs/{digest}").status == 200
    report = collect(service, hours=2)
    assert report.deleted["blob_links"] == 1 and report.deleted["blobs"] == 1
    assert client("HEAD", f"/v2/team/app/blobs/{digest}").status == 404
    assert data_objects(service) == []
    assert [o.key for o in service.store.list("_blobs/")] == []


def test_referenced_blobs_stay(client, service):
    _, body = client.push_image("team/app", "1.0", [b"used layer"])
    collect(service, hours=48)
    pulled = client("GET", "/v2/team/app/manifests/1.0")
    assert pulled.body_bytes() == body
    assert client("HEAD", f"/v2/team/app/blobs/{sha256(b'used layer')}").status == 200
    assert len(data_objects(service)) == 2


def test_dry_run_changes_nothing(client, service):
    client.push_blob("team/app", b"orphan")
    report = collect(service, hours=2, dry_run=True)
    assert report.dry_run and report.deleted["blob_links"] == 1
    assert len(data_objects(service)) == 1


def test_untagged_manifests_go_after_the_retention_delay(client, service):
    old, _ = client.push_image("team/app", "latest", [b"v1"])
    new, _ = client.push_image("team/app", "latest", [b"v2"])
    collect(service, hours=2)
    assert client("GET", f"/v2/team/app/manifests/{old}").status == 200, "inside the 24h retention delay"
    report = collect(service, hours=25)
    assert report.deleted["manifests"] == 1
    assert client("GET", f"/v2/team/app/manifests/{old}").status == 404
    assert client("GET", f"/v2/team/app/manifests/{new}").status == 200
    assert client("HEAD", f"/v2/team/app/blobs/{sha256(b'v1')}").status == 404, "its layer went in the same run"
    assert client("HEAD", f"/v2/team/app/blobs/{sha256(b'v2')}").status == 200


def test_an_index_keeps_its_children(client, service):
    child, body = client.push_image("team/app", "tmp", [b"arch"])
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": len(body)}]}
    assert client("PUT", "/v2/team/app/manifests/multi", json.dumps(index).encode(), {"Content-Type": OCI_INDEX}).status == 201
    client("DELETE", "/v2/team/app/manifests/tmp")
    collect(service, hours=25)
    assert client("GET", f"/v2/team/app/manifests/{child}").status == 200
    client("DELETE", "/v2/team/app/manifests/multi")
    collect(service, hours=50)
    assert client("GET", f"/v2/team/app/manifests/{child}").status == 404, "untagged index and then its child go"


def _referrer(client, repo: str, subject: str, size: int) -> str:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": client.push_blob(repo, b"{}"), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
    }
    body = json.dumps(document).encode()
    assert client("PUT", f"/v2/{repo}/manifests/{sha256(body)}", body, {"Content-Type": OCI_MANIFEST}).status == 201
    return sha256(body)


def test_referrers_stay_with_their_subject_and_go_without_it(aws, config):
    config.storage.retention = config.storage.retention.model_validate({"policies": [{"repositories": ["**"], "deleteReferrers": True}]})
    service = build(aws, config)
    client = Client(service)
    subject, body = client.push_image("team/app", "1.0", [b"x"])
    signature = _referrer(client, "team/app", subject, len(body))
    collect(service, hours=25)
    assert client("GET", f"/v2/team/app/manifests/{signature}").status == 200
    client("DELETE", "/v2/team/app/manifests/1.0")
    collect(service, hours=50)
    assert client("GET", f"/v2/team/app/manifests/{subject}").status == 200, "untagged, but an artifact refers to it (zot)"
    client("DELETE", f"/v2/team/app/manifests/{subject}")
    collect(service, hours=75)
    assert client("GET", f"/v2/team/app/manifests/{signature}").status == 404


def test_keep_tags_by_pattern_and_most_recent(aws, config):
    policies = [{"repositories": ["team/**"], "keepTags": [{"patterns": ["^v"], "mostRecentlyPushedCount": 2}, {"patterns": ["^stable$"]}]}]
    config.storage.retention = config.storage.retention.model_validate({"policies": policies})
    service = build(aws, config)
    client = Client(service)
    for n, tag in enumerate(["v1", "v2", "v3", "stable", "nightly"]):
        client.push_image("team/app", tag, [f"layer {tag}".encode()])
        service.index.table.update(("team/app", f"t#{tag}"), "SET pushed = :p", {":p": int(time.time()) - 1000 + n})
    client.push_image("other/app", "nightly", [b"elsewhere"])
    collect(service, hours=25)
    tags = json.loads(client("GET", "/v2/team/app/tags/list").body_bytes())["tags"]
    assert tags == ["stable", "v2", "v3"]
    assert json.loads(client("GET", "/v2/other/app/tags/list").body_bytes())["tags"] == ["nightly"], "no policy matches: all kept"


def test_dedupe_reference_counts_down_to_deletion(client, service):
    shared = b"shared base" * 100
    a, _ = client.push_image("team/a", "1", [shared])
    b, _ = client.push_image("team/b", "1", [shared])
    assert service.blobs.table.get(sha256(shared), "#")["refs"] == 2
    client("DELETE", f"/v2/team/a/manifests/{a}")
    collect(service, hours=2)
    assert service.blobs.table.get(sha256(shared), "#")["refs"] == 1
    assert client("HEAD", f"/v2/team/b/blobs/{sha256(shared)}").status == 200
    assert len(data_objects(service)) == 2  # the shared layer and team/b's config
    client("DELETE", f"/v2/team/b/manifests/{b}")
    report = collect(service, hours=4)
    assert report.deleted["blobs"] >= 1 and report.bytes_freed >= len(shared)
    assert service.blobs.table.get(sha256(shared), "#") is None
    assert data_objects(service) == []


def test_without_dedupe_a_deleted_blobs_bytes_go(aws, config):
    service = build(aws, config, dedupe=False)
    client = Client(service)
    digest = client.push_blob("team/app", b"private bytes")
    assert client("DELETE", f"/v2/team/app/blobs/{digest}").status == 202
    report = collect(service)
    assert report.bytes_freed == len(b"private bytes")
    assert data_objects(service) == []
    assert client("HEAD", f"/v2/team/app/blobs/{digest}").status == 404


def test_stale_uploads_are_aborted(client, service):
    big = client("POST", "/v2/team/app/blobs/uploads/").headers["Location"]
    client("PATCH", big, os.urandom(6 << 20), {"Content-Range": f"0-{(6 << 20) - 1}"})
    client("PATCH", big, os.urandom(300 << 10), {"Content-Range": f"{6 << 20}-{(6 << 20) + (300 << 10) - 1}"})
    assert service.store.client.list_multipart_uploads(Bucket=service.store.bucket).get("Uploads")
    assert list(service.store.list("_uploads/"))
    collect(service, hours=2)
    assert client("GET", big).status == 204, "younger than uploadTTL"
    report = collect(service, hours=25)
    assert report.deleted["upload_sessions"] == 1
    assert client("GET", big).status == 404
    assert service.store.client.list_multipart_uploads(Bucket=service.store.bucket).get("Uploads") is None
    assert list(service.store.list("_uploads/")) == []


def test_gc_off_and_read_only_do_nothing(aws, config):
    for settings in ({"gc": False}, {"readOnly": True}):
        service = build(aws, config, **settings)
        report = collect(service, hours=48)
        assert report.skipped and report.deleted == {}


def test_an_interrupted_run_continues_where_it_stopped(client, service):
    """The budget runs out after the first repository: the cursor names it, and the next run does only the rest."""
    old = [client.push_image(f"team/r{n}", "latest", [b"old"])[0] for n in range(3)]
    for n in range(3):
        client.push_image(f"team/r{n}", "latest", [f"new {n}".encode()])
    faults = Faults().attach(service.index.table.client)
    faults.after("Query", lambda answer: _stall_after(answer, "team/r0", seconds=1.0))
    cursor_name = f"retention:{GarbageCollector(service).location_name}"
    read = _partitions_read(service)
    stopped = GarbageCollector(service, clock=later(25), time_budget=0.5).run()
    assert not stopped.complete
    assert stopped.deleted["manifests"] == 1, "the first repository was done before the budget ran out"
    assert service.index.cursor(cursor_name) == "team/r0"
    assert set(read) == {"team/r0"}
    read.clear()
    finished = GarbageCollector(service, clock=later(25)).run()
    assert finished.complete
    assert set(read) == {"team/r1", "team/r2"}, "the second run examines only the repositories after the cursor"
    assert finished.deleted["manifests"] == 2
    assert service.index.cursor(cursor_name) is None
    for n in range(3):
        assert client("GET", f"/v2/team/r{n}/manifests/{old[n]}").status == 404
        assert client("GET", f"/v2/team/r{n}/manifests/latest").status == 200


def _partitions_read(service) -> list[str]:
    """The repositories whose index partition is read from now on (GC's own state and the catalog left out)."""
    read: list[str] = []

    def record(params: dict, **_: object) -> None:
        partition = params.get("ExpressionAttributeValues", {}).get(":h", {}).get("S", "")
        if partition.startswith("team/"):
            read.append(partition)

    service.index.table.client.meta.events.register("provide-client-params.dynamodb.Query", record)
    return read


def _stall_after(answer: dict, repo: str, seconds: float) -> bool:
    """Once the repository's partition was read, spend longer than the run's budget (a slow DynamoDB)."""
    if not any(item.get("repo", {}).get("S") == repo for item in answer.get("Items", [])):
        return False
    time.sleep(seconds)
    return True


@pytest.mark.slow
def test_gc_racing_pushes_never_loses_a_referenced_blob(atomic_aws, aws, config):
    """GC and retention at zero delay run in a loop while threads push; every acknowledged push pulls whole.

    A refusal counts only when it is true: MANIFEST_BLOB_UNKNOWN while one of the manifest's blobs
    really was collected (its link is gone; only its own pusher writes to a repository), or 429.
    """
    config.storage.gcDelay = 0
    config.storage.retention.delay = 0
    service = build(aws, config)
    client = Client(service)
    stop = threading.Event()
    acknowledged: dict[str, list[str]] = {f"race/app{w}": [] for w in range(3)}
    refused: list[str] = []
    errors: list[BaseException] = []
    runs = [0]

    def collector() -> None:
        try:
            while not stop.is_set():  # 2 s ahead: a blob pushed this second is already past gcDelay (kept to whole seconds)
                GarbageCollector(service, clock=lambda: time.time() + 2).run()
                runs[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def pusher(worker: int) -> None:
        rng, repo = random.Random(worker), f"race/app{worker}"
        try:
            for round_ in range(12):
                layers = [f"layer {rng.randrange(6)}".encode(), f"unique {worker}-{round_}".encode()]
                config_bytes = json.dumps({"os": "linux", "architecture": "amd64", "n": round_}).encode()
                descriptors = []
                for blob, media_type in [(config_bytes, OCI_CONFIG)] + [(layer, LAYER) for layer in layers]:
                    if client("HEAD", f"/v2/{repo}/blobs/{sha256(blob)}").status != 200:
                        client.push_blob(repo, blob)
                    descriptors.append({"mediaType": media_type, "digest": sha256(blob), "size": len(blob)})
                manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0], "layers": descriptors[1:]}
                response = client("PUT", f"/v2/{repo}/manifests/r{round_}", json.dumps(manifest).encode(), {"Content-Type": OCI_MANIFEST})
                if response.status == 201:
                    acknowledged[repo].append(f"r{round_}")
                    continue
                error = json.loads(response.body_bytes())["errors"][0]
                if response.status == 400 and error["code"] == "MANIFEST_BLOB_UNKNOWN":
                    named = error.get("detail", {}).get("missing") or [d["digest"] for d in descriptors]
                    gone = [d for d in named if service.blobs.stat(repo, Digest.parse(d)) is None]  # HEAD would link it again
                    assert gone, f"{repo}:r{round_} refused though every blob is still there: {error}"
                else:
                    assert response.status == 429, (response.status, error)
                refused.append(f"{repo}:r{round_}")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=collector)] + [threading.Thread(target=pusher, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join()
    stop.set()
    threads[0].join()
    assert errors == []
    assert runs[0] > 1, "GC ran while the pushes did"
    GarbageCollector(service, clock=lambda: time.time() + 2).run()  # one more run after the last push: it must not take anything a tag holds either
    for repo, tags in acknowledged.items():
        listed = json.loads(client("GET", f"/v2/{repo}/tags/list").body_bytes())["tags"] if tags else []
        assert sorted(listed) == sorted(tags), f"{repo}: acknowledged tags lost"
        for tag in tags:
            manifest = json.loads(client("GET", f"/v2/{repo}/manifests/{tag}").body_bytes())
            for descriptor in [manifest["config"], *manifest["layers"]]:
                location = service.blobs.stat(repo, Digest.parse(descriptor["digest"]))
                assert location is not None, f"{repo}:{tag} was acknowledged, then GC took {descriptor['digest']}"
                assert service.store.size(location.data_key) == descriptor["size"], f"{repo}:{tag} lost {descriptor['digest']}"
    assert sum(map(len, acknowledged.values())) + len(refused) == 36
    assert sum(map(len, acknowledged.values())) > 0


def test_read_only_refuses_every_write_and_serves_reads(aws, config):
    writable = build(aws, config)
    digest, body = Client(writable).push_image("team/app", "1.0", [b"x"])
    client = Client(build(aws, config, readOnly=True))
    assert client("GET", "/v2/team/app/manifests/1.0").body_bytes() == body
    assert client("HEAD", f"/v2/team/app/blobs/{sha256(b'x')}").status == 200
    writes = [
        ("POST", "/v2/team/app/blobs/uploads/", b""),
        ("POST", f"/v2/team/app/blobs/uploads/?digest={sha256(b'y')}", b"y"),
        ("POST", f"/v2/team/b/blobs/uploads/?mount={sha256(b'x')}&from=team/app", b""),
        ("PUT", "/v2/team/app/manifests/2.0", body),
        ("DELETE", f"/v2/team/app/manifests/{digest}", b""),
        ("DELETE", f"/v2/team/app/blobs/{sha256(b'x')}", b""),
    ]
    for method, path, payload in writes:
        response = client(method, path, payload, {"Content-Type": OCI_MANIFEST})
        error = json.loads(response.body_bytes())["errors"][0]
        assert (response.status, error["code"]) == (405, "DENIED"), path
        assert "read-only" in error["message"]
    assert client("GET", "/v2/team/app/manifests/1.0").status == 200


def test_gc_command_prints_a_json_summary(client, service, tmp_path):
    from click.testing import CliRunner

    from chalicelib.cli.commands import main

    client.push_blob("team/app", b"orphan")
    time.sleep(1.1)  # orphan times are whole seconds: be strictly older than "now minus 0s"
    path = tmp_path / "config.json"
    path.write_text(service.config.model_dump_json())
    dry = CliRunner().invoke(main, ["gc", "--config", str(path), "--dry-run", "--delay", "0s"])
    assert dry.exit_code == 0, dry.output
    summary = json.loads(dry.output.strip().splitlines()[-1])
    assert summary["event"] == "gc" and summary["dry_run"] and summary["deleted"]["blob_links"] == 1
    real = CliRunner().invoke(main, ["gc", "--config", str(path), "--delay", "0s"])
    assert json.loads(real.output.strip().splitlines()[-1])["deleted"]["blobs"] == 1
    assert data_objects(service) == []
