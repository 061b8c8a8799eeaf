"""The replay feed: Binance's public WebSocket protocol, served from a recording.

Endpoints: `/ws` (raw payloads; SUBSCRIBE to add streams), `/ws/<stream>[/<stream>...]` (raw),
`/stream?streams=a/b/c` (combined payloads `{"stream":...,"data":...}`), and the same under the
futures routes `/public` and `/market`. Requests: SUBSCRIBE,
UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY / GET_PROPERTY `combined`, with Binance's replies
and error messages. The server pings every `ping_interval_s` (Binance: 20 s) and drops a client
that does not answer within `ping_timeout_s` (Binance: one minute).

Every client has its own subscriptions and a bounded send queue. When paced, a client whose queue
overflows is closed with 1008 (too slow), as the exchange drops slow consumers. At max speed the
replay waits for the slowest client (backpressure) but not forever: a client that stays full for
`max_stall_s` is closed the same way, so one stuck client cannot stop the replay.

What a client can make the server hold is bounded (`FeedLimits`, docs/limits.md), as Binance
bounds it: at most 1024 streams per connection, stream names of at most 64 characters, and 5
incoming messages per second (a client that sends more is disconnected with 1008 "Too many
requests"); connections on the port at once are capped (503 at the handshake past it), and a
request frame is at most 64 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from plumbing.waits import wait_set
from replay.faults import CONNECTION_FAULTS, Fault, FaultBook
from replay.lane.compiled import speedups
from replay.lane.state import LaneState
from replay.stream_messages import combined
from replay.ws_close import hang_up

MAX_STREAMS = 1024


@dataclass(frozen=True, kw_only=True)
class FeedLimits:
    """What one client of the WebSocket port may make the server hold (docs/limits.md)."""

    max_connections: int = 256
    """Connections on the port at once (feed, WebSocket API, listen-key streams); past it the
    handshake is answered 503."""
    max_messages_per_s: int = 5
    """Binance's rule for its streams: 5 incoming messages per second per connection; a
    connection that sends more is disconnected (1008 "Too many requests")."""
    max_streams: int = MAX_STREAMS
    """Streams one connection may subscribe (Binance: 1024)."""
    max_stream_name: int = 64
    """Characters of a stream name (Binance's are short: `btcusdt@depth@100ms`)."""
    max_message_bytes: int = 1 << 16
    """One incoming frame (websockets closes the connection with 1009 past it)."""


ROUTES = ("/public", "/market")
"""Binance futures' routed endpoints (`fstream.binance.com/public/ws`, `/market/stream` ...):
served as the plain ones, each carrying every stream (docs/futures.md)."""


def _unrouted(path: str) -> str:
    for route in ROUTES:
        if path.startswith(route + "/"):
            return path[len(route) :]
    return path


def _private_path(raw: str) -> str:
    """The path, with USD-M's routed user stream (`/private/ws?listenKey=<key>`, or the key in
    the path) read as the listen-key path `/ws/<key>`."""
    parts = urlsplit(raw)
    if parts.path.rstrip("/") == "/private/ws":
        key = parse_qs(parts.query).get("listenKey", [""])[0]
        return f"/ws/{key}" if key else parts.path
    if parts.path.startswith("/private/ws/"):
        return parts.path[len("/private") :]
    return parts.path


SEND_BATCH = 256
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


class FeedClient:
    def __init__(
        self,
        client_id: int,
        ws: ServerConnection,
        *,
        combined_mode: bool,
        streams: list[str],
        max_queue: int,
    ) -> None:
        self.client_id = client_id
        self.ws = ws
        self.combined = combined_mode
        self.subscriptions: set[str] = set(streams)
        self.queue: deque[bytes] = deque()
        self.max_queue = max_queue
        self.half_queue = max_queue // 2
        self.has_items = asyncio.Event()
        self.sent = 0
        self.overflowed = False
        self.full_since: float | None = None
        self.connected_ns = time.time_ns()
        self.sender: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None

    def offer(self, payload: bytes) -> bool:
        """Queue a frame; False when the client is over its limit (it must be dropped)."""
        if self.overflowed:
            return False
        queued = len(self.queue)
        if queued >= self.max_queue:
            self.overflowed = True
            return False
        self.queue.append(payload)
        if not queued:
            self.has_items.set()
        return True

    def describe(self) -> dict[str, Any]:
        remote = self.ws.remote_address
        return {
            "id": self.client_id,
            "remote": f"{remote[0]}:{remote[1]}" if remote else None,
            "combined": self.combined,
            "subscriptions": sorted(self.subscriptions),
            "queued": len(self.queue),
            "sent": self.sent,
            "connected_ns": self.connected_ns,
        }


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying `payload` (a server never masks)."""
    length = len(payload)
    if length < 126:
        return b"\x81%c%s" % (length, payload)
    if length < 65536:
        return b"\x81\x7e%s%s" % (length.to_bytes(2, "big"), payload)
    return b"\x81\x7f%s%s" % (length.to_bytes(8, "big"), payload)


def _frame_batch(popleft: Callable[[], bytes], count: int) -> bytes:
    return b"".join(text_frame(popleft()) for _ in range(count))


frame_batch: Callable[[Callable[[], bytes], int], bytes] = (
    speedups.frame_batch if speedups is not None else _frame_batch
)
"""`count` queued payloads as text frames in one buffer (compiled when built)."""


def error_reply(code: int, msg: str, request_id: Any = None) -> str:
    return json.dumps(
        {"error": {"code": code, "msg": msg}, "id": request_id}, separators=(",", ":")
    )


class FeedServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        max_queue: int = 10_000,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 60.0,
        max_stall_s: float = 10.0,
        limits: FeedLimits | None = None,
    ) -> None:
        self.limits = limits or FeedLimits()
        self.rate_disconnects = 0
        """Clients disconnected for sending more than max_messages_per_s."""
        self.refused_connections = 0
        self.host = host
        self.port = port
        self.max_queue = max_queue
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.max_stall_s = max_stall_s
        self.clients: dict[int, FeedClient] = {}
        self.faults = FaultBook()
        self._server: Server | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._next_client = 1
        self.slow_disconnects = 0
        self.connections_total = 0
        self.private: Any = None
        """Private endpoints on the same port (the venue's WebSocket API, listen-key streams):
        an object with claims(path) and async serve(ws, path)."""
        self._subscribed: dict[str, int] = {}
        """How many clients subscribe to each stream; a stream nobody wants has no key."""
        self.wanted: Callable[[str], bool] = self._subscribed.__contains__
        """Whether any client subscribes to a stream (derived streams are built only then).
        A C-level call: the replay asks it for every message."""

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_path,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            compression=None,
            max_size=self.limits.max_message_bytes,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- connections -------------------------------------------------------------------------

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if (
            self._server is not None
            and len(self._server.connections) >= self.limits.max_connections
        ):
            self.refused_connections += 1
            return Response(503, "Service Unavailable", Headers(), b"too many connections\n")
        path = _private_path(request.path)
        if self.private is not None and self.private.claims(path):
            return None
        path = _unrouted(path)
        if path in ("/ws", "/stream") or path.startswith("/ws/"):
            _, streams = self.parse_path(request.path)
            if any(len(stream) > self.limits.max_stream_name for stream in streams):
                return Response(
                    400,
                    "Bad Request",
                    Headers(),
                    b"stream name longer than %d characters\n" % self.limits.max_stream_name,
                )
            return None
        return Response(404, "Not Found", Headers(), b"unknown endpoint\n")

    @staticmethod
    def parse_path(raw: str) -> tuple[bool, list[str]]:
        parts = urlsplit(raw)
        path = _unrouted(parts.path)
        if path == "/stream":
            streams = parse_qs(parts.query).get("streams", [""])[0]
            return True, [s for s in streams.split("/") if s]
        if path.startswith("/ws/"):
            return False, [s for s in path[4:].split("/") if s]
        return False, []

    async def _handle(self, ws: ServerConnection) -> None:
        path = _private_path(ws.request.path if ws.request else "/ws")
        if self.private is not None and self.private.claims(path):
            await self.private.serve(ws, path)
            return
        combined_mode, streams = self.parse_path(ws.request.path if ws.request else "/ws")
        client = FeedClient(
            self._next_client,
            ws,
            combined_mode=combined_mode,
            streams=streams[: self.limits.max_streams],
            max_queue=self.max_queue,
        )
        self._next_client += 1
        self.clients[client.client_id] = client
        self._count(client.subscriptions, +1)
        self.connections_total += 1
        client.sender = asyncio.create_task(
            self._send_loop(client), name=f"feed-send-{client.client_id}"
        )
        limit = self.limits.max_messages_per_s
        recent: deque[float] = deque(maxlen=max(1, limit))  # arrival times of the last `limit`
        try:
            async for message in ws:
                now = time.monotonic()
                if limit > 0 and len(recent) == limit and now - recent[0] < 1.0:
                    # Binance: more than 5 incoming messages in a second, and the connection
                    # goes (the request that broke the limit is not answered)
                    self.rate_disconnects += 1
                    await hang_up(ws, 1008, "Too many requests")
                    break
                recent.append(now)
                reply = self.handle_request(client, message)
                if reply is not None and not client.offer(reply.encode()):
                    self.evict(client)
        except ConnectionClosed:
            pass
        finally:
            self.clients.pop(client.client_id, None)
            self._count(client.subscriptions, -1)
            for task in (client.sender, client.closer):
                if task is not None:
                    if task is client.sender:
                        task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self.update_room()

    async def _send_loop(self, client: FeedClient) -> None:
        """Writes queued messages in batches, one syscall per batch.

        Inside websockets' send context (which checks the connection is open and applies flow
        control), each message becomes an unmasked, unfragmented text frame (RFC 6455 5.2):
        the same bytes `send()` would write, without building a Frame object per message.
        """
        ws = client.ws
        queue = client.queue
        try:
            while True:
                if not queue:
                    client.has_items.clear()
                    self.update_room()
                    await client.has_items.wait()
                    continue
                count = min(len(queue), SEND_BATCH)
                async with ws.send_context():
                    ws.transport.write(frame_batch(queue.popleft, count))
                client.sent += count
                if len(queue) < client.max_queue // 2:
                    client.full_since = None
                    self.update_room()
        except ConnectionClosed:
            return

    def evict(self, client: FeedClient) -> None:
        """Drop a client as too slow. Its sender may be stuck in a send on a full socket, so it
        is cancelled, and the close is attempted by a task of its own with a deadline."""
        if client.closer is not None:
            return
        client.overflowed = True
        self.slow_disconnects += 1
        client.queue.clear()
        if client.sender is not None:
            client.sender.cancel()
        client.closer = asyncio.create_task(
            self._close_slow(client), name=f"feed-evict-{client.client_id}"
        )

    @staticmethod
    async def _close_slow(client: FeedClient) -> None:
        try:
            await asyncio.wait_for(client.ws.close(1008, "Too slow: send queue overflow"), 2.0)
        except (TimeoutError, ConnectionClosed):
            pass
        finally:
            if client.ws.transport is not None and not client.ws.transport.is_closing():
                client.ws.transport.abort()

    # --- protocol requests ---------------------------------------------------------------------

    def handle_request(self, client: FeedClient, message: str | bytes) -> str | None:
        try:
            request = json.loads(message)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError,
            # a number of 4,300 digits and more, arrays nested too deep
            where = (
                f" at line {exc.lineno} column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            return error_reply(3, f"Invalid JSON: expected value{where}")
        if not isinstance(request, dict):
            return error_reply(3, "Invalid JSON: expected an object")
        request_id = request.get("id")
        if request_id is not None and (
            not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0
        ):
            return error_reply(2, "Invalid request: request ID must be an unsigned integer")
        method = request.get("method")
        if method is None:
            return error_reply(2, "Invalid request: missing field `method`", request_id)
        if method not in METHODS:
            return error_reply(
                2,
                f"Invalid request: unknown variant `{method}`, expected one of "
                + ", ".join(f"`{m}`" for m in METHODS),
                request_id,
            )
        params = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return error_reply(
                    2,
                    "Invalid request: invalid type: expected a sequence of stream names",
                    request_id,
                )
            if method == "SUBSCRIBE":
                longest = self.limits.max_stream_name
                if any(len(name) > longest for name in params):
                    return error_reply(
                        2,
                        f"Invalid request: stream name longer than {longest} characters",
                        request_id,
                    )
                added = set(params) - client.subscriptions
                if len(client.subscriptions) + len(added) > self.limits.max_streams:
                    return error_reply(2, "Invalid request: too many streams", request_id)
                client.subscriptions.update(added)
                self._count(added, +1)
            else:
                removed = set(params) & client.subscriptions
                client.subscriptions.difference_update(removed)
                self._count(removed, -1)
            return json.dumps({"result": None, "id": request_id}, separators=(",", ":"))
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps(
                {"result": sorted(client.subscriptions), "id": request_id}, separators=(",", ":")
            )
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            return error_reply(2, "Invalid request: property name must be a string", request_id)
        if params[0] != "combined":
            return error_reply(0, "Unknown property", request_id)
        if method == "GET_PROPERTY":
            return json.dumps({"result": client.combined, "id": request_id}, separators=(",", ":"))
        if len(params) != 2 or not isinstance(params[1], bool):
            return error_reply(1, "Invalid value type: expected Boolean", request_id)
        client.combined = params[1]
        return json.dumps({"result": None, "id": request_id}, separators=(",", ":"))

    # --- broadcast -----------------------------------------------------------------------------

    def broadcast(self, stream: str, data: bytes, wrapped: bytes | None = None) -> int:
        """Queue a message for every subscriber, through the active faults; returns recipients.

        `wrapped` is the combined-stream form when the caller has it (the recorded bytes).
        """
        if stream not in self._subscribed:
            return 0
        now = time.time_ns() if self.faults.faults else 0
        faulty = bool(self.faults.faults) and bool(self.faults.active(now))
        recipients = 0
        crowded = False
        # no copy of the client table: nothing below adds or removes clients (an evicted client
        # leaves the table when its handler ends, in another task)
        for client in self.clients.values():
            if stream not in client.subscriptions:
                continue
            if client.combined:
                wrapped = wrapped or combined(stream, data)
                payload = wrapped
            else:
                payload = data
            frames = (
                self.faults.deliver(stream, client.client_id, payload, now)
                if faulty
                else (payload,)
            )
            for frame in frames:
                if not client.offer(frame):
                    self.evict(client)
                    break
            recipients += 1
            crowded = crowded or len(client.queue) >= client.half_queue
        if crowded:
            self.update_room()
        return recipients

    def share_with_lane(self, state: LaneState) -> None:
        """The compiled lane reads the subscriber counts and appends to the queues of the clients
        not overflowed (`LaneState.clients`); `lane_delivered` follows a run that did."""
        state.subscribed = self._subscribed
        state.clients = [
            (c.subscriptions, c.combined, c.queue.append, c.queue, c.half_queue, c.max_queue)
            for c in self.clients.values()
            if not c.overflowed
        ]

    def lane_delivered(self) -> None:
        for client in self.clients.values():
            if client.queue:
                client.has_items.set()

    @property
    def has_room(self) -> bool:
        return self._room.is_set()

    def _count(self, streams: set[str] | list[str], delta: int) -> None:
        for stream in streams:
            count = self._subscribed.get(stream, 0) + delta
            if count > 0:
                self._subscribed[stream] = count
            else:
                self._subscribed.pop(stream, None)

    def tick(self) -> None:
        """Housekeeping between messages: release messages held by finished reorder faults."""
        if not self.faults.faults:
            return
        for client_id, payload in self.faults.release_held(time.time_ns()):
            client = self.clients.get(client_id)
            if client is not None and not client.offer(payload):
                self.evict(client)

    def add_fault(self, **request: Any) -> Fault:
        fault = self.faults.add(now_ns=time.time_ns(), **request)
        if fault.kind in CONNECTION_FAULTS:
            subscriptions = {cid: c.subscriptions for cid, c in self.clients.items()}
            targets = self.faults.connection_targets(fault, subscriptions)
            fault.applied = len(targets)
            for cid in targets:
                client = self.clients[cid]
                if fault.kind == "drop":
                    client.ws.transport.abort()
                else:
                    self.evict(client)
        return fault

    def update_room(self) -> None:
        full = False
        now = time.monotonic()
        for client in self.clients.values():
            if client.closer is None and len(client.queue) >= client.max_queue // 2:
                full = True
                client.full_since = client.full_since or now
        if full:
            self._room.clear()
        else:
            self._room.set()

    async def wait_for_room(self) -> None:
        """At max speed: wait until every client has drained below half its queue; a client
        that stays full for max_stall_s is closed as too slow instead of stalling the replay."""
        while not self._room.is_set():
            await wait_set(self._room, 1.0)
            now = time.monotonic()
            for client in list(self.clients.values()):
                if client.full_since is not None and now - client.full_since > self.max_stall_s:
                    client.full_since = None
                    self.evict(client)
            self.update_room()
