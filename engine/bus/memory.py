"""MemoryBus: Redis Streams semantics in one process, for tests and fast replay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.bus.base import Delivery, GroupStart, make_delivery
from engine.core.messages import BusMessage, encode
from plumbing.waits import within


@dataclass
class _Pending:
    consumer: str
    delivered_ms: float
    deliveries: int


@dataclass
class _Group:
    last_delivered: int
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass
class _Stream:
    entries: dict[int, bytes] = field(default_factory=dict)
    next_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)


class MemoryBus:
    def __init__(self, *, maxlen: int = 200_000) -> None:
        self._maxlen = maxlen
        self._streams: dict[str, _Stream] = {}
        self._changed = asyncio.Condition()
        self._values: dict[str, bytes] = {}
        self._expires: dict[str, float] = {}
        """Monotonic deadline (s) of values stored with a TTL; expired ones are dropped when
        read, and swept when the number of them has grown fourfold since the last sweep."""
        self._sweep_at = 1024

    def _stream(self, name: str) -> _Stream:
        return self._streams.setdefault(name, _Stream())

    @staticmethod
    def _entry_id(seq: int) -> str:
        return f"0-{seq}"

    async def publish_raw(self, stream: str, raw: bytes) -> str:
        target = self._stream(stream)
        seq = target.next_seq
        target.next_seq += 1
        target.entries[seq] = raw
        while len(target.entries) > self._maxlen:
            del target.entries[next(iter(target.entries))]
        async with self._changed:
            self._changed.notify_all()
        return self._entry_id(seq)

    async def publish(self, stream: str, message: BusMessage) -> str:
        return await self.publish_raw(stream, encode(message))

    async def submit_many(
        self, items: Sequence[tuple[str, BusMessage]]
    ) -> asyncio.Future[list[str]]:
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        future.set_result(await self.publish_many(items))
        return future

    async def publish_many(self, items: Sequence[tuple[str, BusMessage]]) -> list[str]:
        return [await self.publish(stream, message) for stream, message in items]

    async def ensure_group(self, stream: str, group: str, start: GroupStart) -> None:
        target = self._stream(stream)
        if group not in target.groups:
            last = 0 if start == "earliest" else target.next_seq - 1
            target.groups[group] = _Group(last_delivered=last)

    def _collect(
        self, group: str, consumer: str, streams: Sequence[str], count: int, pending: bool
    ) -> list[Delivery]:
        out: list[Delivery] = []
        now_ms = time.monotonic() * 1000
        for name in streams:
            target = self._stream(name)
            state = target.groups.get(group)
            if state is None:
                raise LookupError(f"NOGROUP no group {group!r} for stream {name!r}")
            if pending:
                for seq, entry in list(state.pending.items()):
                    if entry.consumer == consumer and len(out) < count:
                        entry.deliveries += 1
                        entry.delivered_ms = now_ms
                        raw = target.entries.get(seq)
                        if raw is None:  # trimmed while pending
                            del state.pending[seq]
                            continue
                        out.append(make_delivery(name, self._entry_id(seq), raw))
                continue
            for seq in [s for s in target.entries if s > state.last_delivered]:
                if len(out) >= count:
                    break
                state.last_delivered = seq
                state.pending[seq] = _Pending(consumer, now_ms, 1)
                out.append(make_delivery(name, self._entry_id(seq), target.entries[seq]))
        return out

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
        found = self._collect(group, consumer, streams, count, pending)
        if found or pending or block_ms <= 0:
            return found
        deadline = asyncio.get_running_loop().time() + block_ms / 1000
        async with self._changed:
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return []
                notified, _ = await within(self._changed.wait(), remaining)
                if not notified:
                    return []
                found = self._collect(group, consumer, streams, count, pending)
                if found:
                    return found

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
        await self.ack(group, handled)
        return await self.read_group(
            group=group, consumer=consumer, streams=streams, count=count, block_ms=block_ms
        )

    async def ack(self, group: str, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            state = self._stream(delivery.stream).groups.get(group)
            if state is not None:
                state.pending.pop(int(delivery.entry_id.split("-")[1]), None)

    async def autoclaim(
        self, *, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        target = self._stream(stream)
        state = target.groups.get(group)
        if state is None:
            return []
        now_ms = time.monotonic() * 1000
        out: list[Delivery] = []
        for seq, entry in list(state.pending.items()):
            if len(out) >= count:
                break
            if now_ms - entry.delivered_ms < min_idle_ms:
                continue
            raw = target.entries.get(seq)
            if raw is None:
                del state.pending[seq]
                continue
            state.pending[seq] = _Pending(consumer, now_ms, entry.deliveries + 1)
            out.append(make_delivery(stream, self._entry_id(seq), raw))
        return out

    async def read_range(
        self, stream: str, *, after_id: str = "0", count: int = 1000
    ) -> list[Delivery]:
        target = self._stream(stream)
        after = int(after_id.split("-")[-1]) if after_id != "0" else 0
        out = []
        for seq, raw in target.entries.items():
            if seq > after:
                out.append(make_delivery(stream, self._entry_id(seq), raw))
                if len(out) >= count:
                    break
        return out

    async def group_lag(self, stream: str, group: str) -> int | None:
        target = self._stream(stream)
        state = target.groups.get(group)
        if state is None:
            return None
        return sum(1 for seq in target.entries if seq > state.last_delivered)

    def pending_count(self, stream: str, group: str) -> int:
        state = self._stream(stream).groups.get(group)
        return 0 if state is None else len(state.pending)

    def _live(self, key: str) -> bytes | None:
        deadline = self._expires.get(key)
        if deadline is not None and time.monotonic() >= deadline:
            del self._expires[key]
            self._values.pop(key, None)
        return self._values.get(key)

    def _store(self, key: str, value: bytes, ttl_ms: int) -> None:
        self._values[key] = bytes(value)
        if ttl_ms > 0:
            self._expires[key] = time.monotonic() + ttl_ms / 1000
        else:
            self._expires.pop(key, None)
        if len(self._expires) > 4 * self._sweep_at:
            for expired in [k for k, d in self._expires.items() if time.monotonic() >= d]:
                self._live(expired)
            self._sweep_at = max(1024, len(self._expires))

    async def get_value(self, key: str) -> bytes | None:
        return self._live(key)

    async def set_value(self, key: str, value: bytes) -> None:
        self._store(key, value, 0)

    async def claim_once(self, key: str, value: bytes, ttl_ms: int) -> bytes | None:
        if ttl_ms <= 0:
            raise ValueError(f"a claim needs a positive ttl_ms, got {ttl_ms}")
        existing = self._live(key)
        if existing is not None:
            return existing
        self._store(key, value, ttl_ms)
        return None

    async def swap_value(
        self, key: str, expected: bytes, value: bytes | None, ttl_ms: int = 0
    ) -> bool:
        if self._live(key) != expected:
            return False
        if value is None:
            self._values.pop(key, None)
            self._expires.pop(key, None)
        else:
            self._store(key, value, ttl_ms)
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
