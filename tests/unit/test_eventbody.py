"""Event bodies decoded beside the request: the same bytes as a whole decode, and bad base64 is a 400."""

from __future__ import annotations

import base64
import os

import pytest

from chalicelib.adapters.eventbody import DECODE_IN_THREAD, DECODE_SLICE, InvalidBody, event_body


@pytest.mark.parametrize("size", [0, 1, 1000, DECODE_IN_THREAD // 4 * 3 - 1, DECODE_IN_THREAD, 4653056, 4653056 - 7])
def test_a_body_reads_back_whole_whatever_its_size(size: int) -> None:
    data = os.urandom(size)
    body = event_body({"body": base64.b64encode(data).decode() if data else None, "isBase64Encoded": bool(data)})
    assert body.read() == data


def test_reads_of_any_size_return_what_was_asked_until_the_end() -> None:
    """A manifest's single read(limit) must see the whole body, not the first decoded slice."""
    data = os.urandom(3 * DECODE_SLICE + 123)
    body = event_body({"body": base64.b64encode(data).decode(), "isBase64Encoded": True})
    first = body.read(DECODE_SLICE + 5)
    rest = body.read(len(data))
    assert first + rest == data and len(first) == DECODE_SLICE + 5 and body.read(10) == b""


def test_a_text_body_is_its_utf8_bytes() -> None:
    assert event_body({"body": '{"a": "é"}', "isBase64Encoded": False}).read() == '{"a": "é"}'.encode()


@pytest.mark.parametrize("size", [100, 4 * DECODE_IN_THREAD])
def test_bad_base64_is_the_clients_400(size: int) -> None:
    text = "A" * (size + 1)  # a lone trailing character cannot be base64 however leniently read
    with pytest.raises(InvalidBody) as raised:
        event_body({"body": text, "isBase64Encoded": True}).read()
    assert raised.value.status == 400
