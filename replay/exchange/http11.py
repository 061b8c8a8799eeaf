"""A small HTTP/1.1 server on an asyncio Protocol, for the simulator's REST API.

Why not aiohttp's application server: under order load it spent about half of the simulator's
time in its own request, routing, middleware and response machinery, more than the venue logic
it served (py-spy under the venue benchmark). A venue API needs little of it: requests with a
Content-Length body, keep-alive, pipelining, JSON answers. This server does exactly that and
refuses the rest with a clear status: a malformed request line or header (400), a chunked or
oversized body (411, 413), an oversized head (431), an unsupported version (505); a request
whose framing is ambiguous (two Content-Lengths, Content-Length with Transfer-Encoding, a folded
or malformed header line, a control character in a header) gets a 400, and the connection is
closed after any of these refusals. Each connection answers its requests in order, one at a time
(HTTP/1.1 pipelining semantics).

Every resource a client can make it hold is bounded (`ServerLimits`, docs/limits.md): the
connections open at once (more are answered 503 and closed), the time a request may take to
arrive whole (408 and closed), the time a keep-alive connection may sit idle (closed), the bytes
of a head and of a body, and what a client that pipelines without reading its replies holds
(requests and bytes framed ahead of their answers).

A handler returns a Reply, or an awaitable of one when it has to wait. A Reply is written at
once, from the socket's read callback: no task and no extra turn of the event loop for a request
that needs none (the venue answers nearly all of them so). The first awaitable hands the rest of
the connection's queue to a worker task, which keeps the order.

    Reply            what a handler returns: status, body, content type, extra headers
    HttpRequest      method, path, query, query_string, headers (case-insensitive), read()
    HttpProtocol     one connection: parse, hand to the handler, write the replies
    HttpServer       the listening socket and its connections; serve() starts one
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast, overload
from urllib.parse import parse_qsl, unquote

try:
    from replay.exchange import _http_head
except ImportError:  # not built (pip install -e .): the Python definition serves alone
    _http_head = None  # type: ignore[assignment]

__all__ = ["Headers", "HttpProtocol", "HttpRequest", "HttpServer", "Reply", "ServerLimits", "serve"]

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
"""A Binance request's body is a form of a few hundred bytes; 64 KiB is far above any."""
READ_CHUNK_BYTES = 16 * 1024
"""Bytes read from the socket at a time, into the connection's own buffer."""
MAX_PIPELINED = 64
"""Requests framed ahead of their answers on one connection. Past it the connection stops
reading (TCP pushes back on the client) until half of them are answered: a client that pipelines
without reading its replies holds a bounded amount of our memory (this many requests, plus one
socket read in the buffer)."""
MAX_PIPELINED_BYTES = 256 * 1024
"""The same bound in bytes (heads and bodies of the requests framed ahead of their answers)."""
_SINGLE_HEADERS = ("content-length", "transfer-encoding", "host")
"""Headers that may appear once: two of them make the request's framing or target ambiguous."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FIELD_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters other than HTAB: never in a header line (a bare CR or LF among them)."""


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """What one server lets its clients hold (docs/limits.md)."""

    max_connections: int = 256
    """Connections open at once; the next is answered 503 and closed."""
    head_timeout_s: float = 10.0
    """A request, head and body, must arrive whole within this of its first byte (408)."""
    idle_timeout_s: float = 20.0
    """A keep-alive connection with nothing to answer and nothing arriving is closed after this
    (a new connection that sends nothing too). Above the 15 s for which aiohttp's client (ccxt's)
    keeps an idle connection, so that a client reusing one never races our close."""
    max_head_bytes: int = MAX_HEAD_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    max_pipelined: int = MAX_PIPELINED
    max_pipelined_bytes: int = MAX_PIPELINED_BYTES

    def sweep_interval_s(self) -> float:
        """How often the server looks for connections past a deadline: deadlines hold to
        within this."""
        return max(0.05, min(1.0, self.head_timeout_s / 4, self.idle_timeout_s / 4))


