"""Rebuild and repair on registries with image indexes: dependency order, and the use counts GC relies on."""

from __future__ import annotations

import json
import time

import pytest

from chalicelib.api.service import build_service
from chalicelib.config.schema import Config
from chalicelib.lifecycle.gc import GarbageCollector
from chalicelib.lifecycle.rebuild import rebuild_index
from chalicelib.lifecycle.scrub import Scrubber
from chalicelib.model.registry import manifest_object_key
from chalicelib.storage.aws import ensure_resources, make_clients
from tests.conftest import OCI_INDEX, OCI_MANIFEST, Client, sha256
from tests.unit.test_rebuild import wipe_tables

REPO = "team/app"
HOUR = 3600


def build(config: Config, **storage: object):
    for key, value in storage.items():
        setattr(config.storage, key, value)
    clients = make_clients(config)
    ensure_resources(config, clients)
    return build_service(config, clients)


def descriptor(client: Client, digest: str, media_type: str = OCI_MANIFEST) -> dict:
    body = client("GET", f"/v2/{REPO}/manifests/{digest}").body_bytes()
    return {"mediaType": media_type, "digest": digest, "size": len(body), "platform": {"os": "linux", "architecture": digest[7:15]}}


def index_sorting(client: Client, children: list[dict], before: bool, tag: str) -> str:
    """Push an index whose digest sorts before (or after) all its children's, by varying an annotation."""
    bounds = [c["digest"] for c in children]
    for n in range(1000):
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children, "annotations": {"n": str(n)}}).encode()
        digest = sha256(body)
        if (digest < min(bounds)) if before else (digest > max(bounds)):
            response = client("PUT", f"/v2/{REPO}/manifests/{tag}", body, {"Content-Type": OCI_INDEX})
            assert response.status == 201, response.body_bytes()
            return digest
    raise AssertionError("no annotation gave the wanted order")


def registry_with_indexes(client: Client) -> dict[str, str]:
    """Three images, an index sorting before its children, one sorting after, and an index of both sorting first."""
    images = {f"img{n}": client.push_image(REPO, f"img{n}", [b"shared layer", f"layer {n}".encode()], config={"os": "linux", "n": n})[0] for n in range(3)}
    children = [descriptor(client, images[name]) for name in ("img0", "img1", "img2")]
    first = index_sorting(client, children, before=True, tag="multi-first")
    last = index_sorting(client, children[:2], before=False, tag="multi-last")
    nested = index_sorting(client, [descriptor(client, first, OCI_INDEX), descriptor(client, last, OCI_INDEX)], before=True, tag="nested")
    assert nested < first < min(images.values()) and last > max(images["img0"], images["img1"])
    return {**images, "multi-first": first, "multi-last": last, "nested": nested}


def what_clients_see(client: Client, digests: list[str]) -> dict:
    tags = json.loads(client("GET", f"/v2/{REPO}/tags/list").body_bytes())["tags"]
    seen: dict = {"tags": tags}
    seen |= {f"tag {t}": client("GET", f"/v2/{REPO}/manifests/{t}").body_bytes() for t in tags}
    seen |= {f"digest {d}": client("GET", f"/v2/{REPO}/manifests/{d}").body_bytes() for d in digests}
    for digest in digests:
        manifest = json.loads(seen[f"digest {digest}"])
        for blob in [manifest.get("config", {}).get("digest")] + [layer["digest"] for layer in manifest.get("layers", [])]:
            if blob:
                seen[f"blob {blob}"] = client("HEAD", f"/v2/{REPO}/blobs/{blob}").status
    return seen


def use_counts(service) -> dict:
    """Every link's and manifest's use count, as GC and retention read them."""
    links = service.blobs.table.client.scan(TableName=service.blobs.table.name)["Items"]
    counts = {("link", i["digest"]["S"], i["holder"]["S"]): int(i.get("uses", {"N": "0"})["N"]) for i in links if i["holder"]["S"] != "#"}
    manifests, _ = service.index.repository_items(REPO)
    return counts | {("manifest", str(i["key"]), ""): int(i.get("uses", 0)) for i in manifests}


def collect(service, hours: float = 0):
    return GarbageCollector(service, clock=lambda: time.time() + hours * HOUR).run()


@pytest.mark.slow
@pytest.mark.parametrize("dedupe", [True, False])
def test_rebuild_restores_indexes_whatever_order_their_digests_sort_in(aws, config: Config, dedupe: bool):
    service = build(config, dedupe=dedupe)
    client = Client(service)
    digests = registry_with_indexes(client)
    before, counts = what_clients_see(client, list(digests.values())), use_counts(service)

    wipe_tables(service)
    report = rebuild_index(service)

    assert report.problems == []
    assert report.manifests == 6 and report.tags == 6
    assert what_clients_see(client, list(digests.values())) == before
    assert use_counts(service) == counts, "each link and child manifest used as often as the pushes made it"
    assert [service.index.manifest_details(REPO, digests[name])["uses"] for name in ("img0", "img2", "multi-first")] == [2, 1, 1]
    gc = collect(service, hours=25)  # past gcDelay and the retention delay for untagged manifests
    assert gc.deleted.get("manifests", 0) == 0 and gc.deleted.get("blob_links", 0) == 0
    client("DELETE", f"/v2/{REPO}/manifests/img0")  # the tag only: the manifest stays, listed by two indexes
    assert collect(service, hours=25).deleted.get("manifests", 0) == 0
    assert client("GET", f"/v2/{REPO}/manifests/{digests['img0']}").status == 200


