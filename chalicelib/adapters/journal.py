"""A write-ahead journal that makes the embedded moto emulator keep its state in a directory.

Every request that changes S3 or DynamoDB state, and succeeded, is appended to `journal.jsonl`
and fsynced before its response leaves the emulator; at start the journal is replayed, in order,
into a fresh moto. The journal stores HTTP requests (the AWS wire protocol), not moto's objects,
so a later moto or zotless can still read it. Format (version 2; version 1 is read too), one JSON object a line:

    {"format": "zotless-emulator-journal", "version": 2, "moto": "5.2.5"}    first line
    {"seq": 1, "time": 1764500000.0, "method": "PUT", "environ": {...},      one per write
     "credential": "AKID/20261130/us-east-1/s3/aws4_request",
     "body": "<base64>" | "file": "bodies/<name>", "upload_id": "..."}

`environ` holds the WSGI keys that address the request (path, query, content type, the HTTP_
headers except Authorization, the session token, dates and SDK noise); `credential` is the SigV4
scope (access key id, no secret) that tells moto which service and region; bodies over 64 KiB
are separate files under `bodies/`, fsynced before the line that names them; `upload_id` is the
id moto gave a CreateMultipartUpload, which the replay gives the new upload too (the registry
keeps those ids in DynamoDB). A torn last line (a crash mid-append) was never acknowledged and
is dropped at start.

Replaying costs what moto spends on each request (about 10 ms for a DynamoDB transaction), so
start-up reads a snapshot first and replays only the journal written after it. The snapshot,
`snapshot.pickle`, is a cache of moto's backends (taken at a clean stop, after a long replay, and
every SNAPSHOT_EVERY writes), with object bodies over 64 KiB kept as files under `objects/` and
read from there when asked for, so neither the snapshot nor start-up reads the blobs. It is
only used by the moto version that wrote it; any other, or a snapshot that does not load, means
a full replay of the journal, which stays the record.

Compaction (version 2) rewrites the journal from the state: its header gains `"compacted": {"seq": N}`
and its first lines are the writes that rebuild moto's state as of entry N (CreateBucket, PutObject,
CreateMultipartUpload + UploadPart, CreateTable, UpdateTimeToLive, BatchWriteItem), all numbered N, their
bodies hard links to the snapshot's objects/ files; new writes go on from N + 1. A version 1 reader
refuses such a journal (lines sharing a number), hence the version.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import logging
import os
import pickle
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

FORMAT = "zotless-emulator-journal"
VERSION = 2  # 2: a compacted journal starts with the state as of one entry, its lines all numbered as that entry
SNAPSHOT_VERSION = 1
COMPACTING = "journal.jsonl.compact"
COMPACT_LINES = 2.0  # a clean stop compacts when the journal has more than this many lines per live record
ITEMS_PER_BATCH = 25  # DynamoDB's limit for one BatchWriteItem: a compacted journal puts items 25 a line
COMPACT_BYTES = 0.25  # or when bodies not shared with live objects exceed this share of the live object bytes
JOURNAL = "journal.jsonl"
BODIES = "bodies"
SNAPSHOT = "snapshot.pickle"
SNAPSHOT_FORMAT = "zotless-emulator-snapshot"
OBJECTS = "objects"
SNAPSHOT_EVERY = 2000  # journal entries between snapshots at least: bounds the replay after a crash
SNAPSHOT_SHARE = 0.05  # and writes wait for snapshots at most this share of the time (they grow with the state)
REPLAY_SNAPSHOT = 1000  # a start that replayed more than this many entries takes a snapshot at once
INLINE_LIMIT = 64 * 1024
_ADDRESSING = ("PATH_INFO", "QUERY_STRING", "RAW_URI", "REQUEST_URI", "SCRIPT_NAME", "CONTENT_TYPE", "SERVER_NAME",
               "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme")
_DROPPED = {"HTTP_AUTHORIZATION", "HTTP_X_AMZ_SECURITY_TOKEN", "HTTP_X_AMZ_DATE", "HTTP_DATE", "HTTP_USER_AGENT",
            "HTTP_AMZ_SDK_INVOCATION_ID", "HTTP_AMZ_SDK_REQUEST", "HTTP_CONNECTION", "HTTP_EXPECT", "HTTP_COOKIE",
            "HTTP_TRANSFER_ENCODING", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"}
_READS = re.compile(r"^DynamoDB_\d+\.(Get|BatchGet|TransactGet|Query|Scan|Describe|List)")
_CREDENTIAL = re.compile(r"Credential=([^,\s]+)")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
logger = logging.getLogger("zotless.emulator")


class JournalError(RuntimeError):
    """The data directory cannot be used: another emulator holds it, or its journal is of an unknown format."""


def mutating(environ: dict[str, Any]) -> bool:
    """Writes change state and are journaled; reads (every GET/HEAD, DynamoDB's read actions) are not."""
    if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
        return False
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return not _READS.match(target)
    return environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE", "PATCH")


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    return stream.read() if environ.get("wsgi.input_terminated") else b""


class Journal:
    """WSGI middleware that appends each successful write to the journal before answering it."""

    def __init__(self, app: WsgiApp, directory: Path) -> None:
        self.app = app
        self.directory = directory
        self.bodies = directory / BODIES
        self.lock = threading.Lock()  # held from applying a write to journaling it: the journal's order is moto's
        self.seq = 0
        self.snapshot_seq = 0
        self.snapshotting = threading.Lock()
        self.next_snapshot = 0.0  # monotonic time before which no periodic snapshot starts
        self.file: BinaryIO | None = None
        self.lines = 0  # entries in the journal file, for deciding when to compact
        self.referenced: set[str] = set()  # the bodies/ files the journal names (not those of writes still in flight)
        self.access_key = "zotless"  # the access key id the journal's writes were signed with; compaction signs with it too

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.file is None or not mutating(environ):
            return self.app(environ, start_response)
        body = _read_body(environ)
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        stored = self._store(body) if len(body) > INLINE_LIMIT else None  # the slow part, outside the lock
        with self.lock:
            captured, answer = self._apply(environ, body, stored)
        if stored is not None and captured[0][:1] != "2":
            (self.directory / stored).unlink(missing_ok=True)
        start_response(*captured)
        due = self.seq - self.snapshot_seq >= SNAPSHOT_EVERY and time.monotonic() >= self.next_snapshot
        if due and not self.snapshotting.locked():
            threading.Thread(target=self.snapshot, name="emulator-snapshot", daemon=True).start()
        return [answer]

    def _apply(self, environ: dict[str, Any], body: bytes, stored: str | None) -> tuple[list[Any], bytes]:
        """Run the write, then journal it if it succeeded, under self.lock: a snapshot sees both or neither."""
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured[:] = [status, headers, exc_info]
            return lambda data: None

        result = self.app(environ, capture)
        try:
            answer = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if captured and captured[0][:1] == "2":
            self.append(environ, body, answer, stored)
        return captured, answer

    def append(self, environ: dict[str, Any], body: bytes, answer: bytes, stored: str | None) -> None:
        """Durable before returning: body file fsynced, then the line; failing to write ends the emulator."""
        try:
            entry = self._entry(environ, body, answer, stored)
            self.seq += 1
            entry["seq"] = self.seq
            assert self.file is not None
            self.file.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
            self.file.flush()
            os.fsync(self.file.fileno())
            self.lines += 1
            if stored is not None:
                self.referenced.add(stored)
        except Exception:  # the write is applied in memory but not durable: stop rather than diverge
            logger.exception("cannot append to the emulator's journal in %s; stopping", self.directory)
            sys.stderr.flush()
            os._exit(70)

    def _entry(self, environ: dict[str, Any], body: bytes, answer: bytes, stored: str | None) -> dict[str, Any]:
        kept = {k: v for k, v in environ.items() if (k in _ADDRESSING or k.startswith("HTTP_")) and k not in _DROPPED and isinstance(v, str)}
        entry: dict[str, Any] = {"time": round(time.time(), 3), "method": environ["REQUEST_METHOD"], "environ": kept}
        found = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        if found:
            entry["credential"] = found.group(1)
        if stored is not None:
            entry["file"] = stored
        elif body:
            entry["body"] = base64.b64encode(body).decode()
        if environ["REQUEST_METHOD"] == "POST" and "uploads" in str(environ.get("QUERY_STRING", "")).split("&"):
            upload = _UPLOAD_ID.search(answer)
            if upload:
                entry["upload_id"] = upload.group(1).decode()
        return entry

    def _store(self, body: bytes) -> str:
        name = f"{BODIES}/{uuid.uuid4().hex}"
        path = self.directory / name
        with path.open("wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        _fsync_directory(self.bodies)
        return name

    def open(self) -> int:
        """Lock the directory, replay what it holds into the app, then journal new writes; returns the count replayed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.bodies.mkdir(exist_ok=True)
        self._lock_directory()
        path = self.directory / JOURNAL
        (self.directory / COMPACTING).unlink(missing_ok=True)  # a compaction that did not finish: the journal before it stands
        self.seq = self.snapshot_seq = load_snapshot(self.directory)
        count, referenced = 0, set()
        with forced_upload_ids() as force:
            for entry in read_entries(path):
                referenced.add(entry.get("file"))
                self.lines += 1
                if "credential" in entry:
                    self.access_key = str(entry["credential"]).split("/", 1)[0]
                if entry["seq"] > self.snapshot_seq:
                    replay(self.app, entry, self.directory, force)
                    self.seq, count = entry["seq"], count + 1
        for body in self.bodies.iterdir():  # written just before a crash, never journaled
            if f"{BODIES}/{body.name}" not in referenced:
                body.unlink()
        self.referenced = {name for name in referenced if name}
        self.file = path.open("ab")
        if count > REPLAY_SNAPSHOT:
            self.snapshot()
        if self.file.tell() == 0:
            header = {"format": FORMAT, "version": VERSION, "moto": _moto_version(), "created": round(time.time(), 3)}
            self.file.write(json.dumps(header).encode() + b"\n")
            self.file.flush()
            os.fsync(self.file.fileno())
            _fsync_directory(self.directory)
        return count

    def snapshot(self) -> None:
        """Write a snapshot of moto's state as of the last journaled write; one at a time, writes wait meanwhile."""
        if self.file is None or not self.snapshotting.acquire(blocking=False):
            return
        try:
            with self.lock:
                if self.seq != self.snapshot_seq:
                    started = time.monotonic()
                    write_snapshot(self.directory, self.seq)
                    self.snapshot_seq = self.seq
                    took = time.monotonic() - started
                    self.next_snapshot = time.monotonic() + took / SNAPSHOT_SHARE
                    print(f"motoserver: snapshot at journal entry {self.seq} in {took:.2f}s", file=sys.stderr, flush=True)
        except Exception:  # a snapshot only saves replay time; the journal still holds everything
            logger.exception("cannot write a snapshot in %s; the journal is complete without it", self.directory)
        finally:
            self.snapshotting.release()

    def close(self) -> None:
        """At a clean stop: a snapshot, so the next start replays nothing, and a compaction if the record has outgrown the state."""
        self.snapshot()
        try:
            if self.file is not None and compaction_due(self.directory, self.lines, live_records()):
                self.compact()
        except Exception:  # the journal before it stands (the new one is renamed in only once complete)
            logger.exception("cannot compact the journal in %s; it is kept as it was", self.directory)

    def compact(self) -> int:
        """Rewrite the journal as the writes that make the current state; returns its lines. Writes wait meanwhile.

        Crash-safe: the new journal is written beside the old one, fsynced, then renamed over it; a
        snapshot as of the same entry is in place first, and bodies the old journal needed go last.
        """
        assert self.file is not None
        with self.lock:
            started = time.monotonic()
            if self.seq != self.snapshot_seq or not (self.directory / SNAPSHOT).exists():
                write_snapshot(self.directory, self.seq)
                self.snapshot_seq = self.seq
            writer = _CompactWriter(self.directory, self.seq, self.access_key)
            try:
                lines = write_compacted(self.directory, writer)
            except BaseException:  # the journal before it stands: what only this compaction wrote goes
                (self.directory / COMPACTING).unlink(missing_ok=True)
                for name in writer.kept:
                    (self.directory / name).unlink(missing_ok=True)
                raise
            self.file.close()
            os.replace(self.directory / COMPACTING, self.directory / JOURNAL)
            _fault("compact-renamed")
            _fsync_directory(self.directory)
            self.file = (self.directory / JOURNAL).open("ab")
            self.lines = lines
            for name in self.referenced - writer.kept:  # the old journal's bodies (live objects are linked from the new one)
                (self.directory / name).unlink(missing_ok=True)
            self.referenced = set(writer.kept)
            print(f"motoserver: compacted the journal to {lines} writes as of entry {self.seq} in {time.monotonic() - started:.2f}s",
                  file=sys.stderr, flush=True)
            return lines

    def _lock_directory(self) -> None:
        self._lockfile = (self.directory / "lock").open("a")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise JournalError(f"{self.directory} is in use by another zotless emulator") from error


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """The journal's entries in order; a torn last line is cut off the file, an unknown header refused."""
    if not path.exists():
        return
    with path.open("r+b") as file:
        good = 0
        for number, line in enumerate(iter(file.readline, b""), start=1):
            if not line.endswith(b"\n"):  # written without its end: the append never finished, nor its fsync
                logger.warning("dropping a torn last line from %s (a crash while it was written; never acknowledged)", path)
                file.truncate(good)
                file.flush()
                os.fsync(file.fileno())
                return
            try:
                entry = json.loads(line)
            except ValueError:
                raise JournalError(f"{path}: line {number} is not JSON") from None
            good += len(line)
            if number == 1:
                _check_header(path, entry)
            else:
                yield entry


def _fault(point: str) -> None:
    """Tests kill the process here (ZOTLESS_JOURNAL_FAULT=point) to check what a crash at that point leaves."""
    if os.environ.get("ZOTLESS_JOURNAL_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def live_records() -> tuple[int, int]:
    """How many writes a compacted journal holds (buckets, objects, parts, tables, items) and the object bytes over INLINE_LIMIT."""
    records, size = 0, 0
    for bucket in _s3_buckets():
        records += 1
        for key in _live_keys(bucket):
            records += 1
            size += key.contentsize if key.contentsize > INLINE_LIMIT else 0
        for upload in bucket.multiparts.values():
            records += 1 + len(upload.parts)
    for table in _dynamodb_tables():
        records += 2 + sum(len(v) if table.range_key_attr else 1 for v in table.items.values()) // ITEMS_PER_BATCH
    return records, size


def compaction_due(directory: Path, lines: int, live: tuple[int, int]) -> bool:
    """The journal has COMPACT_LINES lines per live record, or bodies/ holds COMPACT_BYTES of the live bytes in copies of its own."""
    records, live_bytes = live
    unshared = sum(st.st_size for st in (p.stat() for p in (directory / BODIES).iterdir()) if st.st_nlink == 1)
    return lines > COMPACT_LINES * max(records, 1) or unshared > COMPACT_BYTES * live_bytes


def _s3_buckets() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    found = []
    for account, partitions in s3_backends.items():
        for backend in partitions.values():
            if backend.buckets and account != DEFAULT_ACCOUNT_ID:
                raise JournalError(f"cannot compact: S3 state in account {account}, which a compacted journal cannot address")
            found.extend(backend.buckets[name] for name in sorted(backend.buckets))
    return found


def _dynamodb_tables() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    found = []
    for account, regions in dynamodb_backends.items():
        for region in sorted(regions):
            backend = regions[region]
            if backend.tables and account != DEFAULT_ACCOUNT_ID:
                raise JournalError(f"cannot compact: DynamoDB state in account {account}, which a compacted journal cannot address")
            found.extend(backend.tables[name] for name in sorted(backend.tables))
    return found


def _live_keys(bucket: Any) -> list[Any]:
    if getattr(bucket, "is_versioned", False):
        raise JournalError(f"cannot compact: bucket {bucket.name} is versioned (a compacted journal keeps one version a key)")
    return [bucket.keys[name] for name in sorted(bucket.keys.keys())]


def write_compacted(directory: Path, writer: _CompactWriter) -> int:
    """journal.jsonl.compact: a header, then the writes that rebuild moto's state, each numbered as the last entry; fsynced.

    Bodies over INLINE_LIMIT are hard links to the snapshot's objects/ files (one copy of the bytes on
    disk; writer.kept names them); returns the lines written.
    """
    header = {"format": FORMAT, "version": VERSION, "moto": _moto_version(), "created": round(time.time(), 3),
              "compacted": {"seq": writer.seq, "time": round(time.time(), 3)}}
    with (directory / COMPACTING).open("wb") as file:
        file.write(json.dumps(header).encode() + b"\n")
        for entry in writer.entries():
            file.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
            writer.lines += 1
            if writer.lines == 10:
                _fault("compact-writing")
        file.flush()
        os.fsync(file.fileno())
    _fsync_directory(directory / BODIES)
    _fault("compact-written")
    return writer.lines


class _CompactWriter:
    """Journal entries, in the wire protocol, for every bucket, object, upload, part, table and item moto holds."""

    def __init__(self, directory: Path, seq: int, access_key: str) -> None:
        self.directory = directory
        self.seq = seq
        self.access_key = access_key
        self.date = time.strftime("%Y%m%d", time.gmtime())
        self.lines = 0
        self.kept: set[str] = set()

    def entries(self) -> Iterator[dict[str, Any]]:
        for bucket in _s3_buckets():
            yield from self._bucket(bucket)
        for table in _dynamodb_tables():
            yield from self._table(table)

    def _entry(self, method: str, path: str, query: str, region: str, service: str, headers: dict[str, str],
               body: bytes | Any = b"") -> dict[str, Any]:
        from urllib.parse import quote

        raw = quote(path) + (f"?{query}" if query else "")
        environ = {"PATH_INFO": path, "QUERY_STRING": query, "RAW_URI": raw, "REQUEST_URI": raw, "SCRIPT_NAME": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "HTTP_HOST": "127.0.0.1"}
        for name, value in headers.items():
            if name.lower() == "content-type":
                environ["CONTENT_TYPE"] = value
            else:
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        entry: dict[str, Any] = {"seq": self.seq, "time": round(time.time(), 3), "method": method, "environ": environ,
                                 "credential": f"{self.access_key}/{self.date}/{region}/{service}/aws4_request"}
        if isinstance(body, bytes):
            if body:
                entry["body"] = base64.b64encode(body).decode()
        else:
            entry["file"] = self._link(body)
        return entry

    def _link(self, key: Any) -> str:
        """A bodies/ name for a key's bytes: a hard link to its snapshot file (the snapshot just wrote one for each)."""
        name = getattr(key, "_zotless_object", None)
        if name is None or not (self.directory / OBJECTS / name).exists():
            raise JournalError(f"cannot compact: the snapshot holds no file for {key.name}")
        linked = uuid.uuid4().hex
        os.link(self.directory / OBJECTS / name, self.directory / BODIES / linked)
        self.kept.add(f"{BODIES}/{linked}")
        return f"{BODIES}/{linked}"

    def _body(self, key: Any) -> bytes | Any:
        return key if key.contentsize > INLINE_LIMIT else key.value

    def _bucket(self, bucket: Any) -> Iterator[dict[str, Any]]:
        region = bucket.region_name
        config = b"" if region == "us-east-1" else (
            '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>").encode()
        yield self._entry("PUT", f"/{bucket.name}", "", region, "s3", {}, config)
        for key in _live_keys(bucket):
            yield self._entry("PUT", f"/{bucket.name}/{key.name}", "", region, "s3", _object_headers(key.metadata), self._body(key))
        for upload in bucket.multiparts.values():
            path = f"/{bucket.name}/{upload.key_name}"
            create = self._entry("POST", path, "uploads", region, "s3", _object_headers(upload.metadata, checksums=True))
            create["upload_id"] = upload.id
            yield create
            for number in sorted(upload.parts):
                part = upload.parts[number]
                headers = {}
                if part.checksum_algorithm and part.checksum_value:
                    headers = {"x-amz-sdk-checksum-algorithm": part.checksum_algorithm,
                               f"x-amz-checksum-{part.checksum_algorithm.lower()}": part.checksum_value}
                yield self._entry("PUT", path, f"partNumber={number}&uploadId={upload.id}", region, "s3", headers, self._body(part))

    def _table(self, table: Any) -> Iterator[dict[str, Any]]:
        definition: dict[str, Any] = {"TableName": table.name, "KeySchema": table.schema, "AttributeDefinitions": table.attr,
                                      "BillingMode": table.billing_mode or "PROVISIONED"}
        if definition["BillingMode"] == "PROVISIONED":
            definition["ProvisionedThroughput"] = {k: table.throughput[k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}
        if table.global_indexes:
            definition["GlobalSecondaryIndexes"] = [
                {"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection,
                 **({"ProvisionedThroughput": {k: i.throughput[k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}}
                    if definition["BillingMode"] == "PROVISIONED" else {})}
                for i in table.global_indexes]
        if table.indexes:
            definition["LocalSecondaryIndexes"] = [{"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection} for i in table.indexes]
        yield self._dynamodb(table, "CreateTable", definition)
        if table.ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and table.ttl.get("AttributeName"):
            yield self._dynamodb(table, "UpdateTimeToLive", {"TableName": table.name, "TimeToLiveSpecification": {
                "Enabled": True, "AttributeName": table.ttl["AttributeName"]}})
        batch: list[dict[str, Any]] = []
        for partition in table.items.values():
            for item in partition.values() if table.range_key_attr else [partition]:
                batch.append({"PutRequest": {"Item": item.to_json()["Attributes"]}})
                if len(batch) == ITEMS_PER_BATCH:
                    yield self._dynamodb(table, "BatchWriteItem", {"RequestItems": {table.name: batch}})
                    batch = []
        if batch:
            yield self._dynamodb(table, "BatchWriteItem", {"RequestItems": {table.name: batch}})

    def _dynamodb(self, table: Any, action: str, request: dict[str, Any]) -> dict[str, Any]:
        headers = {"X-Amz-Target": f"DynamoDB_20120810.{action}", "Content-Type": "application/x-amz-json-1.0"}
        return self._entry("POST", "/", "", table.region_name, "dynamodb", headers, json.dumps(request, default=_base64).encode())


def _base64(value: Any) -> str:
    """Binary attributes moto hands back decoded (inside maps and lists) go on the wire as base64, as the SDK sends them."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} in a DynamoDB item")


def _object_headers(metadata: Any, checksums: bool = False) -> dict[str, str]:
    """The headers a PutObject (or CreateMultipartUpload) sets the object's metadata with: content type, x-amz-meta-*."""
    kept = {}
    for name, value in metadata.items():
        lower = name.lower()
        if lower.startswith("x-amz-checksum") and not checksums:
            continue
        if lower in ("content-type", "content-encoding", "content-disposition", "content-language", "cache-control", "expires") \
                or lower.startswith(("x-amz-meta-", "x-amz-checksum")):
            kept[name] = str(value)
    return kept


def _check_header(path: Path, header: dict[str, Any]) -> None:
    if header.get("format") != FORMAT or not isinstance(header.get("version"), int) or header["version"] > VERSION:
        raise JournalError(f"{path}: not a {FORMAT} of version <= {VERSION} (header {header})")


def replay(app: WsgiApp, entry: dict[str, Any], directory: Path, force: Callable[[str | None], None]) -> None:
    """Apply one journaled write to the app again; it succeeded once on the same state, so it must again."""
    body = (directory / entry["file"]).read_bytes() if "file" in entry else base64.b64decode(entry.get("body", ""))
    environ: dict[str, Any] = {**entry["environ"], "REQUEST_METHOD": entry["method"], "CONTENT_LENGTH": str(len(body)),
                               "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
                               "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
                               "REMOTE_ADDR": "127.0.0.1"}
    environ.setdefault("wsgi.url_scheme", "http")
    environ.setdefault("SERVER_NAME", "127.0.0.1")
    environ.setdefault("SERVER_PORT", "80")
    if "credential" in entry:
        environ["HTTP_AUTHORIZATION"] = f"AWS4-HMAC-SHA256 Credential={entry['credential']}, SignedHeaders=host, Signature=0"
    statuses: list[str] = []
    force(entry.get("upload_id"))
    result = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(result)
    force(None)
    if not statuses or statuses[0][:1] != "2":
        logger.warning("journal entry %s replayed with %s: %s %s", entry.get("seq"), statuses[:1], entry["method"], entry["environ"].get("PATH_INFO"))


@contextmanager
def forced_upload_ids() -> Iterator[Callable[[str | None], None]]:
    """While replaying, a new multipart upload takes the id it had when it was first made."""
    from moto.s3.models import FakeMultipart

    original = FakeMultipart.__init__
    forced: list[str | None] = [None]

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if forced[0] is not None:
            self.id = forced[0]

    FakeMultipart.__init__ = init  # type: ignore[method-assign]
    try:
        yield lambda upload_id: forced.__setitem__(0, upload_id)
    finally:
        FakeMultipart.__init__ = original  # type: ignore[method-assign]


class LazyFile:
    """A snapshot object's body, read from its file when moto asks: restored keys cost no memory nor descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0
        self.closed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset if whence == 0 else self.position + offset if whence == 1 else self.path.stat().st_size + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed file")
        with self.path.open("rb") as file:
            file.seek(self.position)
            data = file.read(size)
        self.position += len(data)
        return data

    def close(self) -> None:
        self.closed = True


class _SnapshotPickler(pickle.Pickler):
    """Pickles moto's backends with every object body over INLINE_LIMIT kept as a file under objects/."""

    def __init__(self, file: BinaryIO, objects: Path) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.objects = objects
        self.kept: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        from moto.dynamodb.models.dynamo_type import LimitedSizeDict
        from moto.s3.models import FakeKey

        if type(obj) is LimitedSizeDict:  # an item's attributes: unpickled key by key, each insert re-sums the item
            return _restore_dict, (type(obj), dict(obj))
        if not isinstance(obj, FakeKey) or obj.contentsize <= INLINE_LIMIT or getattr(obj, "disposed", False):
            return NotImplemented
        name = getattr(obj, "_zotless_object", None)
        if name is None or not (self.objects / name).exists():
            name = self._write(obj)
            obj._zotless_object = name
        self.kept.add(name)
        state = {k: v for k, v in obj.__dict__.items() if k not in ("_value_buffer", "lock")}
        return _restore_key, (type(obj), state, name)

    def _write(self, key: Any) -> str:
        name = uuid.uuid4().hex
        with (self.objects / name).open("wb") as out, key.lock:
            key._value_buffer.seek(0)
            while block := key._value_buffer.read(16 << 20):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        return name


_UNUSABLE = (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError, ImportError, pickle.UnpicklingError)
_loading: list[Path] = []  # the objects/ directory of the snapshot being loaded


def _restore_dict(cls: type, items: dict[str, Any]) -> Any:
    restored = cls.__new__(cls)
    dict.update(restored, items)  # dict's own update: the subclass's size check ran when the item was written
    return restored


def _restore_key(cls: type, state: dict[str, Any], name: str) -> Any:
    key = cls.__new__(cls)
    key.__dict__.update(state)
    key._value_buffer = LazyFile(_loading[-1] / name)
    key.lock = threading.Lock()
    return key


def _backends() -> dict[str, Any]:
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends

    return {"s3": s3_backends, "dynamodb": dynamodb_backends}


def write_snapshot(directory: Path, seq: int) -> None:
    """snapshot.pickle as of journal entry `seq`: bodies first, then the pickle, renamed into place; stale bodies go."""
    objects = directory / OBJECTS
    objects.mkdir(exist_ok=True)
    state = {name: {account: dict(regions) for account, regions in backends.items()} for name, backends in _backends().items()}
    header = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "moto": _moto_version(), "seq": seq, "time": round(time.time(), 3)}
    temporary = directory / (SNAPSHOT + ".tmp")
    with temporary.open("wb") as file:
        pickler = _SnapshotPickler(file, objects)
        pickler.dump({**header, "backends": state})
        file.flush()
        os.fsync(file.fileno())
    _fsync_directory(objects)
    os.replace(temporary, directory / SNAPSHOT)
    _fsync_directory(directory)
    for path in objects.iterdir():
        if path.name not in pickler.kept:
            path.unlink()


def load_snapshot(directory: Path) -> int:
    """Install the snapshot's backends and return the journal entry it stands for; 0 (replay all) if unusable."""
    path = directory / SNAPSHOT
    if not path.exists():
        return 0
    _loading.append(directory / OBJECTS)
    try:
        with path.open("rb") as file:
            snapshot = pickle.load(file)
        if snapshot.get("format") != SNAPSHOT_FORMAT or snapshot.get("version") != SNAPSHOT_VERSION or snapshot.get("moto") != _moto_version():
            raise ValueError(f"snapshot of {snapshot.get('format')} {snapshot.get('version')} by moto {snapshot.get('moto')}")
    except _UNUSABLE as error:  # written by another moto or damaged: the journal alone rebuilds the state
        print(f"motoserver: ignoring {path} ({error}); replaying the whole journal", file=sys.stderr, flush=True)
        return 0
    finally:
        _loading.pop()
    for name, backends in _backends().items():
        for account, regions in snapshot["backends"][name].items():
            for region, backend in regions.items():
                backends[account][region] = backend
    return int(snapshot["seq"])


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _moto_version() -> str:
    import moto

    return str(getattr(moto, "__version__", "unknown"))
