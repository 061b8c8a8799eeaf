"""Private WebSocket endpoints of the simulated venue, on the feed's port (as Binance serves them
beside the public streams).

`/ws-api/v3`: Binance's WebSocket API. Requests `{"id", "method", "params"}`; responses
`{"id", "status", "result" | "error", "rateLimits"}`. Methods: ping, time,
userDataStream.subscribe.signature (events then arrive as `{"subscriptionId", "event"}`),
userDataStream.unsubscribe, order.place, order.cancel, order.status. Signed requests carry
apiKey, timestamp and signature: HMAC-SHA256 of every other parameter sorted by name,
`key=value` joined by `&`.

`/ws/<listenKey>`: the older user data stream: raw events for the key's account; when the key
expires, a `listenKeyExpired` event and the connection is closed.

Limits, as Binance's: requests count against the IP's request weight (shared with REST), over
it 429, and a client that keeps sending is banned (418); the banned connection is answered and
then closed (1008), so a flood ends there. Parameters are checked like REST's: a name twice in
`params` or more than auth.MAX_PARAMS is -1101. A listen-key stream is a stream: more than
`max_messages_per_s` incoming messages in a second and it is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from plumbing.waits import within
from replay.exchange import errors
from replay.exchange.auth import MAX_PARAMS, check_timing, signature_matches
from replay.exchange.errors import BinanceError
from replay.exchange.formats import cancel_json, new_order_json, order_json
from replay.exchange.matching import MatchingEngine
from replay.exchange.rest import new_order_args, order_ref
from replay.exchange.userdata import UserDataHub
from replay.exchange.venue_limits import RateLimiter
from replay.ws_close import hang_up

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
WEIGHTS = {
    "ping": 1,
    "time": 1,
    "order.place": 1,
    "order.cancel": 1,
    "order.status": 4,
    "userDataStream.subscribe.signature": 2,
    "userDataStream.unsubscribe": 2,
}


def signature_payload(params: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return "&".join(f"{k}={text(v)}" for k, v in sorted(params.items()) if k != "signature")


class _Object(dict[str, Any]):
    """A JSON object that knows whether a name was repeated in it (json keeps the last)."""

    __slots__ = ("repeated",)
    repeated: bool


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    obj.repeated = len(obj) != len(pairs)
    return obj


class _Outbox:
    """A connection's bounded outgoing queue and its sender task."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.queue: deque[str] = deque()
        self.ready = asyncio.Event()
        self.empty = asyncio.Event()
        self.empty.set()
        self.overflowed = False

    def put(self, message: dict[str, Any]) -> None:
        if len(self.queue) >= MAX_QUEUE:
            self.overflowed = True
        else:
            self.queue.append(json.dumps(message, separators=(",", ":")))
        self.empty.clear()
        self.ready.set()

    async def run(self) -> None:
        try:
            while True:
                if self.overflowed:
                    await self.ws.close(1008, "Too slow: send queue overflow")
                    return
                if not self.queue:
                    self.empty.set()
                    self.ready.clear()
                    await self.ready.wait()
                    continue
                await self.ws.send(self.queue.popleft())
        except ConnectionClosed:
            return


