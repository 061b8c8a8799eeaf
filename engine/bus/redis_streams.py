"""RedisStreamsBus: Redis Streams with one consumer group per consuming service.

Entries carry one field, `m`, the msgspec-encoded message. Streams are trimmed with
`MAXLEN ~ stream_maxlen` on every add. Connection failures surface as BusUnavailableError so
that callers apply their backoff; nothing here retries silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.bus.base import Delivery, GroupStart, make_delivery
from engine.core.errors import BusPermissionError, BusUnavailableError
from engine.core.messages import BusMessage, encode

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


KV_PREFIX = "stormproof:kv:"
"""Values live beside the streams, in the same Redis, so they share its persistence."""

# KEYS[1] key; ARGV[1] value, ARGV[2] ttl ms. SET NX PX, answering with the value already there.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# KEYS[1] key; ARGV[1] expected, ARGV[2] "set" or "del", ARGV[3] value, ARGV[4] ttl ms (0: none).
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'del' then
  redis.call('DEL', KEYS[1])
elseif tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamsBus:
    def __init__(
        self,
        url: str,
        *,
        maxlen: int = 200_000,
        socket_timeout_ms: int = 2_000,
        username: str = "",
        password: str = "",
    ) -> None:
        self.url = url
        self._maxlen = maxlen
        self._redis = redis.Redis.from_url(
            url,
            username=username or None,
            password=password or None,
            decode_responses=False,
            socket_connect_timeout=socket_timeout_ms / 1000,
            # a hung server is an error, not a hang: blocking reads use BLOCK < this timeout
            socket_timeout=socket_timeout_ms / 1000,
            health_check_interval=5,
        )
        # Blocking reads need a socket timeout longer than their BLOCK; set per call.
        self._socket_timeout_s = socket_timeout_ms / 1000
        self._writer_connection: Any = None
        self._in_flight: deque[tuple[asyncio.Future[list[str]], int]] = deque()
        self._reader_task: asyncio.Task[None] | None = None
        self._claim = self._redis.register_script(_CLAIM)
        self._swap = self._redis.register_script(_SWAP)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (AuthenticationError, NoPermissionError) as exc:  # before _UNAVAILABLE: a subclass
            raise BusPermissionError(f"redis at {self._safe_url()} refused: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise BusUnavailableError(f"redis unavailable at {self._safe_url()}: {exc}") from exc

    def _safe_url(self) -> str:
        # never print a password that may be in the URL
        if "@" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self.url

    async def publish_raw(self, stream: str, raw: bytes) -> str:
        entry_id = await self._call(
            self._redis.xadd(stream, {"m": raw}, maxlen=self._maxlen, approximate=True)
        )
        return _text(entry_id)

    async def publish(self, stream: str, message: BusMessage) -> str:
        return await self.publish_raw(stream, encode(message))

    async def submit_many(
        self, items: Sequence[tuple[str, BusMessage]]
    ) -> asyncio.Future[list[str]]:
        """Send a batch of XADDs on the dedicated writer connection without waiting for the
        previous batch's replies; the future resolves with the entry ids once Redis answered.

        Commands and replies keep their order on one connection, so several batches can be in
        flight and a message waits for its own round trip only. If the connection fails, every
        unanswered batch fails (BusUnavailableError) and the caller publishes it again: the
        entries may then be on the stream twice, which idempotent consumers absorb.
        """
        commands = [
            ("XADD", stream, "MAXLEN", "~", self._maxlen, "*", "m", encode(message))
            for stream, message in items
        ]
        connection = await self._writer()
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._in_flight.append((future, len(commands)))
        try:
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
        except _UNAVAILABLE as exc:
            await self._writer_failed(exc)
            raise BusUnavailableError(f"redis unavailable at {self._safe_url()}: {exc}") from exc
        if self._reader_task is None or self._reader_task.done():
            self._reader_task = asyncio.create_task(
                self._read_replies(connection), name="redis-writer-replies"
            )
        return future

    async def _writer(self) -> Any:
        if self._writer_connection is None:
            try:
                pool: Any = self._redis.connection_pool
                self._writer_connection = await pool.get_connection()
            except _UNAVAILABLE as exc:
                raise BusUnavailableError(
                    f"redis unavailable at {self._safe_url()}: {exc}"
                ) from exc
        return self._writer_connection

    async def _read_replies(self, connection: Any) -> None:
        try:
            while self._in_flight:
                future, count = self._in_flight[0]
                ids = [_text(await connection.read_response()) for _ in range(count)]
                self._in_flight.popleft()
                if not future.done():
                    future.set_result(ids)
        except _UNAVAILABLE as exc:
            await self._writer_failed(exc)
        except ResponseError as exc:  # a refused XADD: the batch failed, the link is fine
            future, _ = self._in_flight.popleft()
            if not future.done():
                future.set_exception(exc)

    async def _writer_failed(self, exc: BaseException) -> None:
        error = BusUnavailableError(f"redis unavailable at {self._safe_url()}: {exc}")
        while self._in_flight:
            future, _ = self._in_flight.popleft()
            if not future.done():
                future.set_exception(error)
        connection, self._writer_connection = self._writer_connection, None
        if connection is not None:
            await connection.disconnect()
            await self._redis.connection_pool.release(connection)

    async def publish_many(self, items: Sequence[tuple[str, BusMessage]]) -> list[str]:
        if not items:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for stream, message in items:
            pipe.xadd(stream, {"m": encode(message)}, maxlen=self._maxlen, approximate=True)
        ids = await self._call(pipe.execute())
        return [_text(i) for i in ids]

    async def ensure_group(self, stream: str, group: str, start: GroupStart) -> None:
        try:
            await self._call(
                self._redis.xgroup_create(
                    stream, group, id="0" if start == "earliest" else "$", mkstream=True
                )
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_group(
        self,
        *,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int,
        block_ms: int,
        pending: bool = False,
    ) -> list[Delivery]:
        request: dict[Any, Any] = {s: ("0" if pending else ">") for s in streams}
        reply = await self._call(
            self._redis.xreadgroup(
                group,
                consumer,
                request,
                count=count,
                block=None if pending or block_ms <= 0 else block_ms,
            )
        )
        return self._deliveries(reply)

    async def ack_then_read(
        self,
        *,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int,
        block_ms: int,
        handled: Sequence[Delivery],
    ) -> list[Delivery]:
        # XACK and XREADGROUP in one pipeline: a busy consumer pays one round trip per batch
        # instead of two. Redis runs them in order, so the acknowledgement lands before the read.
        pipe = self._redis.pipeline(transaction=False)
        self._queue_acks(pipe, group, handled)
        pipe.xreadgroup(
            group,
            consumer,
            {s: ">" for s in streams},
            count=count,
            block=block_ms if block_ms > 0 else None,
        )
        replies = await self._call(pipe.execute())
        return self._deliveries(replies[-1])

    @staticmethod
    def _deliveries(reply: Any) -> list[Delivery]:
        out: list[Delivery] = []
        for stream_name, entries in reply or []:
            name = _text(stream_name)
            for entry_id, fields in entries:
                if not fields:  # entry trimmed while it was pending: nothing left to process
                    continue
                out.append(make_delivery(name, _text(entry_id), fields.get(b"m", b"")))
        return out

    async def ack(self, group: str, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        pipe = self._redis.pipeline(transaction=False)
        self._queue_acks(pipe, group, deliveries)
        await self._call(pipe.execute())

    @staticmethod
    def _queue_acks(pipe: Any, group: str, deliveries: Sequence[Delivery]) -> None:
        by_stream: dict[str, list[str]] = {}
        for delivery in deliveries:
            by_stream.setdefault(delivery.stream, []).append(delivery.entry_id)
        for stream, ids in by_stream.items():
            pipe.xack(stream, group, *ids)

    async def autoclaim(
        self, *, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        reply = await self._call(
            self._redis.xautoclaim(stream, group, consumer, min_idle_ms, "0-0", count=count)
        )
        entries = reply[1] if reply else []
        return [
            make_delivery(stream, _text(entry_id), fields.get(b"m", b""))
            for entry_id, fields in entries
            if fields
        ]

    async def read_range(
        self, stream: str, *, after_id: str = "0", count: int = 1000
    ) -> list[Delivery]:
        start = "-" if after_id == "0" else f"({after_id}"
        entries = await self._call(self._redis.xrange(stream, min=start, max="+", count=count))
        return [make_delivery(stream, _text(i), f.get(b"m", b"")) for i, f in entries if f]

    async def group_lag(self, stream: str, group: str) -> int | None:
        try:
            groups = await self._call(self._redis.xinfo_groups(stream))
        except ResponseError:
            return None
        for info in groups:
            if _text(info.get("name", b"")) == group:
                lag = info.get("lag")
                return int(lag) if lag is not None else None
        return None

    async def get_value(self, key: str) -> bytes | None:
        value = await self._call(self._redis.get(f"{KV_PREFIX}{key}"))
        return None if value is None else bytes(value)

    async def set_value(self, key: str, value: bytes) -> None:
        await self._call(self._redis.set(f"{KV_PREFIX}{key}", value))

    async def claim_once(self, key: str, value: bytes, ttl_ms: int) -> bytes | None:
        if ttl_ms <= 0:
            raise ValueError(f"a claim needs a positive ttl_ms, got {ttl_ms}")
        existing = await self._call(self._claim(keys=[f"{KV_PREFIX}{key}"], args=[value, ttl_ms]))
        return None if existing is None else bytes(existing)

    async def swap_value(
        self, key: str, expected: bytes, value: bytes | None, ttl_ms: int = 0
    ) -> bool:
        args: list[bytes | str | int] = (
            [expected, "del", b"", 0] if value is None else [expected, "set", value, ttl_ms]
        )
        done = await self._call(self._swap(keys=[f"{KV_PREFIX}{key}"], args=args))
        return bool(int(done))

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        if self._writer_connection is not None:
            await self._redis.connection_pool.release(self._writer_connection)
            self._writer_connection = None
        await self._redis.aclose()
