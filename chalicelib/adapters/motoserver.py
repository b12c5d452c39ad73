"""moto's server with the atomicity DynamoDB and S3 promise: the embedded emulator `zotless serve` starts.

moto applies TransactWriteItems by deep-copying every table the transaction names and, when a
condition fails, putting those copies back: every write other requests made to the tables
meanwhile is undone. Its conditional writes also check, then write, in two steps. A registry served
by several threads (or processes) on one emulator therefore lost acknowledged manifests when a
failing GC transaction rolled a table back over a push that had just succeeded. DynamoDB and S3
apply each request atomically, so this server does too: DynamoDB requests and S3 conditional
writes run one at a time, and a failed transaction restores only the items it named (the same
outcome at the cost of the items, not the tables). Plain S3 reads and writes still run in parallel.

With `--data DIR` its state lives in DIR: every successful write is journaled (adapters/journal.py)
and fsynced before it is answered, and the journal is replayed at start. Writes are applied and
journaled one at a time (their bodies are written to disk before, in parallel), so the journal's
order is the order moto applied them in.

Its ETags are SHA-256 cut to MD5's length rather than MD5s (`install_fast_etags`): hashing was its
largest CPU cost in a chunked push. Multipart parts stay in memory, within a bound, rather than
spill to disk (`install_parts_in_memory`).

Run as `python -m chalicelib.adapters.motoserver -H HOST -p PORT [--data DIR]`.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from unittest import mock

if TYPE_CHECKING:
    from chalicelib.adapters.journal import Journal

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Saved = list[tuple[Any, Any, Any, Any]]


class Atomic:
    """WSGI middleware: one request at a time for DynamoDB and for S3 writes with If-Match/If-None-Match."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not serialised(environ):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]  # the whole answer is made while the lock is held
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def serialised(environ: dict[str, Any]) -> bool:
    if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
        return True
    conditional = "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ
    return conditional and environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE")


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> Saved:
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved = []
    for entry in transact_items:
        op = next(iter(entry.values()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = op.get("Key") or op["Item"]
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
    return saved


def _restore(saved: Saved) -> None:
    for table, hash_value, range_value, item in reversed(saved):
        bucket = table.items[hash_value] if range_value is not None else table.items
        slot = range_value if range_value is not None else hash_value
        if item is None:
            bucket.pop(slot, None)
        else:
            bucket[slot] = item


def install_item_rollback() -> None:
    """A failed transaction restores the items it named instead of whole tables (O(items), not O(table))."""
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "item_rollback", False):
        return

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _touched(self, transact_items)
        tables = dict(self.tables)
        with mock.patch("moto.dynamodb.models.copy.deepcopy", lambda value: value):
            try:
                original(self, transact_items)
            except Exception:
                self.tables.update(tables)
                _restore(saved)
                raise

    transact_write_items.item_rollback = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


_partition = threading.local()  # the (table, items) a primary-key Query walks instead of the whole table


def install_partition_query() -> None:
    """A Query on a table's key reads its partition (O(partition)) instead of sorting every item (O(table)).

    moto's Table.query calls all_items(), which sorts the whole table, for every Query: writes slowed
    as the index grew (a push makes several Queries). DynamoDB reads one partition; so does this.
    """
    from moto.dynamodb.models.table import Table

    original_query, original_all_items = Table.query, Table.all_items
    if getattr(original_query, "by_partition", False):
        return

    def all_items(self: Any) -> list[Any]:
        only = getattr(_partition, "current", None)
        if only is not None and only[0] is self:
            return list(only[1])
        return original_all_items(self)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or hash_key is None or not self.range_key_attr:
            return original_query(self, hash_key, *args, **kwargs)
        _partition.current = (self, self.items.get(hash_key, {}).values())
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _partition.current = None

    query.by_partition = True  # type: ignore[attr-defined]
    Table.query, Table.all_items = query, all_items  # type: ignore[method-assign]


def install_module_list_cache() -> None:
    """moto's dispatcher lists its package directory (a listdir and ~150 isdir) on every request; the list never changes."""
    from moto import backends

    original = backends.list_of_moto_modules
    if getattr(original, "cached", False):
        return
    modules: list[tuple[str, ...]] = []

    def list_of_moto_modules() -> tuple[str, ...]:
        if not modules:
            modules.append(tuple(original()))
        return modules[0]

    list_of_moto_modules.cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


def install_fast_etags() -> None:
    """An object's ETag is SHA-256 cut to MD5's 16 bytes, hashed in place: 2.4x faster than MD5 with SHA extensions.

    moto made every object's and part's ETag an MD5 of a copy of its bytes: the emulator's largest CPU
    cost in a chunked push, whose pieces it hashes twice. S3 promises only that an ETag changes with
    the content (an SSE-KMS or multipart object's is no MD5), and neither the registry nor its
    clients read one as a digest. A Content-MD5 sent with a write is still checked as MD5.
    """
    from moto.s3.models import FakeKey

    if getattr(FakeKey.etag, "fast", False):
        return

    def etag(self: Any) -> str:
        if self._etag is None:
            self._etag = content_etag(self._value_buffer)
        return f'"{self._etag}"'

    etag.fast = True  # type: ignore[attr-defined]
    FakeKey.etag = property(etag)  # type: ignore[method-assign,assignment]


def content_etag(buffer: Any) -> str:
    """The hex ETag of a spooled body: from its memory when it has not spilled to disk, else read back a block at a time."""
    import hashlib

    digest = hashlib.sha256()
    in_memory = getattr(buffer, "_file", None)
    if hasattr(in_memory, "getbuffer"):
        with in_memory.getbuffer() as view:
            digest.update(view)
    else:
        buffer.seek(0)
        for block in iter(lambda: buffer.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


PART_MEMORY = 512 << 20  # the parts of every upload in flight kept in memory at once; past it they spill to disk
PART_IN_MEMORY = 16 << 20  # a part up to this size may stay in memory (the registry's are at most ~10 MiB)


class PartBudget:
    """Bytes of multipart parts held in memory, by part, handed back when a part is dropped.

    Kept here rather than on the part, so a part restored from a snapshot (in memory, but never
    counted by this process) gives nothing back.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def hold(self, part: object, size: int) -> None:
        with self._lock:
            self._held[id(part)] = size

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size

    def release(self, part: object) -> None:
        self.give(self._held.pop(id(part), 0))


def install_parts_in_memory(limit: int = PART_MEMORY) -> PartBudget:
    """Multipart parts are transient, as S3's are: in memory while their upload is open, gone once it completes.

    moto spilled every part over 5 MiB to a temporary file and kept it beside the completed object
    for good: an 8.9 MiB part cost ~20 ms more, rising as the files piled up (bench/bench_client_push.py),
    and every multipart blob took twice its size. Parts now stay in memory up to `limit` bytes in all
    (past it they spill as before, so many large pushes at once cost disk, not memory) and are
    dropped when their upload completes; the object keeps only their count. A GET of one part of a
    completed object, which neither the registry nor its clients send, is no longer answered.
    """
    from moto.s3 import models

    original_set_part = models.FakeMultipart.set_part
    if getattr(original_set_part, "budget", None) is not None:
        return original_set_part.budget  # type: ignore[attr-defined,no-any-return]
    original_size = models.get_s3_default_key_buffer_size
    original_complete, original_abort = models.S3Backend.complete_multipart_upload, models.S3Backend.abort_multipart_upload
    budget, current = PartBudget(limit), threading.local()

    def buffer_size() -> int:
        return getattr(current, "size", None) or original_size()

    def set_part(self: Any, part_id: int, value: bytes) -> Any:
        _release(budget, [self.parts[part_id]] if part_id in self.parts else [])
        size = len(value)
        if size > PART_IN_MEMORY or not budget.take(size):
            return original_set_part(self, part_id, value)
        current.size = max(size + 1, original_size())
        try:
            key = original_set_part(self, part_id, value)
        except BaseException:
            budget.give(size)
            raise
        finally:
            current.size = None
        budget.hold(key, size)
        return key

    def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = original_complete(self, *args, **kwargs)
        if key is not None and key.multipart is not None:
            _drop_parts(budget, key.multipart)  # the object holds the bytes; its part list (the count) stays
        return key

    def abort_multipart_upload(self: Any, bucket_name: str, multipart_id: str) -> None:
        multipart = self.get_bucket(bucket_name).multiparts.get(multipart_id)
        original_abort(self, bucket_name, multipart_id)
        _drop_parts(budget, multipart)

    set_part.budget = budget  # type: ignore[attr-defined]
    models.FakeMultipart.set_part = set_part  # type: ignore[method-assign]
    models.S3Backend.complete_multipart_upload = complete_multipart_upload  # type: ignore[method-assign]
    models.S3Backend.abort_multipart_upload = abort_multipart_upload  # type: ignore[method-assign]
    models.get_s3_default_key_buffer_size = buffer_size
    return budget


def _drop_parts(budget: PartBudget, multipart: Any) -> None:
    parts = list(multipart.parts.values())
    multipart.parts = {}
    _release(budget, parts)


def _release(budget: PartBudget, parts: list[Any]) -> None:
    """Close parts' buffers (in memory or on disk) and give their memory back."""
    for part in parts:
        budget.release(part)
        part.dispose()


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    parser.add_argument("--data", default=None, help="Keep state in this directory (journal + bodies); in memory without it.")
    parser.add_argument("--compact", action="store_true", help="Compact the --data directory's journal and exit, serving nothing.")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop() asks politely; exit as moto's own server does
    install_item_rollback()
    install_partition_query()
    install_module_list_cache()
    install_fast_etags()
    install_parts_in_memory()
    from chalicelib.adapters.journal import JournalError

    inner: WsgiApp = DomainDispatcherApplication(create_backend_app)
    journal = _persistent(inner, args.data) if args.data is not None else None
    if args.compact:
        if journal is None:
            parser.error("--compact needs --data")
        try:
            journal.compact()
        except JournalError as error:
            print(f"motoserver: {error}", file=sys.stderr, flush=True)
            sys.exit(2)
        return
    app = Atomic(journal or inner)
    try:
        run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    finally:
        if journal is not None:
            journal.close()  # a clean stop leaves a snapshot, so the next start replays nothing, and compacts a grown journal


def _persistent(app: WsgiApp, directory: str) -> Journal:
    """Replay the directory's journal into the app, then journal its writes; a bad directory ends the process."""
    import time
    from pathlib import Path

    from chalicelib.adapters.journal import Journal, JournalError

    journal, started = Journal(app, Path(directory)), time.monotonic()
    try:
        count = journal.open()
    except JournalError as error:
        print(f"motoserver: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(f"motoserver: replayed {count} writes from {directory} in {time.monotonic() - started:.2f}s", file=sys.stderr, flush=True)
    return journal


if __name__ == "__main__":
    main()