_REASONS = {status.value: status.phrase for status in HTTPStatus}
_INTERNAL_ERROR = b'{"code":-1000,"msg":"An unknown error occurred while processing the request."}'


class Reply:
    """A response: `body` is sent as is, with `content_type` and `headers`."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers if headers is not None else {}

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Headers:
    """Request headers, looked up case-insensitively."""

    __slots__ = ("_by_name",)

    def __init__(self, by_name: dict[str, str] | None = None) -> None:
        """`by_name`, when given, is taken as is: its names must already be lower-case."""
        self._by_name: dict[str, str] = {} if by_name is None else by_name

    def add(self, name: str, value: str) -> None:
        self._by_name[name.lower()] = value

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()]

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._by_name.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def items(self) -> list[tuple[str, str]]:
        return list(self._by_name.items())


class HttpRequest:
    __slots__ = (
        "_query",
        "body",
        "headers",
        "method",
        "path",
        "peer",
        "query_string",
        "remote",
        "size",
        "transport",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Headers,
        body: bytes,
        transport: asyncio.Transport | None,
        remote: str | None = None,
        peer: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self._query: dict[str, str] | None = None
        self.transport = transport
        self.remote = remote
        """The peer's IP address (None when unknown)."""
        self.peer = peer
        """The peer's `ip:port`: which TCP connection the request came on (None when unknown)."""
        self.size = 0
        """Bytes the request took on the wire (head and body), once framed."""

    @property
    def query(self) -> dict[str, str]:
        """Decoded query parameters; a repeated name keeps its first value."""
        if self._query is None:
            query: dict[str, str] = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                query.setdefault(name, value)
            self._query = query
        return self._query


Handler = Callable[[HttpRequest], "Reply | Awaitable[Reply]"]
"""Answers a request: a Reply now, or an awaitable of one."""


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_head(head: bytes) -> tuple[str, str, str, Headers, bool]:
    """parse_head_py, in C when built and the head is one it is sure about (ASCII and well
    formed: every request ccxt or a load client sends)."""
    if _http_head is not None:
        parsed = _http_head.parse(head)
        if parsed is not None:
            method, path, query_string, by_name, keep_alive = parsed
            return method, path, query_string, Headers(by_name), keep_alive
    return parse_head_py(head)


