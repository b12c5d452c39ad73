"""Blob upload sessions: bytes staged as an S3 multipart upload, state (hash included) in DynamoDB.

A PATCH through API Gateway carries at most ~4.5 MiB while S3 wants non-final parts of 5 MiB, so
short writes are kept as small "piece" objects and joined into a part once enough has arrived;
bytes that are already a part are never sent again. A piece's key is new for every write, so an
instance may keep the pieces it wrote (`RecentPieces`) and join them without reading them back.

Of two requests racing on one session exactly one proceeds. A streamed request first claims the
session with a conditional write (a lease, renewed while it streams). A chunk shorter than a part,
read whole, takes no lease: one save conditional on the offset it started at decides, and the part
it completes is written only after that save (`BlobWriter.take_chunk`, `SessionTable.advance`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from chalicelib.spec.errors import BlobUploadUnknown, DigestInvalid, RangeInvalid
from chalicelib.spec.references import Digest, ResumableHash
from chalicelib.storage.dynamo import Table
from chalicelib.storage.memory import UPLOAD_MEMORY, MemoryBudget
from chalicelib.storage.objectstore import ObjectStore, crc32_header

log = logging.getLogger("zotless.uploads")
MIN_PART = 5 << 20  # S3's smallest non-final part
PART_SIZE = 8 << 20
PARTS_IN_FLIGHT = 6
HELD_BACK = PART_SIZE + MIN_PART  # a part is sent only when a minimum part would still be left over
READ_BLOCK = 1 << 20  # a request body is read this much at a time, straight into the writer's buffer
UNBUDGETED_READ = 64 * 1024  # a body this short never waits for the memory budget (configs, small layers)
# What one writer holds outside its extra parts in flight: the buffer (staged bytes plus HELD_BACK) and one
# part copied out of it, or at the tail the buffer and its copy.
SEAT = HELD_BACK + MIN_PART + PART_SIZE
# Staged bytes kept inside the DynamoDB session item. Every session write (lease, save, commit's lease, delete) is
# billed per KB of the item, so beyond ~3 KB an S3 piece (one PUT, one GET) is cheaper: bench/bench_cost.py measured
# a 60 KiB blob's push at $129 per million inline against $22 through a piece, and a 3 KiB one at $22 either way.
INLINE_LIMIT = 3 * 1024
LEASE_SECONDS = 60  # a request that dies holding a session blocks its retries this long at most
RENEW_EVERY = LEASE_SECONDS / 3  # a request still streaming keeps its lease
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
FIXED_AT_CREATION = frozenset({"id", "repo", "algorithm", "created", "expires"})  # a save never rewrites these


@dataclass
class UploadSession:
    """Everything needed to resume an upload in another process; the hash state is raw bytes."""

    id: str
    repo: str
    algorithm: str = "sha256"
    offset: int = 0
    upload_id: str | None = None  # the S3 multipart upload, created when the first part is written
    parts: int = 0  # parts 1..parts are written; S3 lists their ETags and checksums at completion
    inline: bytes = b""  # a few staged bytes kept in the session item itself (configs, small layers)
    pieces: list[int] = field(default_factory=list)  # sizes of staged S3 pieces not yet joined into a part
    piece_ids: list[str] = field(default_factory=list)  # each piece's write id, part of its key (none in older sessions)
    hash_state: bytes = b""
    created: int = 0
    lease: str | None = None

    @classmethod
    def transient(cls, repo: str, algorithm: str) -> UploadSession:
        """A session for a single-request upload, never stored."""
        return cls(id=uuid.uuid4().hex, repo=repo, algorithm=algorithm, created=int(time.time()))

    def snapshot(self) -> UploadSession:
        """A copy a writer's changes cannot reach: its lists are its own."""
        return replace(self, pieces=list(self.pieces), piece_ids=list(self.piece_ids))

    @property
    def data_key(self) -> str:
        """Where the blob's bytes will live; fixed at creation so committing never copies."""
        return f"_data/{self.id}"

    @property
    def staged(self) -> int:
        return len(self.inline) + sum(self.pieces)

    def piece_keys(self) -> list[str]:
        start = self.offset - sum(self.pieces)
        keys = []
        ids = self.padded_piece_ids()
        for size, piece_id in zip(self.pieces, ids, strict=True):
            keys.append(piece_key(self.id, start, piece_id))
            start += size
        return keys

    def padded_piece_ids(self) -> list[str]:
        """One id per piece: pieces staged by a version without ids (the oldest ones) have an empty one."""
        return [""] * (len(self.pieces) - len(self.piece_ids)) + self.piece_ids


