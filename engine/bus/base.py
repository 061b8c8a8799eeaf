"""The Bus protocol and stream naming."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

from engine.core.messages import BusMessage, decode

INTENTS = "intents"
CONTROL = "control"
RISK_EVENTS = "risk.events"
DEAD_LETTERS = "dead.letters"

GroupStart = Literal["earliest", "latest"]


def md_stream(venue: str, symbol: str) -> str:
    return f"md.{venue}.{symbol}"


def orders_stream(venue: str) -> str:
    return f"orders.{venue}"


def exec_stream(venue: str) -> str:
    return f"exec.{venue}"


class Delivery(NamedTuple):
    stream: str
    entry_id: str
    raw: bytes
    message: BusMessage | None
    """None when the payload could not be decoded (it goes to the dead-letter stream)."""
    error: str = ""


def make_delivery(stream: str, entry_id: str, raw: bytes) -> Delivery:
    try:
        return Delivery(stream, entry_id, raw, decode(raw))
    except Exception as exc:  # a malformed payload must not stop the consumer
        return Delivery(stream, entry_id, raw, None, f"{type(exc).__name__}: {exc}")


class Bus(Protocol):
    async def publish(self, stream: str, message: BusMessage) -> str: ...

    async def publish_many(self, items: Sequence[tuple[str, BusMessage]]) -> list[str]:
        """Pipelined publish; returns the entry ids in order."""
        ...

    async def submit_many(
        self, items: Sequence[tuple[str, BusMessage]]
    ) -> asyncio.Future[list[str]]:
        """Send a batch and return at once; the future resolves when the bus acknowledged it
        (several batches may be in flight, in order)."""
        ...

    async def publish_raw(self, stream: str, raw: bytes) -> str: ...

    async def ensure_group(self, stream: str, group: str, start: GroupStart) -> None: ...

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
        """New entries (pending=False) or this consumer's own unacknowledged ones (True)."""
        ...

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
        """Acknowledge `handled`, then read new entries: one round trip where the bus can."""
        ...

    async def ack(self, group: str, deliveries: Sequence[Delivery]) -> None: ...

    async def autoclaim(
        self, *, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        """Take over entries another consumer read but did not acknowledge for min_idle_ms."""
        ...

    async def read_range(
        self, stream: str, *, after_id: str = "0", count: int = 1000
    ) -> list[Delivery]:
        """Entries after `after_id` in order, outside any group (rebuilding state at start)."""
        ...

    async def group_lag(self, stream: str, group: str) -> int | None: ...

    async def get_value(self, key: str) -> bytes | None:
        """A small durable value (a checkpoint, the trading state); None when never set."""
        ...

    async def set_value(self, key: str, value: bytes) -> None: ...

    async def claim_once(self, key: str, value: bytes, ttl_ms: int) -> bytes | None:
        """Store `value` under `key` for `ttl_ms` unless the key holds a value already, in one
        atomic step shared by every process on this bus (Redis `SET NX` semantics).

        Returns None when the claim is ours, else the value already there (left unchanged).
        The key is in the same namespace as get_value, which reads it while it lives."""
        ...

    async def swap_value(
        self, key: str, expected: bytes, value: bytes | None, ttl_ms: int = 0
    ) -> bool:
        """Compare-and-set: while `key` holds `expected`, replace it with `value` (expiring
        after `ttl_ms`, or never when 0) or delete it (`value` None). True when it did."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


async def replay_stream(bus: Bus, stream: str, *, batch: int = 1000) -> list[Delivery]:
    """Every entry still in a stream, oldest first."""
    out: list[Delivery] = []
    after = "0"
    while True:
        chunk = await bus.read_range(stream, after_id=after, count=batch)
        if not chunk:
            return out
        out.extend(chunk)
        after = chunk[-1].entry_id


async def read_since(bus: Bus, stream: str, since_ms: int, *, batch: int = 1000) -> list[Delivery]:
    """The entries of a stream appended from `since_ms` on, oldest first, without reading the
    older ones where the bus can: a Redis entry id starts with the time of its append (ms), so
    the read starts after `<since_ms>-0`. MemoryBus ids (`0-n`) carry no time: it returns every
    entry. Either way the caller filters on its messages' own times."""
    out: list[Delivery] = []
    after = f"{max(0, since_ms)}-0"
    while True:
        chunk = await bus.read_range(stream, after_id=after, count=batch)
        if not chunk:
            return out
        out.extend(chunk)
        after = chunk[-1].entry_id