def parse_head_py(head: bytes) -> tuple[str, str, str, Headers, bool]:
    """(method, path, query string, headers, keep-alive) of a request head without its blank
    line; BadRequest when it is not one this server serves."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise BadRequest(400, "undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505, f"unsupported HTTP version {version[:16]!r}")
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        # a name is a token: no space before the colon, no folded (obs-fold) continuation line
        if not colon or not _TOKEN.match(name) or _FIELD_CTL.search(value):
            raise BadRequest(400, "malformed header line")
        if name.lower() in _SINGLE_HEADERS and name in headers:
            raise BadRequest(400, f"more than one {name} header")
        headers.add(name, value.strip(" \t"))
    path, _, query_string = target.partition("?")
    if "%" in path:
        path = unquote(path)
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return method.upper(), path, query_string, headers, keep_alive


def encode_reply(reply: Reply, *, keep_alive: bool) -> bytes:
    reason = _REASONS.get(reply.status, "Unknown")
    lines = [f"HTTP/1.1 {reply.status} {reason}\r\n"]
    if reply.body or reply.content_type:
        lines.append(f"Content-Type: {reply.content_type}\r\n")
    for name, value in reply.headers.items():
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {len(reply.body)}\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + reply.body


class HttpProtocol(asyncio.BufferedProtocol):
    """One connection. Requests are parsed as bytes arrive and answered in arrival order, at
    once when their answers are ready, else by a worker task that lives while there is
    something to answer; the connection owns it and cancels it when the peer goes away.

    Bytes are read into one buffer the connection keeps (a BufferedProtocol): a plain Protocol
    gets a fresh 256 KiB bytes object per read from asyncio, which glibc serves with mmap,
    shrinks with mremap and frees with munmap: three syscalls and a page fault per read, which
    cost more than the read itself (docs/benchmarks.md)."""

    def __init__(
        self,
        handler: Handler,
        connections: set[HttpProtocol] | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self._handler = handler
        self._connections = connections if connections is not None else set()
        self._limits = limits = limits or ServerLimits()
        self._max_pipelined = limits.max_pipelined
        self._max_pipelined_bytes = limits.max_pipelined_bytes
        self._pending_bytes = 0
        self.refused = False
        """Over the server's connection cap: answered 503 and closed."""
        # counters the server's sweeper reads to find a connection past a deadline: the hot
        # path only counts, it never reads a clock
        self.reads = 0
        self.framed = 0
        self.drained = 0
        self._transport: asyncio.Transport | None = None
        self._remote: str | None = None
        self._peer: str | None = None
        self._buffer = bytearray()
        self._read_view = memoryview(bytearray(READ_CHUNK_BYTES))
        self._pending: deque[tuple[HttpRequest | BadRequest, bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._answering = False
        self._reading_paused = False
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; uvloop's is not a subclass of asyncio.Transport
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        if len(self._connections) >= self._limits.max_connections:
            self.refused = True
            self._closing = True
            transport.write(
                encode_reply(
                    Reply(
                        b"too many connections",
                        status=503,
                        content_type="text/plain",
                        headers={"Retry-After": "1"},
                    ),
                    keep_alive=False,
                )
            )
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if peer else None
        self._peer = f"{peer[0]}:{peer[1]}" if peer else None
        self._connections.add(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self.drained += 1
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._writable.set()
        self._closing = True
        self._pending.clear()
        self._buffer = bytearray()  # what a half-sent request held goes with the connection
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._transport = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        if self._closing:
            return
        self.reads += 1
        self._buffer += self._read_view[:nbytes]
        self._frame()
        if self._pending and not self._answering and (self._worker is None or self._worker.done()):
            self._answer_now()

    def _frame(self) -> None:
        """Frame what is buffered, up to max_pipelined waiting requests (or max_pipelined_bytes
        of them); past that, stop reading (what stays buffered is framed as answers go out)."""
        while not self._closing and not self._backlog_full():
            parsed = self._next_request()
            if parsed is None:
                break
            self._pending.append(parsed)
            self.framed += 1
            request = parsed[0]
            if isinstance(request, BadRequest):
                self._closing = True  # nothing after a request we could not frame is trusted
            else:
                self._pending_bytes += request.size
        full = self._backlog_full()
        if full != self._reading_paused and self._transport is not None and not self._closing:
            if full:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()
            self._reading_paused = full

    def _backlog_full(self) -> bool:
        return (
            len(self._pending) >= self._max_pipelined
            or self._pending_bytes >= self._max_pipelined_bytes
        )

    def _next_request(self) -> tuple[HttpRequest | BadRequest, bool] | None:
        buffer = self._buffer
        max_head = self._limits.max_head_bytes
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > max_head:
                return BadRequest(431, "request head too large"), False
            return None
        if end > max_head:
            return BadRequest(431, "request head too large"), False
        try:
            method, path, query_string, headers, keep_alive = parse_head(bytes(buffer[:end]))
            length = self._body_length(headers)
        except BadRequest as exc:
            return exc, False
        total = end + 4 + length
        if len(buffer) < total:
            return None
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        request = HttpRequest(
            method, path, query_string, headers, body, self._transport, self._remote, self._peer
        )
        request.size = total
        return request, keep_alive

    def _body_length(self, headers: Headers) -> int:
        """The body's length from Content-Length; BadRequest for a framing we refuse."""
        raw_length = headers.get("content-length")
        if "transfer-encoding" in headers:
            if raw_length is not None:  # which one frames the body? (request smuggling)
                raise BadRequest(400, "both Content-Length and Transfer-Encoding")
            raise BadRequest(411, "chunked bodies are not supported: send Content-Length")
        if raw_length is None:
            return 0
        if not (raw_length.isascii() and raw_length.isdigit()):  # "²".isdigit() is True
            raise BadRequest(400, "malformed Content-Length")
        if len(raw_length) > 18:  # int() would read thousands of digits, slowly, to refuse it
            raise BadRequest(413, "request body too large")
        length = int(raw_length)
        if length > self._limits.max_body_bytes:
            raise BadRequest(413, "request body too large")
        return length

    def _take(self) -> tuple[HttpRequest | BadRequest, bool]:
        taken = self._pending.popleft()
        request = taken[0]
        if not isinstance(request, BadRequest):
            self._pending_bytes -= request.size
        if self._reading_paused and (
            len(self._pending) <= self._max_pipelined // 2
            and self._pending_bytes <= self._max_pipelined_bytes // 2
        ):
            self._frame()
        return taken

    # --- deadlines (read by the server's sweeper) ---------------------------------------------

    def phase(self) -> str:
        """ "stalled" (the client does not read its replies), "busy" (requests being answered,
        or reading paused on a backlog), "head" (part of a request has arrived) or "idle"
        (nothing to answer, nothing arriving)."""
        if not self._writable.is_set():
            return "stalled"
        if self._pending or self._answering or self._reading_paused:
            return "busy"
        if self._worker is not None and not self._worker.done():
            return "busy"
        return "head" if self._buffer else "idle"

    def expire(self, phase: str) -> None:
        """A deadline passed: a request still arriving gets a 408; an idle connection closes; a
        client that stopped reading its replies is cut (nothing more can be written to it)."""
        transport = self._transport
        if transport is None:
            return
        if phase == "stalled":
            transport.abort()
            return
        if self._closing:
            return
        self._closing = True
        if phase == "head":
            late = Reply(b"request not received in time", status=408, content_type="text/plain")
            transport.write(encode_reply(late, keep_alive=False))
        self._buffer = bytearray()
        transport.close()

    def _reply_to(self, request: HttpRequest | BadRequest) -> Reply | Awaitable[Reply]:
        if isinstance(request, BadRequest):
            return Reply(request.message.encode(), status=request.status, content_type="text/plain")
        try:
            return self._handler(request)
        except Exception:  # a bug in a handler: answer, log, keep serving
            log.exception("http handler failed", extra={"path": request.path})
            return Reply(_INTERNAL_ERROR, status=500)

    async def _settle(self, request: HttpRequest | BadRequest, pending: Awaitable[Reply]) -> Reply:
        try:
            return await pending
        except Exception:  # a bug in a handler: answer, log, keep serving
            path = request.path if isinstance(request, HttpRequest) else ""
            log.exception("http handler failed", extra={"path": path})
            return Reply(_INTERNAL_ERROR, status=500)

    def _send(self, reply: Reply, keep_alive: bool) -> bool:
        """Write a reply; False when the connection is done (gone, or closed after it)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        try:
            data = encode_reply(reply, keep_alive=keep_alive)
        except Exception:  # a reply we cannot put on the wire (a bug): answer 500, keep serving
            log.exception("http reply could not be encoded", extra={"status": reply.status})
            data = encode_reply(Reply(_INTERNAL_ERROR, status=500), keep_alive=keep_alive)
        transport.write(data)
        if not keep_alive:
            self._closing = True
            self._pending.clear()
            transport.close()
            return False
        return True

    def _answer_now(self) -> None:
        """Answer from the read callback; what cannot be answered at once goes to a worker."""
        stalled = self._drain()
        if not isinstance(stalled, _Done):
            self._worker = asyncio.get_running_loop().create_task(self._answer(stalled))
            self._worker.add_done_callback(_log_failure)

    def _drain(self) -> _Waiting | _Done | None:
        """Answer the queue while every answer is ready. Returns _DONE when the queue is empty
        or the connection is done, the first answer that has to wait, or None when the client
        stopped reading (the write buffer is full)."""
        self._answering = True  # a resumed read inside _take frames, and must not recurse here
        try:
            while self._pending:
                request, keep_alive = self._take()
                outcome = self._reply_to(request)
                if not isinstance(outcome, Reply):
                    return request, outcome, keep_alive
                if not self._send(outcome, keep_alive):
                    return _DONE
                if not self._writable.is_set():
                    return None
            return _DONE
        finally:
            self._answering = False

    async def _answer(self, stalled: _Waiting | _Done | None) -> None:
        """The worker: wait for what held the queue up, then answer on as _drain does."""
        while not isinstance(stalled, _Done):
            if stalled is not None:
                request, pending, keep_alive = stalled
                if not self._send(await self._settle(request, pending), keep_alive):
                    return
            if not self._writable.is_set():  # the client is not reading: wait for it
                await self._writable.wait()
            stalled = self._drain()


class _Done:
    """The queue is answered, or the connection is done."""


_DONE = _Done()


_Waiting = tuple["HttpRequest | BadRequest", Awaitable[Reply], bool]
"""A request whose answer is not ready yet, that answer, and whether to keep the connection."""


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("http connection worker failed", exc_info=task.exception())


class HttpServer:
    """A listening server and the connections it accepted. A sweeper task closes connections
    past their deadlines (ServerLimits.head_timeout_s, idle_timeout_s), to within
    `sweep_interval_s()`."""

    def __init__(self, limits: ServerLimits | None = None) -> None:
        self.limits = limits or ServerLimits()
        self.connections: set[HttpProtocol] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._marks: dict[HttpProtocol, tuple[str, int, float]] = {}
        self.expired = {"head": 0, "idle": 0, "stalled": 0}
        """Connections closed at a deadline, by phase (for /status and tests)."""

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, handler: Handler, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        limits = self.limits
        self._server = await loop.create_server(
            lambda: HttpProtocol(handler, self.connections, limits),
            host,
            port,
            reuse_address=True,
        )
        self._sweeper = loop.create_task(self._sweep(), name="http-deadlines")

    async def _sweep(self) -> None:
        interval = self.limits.sweep_interval_s()
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Close the connections past a deadline. A connection's clock starts when it is first
        seen in a phase, and restarts when that phase saw progress since: for "idle", any
        read; for "head", a request completed (bytes that trickle in do not count); for
        "stalled", the client's socket drained. A stalled client is cut after the idle timeout."""
        limits = self.limits
        marks = self._marks
        for connection in list(self.connections):
            phase = connection.phase()
            if phase == "busy":
                marks.pop(connection, None)
                continue
            progress = (
                connection.reads
                if phase == "idle"
                else connection.framed
                if phase == "head"
                else connection.drained
            )
            mark = marks.get(connection)
            if mark is None or mark[0] != phase or mark[1] != progress:
                marks[connection] = (phase, progress, now)
                continue
            timeout = limits.head_timeout_s if phase == "head" else limits.idle_timeout_s
            if now - mark[2] >= timeout:
                self.expired[phase] += 1
                connection.expire(phase)
        for gone in [c for c in marks if c not in self.connections]:
            del marks[gone]

    async def close(self) -> None:
        """Stop listening, close every connection (their workers are cancelled)."""
        if self._server is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._server.close()
        for connection in list(self.connections):
            connection.close()
        await self._server.wait_closed()
        self._server = None


async def serve(
    handler: Handler, host: str, port: int, limits: ServerLimits | None = None
) -> HttpServer:
    server = HttpServer(limits)
    await server.start(handler, host, port)
    return server
