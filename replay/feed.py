"""The replay feed: Binance's public WebSocket protocol, served from a recording.

Endpoints: `/ws` (raw payloads, SUBSCRIBE to add streams), `/ws/<stream>[/<stream>...]`, and
`/stream?streams=a/b/c` (combined payloads `{"stream":...,"data":...}`). Requests:
SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY/GET_PROPERTY `combined`. Every client
has its own subscriptions and a bounded send queue; when paced, a client whose queue overflows is
disconnected (as the exchange drops slow consumers); at max speed the replay waits for room
instead (client-paced backpressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from replay.messages import combined

MAX_STREAMS = 1024


class FeedClient:
    def __init__(
        self, ws: ServerConnection, *, combined_mode: bool, streams: list[str], max_queue: int
    ) -> None:
        self.ws = ws
        self.combined = combined_mode
        self.subscriptions: set[str] = set(streams)
        self.queue: deque[bytes] = deque()
        self.max_queue = max_queue
        self.has_items = asyncio.Event()
        self.sent = 0
        self.overflowed = False

    def offer(self, payload: bytes) -> bool:
        if len(self.queue) >= self.max_queue:
            self.overflowed = True
            return False
        self.queue.append(payload)
        self.has_items.set()
        return True


def _error(code: int, msg: str, request_id: Any = None) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": request_id})


class FeedServer:
    def __init__(
        self, *, host: str, port: int, max_queue: int = 50_000, ping_interval_s: float = 20.0
    ) -> None:
        self.host = host
        self.port = port
        self.max_queue = max_queue
        self.ping_interval_s = ping_interval_s
        self.clients: set[FeedClient] = set()
        self._server: Server | None = None
        self._room = asyncio.Event()
        self._room.set()
        self.slow_disconnects = 0
        self.connections_total = 0

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_path,
            ping_interval=self.ping_interval_s,
            ping_timeout=60,
            compression=None,
            max_size=1 << 16,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- connections --------------------------------------------------------------------------

    def _check_path(self, _: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path in ("/ws", "/stream") or path.startswith("/ws/"):
            return None
        return Response(404, "Not Found", Headers(), b"unknown endpoint\n")

    @staticmethod
    def parse_path(raw: str) -> tuple[bool, list[str]]:
        parts = urlsplit(raw)
        if parts.path == "/stream":
            streams = parse_qs(parts.query).get("streams", [""])[0]
            return True, [s for s in streams.split("/") if s]
        if parts.path.startswith("/ws/"):
            return False, [s for s in parts.path[4:].split("/") if s]
        return False, []

    async def _handle(self, ws: ServerConnection) -> None:
        combined_mode, streams = self.parse_path(ws.request.path if ws.request else "/ws")
        client = FeedClient(
            ws, combined_mode=combined_mode, streams=streams[:MAX_STREAMS], max_queue=self.max_queue
        )
        self.clients.add(client)
        self.connections_total += 1
        sender = asyncio.create_task(self._send_loop(client))
        try:
            async for message in ws:
                reply = self.handle_request(client, message)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self._update_room()

    async def _send_loop(self, client: FeedClient) -> None:
        ws = client.ws
        try:
            while True:
                if not client.queue:
                    if client.overflowed:
                        self.slow_disconnects += 1
                        await ws.close(1008, "Too slow: send queue overflow")
                        return
                    client.has_items.clear()
                    self._update_room()
                    await client.has_items.wait()
                    continue
                payload = client.queue.popleft()
                await ws.send(payload, text=True)
                client.sent += 1
                if len(client.queue) < client.max_queue // 2:
                    self._update_room()
        except ConnectionClosed:
            return

    # --- protocol requests --------------------------------------------------------------------

    def handle_request(self, client: FeedClient, message: str | bytes) -> str | None:
        try:
            request = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(3, f"Invalid JSON: {exc.args[0] if exc.args else exc}")
        if not isinstance(request, dict):
            return _error(3, "Invalid JSON: expected an object")
        request_id = request.get("id")
        if request_id is not None and (not isinstance(request_id, int) or request_id < 0):
            return _error(2, "Invalid request: request ID must be an unsigned integer")
        method = request.get("method")
        params = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _error(
                    2, "Invalid request: params must be a list of stream names", request_id
                )
            if method == "SUBSCRIBE":
                if len(client.subscriptions | set(params)) > MAX_STREAMS:
                    return _error(2, "Invalid request: too many streams", request_id)
                client.subscriptions.update(params)
            else:
                client.subscriptions.difference_update(params)
            return json.dumps({"result": None, "id": request_id})
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(client.subscriptions), "id": request_id})
        if method == "SET_PROPERTY":
            if not isinstance(params, list) or len(params) != 2 or params[0] != "combined":
                return _error(2, "Invalid request: unknown property", request_id)
            if not isinstance(params[1], bool):
                return _error(1, "Invalid value type: expected Boolean", request_id)
            client.combined = params[1]
            return json.dumps({"result": None, "id": request_id})
        if method == "GET_PROPERTY":
            if params != ["combined"]:
                return _error(2, "Invalid request: unknown property", request_id)
            return json.dumps({"result": client.combined, "id": request_id})
        return _error(
            2,
            f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`,"
            " `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
            request_id,
        )

    # --- broadcast ----------------------------------------------------------------------------

    def broadcast(self, stream: str, data: bytes, wrapped: bytes | None = None) -> int:
        """Queue a message for every subscriber; returns the number of recipients.

        `wrapped` is the combined-stream form when the caller has it (the recorded bytes).
        """
        recipients = 0
        for client in self.clients:
            if stream not in client.subscriptions:
                continue
            if client.combined:
                if wrapped is None:
                    wrapped = combined(stream, data)
                payload = wrapped
            else:
                payload = data
            if client.offer(payload):
                recipients += 1
        self._update_room()
        return recipients

    def _update_room(self) -> None:
        full = any(len(c.queue) >= c.max_queue // 2 for c in self.clients)
        if full:
            self._room.clear()
        else:
            self._room.set()

    async def wait_for_room(self) -> None:
        """At max speed: wait until every client has drained below half its queue."""
        await self._room.wait()