class PrivateStreams:
    def __init__(
        self,
        *,
        matching: MatchingEngine,
        hub: UserDataHub,
        limiter: RateLimiter,
        secrets_by_key: dict[str, str],
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        max_messages_per_s: int = 5,
    ) -> None:
        self.max_messages_per_s = max_messages_per_s
        self.ban_disconnects = 0
        """WebSocket API connections closed because their IP was banned (418)."""
        self.matching = matching
        self.hub = hub
        self.limiter = limiter
        self.secrets = secrets_by_key
        self.clock_ms = clock_ms
        self.live: dict[ServerConnection, set[int]] = {}

    def claims(self, path: str) -> bool:
        if path == "/ws-api/v3":
            return True
        return path.startswith("/ws/") and path[4:] in self.hub.listen_keys

    async def serve(self, ws: ServerConnection, path: str) -> None:
        outbox = _Outbox(ws)
        sender = asyncio.create_task(outbox.run(), name="ws-api-send")
        subscriptions: set[int] = set()
        self.live[ws] = subscriptions
        try:
            if path == "/ws-api/v3":
                await self._serve_api(ws, outbox, subscriptions)
            else:
                await self._serve_listen_key(ws, path[4:], outbox, subscriptions)
        except ConnectionClosed:
            pass
        finally:
            for subscription_id in subscriptions:
                self.hub.unsubscribe(subscription_id)
            self.live.pop(ws, None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    def drop_all(self) -> int:
        """A user-stream drop fault: cut every private connection."""
        dropped = 0
        for ws in list(self.live):
            if ws.transport is not None:
                ws.transport.abort()
                dropped += 1
        return dropped

    async def _serve_listen_key(
        self, ws: ServerConnection, key: str, outbox: _Outbox, subscriptions: set[int]
    ) -> None:
        listen = self.hub.live_listen_key(key, time.time())
        if listen is None:
            await ws.close(1008, "Invalid listenKey")
            return
        subscriptions.add(self.hub.subscribe(listen.api_key, outbox.put))
        limit = self.max_messages_per_s
        recent: deque[float] = deque(maxlen=max(1, limit))
        while True:
            received, _ = await within(ws.recv(), 5.0)
            if received and limit > 0:
                now = time.monotonic()
                if len(recent) == limit and now - recent[0] < 1.0:
                    await hang_up(ws, 1008, "Too many requests")
                    return
                recent.append(now)
            if self.hub.live_listen_key(key, time.time()) is None:
                outbox.put({"e": "listenKeyExpired", "E": self.clock_ms(), "listenKey": key})
                await asyncio.sleep(0.05)
                await ws.close(1000, "listenKey expired")
                return

    async def _serve_api(
        self, ws: ServerConnection, outbox: _Outbox, subscriptions: set[int]
    ) -> None:
        remote = ws.remote_address[0] if ws.remote_address else "?"
        peer = f"{remote}:{ws.remote_address[1]}" if ws.remote_address else None
        async for raw in ws:
            reply = self.handle(raw, remote, outbox, subscriptions, peer=peer)
            outbox.put(reply)
            if reply.get("status") == 418:
                # Binance: a client that keeps sending after 429s is banned and disconnected
                self.ban_disconnects += 1
                await within(outbox.empty.wait(), 2.0)
                await hang_up(ws, 1008, "Too many requests: IP banned")
                return

    def handle(
        self,
        raw: str | bytes,
        remote: str,
        outbox: _Outbox,
        subscriptions: set[int],
        *,
        peer: str | None = None,
    ) -> dict[str, Any]:
        try:
            request = json.loads(raw, object_pairs_hook=_object)
            if not isinstance(request, dict):
                raise ValueError("expected an object")
        except (ValueError, UnicodeDecodeError, RecursionError):
            return {
                "id": None,
                "status": 400,
                "error": {"code": -1100, "msg": "Malformed request: invalid JSON."},
            }
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        now = time.monotonic()
        verdict = self.limiter.check(remote, WEIGHTS.get(str(method), 1), now)
        limits = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.limiter.limits.weight_per_window,
                "count": int(verdict.headers.get("X-MBX-USED-WEIGHT-1M", 0)),
            }
        ]
        if verdict.status != 200:
            return {
                "id": request_id,
                "status": verdict.status,
                "rateLimits": limits,
                "error": {"code": verdict.code, "msg": verdict.msg},
            }
        try:
            if not isinstance(params, dict):
                raise BinanceError(-1130, "Invalid data sent for a parameter.")
            if getattr(params, "repeated", False):
                raise errors.DUPLICATE_PARAMS
            if len(params) > MAX_PARAMS:
                raise errors.TOO_MANY_PARAMS
            result = self._dispatch(str(method), params, subscriptions, outbox, peer)
        except BinanceError as exc:
            return {
                "id": request_id,
                "status": exc.status,
                "rateLimits": limits,
                "error": {"code": exc.code, "msg": exc.msg},
            }
        except Exception:  # a bug: answer as Binance does, keep the connection serving
            log.exception("websocket api request failed", extra={"method": str(method)[:64]})
            return {
                "id": request_id,
                "status": 500,
                "rateLimits": limits,
                "error": {
                    "code": -1000,
                    "msg": "An unknown error occurred while processing the request.",
                },
            }
        return {"id": request_id, "status": 200, "result": result, "rateLimits": limits}

    def _verify(self, params: dict[str, Any]) -> str:
        api_key = params.get("apiKey")
        if not api_key:
            raise errors.mandatory("apiKey")
        secret = self.secrets.get(str(api_key))
        if secret is None:
            raise errors.INVALID_API_KEY
        signature = params.get("signature")
        if not signature:
            raise errors.mandatory("signature")
        expected = hmac.digest(
            secret.encode(), signature_payload(params).encode(), hashlib.sha256
        ).hex()
        if not signature_matches(expected, str(signature)):
            raise errors.BAD_SIGNATURE
        check_timing({k: str(v) for k, v in params.items()}, self.clock_ms())
        return str(api_key)

    def _dispatch(
        self,
        method: str,
        params: dict[str, Any],
        subscriptions: set[int],
        outbox: _Outbox,
        peer: str | None = None,
    ) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.clock_ms()}
        if method == "userDataStream.subscribe.signature":
            api_key = self._verify(params)
            subscription_id = self._subscribe(api_key, outbox)
            subscriptions.add(subscription_id)
            return {"subscriptionId": subscription_id}
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            try:
                targets = list(subscriptions) if wanted is None else [int(wanted)]
            except (TypeError, ValueError, OverflowError):  # "abc", [1], Infinity
                raise BinanceError(-1130, "Invalid data sent for a parameter.") from None
            for subscription_id in targets:
                if subscription_id not in subscriptions:
                    raise BinanceError(-1130, "Invalid data sent for a parameter.")
                self.hub.unsubscribe(subscription_id)
                subscriptions.discard(subscription_id)
            return {}
        strings = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        if method == "order.place":
            api_key = self._verify(params)
            order_verdict = self.limiter.check_order(api_key, time.monotonic())
            if order_verdict.status != 200:
                raise BinanceError(order_verdict.code, order_verdict.msg, order_verdict.status)
            args = new_order_args(strings, self.matching)
            resp_type = args.pop("resp_type")
            order = self.matching.place(api_key, **args, connection=peer)
            return new_order_json(order, resp_type)
        if method in ("order.cancel", "order.status"):
            api_key = self._verify(params)
            symbol = strings.get("symbol", "").upper()
            if not symbol:
                raise errors.mandatory("symbol")
            order_id, client_id = order_ref(strings)
            if method == "order.cancel":
                order = self.matching.cancel(
                    api_key, symbol, order_id=order_id, client_order_id=client_id
                )
                return cancel_json(order, client_id)
            return order_json(
                self.matching.query(api_key, symbol, order_id=order_id, client_order_id=client_id)
            )
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter 'method'; legal range"
            f" is one of the supported methods, got {method!r}.",
        )

    def _subscribe(self, api_key: str, outbox: _Outbox) -> int:
        holder: dict[str, int] = {}

        def deliver(event: dict[str, Any]) -> None:
            outbox.put({"subscriptionId": holder["id"], "event": event})

        holder["id"] = self.hub.subscribe(api_key, deliver)
        return holder["id"]
