"""Event bodies: pybase64 reads and writes exactly what the standard codec does, and bad base64 is the client's 400."""

from __future__ import annotations

import base64
import os

import pytest

from chalicelib.adapters.eventbody import InvalidBody, encode_body, event_body

SIZES = [0, 1, 2, 3, 1000, 65537, 4653056, 4653056 - 7]


@pytest.mark.parametrize("size", SIZES)
def test_a_body_reads_back_whole_whatever_its_size(size: int) -> None:
    data = os.urandom(size)
    body = event_body({"body": base64.b64encode(data).decode() if data else None, "isBase64Encoded": bool(data)})
    assert body.read() == data


@pytest.mark.parametrize("size", SIZES[1:])
def test_bodies_encode_exactly_as_the_standard_codec_does(size: int) -> None:
    data = os.urandom(size)
    assert encode_body(data) == base64.b64encode(data).decode()


def test_base64_with_line_breaks_is_still_read_as_chalice_read_it() -> None:
    data = os.urandom(1000)
    assert event_body({"body": base64.encodebytes(data).decode(), "isBase64Encoded": True}).read() == data


def test_a_text_body_is_its_utf8_bytes() -> None:
    assert event_body({"body": '{"a": "é"}', "isBase64Encoded": False}).read() == '{"a": "é"}'.encode()


@pytest.mark.parametrize("text", ["A" * 101, "A" * (6 << 20) + "A", "é" * 8])
def test_bad_base64_is_the_clients_400(text: str) -> None:
    with pytest.raises(InvalidBody) as raised:
        event_body({"body": text, "isBase64Encoded": True}).read()
    assert raised.value.status == 400
