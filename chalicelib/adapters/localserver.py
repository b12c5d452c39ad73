"""Threaded HTTP/1.1 adapter that feeds the framework-free core, streaming bodies both ways in bounded memory."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO, cast
from urllib.parse import parse_qs

from chalicelib.adapters import logs
from chalicelib.spec.http import Headers, Request, Response
from chalicelib.spec.numbers import ascii_int

logger = logging.getLogger("zotless.localserver")

Handler = Callable[[Request], Response]
DRAIN_LIMIT = 64 * 1024 * 1024
MAX_LINE = 8192
MAX_TRAILERS = 64
MAX_HEADERS = 100  # fields in one request's header section (431 beyond)
MAX_HEADER_BYTES = 64 * 1024  # the whole header section, request line excluded (431 beyond)
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BLANK = (b"\r\n", b"\n", b"")
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class BodyError(OSError):
    """The client sent a truncated or malformed body; the connection cannot be reused."""


class BodyReader(io.BufferedIOBase):
    """Blocking request-body stream: read(n) returns exactly n bytes until EOF, so consumers never see short parts."""

    def __init__(self, rfile: BinaryIO, on_first_read: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._rfile = rfile
        self._on_first_read = on_first_read
        self.eof = False
        self.failed = False

    def _read_some(self, size: int) -> bytes:
        """Return between 1 and size bytes, or b"" at end of body; subclasses implement the framing."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read1(1 << 20), b""))
        parts: list[bytes] = []
        while size > 0 and (data := self.read1(size)):
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        """One framed read; an I/O failure poisons the stream so framing is never parsed out of payload later."""
        if self._on_first_read is not None:
            send_continue, self._on_first_read = self._on_first_read, None
            send_continue()
        if self.failed:
            raise BodyError("request body already failed")
        if self.eof or size == 0:
            return b""
        try:
            return self._read_some(size if size > 0 else 1 << 16)
        except OSError:
            self.failed = True
            raise

    def drain(self, limit: int = DRAIN_LIMIT) -> bool:
        """Discard the unread rest so the connection can carry another request; False means close it instead."""
        skipped = 0
        try:
            while skipped <= limit and (data := self.read1(1 << 16)):
                skipped += len(data)
        except OSError:
            return False
        return self.eof

    def _take(self, size: int) -> bytes:
        data = self._rfile.read(size)
        if len(data) < size:
            raise BodyError("request body truncated")
        return data


class LengthReader(BodyReader):
    """Body framed by Content-Length."""

    def __init__(self, rfile: BinaryIO, length: int, on_first_read: Callable[[], None] | None = None) -> None:
        super().__init__(rfile, on_first_read if length else None)
        self.remaining = length
        self.eof = length == 0

    def _read_some(self, size: int) -> bytes:
        data = self._take(min(size, self.remaining))
        self.remaining -= len(data)
        self.eof = self.remaining == 0
        return data

    def drain(self, limit: int = DRAIN_LIMIT) -> bool:
        return self.remaining <= limit and super().drain(limit)