def test_an_index_whose_child_is_missing_from_s3_is_reported_not_an_abort(client, service):
    digests = registry_with_indexes(client)
    service.store.delete(manifest_object_key(REPO, digests["img2"]))
    service.store.put(manifest_object_key(REPO, sha256(b"[" * 10_000)), b"[" * 10_000)
    wipe_tables(service)

    report = rebuild_index(service)

    assert any(digests["multi-first"] in p and digests["img2"] in p for p in report.problems)
    assert any(digests["nested"] in p for p in report.problems), "an index of an index that could not be restored"
    assert any(sha256(b"[" * 10_000) in p for p in report.problems), "an unparsable object is skipped, not fatal"
    assert client("GET", f"/v2/{REPO}/manifests/multi-last").status == 200
    assert client("GET", f"/v2/{REPO}/manifests/multi-first").status == 404
    assert client("GET", f"/v2/{REPO}/manifests/{digests['img1']}").status == 200


def test_repair_restores_use_counts_so_gc_takes_exactly_what_nothing_uses(aws, config: Config):
    service = build(config, gcDelay=0)
    client = Client(service)
    first, _ = client.push_image(REPO, "1.0", [b"only in 1.0", b"in both"], config={"os": "linux", "v": 1})
    second, _ = client.push_image(REPO, "2.0", [b"in both", b"only in 2.0"], config={"os": "linux", "v": 2})
    both = index_sorting(client, [descriptor(client, first), descriptor(client, second)], before=True, tag="multi")
    orphan = client.push_blob(REPO, b"never used by a manifest")
    rotten, _ = client.push_image("team/other", "1.0", [b"layer of a manifest whose object rotted"], config={"v": 1})
    client.push_image("team/other", "2.0", [b"layer of a manifest whose object rotted"], config={"v": 2})
    service.store.put(manifest_object_key("team/other", rotten), b"bit rot")  # unreadable but indexed: its uses stay
    counts = use_counts(service)
    service.index.table.delete(REPO, f"m#{first}")  # index items lost: a manifest, a link, a tag
    service.blobs.table.delete(sha256(b"only in 2.0"), REPO)
    service.index.table.delete(REPO, "t#multi")

    scrubber = Scrubber(service)
    assert list(scrubber.run(repair_index=True)) and scrubber.summary.repaired
    assert use_counts(service) == counts

    gc = collect(service, hours=2 / HOUR)
    assert (gc.deleted.get("blob_links"), gc.deleted.get("blobs")) == (1, 1), "the one blob no manifest uses"
    assert client("HEAD", f"/v2/{REPO}/blobs/{orphan}").status == 404
    for blob in (b"only in 1.0", b"in both", b"only in 2.0"):
        assert client("HEAD", f"/v2/{REPO}/blobs/{sha256(blob)}").status == 200
    assert client("GET", f"/v2/{REPO}/manifests/multi").status == 200
    assert client("HEAD", f"/v2/team/other/blobs/{sha256(b'layer of a manifest whose object rotted')}").status == 200

    assert client("DELETE", f"/v2/{REPO}/manifests/{both}").status == 202
    assert client("DELETE", f"/v2/{REPO}/manifests/{first}").status == 202
    gc = collect(service, hours=2 / HOUR)
    assert client("HEAD", f"/v2/{REPO}/blobs/{sha256(b'only in 1.0')}").status == 404, "released by the delete after the repair"
    assert gc.deleted.get("blob_links") == 2, "its layer and its config"
    assert client("HEAD", f"/v2/{REPO}/blobs/{sha256(b'in both')}").status == 200, "2.0 still uses it"
    assert client("GET", f"/v2/{REPO}/manifests/2.0").status == 200


def test_repair_of_an_over_counted_manifest_lets_its_blobs_go_once_deleted(aws, config: Config):
    """A manifest item lost while its links kept their counts: repair must not count its uses twice."""
    service = build(config, gcDelay=0)
    client = Client(service)
    digest, _ = client.push_image(REPO, "1.0", [b"layer"], config={"os": "linux", "v": 1})
    service.index.table.delete(REPO, f"m#{digest}")
    assert list(Scrubber(service).run(repair_index=True))
    assert client("DELETE", f"/v2/{REPO}/manifests/{digest}").status == 202
    gc = collect(service, hours=2 / HOUR)
    assert gc.deleted.get("blob_links") == 2 and client("HEAD", f"/v2/{REPO}/blobs/{sha256(b'layer')}").status == 404


def test_rebuild_index_command_creates_deleted_tables(client, service, tmp_path):
    """As `serve` does; but a missing bucket is an error, never replaced by an empty one."""
    from click.testing import CliRunner

    from chalicelib.cli.commands import main
    from chalicelib.storage.aws import table_definitions

    digest, _ = client.push_image(REPO, "1.0", [b"layer"])
    for definition in table_definitions(service.config):
        service.index.table.client.delete_table(TableName=definition["TableName"])
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(service.config.model_copy(deep=True).model_dump_json().replace('"zotless-test"', '"no-such-bucket"'))
    missing = CliRunner().invoke(main, ["rebuild-index", "--config", str(elsewhere)])
    assert missing.exit_code == 1 and "no-such-bucket" in missing.output
    assert "no-such-bucket" not in [b["Name"] for b in service.store.client.list_buckets()["Buckets"]]
    path = tmp_path / "config.json"
    path.write_text(service.config.model_dump_json())

    result = CliRunner().invoke(main, ["rebuild-index", "--config", str(path)])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["manifests"] == 1
    assert client("GET", f"/v2/{REPO}/manifests/1.0").headers["Docker-Content-Digest"] == digest
