"""A bounded, pipelining publisher.

Producers `await put(stream, message)`; one task drains the queue in batches and keeps up to
`max_in_flight` batches on the wire at once (Bus.submit_many), so a message waits for its own
round trip, not for the batches before it. Overflow policy is explicit: BLOCK (the producer
waits: market data backpressures the socket reader) or DROP_OLDEST (for telemetry that is
useless when late). When the bus fails, every batch not yet acknowledged goes back to the front
of the queue, in order, and is sent again once the bus is back (at-least-once: consumers are
idempotent). While it is unreachable `degraded` is True; risk turns that into "no new entries".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from engine.bus.base import Bus
from engine.core.errors import BusUnavailableError
from engine.core.messages import BusMessage
from plumbing.backoff import Backoff
from plumbing.logging import get_logger
from plumbing.waits import raise_if_cancelled

log = get_logger("engine.bus.publisher")

Item = tuple[str, BusMessage, int]


class Overflow(StrEnum):
    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


class Publisher:
    def __init__(
        self,
        bus: Bus,
        *,
        max_queue: int = 10_000,
        max_batch: int = 512,
        max_in_flight: int = 4,
        overflow: Overflow = Overflow.BLOCK,
        backoff: Backoff | None = None,
        on_latency: Callable[[float], None] | None = None,
        on_batch_latency: Callable[[float], None] | None = None,
        on_degraded: Callable[[bool], None] | None = None,
    ) -> None:
        self._bus = bus
        self._queue: deque[Item] = deque()
        self._in_flight: deque[tuple[asyncio.Future[list[str]], list[Item]]] = deque()
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._overflow = overflow
        self._backoff = backoff or Backoff(base_ms=50, cap_ms=2_000)
        self._on_latency = on_latency
        self._on_batch_latency = on_batch_latency
        self._on_degraded = on_degraded
        self._has_items = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self.degraded = False
        self.dropped = 0
        self.published = 0

    def __len__(self) -> int:
        return len(self._queue) + sum(len(batch) for _, batch in self._in_flight)

    async def put(self, stream: str, message: BusMessage, received_ns: int | None = None) -> None:
        """Queue a message; `received_ns` (time.monotonic_ns) is when its input arrived, so the
        latency metric covers receive to published, not just the queue."""
        while len(self._queue) >= self._max_queue:
            if self._overflow is Overflow.DROP_OLDEST:
                self._queue.popleft()
                self.dropped += 1
                break
            self._has_room.clear()
            await self._has_room.wait()
        self._queue.append((stream, message, received_ns or time.monotonic_ns()))
        self._idle.clear()
        self._has_items.set()

    async def flush(self) -> None:
        """Wait until everything queued so far has been published."""
        await self._idle.wait()

    def stop(self) -> None:
        """Publish what is queued, then return from run()."""
        self._stopping = True
        self._has_items.set()

    async def run(self) -> None:
        try:
            while True:
                if not self._reap():
                    await self._recover()
                    continue
                if not self._queue:
                    if not self._in_flight:
                        self._idle.set()
                        if self._stopping:
                            return
                        self._has_items.clear()
                        await self._has_items.wait()
                    else:
                        await self._wait_for_reply_or_items()
                    continue
                if len(self._in_flight) >= self._max_in_flight:
                    await asyncio.wait([self._in_flight[0][0]])
                    continue
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                self._has_room.set()
                try:
                    future = await self._bus.submit_many([(s, m) for s, m, _ in batch])
                except BusUnavailableError as exc:
                    self._queue.extendleft(reversed(batch))
                    self._set_degraded(True, str(exc))
                    await self._recover()
                    continue
                self._in_flight.append((future, batch))
        finally:
            for future, _ in self._in_flight:
                future.cancel()

    def _reap(self) -> bool:
        """Account for acknowledged batches, in order; False when one failed."""
        while self._in_flight and self._in_flight[0][0].done():
            future, batch = self._in_flight[0]
            if future.cancelled() or future.exception() is not None:
                error = "cancelled" if future.cancelled() else str(future.exception())
                self._set_degraded(True, error)
                return False
            self._in_flight.popleft()
            self.published += len(batch)
            self._report(batch)
            if self.degraded:
                self._set_degraded(False, "")
                self._backoff.reset()
        return True

    async def _recover(self) -> None:
        """Every batch not acknowledged goes back to the front of the queue, in order."""
        unacknowledged: list[Item] = []
        while self._in_flight:
            future, batch = self._in_flight.popleft()
            if not future.done():
                future.cancel()
            unacknowledged.extend(batch)
        self._queue.extendleft(reversed(unacknowledged))
        await asyncio.sleep(self._backoff.next_delay_ms() / 1000)

    async def _wait_for_reply_or_items(self) -> None:
        self._has_items.clear()
        waiter: asyncio.Future[Any] = asyncio.ensure_future(self._has_items.wait())
        reply: asyncio.Future[Any] = self._in_flight[0][0]
        try:
            await asyncio.wait([reply, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            raise_if_cancelled()  # the suppress above may have taken our own cancellation

    def _report(self, batch: list[Item]) -> None:
        if not (self._on_latency or self._on_batch_latency):
            return
        now = time.monotonic_ns()
        if self._on_batch_latency:  # the oldest message: the batch's worst latency
            self._on_batch_latency((now - batch[0][2]) / 1e9)
        if self._on_latency:
            for _, _, received in batch:
                self._on_latency((now - received) / 1e9)

    def _set_degraded(self, degraded: bool, reason: str) -> None:
        if degraded == self.degraded:
            return
        self.degraded = degraded
        if degraded:
            log.warning("bus_degraded", reason=reason[:200], queued=len(self._queue))
        else:
            log.info("bus_recovered", queued=len(self._queue))
        if self._on_degraded:
            self._on_degraded(degraded)