class ChunkedReader(BodyReader):
    """Body framed by Transfer-Encoding: chunked, decoded a chunk at a time; extensions and trailers are discarded."""

    def __init__(self, rfile: BinaryIO, on_first_read: Callable[[], None] | None = None) -> None:
        super().__init__(rfile, on_first_read)
        self._chunk_left = 0

    def _read_some(self, size: int) -> bytes:
        if self._chunk_left == 0:
            self._chunk_left = self._chunk_size()
            if self._chunk_left == 0:
                self._skip_trailers()
                self.eof = True
                return b""
        data = self._take(min(size, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and self._line() not in (b"\r\n", b"\n"):
            raise BodyError("chunk data not followed by CRLF")
        return data

    def _line(self) -> bytes:
        line = self._rfile.readline(MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise BodyError("chunk framing line truncated or too long")
        return line

    def _chunk_size(self) -> int:
        digits = self._line().split(b";", 1)[0].strip()
        if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
            raise BodyError("bad chunk size")
        return int(digits, 16)

    def _skip_trailers(self) -> None:
        for _ in range(MAX_TRAILERS):
            if self._line() in (b"\r\n", b"\n"):
                return
        raise BodyError("too many trailer fields")


class HeaderSection:
    """Stands in for rfile while http.client reads the header lines: enforces our limits and RFC 9112's field syntax.

    http.client would accept obsolete line folding and "Name : value" (a field nobody then finds by its
    name), which is how requests get smuggled past a proxy; the first such line is remembered as `problem`.
    """

    def __init__(self, rfile: BinaryIO) -> None:
        self._rfile = rfile
        self.size = 0
        self.fields = 0
        self.problem: str | None = None

    def readline(self, limit: int = -1) -> bytes:
        line = self._rfile.readline(limit)
        self.size += len(line)
        if self.size > MAX_HEADER_BYTES:
            raise http.client.HTTPException(f"header section over {MAX_HEADER_BYTES} bytes")
        if line not in _BLANK:
            self.fields += 1
            if self.fields > MAX_HEADERS:
                raise http.client.HTTPException(f"more than {MAX_HEADERS} header fields")
            self.problem = self.problem or _field_problem(line)
        return line


def _field_problem(line: bytes) -> str | None:
    """Why one header line is not `token ":" OWS value OWS CRLF`, or None when it is."""
    if line[:1] in (b" ", b"\t"):
        return "obsolete line folding in a header field"
    name, colon, value = line.partition(b":")
    if not colon or not name or not _TOKEN.issuperset(name):
        return "malformed header field name"
    if b"\0" in value or b"\r" in value.rstrip(b"\r\n"):
        return "NUL or bare CR in a header field value"
    return None


def _framing_problem(headers: Message) -> str | None:
    """RFC 9112 section 6: a body's length must be stated once, one way, in ASCII digits."""
    lengths, encodings = headers.get_all("Content-Length", []), headers.get_all("Transfer-Encoding", [])
    if len(lengths) > 1:
        return "more than one Content-Length field"
    if len(encodings) > 1:
        return "more than one Transfer-Encoding field"
    if lengths and encodings:
        return "both Content-Length and Transfer-Encoding sent"
    if lengths and ascii_int(lengths[0]) is None:
        return "invalid Content-Length"
    return None


class LocalServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that carries the core's handler and keeps client disconnects out of stderr."""

    def __init__(self, address: tuple[str, int], app: Handler) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        super().__init__(address, RequestHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Called for anything escaping a connection's handler; a vanished client is routine, not a traceback."""
        if isinstance(sys.exc_info()[1], _DISCONNECTS):
            logger.debug("client %s went away", client_address)
        else:
            logger.exception("unhandled error serving %s", client_address)


class RequestHandler(BaseHTTPRequestHandler):
    """Adapts one HTTP exchange to Request/Response; the core must consume the body inside handle(), not lazily."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300

    def handle_expect_100(self) -> bool:
        """Defer 100 Continue until the core reads the body (see _body_reader), so a rejected upload is never sent."""
        return True

    def _send_continue(self) -> None:
        self._continue_pending = False
        self.send_response_only(100)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: the base class would print raw request lines, which may carry tokens."""

    def handle_one_request(self) -> None:
        """A request starts with a method token; anything else (docker's TLS ClientHello) is refused at once.

        Waiting for a line end first could hang on binary input, and docker falls back to plain HTTP
        only when the answer starts with an HTTP status line.
        """
        try:
            first = self.rfile.peek(1)[:1]  # type: ignore[attr-defined]
        except TimeoutError:
            self.close_connection = True
            return
        if first and first[0] not in _TOKEN and first not in (b"\r", b"\n"):
            self.command, self.requestline = None, ""
            self.send_error(400, "not an HTTP/1.1 request: TLS sent to a plain-HTTP port?")
            return
        super().handle_one_request()

    def parse_request(self) -> bool:
        """The base class's parsing, with header limits and the framing checks that keep requests from being smuggled."""
        rfile, section = self.rfile, HeaderSection(cast(BinaryIO, self.rfile))
        self.rfile = cast(io.BufferedIOBase, section)
        try:
            parsed = super().parse_request()
        finally:
            self.rfile = rfile
        if not parsed:
            return False
        problem = section.problem or _framing_problem(self.headers)
        if problem is None and self.request_version == "HTTP/0.9":
            problem = "HTTP/0.9 requests are not supported"
        if problem is not None:
            self.send_error(400, problem)
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Refusals before the core runs: a status line whatever the client sent, the spec's JSON body, then close.

        The base class would answer a malformed request line with a bare HTML body (no status line);
        its messages quote the request line, which may carry a token, so only the part before it is kept.
        """
        reason = (message or self.responses.get(code, ("error",))[0]).split(" (", 1)[0]
        text = f"{reason}: {explain}" if explain and code == 431 else reason
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # else send_response_only writes no status line for an unparsed request
        self._sent, started = 0, time.monotonic()
        try:
            self._write_response(_error(code, "UNSUPPORTED", text, close=True))
        finally:
            method, path = self.command or "", (self.path or "").partition("?")[0] if self.command else ""
            fields = logs.request_fields(logs.new_request_id(), method, path, code, started, self.client_address[0], bytes=self._sent, refused=text)
            logger.warning("refused a request: %d %s", code, text, extra={"fields": fields})

    def _dispatch(self) -> None:
        started, request_id = time.monotonic(), logs.new_request_id()
        path, _, query = self.path.partition("?")
        reader = self._body_reader()
        if isinstance(reader, Response):
            response = reader
        else:
            request = Request(self.command, path, parse_qs(query, keep_blank_values=True), self._request_headers(),
                              cast(BinaryIO, reader), self.client_address[0])
            response = self._call_app(request, reader)
            if not reader.eof and (self._continue_pending or reader.failed or not reader.drain()):
                self.close_connection = True  # drained before responding: a client still sending must not deadlock us
        self._sent = 0
        try:
            self._write_response(response)
        finally:
            _close_iterable(response.body)
            elapsed = (time.monotonic() - started) * 1000
            fields = logs.request_fields(request_id, self.command, path, response.status, started, self.client_address[0], bytes=self._sent)
            logger.info("%s %s %d %.1fms %dB", self.command, path, response.status, elapsed, self._sent, extra={"fields": fields})

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def _request_headers(self) -> Headers:
        """Join repeated fields (Docker sends several Accept lines) with commas, as RFC 9110 allows."""
        names = dict.fromkeys(self.headers.keys())
        return Headers((name, ", ".join(self.headers.get_all(name, []))) for name in names)

    def _body_reader(self) -> BodyReader | Response:
        rfile = cast(BinaryIO, self.rfile)
        expect = self.headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1"
        self._continue_pending = expect
        on_first_read = self._send_continue if expect else None
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                return _error(501, "UNSUPPORTED", "only chunked transfer encoding is supported", close=True)
            return ChunkedReader(rfile, on_first_read)
        return LengthReader(rfile, ascii_int(self.headers.get("Content-Length")) or 0, on_first_read)  # checked in parse_request

    def _call_app(self, request: Request, reader: BodyReader) -> Response:
        try:
            return cast(LocalServer, self.server).app(request)
        except Exception:
            if reader.failed:  # the client broke off or mis-framed its body: a client error, no traceback
                logger.warning("request body broke off: %s %s", request.method, request.path)
                return _error(400, "BLOB_UPLOAD_INVALID", "request body was truncated or malformed", close=True)
            logger.exception("handler failed: %s %s", request.method, request.path)
            return _error(500, "UNKNOWN", "internal error")

    def _write_response(self, response: Response) -> None:
        headers, body = Headers(response.headers.items()), response.body
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        chunked = not isinstance(body, bytes) and "Content-Length" not in headers and not no_body
        if isinstance(body, bytes) and "Content-Length" not in headers and not no_body:
            headers["Content-Length"] = str(len(body))
        if chunked and self.request_version < "HTTP/1.1":
            chunked, self.close_connection = False, True  # HTTP/1.0: the body ends when the connection does
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        if self.close_connection:
            headers["Connection"] = "close"
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        for cookie in response.cookies:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        if not no_body:
            self._write_body([body] if isinstance(body, bytes) else body, chunked)

    def _write_body(self, body: Iterable[bytes], chunked: bool) -> None:
        try:
            for chunk in body:
                if chunk:  # an empty chunk would end a chunked body early
                    self.wfile.write(b"".join((b"%X\r\n" % len(chunk), chunk, b"\r\n")) if chunked else chunk)
                    self._sent += len(chunk)
        except _DISCONNECTS:
            raise
        except Exception:
            logger.exception("response body stream failed after %d bytes", self._sent)
            self.close_connection = True  # the client sees a truncated body rather than a wrong one
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def _error(status: int, code: str, message: str, close: bool = False) -> Response:
    headers = Headers({"Content-Type": "application/json"} | ({"Connection": "close"} if close else {}))
    return Response(status, headers, json.dumps({"errors": [{"code": code, "message": message}]}).encode())


def _close_iterable(body: object) -> None:
    """Release a streamed body's resources (e.g. an S3 stream) even on HEAD or a client disconnect."""
    if not isinstance(body, bytes) and callable(close := getattr(body, "close", None)):
        close()


def serve(handler: Handler, host: str, port: int) -> LocalServer:
    """Bind the server; the caller runs serve_forever() and owns shutdown."""
    return LocalServer((host, port), handler)


def start_in_thread(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serve in a daemon thread (for tests); stop with server.shutdown() then server.server_close()."""
    server = serve(handler, host, port)
    name = f"localserver-{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return server, thread
