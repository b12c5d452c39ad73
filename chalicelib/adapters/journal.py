"""A write-ahead journal that makes the embedded moto emulator keep its state in a directory.

Every request that changes S3 or DynamoDB state, and succeeded, is appended to `journal.jsonl`
and fsynced before its response leaves the emulator; at start the journal is replayed, in order,
into a fresh moto. The journal stores HTTP requests (the AWS wire protocol), not moto's objects,
so a later moto or zotless can still read it. Format (version 1), one JSON object a line:

    {"format": "zotless-emulator-journal", "version": 1, "moto": "5.2.5"}    first line
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
VERSION = 1
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
        self.seq = self.snapshot_seq = load_snapshot(self.directory)
        count, referenced = 0, set()
        with forced_upload_ids() as force:
            for entry in read_entries(path):
                referenced.add(entry.get("file"))
                if entry["seq"] > self.snapshot_seq:
                    replay(self.app, entry, self.directory, force)
                    self.seq, count = entry["seq"], count + 1
        for body in self.bodies.iterdir():  # written just before a crash, never journaled
            if f"{BODIES}/{body.name}" not in referenced:
                body.unlink()
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
    header = {"format": SNAPSHOT_FORMAT, "version": VERSION, "moto": _moto_version(), "seq": seq, "time": round(time.time(), 3)}
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
        if snapshot.get("format") != SNAPSHOT_FORMAT or snapshot.get("version") != VERSION or snapshot.get("moto") != _moto_version():
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
