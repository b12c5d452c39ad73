"""Numbers in queries and headers are ASCII digits: '²' passes isdigit() and breaks int(), '٣' passes both."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.apigateway import event_for, response_body
from chalicelib.spec.numbers import ascii_int
from tests.conftest import OCI_MANIFEST, sha256
from tests.unit.test_chalice_app import invoke

SUPERSCRIPT_TWO = "\u00b2"  # str.isdigit() is True, int() raises
ARABIC_THREE = "\u0663"  # str.isdigit() is True and int() gives 3
HUGE = "9" * 5000  # int() refuses strings over 4300 digits


@pytest.mark.parametrize("raw", ["0", "7", "0042", " 12\t", "999999999999999999"])
def test_ascii_digits_are_numbers(raw: str) -> None:
    assert ascii_int(raw) == int(raw)


@pytest.mark.parametrize("raw", [None, "", " ", SUPERSCRIPT_TWO, ARABIC_THREE, "+1", "-1", "1_000", "1.0", "0x10", "1 2", HUGE, "1" * 19])
def test_anything_else_is_not(raw: str | None) -> None:
    assert ascii_int(raw) is None


@pytest.fixture
def lambda_app(service, monkeypatch):
    import app as app_module

    monkeypatch.setattr(app_module, "service", lambda: service)
    return app_module.app


def error(result: dict) -> tuple[int, str]:
    return result["statusCode"], json.loads(response_body(result))["errors"][0]["code"]


@pytest.mark.parametrize("n", [SUPERSCRIPT_TWO, ARABIC_THREE, HUGE], ids=["superscript", "arabic-indic", "5000-digits"])
def test_page_size_through_the_chalice_app(lambda_app, client, n: str) -> None:
    client.push_blob("team/app", b"x")
    client("PUT", "/v2/team/app/manifests/v1", json.dumps(_manifest(client)).encode(), {"Content-Type": OCI_MANIFEST})
    for path in ("/v2/_catalog", "/v2/team/app/tags/list"):
        assert error(invoke(lambda_app, "GET", path, query={"n": [n]})) == (400, "PAGINATION_NUMBER_INVALID")


def _manifest(client) -> dict:
    config = b'{"architecture":"amd64","os":"linux"}'
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": client.push_blob("team/app", config), "size": len(config)},
        "layers": [],
    }


@pytest.mark.parametrize("length", [SUPERSCRIPT_TWO, ARABIC_THREE, HUGE, "12, 12"], ids=["superscript", "arabic-indic", "5000-digits", "list"])
def test_content_length_of_a_manifest_put(lambda_app, client, length: str) -> None:
    body = json.dumps(_manifest(client)).encode()
    result = invoke(lambda_app, "PUT", "/v2/team/app/manifests/v1", headers={"Content-Type": OCI_MANIFEST, "Content-Length": length}, body=body)
    assert error(result) == (400, "SIZE_INVALID")


@pytest.mark.parametrize("content_range", [f"0-{SUPERSCRIPT_TWO}", f"0-{ARABIC_THREE}", f"0-{HUGE}", f"{ARABIC_THREE}-4", f"0-3/{SUPERSCRIPT_TWO}"])
def test_content_range_of_a_chunk(lambda_app, content_range: str) -> None:
    started = invoke(lambda_app, "POST", "/v2/team/app/blobs/uploads/")
    location = next(v for k, v in started["headers"].items() if k.lower() == "location")
    result = invoke(lambda_app, "PATCH", location, headers={"Content-Range": content_range, "Content-Type": "application/octet-stream"}, body=b"abcd")
    assert error(result) == (416, "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize("byte_range", [f"bytes=0-{SUPERSCRIPT_TWO}", f"bytes={ARABIC_THREE}-", f"bytes=-{ARABIC_THREE}", f"bytes=0-{HUGE}", "bytes=+1-2"])
def test_range_of_a_blob_get(lambda_app, client, byte_range: str) -> None:
    digest = client.push_blob("team/app", b"0123456789")
    result = lambda_app(event_for("GET", f"/v2/team/app/blobs/{digest}", None, {"Range": byte_range}), None)
    assert error(result) == (416, "SIZE_INVALID")


def test_ascii_ranges_still_work(client) -> None:
    digest = client.push_blob("team/app", b"0123456789")
    assert digest == sha256(b"0123456789")
    client.service.api.redirect = False
    partial = client("GET", f"/v2/team/app/blobs/{digest}", headers={"Range": "bytes=2-4"})
    assert partial.status == 206 and partial.body_bytes() == b"234"
    suffix = client("GET", f"/v2/team/app/blobs/{digest}", headers={"Range": "bytes=-3"})
    assert suffix.status == 206 and suffix.body_bytes() == b"789"
