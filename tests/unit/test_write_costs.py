"""Session writes are billed per KB of the whole item: staged bytes beyond a few KB go to S3, not into the item."""

from __future__ import annotations

import pytest

from bench.bench_cost import Meter, attach_meter, registry_clients
from tests.conftest import Client, sha256


@pytest.mark.parametrize("size", [16 * 1024, 60 * 1024])
def test_a_small_blobs_patch_keeps_its_session_item_small(client: Client, service, size: int) -> None:
    """The lease and the save each cost one write unit: with 64 KiB kept inline the PATCH cost 18 and 62, and every later write paid for the bytes again."""
    data = bytes(range(256)) * (size // 256)
    location = client("POST", "/v2/a/b/blobs/uploads/").headers["Location"]
    meter = Meter()
    attach_meter(meter, registry_clients(service))
    with meter.measure() as patch:
        location = client("PATCH", location, data, {"Content-Type": "application/octet-stream"}).headers["Location"]
    assert patch.write_units == 2
    assert patch.s3_tier1 == 1  # the staged bytes went to S3 as one piece
    with meter.measure() as put:
        assert client("PUT", f"{location}?digest={sha256(data)}").status == 201
    assert put.write_units <= 8  # lease, link transaction and session delete on a small item
    assert client("GET", f"/v2/a/b/blobs/{sha256(data)}").status == 307
