"""The emulator's journal format: a torn last line is dropped, a journal of an unknown format refused."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

from chalicelib.adapters.journal import FORMAT, Journal, JournalError, read_entries

HEADER = json.dumps({"format": FORMAT, "version": 1, "moto": "5.2.5"}).encode() + b"\n"


def entry(seq: int) -> bytes:
    return json.dumps({"seq": seq, "method": "PUT", "environ": {"PATH_INFO": f"/b/{seq}"}}).encode() + b"\n"


def test_a_torn_last_line_is_cut_off_and_the_rest_kept(tmp_path: Path) -> None:
    """A crash mid-append leaves a line without its end: never acknowledged, so dropped, and the next append starts clean."""
    path = tmp_path / "journal.jsonl"
    path.write_bytes(HEADER + entry(1) + entry(2) + entry(3)[:20])
    assert [e["seq"] for e in read_entries(path)] == [1, 2]
    assert path.read_bytes() == HEADER + entry(1) + entry(2)


def test_a_damaged_line_inside_the_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(HEADER + b"{not json\n" + entry(2))
    with pytest.raises(JournalError, match="line 2"):
        list(read_entries(path))


def test_a_journal_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(json.dumps({"format": FORMAT, "version": 99}).encode() + b"\n" + entry(1))
    with pytest.raises(JournalError, match="version"):
        list(read_entries(path))


def test_the_journal_order_is_the_order_writes_were_applied(tmp_path: Path) -> None:
    """A delete and a put of one key, at once: replaying them in another order would lose the object."""
    applied: list[str] = []
    second_applied = threading.Event()

    def app(environ: dict, start_response) -> list[bytes]:
        applied.append(environ["REQUEST_METHOD"])
        if environ["REQUEST_METHOD"] == "DELETE":
            second_applied.set()
        else:
            second_applied.wait(0.5)  # the PUT lingers between applying and journaling, while the DELETE may run
        start_response("200 OK", [])
        return [b""]

    journal = Journal(app, tmp_path)
    journal.open()

    def call(method: str) -> None:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": "/bucket/blob", "QUERY_STRING": "", "wsgi.input": io.BytesIO(b"x"), "CONTENT_LENGTH": "1"}
        journal(environ, lambda *args: None)

    first = threading.Thread(target=call, args=("PUT",))
    first.start()
    while not applied:
        time.sleep(0.01)
    call("DELETE")
    first.join()
    assert [entry["method"] for entry in read_entries(tmp_path / "journal.jsonl")] == applied == ["PUT", "DELETE"]
