"""Multiple storage locations (storage.subPaths): routing, per-location settings, cross-location mounts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chalicelib.api.service import build_service
from chalicelib.config.schema import load_config
from chalicelib.lifecycle.gc import GarbageCollector, collect_everywhere
from chalicelib.storage.aws import ensure_resources, make_clients
from tests.conftest import Client, sha256

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config-multiple.json"


@pytest.fixture
def multi(aws):
    config = load_config(EXAMPLE, environ={})
    clients = make_clients(config)
    ensure_resources(config, clients)
    return build_service(config, clients)


def bucket_and_key(client: Client, repo: str, digest: str) -> tuple[str, str]:
    path = urlsplit(client("GET", f"/v2/{repo}/blobs/{digest}").headers["Location"]).path
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def test_repositories_go_where_their_prefix_says(multi):
    client = Client(multi)
    client.push_image("infra/tools", "1", [b"infra layer"])
    client.push_image("infrastructure/app", "1", [b"not infra"])
    client.push_image("team/app", "1", [b"team layer"])
    assert bucket_and_key(client, "infra/tools", sha256(b"infra layer"))[0] == "zotless-infra"
    assert bucket_and_key(client, "infra/tools", sha256(b"infra layer"))[1].startswith("infra/_data/")
    assert bucket_and_key(client, "infrastructure/app", sha256(b"not infra"))[1].startswith("main/_data/"), "a prefix is a whole name component"
    assert bucket_and_key(client, "team/app", sha256(b"team layer"))[0] == "zotless"
    catalog = json.loads(client("GET", "/v2/_catalog").body_bytes())["repositories"]
    assert catalog == ["infra/tools", "infrastructure/app", "team/app"]
    infra = multi.locations[1]
    assert not infra.config.storage.dedupe and infra.config.storage.gcDelay == 3 * 3600
    assert multi.store.size(f"_blobs/sha256/{sha256(b'team layer')[7:]}") is not None
    assert infra.store.size(f"repositories/infra/tools/_blobs/sha256/{sha256(b'infra layer')[7:]}") is not None


def test_a_read_only_location_refuses_writes_while_others_accept(multi):
    client = Client(multi)
    response = client("POST", "/v2/archive/old/blobs/uploads/")
    assert response.status == 405 and json.loads(response.body_bytes())["errors"][0]["code"] == "DENIED"
    assert client("POST", "/v2/team/app/blobs/uploads/").status == 202


def test_a_mount_across_locations_copies_server_side(multi):
    client = Client(multi)
    digest = client.push_blob("team/app", b"crosses locations")
    mounted = client("POST", f"/v2/infra/tools/blobs/uploads/?mount={digest}&from=team/app")
    assert mounted.status == 201
    assert bucket_and_key(client, "infra/tools", digest)[0] == "zotless-infra"
    assert bucket_and_key(client, "team/app", digest)[0] == "zotless"


def test_gc_runs_per_location_with_its_own_delay(multi):
    client = Client(multi)
    client.push_blob("team/app", b"main orphan")
    client.push_blob("infra/tools", b"infra orphan")
    reports = collect_everywhere(multi)
    assert len(reports) == 3
    later = [GarbageCollector(location, clock=lambda: time.time() + 2 * 3600).run().deleted.get("blob_links", 0) for location in multi.locations]
    assert later == [1, 0, 0], "2h is past the default location's 1h delay but inside infra's 3h"
    assert client("HEAD", f"/v2/infra/tools/blobs/{sha256(b'infra orphan')}").status == 200