def piece_key(session_id: str, offset: int, piece_id: str = "") -> str:
    """Where a staged piece lives; sessions written before piece ids existed have none in their keys."""
    return f"_uploads/{session_id}/{offset:016d}" + (f"-{piece_id}" if piece_id else "")


class RecentPieces:
    """The pieces this instance staged lately, by key: the next chunk of the same upload joins them unread.

    Sound because a piece's key is never written twice; a miss (another instance staged it, or it was
    evicted) reads S3. Bounded, so a busy instance keeps only the newest few.
    """

    def __init__(self, limit_bytes: int = 16 << 20) -> None:
        self.limit_bytes = limit_bytes
        self._pieces: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def keep(self, key: str, data: bytes) -> None:
        if len(data) > self.limit_bytes:
            return
        with self._lock:
            self._pieces[key] = data
            self._size += len(data)
            while self._size > self.limit_bytes:
                self._size -= len(self._pieces.popitem(last=False)[1])

    def take(self, key: str) -> bytes | None:
        with self._lock:
            data = self._pieces.pop(key, None)
            self._size -= len(data or b"")
            return data


class RecentSessions:
    """The sessions this instance advanced last, so a client's next chunk needs no read.

    Sound because a session's state at an offset is unique: an entry is used only for a chunk starting
    where it ends, and the save that follows is conditional on the session still ending there.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._sessions: OrderedDict[str, UploadSession] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, session: UploadSession) -> None:
        snapshot = replace(session.snapshot(), lease=None)
        with self._lock:
            self._sessions[session.id] = snapshot
            self._sessions.move_to_end(session.id)
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)

    def take(self, repo: str, session_id: str, offset: int) -> UploadSession | None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        return session if session is not None and session.repo == repo and session.offset == offset else None


@dataclass(frozen=True)
class PendingPiece:
    """Staged bytes a chunk left, under a key no other write uses."""

    key: str
    data: bytes


@dataclass(frozen=True)
class PendingPart:
    """A part a chunk completed: numbered by the session save, written only once that save has won."""

    number: int
    data: bytes
    joined_pieces: list[str]
    checksum: Future[str]  # its CRC32, computed while the save runs


@dataclass(frozen=True)
class CommittedBlob:
    digest: Digest
    size: int
    data_key: str


class SessionTable:
    """Upload sessions in DynamoDB, with a TTL attribute so abandoned items expire on their own."""

    def __init__(self, table: Table, ttl_seconds: float) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds

    def create(self, repo: str, algorithm: str) -> UploadSession:
        session = UploadSession(id=uuid.uuid4().hex, repo=repo, algorithm=algorithm, created=int(time.time()))
        session.hash_state = ResumableHash(algorithm).state()
        self.table.put(self._item(session), condition="attribute_not_exists(id)")
        return session

    def get(self, repo: str, session_id: str) -> UploadSession:
        item = self.table.get(session_id) if _SESSION_ID.match(session_id) else None
        if item is None or item.get("repo") != repo:
            raise BlobUploadUnknown(detail={"session": session_id[:64]})
        return self._session(item)

    def claim(self, repo: str, session_id: str, expected_offset: int | None = None) -> UploadSession:
        """Take the session's lease in one conditional write; a missing session is 404, a busy or misplaced one 416."""
        if not _SESSION_ID.match(session_id):
            raise BlobUploadUnknown(detail={"session": session_id[:64]})
        now = int(time.time())
        condition = "attribute_exists(id) AND repo = :repo AND (attribute_not_exists(lease) OR lease_until < :now)"
        values: dict[str, object] = {":me": uuid.uuid4().hex, ":until": now + LEASE_SECONDS, ":now": now, ":repo": repo}
        names = None
        if expected_offset is not None:
            condition += " AND #offset = :offset"
            values[":offset"] = expected_offset
            names = {"#offset": "offset"}
        item = self.table.update((session_id, None), "SET lease = :me, lease_until = :until", values, condition, names)
        if item is None:
            current = self.get(repo, session_id)
            raise RangeInvalid("upload session busy or offset mismatch", headers=progress_headers(current))
        return self._session(item)

    def at_offset(self, repo: str, session_id: str, offset: int) -> UploadSession:
        """The session, read to append a chunk at offset (no lease taken): one ending elsewhere is 416."""
        session = self.get(repo, session_id)
        if session.offset != offset:
            raise RangeInvalid("upload session busy or offset mismatch", headers=progress_headers(session))
        return session

    def save(self, session: UploadSession) -> None:
        """Store the new state and release the lease, only if we still hold it."""
        update, names, values = self._state_update(session)
        if self.table.update((session.id, None), update, values | {":me": session.lease}, "lease = :me", names) is None:
            raise RangeInvalid("upload session was taken over by another request")

    def advance(self, session: UploadSession, from_offset: int) -> None:
        """Store the state a chunk made, only if the session still ends at from_offset and no request holds its lease.

        The state at an offset is unique (every save moves the offset on), so this one condition is the
        whole race: of two chunks at one offset exactly one advances the session.
        """
        update, names, values = self._state_update(session)
        values |= {":from": from_offset, ":repo": session.repo, ":now": int(time.time())}
        condition = "attribute_exists(id) AND repo = :repo AND #offset = :from AND (attribute_not_exists(lease) OR lease_until < :now)"
        if self.table.update((session.id, None), update, values, condition, names) is None:
            current = self.get(session.repo, session.id)
            raise RangeInvalid("upload session busy or offset mismatch", headers=progress_headers(current))

    def _state_update(self, session: UploadSession) -> tuple[str, dict[str, str], dict[str, object]]:
        """The update storing a request's new state and dropping any lease; what a request never changes stays as created."""
        item = {k: v for k, v in self._item(session).items() if v is not None and k not in FIXED_AT_CREATION and v != b""}
        names = {f"#{k}": k for k in item}
        values = {f":{k}": v for k, v in item.items()}
        assignments = ", ".join(f"#{k} = :{k}" for k in item)
        removals = " REMOVE lease, lease_until" + ("" if session.upload_id else ", upload_id") + ("" if session.inline else ", #inline")
        removals += "" if session.piece_ids else ", piece_ids"
        names.setdefault("#inline", "inline")
        return f"SET {assignments}{removals}", names, values

    @contextmanager
    def holding(self, session: UploadSession) -> Iterator[None]:
        """Renew the lease while a long request streams; a request killed mid-way lets it lapse within LEASE_SECONDS."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(RENEW_EVERY):
                values = {":me": session.lease, ":until": int(time.time()) + LEASE_SECONDS}
                try:
                    if self.table.update((session.id, None), "SET lease_until = :until", values, "lease = :me") is None:
                        return
                except Exception:
                    log.warning("could not renew the lease of upload %s", session.id, exc_info=True)

        renewer = threading.Thread(target=renew, name=f"lease-{session.id[:8]}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()

    def release(self, session: UploadSession) -> None:
        self.table.update((session.id, None), "REMOVE lease, lease_until", {":me": session.lease}, "lease = :me")

    def delete(self, session: UploadSession) -> None:
        self.table.delete(session.id)

    def expired(self, created_before: float) -> Iterator[UploadSession]:
        """Sessions older than the upload TTL (DynamoDB's TTL deletes items late, and never their S3 parts)."""
        for item in self.table.scan("created < :before", {":before": int(created_before)}):
            yield self._session(item)

    def exists(self, session_id: str) -> bool:
        """Whether a session still owns its multipart upload: GC aborts only uploads no session holds."""
        return _SESSION_ID.match(session_id) is not None and self.table.get(session_id) is not None

    def delete_if_idle(self, session: UploadSession) -> bool:
        """Remove an expired session unless a request holds its lease right now."""
        now = int(time.time())
        return self.table.delete(session.id, condition="attribute_not_exists(lease) OR lease_until < :now", values={":now": now})

    def _item(self, session: UploadSession) -> dict[str, object]:
        return {
            "id": session.id,
            "repo": session.repo,
            "algorithm": session.algorithm,
            "offset": session.offset,
            "upload_id": session.upload_id,
            "parts": session.parts,
            "inline": session.inline,
            "pieces": session.pieces,
            "piece_ids": session.piece_ids or None,
            "hash_state": session.hash_state,
            "created": session.created,
            "expires": session.created + int(self.ttl_seconds),
        }

    @staticmethod
    def _session(item: dict[str, object]) -> UploadSession:
        return UploadSession(
            id=str(item["id"]),
            repo=str(item["repo"]),
            algorithm=str(item.get("algorithm", "sha256")),
            offset=int(item.get("offset", 0)),  # type: ignore[arg-type]
            upload_id=item.get("upload_id"),  # type: ignore[arg-type]
            parts=int(item.get("parts", 0)),  # type: ignore[arg-type]
            inline=bytes(item.get("inline", b"")),  # type: ignore[arg-type]
            pieces=list(item.get("pieces", [])),  # type: ignore[call-overload]
            piece_ids=list(item.get("piece_ids", [])),  # type: ignore[call-overload]
            hash_state=bytes(item.get("hash_state", b"")),  # type: ignore[arg-type]
            created=int(item.get("created", 0)),  # type: ignore[arg-type]
            lease=item.get("lease"),  # type: ignore[arg-type]
        )


def progress_headers(session: UploadSession) -> dict[str, str]:
    """The Location and Range a client needs to resume: Range is inclusive, "0-0" when empty."""
    end = max(session.offset - 1, 0)
    return {
        "Location": f"/v2/{session.repo}/blobs/uploads/{session.id}",
        "Range": f"0-{end}",
        "Docker-Upload-UUID": session.id,
    }


_executor = ThreadPoolExecutor(max_workers=4 * PARTS_IN_FLIGHT, thread_name_prefix="upload-part")  # shared by concurrent uploads


class BlobWriter:
    """Appends a request body to a claimed session: hashes as it reads and keeps a few parts in flight.

    The last part of a request is held back until the body ends, so a tail shorter than S3's
    minimum joins it instead of becoming a piece: a streamed PATCH leaves nothing staged.

    Its memory comes from the process's budget (`UPLOAD_MEMORY`): a SEAT while it reads a body longer
    than UNBUDGETED_READ, and one part's worth for each further part it keeps in flight.
    """

    def __init__(self, store: ObjectStore, session: UploadSession, budget: MemoryBudget | None = None, recent: RecentPieces | None = None) -> None:
        self.store = store
        self.session = session
        self.recent = recent or RecentPieces(0)
        self.hasher = ResumableHash(session.algorithm, session.hash_state)
        self.budget = budget or UPLOAD_MEMORY
        self._in_flight: deque[Future[None]] = deque()
        self._seat_part: Future[None] | None = None  # the part in flight on the seat's own room

    def append(self, body: BinaryIO, final: bool = False) -> None:
        """Consume the whole body; on final, everything staged becomes the last part (or the whole blob)."""
        old_pieces = self.session.piece_keys()
        head = bytearray(self._read(body, UNBUDGETED_READ))
        if len(head) < UNBUDGETED_READ and not old_pieces:
            self._append(body, head, True, old_pieces, final)
            return
        self.budget.acquire(SEAT)
        try:
            at_end = len(head) < UNBUDGETED_READ or self._read_into(body, head, HELD_BACK - len(head))
            self._append(body, head, at_end, old_pieces, final)
        finally:
            self.budget.release(SEAT)

    def _append(self, body: BinaryIO, buffer: bytearray, at_end: bool, old_pieces: list[str], final: bool) -> None:
        if at_end and not final and self.session.staged + len(buffer) < MIN_PART:
            self._stage(bytes(buffer))
            self.session.hash_state = self.hasher.state()
            return
        buffer[0:0] = self._take_staged(old_pieces)
        removal = _executor.submit(self.store.delete, *old_pieces) if old_pieces else None  # beside the parts; a failed request ends the session anyway
        try:
            self._stream_parts(body, buffer, at_end)
            self._wait_for_parts()  # the tail's copy takes the room the parts in flight had
            self._place_rest(buffer, final)
        finally:
            self._wait_for_parts()
            self.session.hash_state = self.hasher.state()
            failure = removal.exception() if removal is not None else None
            if failure is not None:
                log.warning("could not delete the staged pieces of upload %s (GC removes them)", self.session.id, exc_info=failure)

    def _stream_parts(self, body: BinaryIO, buffer: bytearray, at_end: bool) -> None:
        """Send parts while reading on, always keeping at least one minimum part's worth back."""
        while True:
            while len(buffer) >= HELD_BACK:
                extra = self._make_room()
                with memoryview(buffer) as view:
                    part = bytes(view[:PART_SIZE])
                del buffer[:PART_SIZE]
                self._send_part(part, extra)
            if at_end:
                return
            at_end = self._read_into(body, buffer, HELD_BACK - len(buffer))

    def _read_into(self, body: BinaryIO, buffer: bytearray, size: int) -> bool:
        """Append up to size bytes to buffer, READ_BLOCK at a time so no large copy is joined; True at the body's end."""
        remaining = size
        while remaining > 0:
            block = body.read(min(remaining, READ_BLOCK))
            if not block:
                return True
            self.hasher.update(block)
            self.session.offset += len(block)
            buffer += block
            remaining -= len(block)
        return False

    def _place_rest(self, buffer: bytearray, final: bool) -> None:
        """The tail of a request: the whole blob, a part if S3 accepts one, or staged bytes to join later."""
        rest = bytes(buffer)
        buffer.clear()  # the copy replaces the buffer: the tail never costs more than two copies (the SEAT)
        if final and self.session.upload_id is None:
            if rest:
                self.store.put(self.session.data_key, rest)
        elif final or len(rest) >= MIN_PART:
            if rest:
                self._send_part(rest, self._make_room())
        else:
            self._stage(rest)

    def _read(self, body: BinaryIO, size: int) -> bytes:
        """Read up to size bytes (short only at the end of the body), hashing and counting them."""
        chunks: list[bytes] = []
        remaining = size
        while remaining > 0:
            chunk = body.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        self.hasher.update(data)
        self.session.offset += len(data)
        return data

    def take_chunk(self, data: bytes) -> Future[None] | PendingPart | None:
        """Fold a whole chunk shorter than a part into the session: a new piece's write, under way, or a part to write.

        A new piece is written beside the save that records it (its key is new), from before the chunk
        is hashed; a part is only numbered, its CRC32 computed beside that save, and `write_part`
        sends it once the save has won.
        """
        session = self.session
        joined = session.piece_keys()  # named from the offset the pieces end at, so before it moves on
        session.offset += len(data)
        if session.staged + len(data) < MIN_PART:
            writing = self.write_piece_beside(self._record_piece(data))
            self._hash(data)
            return writing
        part = self._take_staged(joined) + data
        checksum = _executor.submit(crc32_header, part)
        self._hash(data)
        if session.upload_id is None:
            session.upload_id = self.store.start_multipart(session.data_key)
        session.parts += 1
        return PendingPart(session.parts, part, joined, checksum)

    def _hash(self, data: bytes) -> None:
        self.hasher.update(data)
        self.session.hash_state = self.hasher.state()

    def write_part(self, pending: PendingPart) -> None:
        """Send a part the save numbered; the pieces it joined go beside it."""
        assert self.session.upload_id is not None
        removal = _executor.submit(self.store.delete, *pending.joined_pieces) if pending.joined_pieces else None
        self.store.put_part(self.session.data_key, self.session.upload_id, pending.number, pending.data, pending.checksum.result())
        failure = removal.exception() if removal is not None else None
        if failure is not None:
            log.warning("could not delete the staged pieces of upload %s (GC removes them)", self.session.id, exc_info=failure)

    def drop_unsaved(self, saved: UploadSession) -> None:
        """Remove what take_chunk wrote for a save that lost: its new piece, or a multipart upload it started."""
        if self.session.upload_id and self.session.upload_id != saved.upload_id:
            self.store.abort_multipart(self.session.data_key, self.session.upload_id)
        kept = set(saved.piece_keys())
        stray = [key for key in self.session.piece_keys() if key not in kept]
        if stray:
            self.store.delete(*stray)

    def commit(self, expected: Digest) -> CommittedBlob:
        """Turn the staged bytes into the blob object; the digest must match what was hashed."""
        session = self.session
        if session.upload_id:
            self.store.complete_multipart(session.data_key, session.upload_id, session.parts)
        elif session.offset == 0:
            self.store.put(session.data_key, b"")
        actual = self.hasher.digest() if expected.algorithm == session.algorithm else self._rehash(expected.algorithm)
        if actual != expected:
            self.store.delete(session.data_key)
            raise DigestInvalid(detail={"expected": str(expected), "actual": str(actual)})
        return CommittedBlob(expected, session.offset, session.data_key)

    def discard(self) -> None:
        """Drop everything the session staged: the multipart upload and any pieces."""
        if self.session.upload_id:
            self.store.abort_multipart(self.session.data_key, self.session.upload_id)
        keys = self.session.piece_keys()
        if keys:
            self.store.delete(*keys)

    def _take_staged(self, keys: list[str]) -> bytes:
        """Everything staged so far, to lead the next part; the caller deletes the piece objects."""
        joined = self.session.inline + b"".join(self.recent.take(key) or self.store.get(key) or b"" for key in keys)
        if len(joined) != self.session.staged:
            raise BlobUploadUnknown("staged upload data is missing")
        self.session.inline, self.session.pieces, self.session.piece_ids = b"", [], []
        return joined

    def _stage(self, data: bytes) -> None:
        """Keep a short write: inline in the session while tiny, else as its own S3 object."""
        piece = self._record_piece(data)
        if piece is not None:
            self.write_piece(piece)

    def _record_piece(self, data: bytes) -> PendingPiece | None:
        """Add a short write to the session's staged bytes; the piece to write, unless it fits inline."""
        session = self.session
        if not data:
            return None
        if not session.pieces and len(session.inline) + len(data) <= INLINE_LIMIT:
            session.inline += data
            return None
        data, session.inline = session.inline + data, b""
        piece_id = uuid.uuid4().hex[:16]
        session.piece_ids = [*session.padded_piece_ids(), piece_id]
        session.pieces.append(len(data))
        return PendingPiece(piece_key(session.id, session.offset - len(data), piece_id), data)

    def write_piece(self, piece: PendingPiece) -> None:
        self.store.put(piece.key, piece.data)
        self.recent.keep(piece.key, piece.data)

    def write_piece_beside(self, piece: PendingPiece | None) -> Future[None] | None:
        """Start writing a new piece while the save that records it runs: its key is new, so neither waits for the other."""
        return _executor.submit(self.write_piece, piece) if piece is not None else None

    def _make_room(self) -> bool:
        """Room for one more part: the seat's own once its part is done (False), a part's worth from the budget (True), or wait for the oldest."""
        while True:
            if self._seat_part is None or self._seat_part.done():
                return False
            if len(self._in_flight) < PARTS_IN_FLIGHT and self.budget.try_acquire(PART_SIZE):
                return True
            self._in_flight.popleft().result()

    def _send_part(self, data: bytes, extra: bool) -> None:
        """extra: the part's room came from the budget, which gets it back when the part settles."""
        try:
            if self.session.upload_id is None:
                self.session.upload_id = self.store.start_multipart(self.session.data_key)
            self.session.parts += 1
            future = _executor.submit(self.store.put_part, self.session.data_key, self.session.upload_id, self.session.parts, data)
        except BaseException:
            if extra:
                self.budget.release(PART_SIZE)
            raise
        if extra:
            future.add_done_callback(lambda _: self.budget.release(PART_SIZE))
        else:
            self._seat_part = future
        self._in_flight.append(future)

    def _wait_for_parts(self) -> None:
        """Let every part in flight settle; the first failure is raised after all have."""
        failure: BaseException | None = None
        while self._in_flight:
            try:
                self._in_flight.popleft().result()
            except Exception as exc:  # noqa: BLE001 - re-raised below once nothing is left running
                failure = failure or exc
        if failure:
            raise failure

    def _rehash(self, algorithm: str) -> Digest:
        """Rare path: the client never said which algorithm it would use, so read the blob once."""
        hasher = ResumableHash(algorithm)
        for chunk in self.store.stream(self.session.data_key):
            hasher.update(chunk)
        return hasher.digest()
