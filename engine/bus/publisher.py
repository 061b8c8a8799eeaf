"""A bounded, pipelining publisher.

Producers `await put(stream, message)`; one task drains the queue in batches and publishes them
with one pipelined round trip. Overflow policy is explicit: BLOCK (the producer waits: market
data backpressures the socket reader) or DROP_OLDEST (for telemetry that is useless when late).
While the bus is unreachable the batch is kept and retried with backoff, and `degraded` is True;
risk turns that into "no new entries".
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from engine.bus.base import Bus
from engine.core.backoff import Backoff
from engine.core.errors import BusUnavailableError
from engine.core.messages import BusMessage
from engine.runtime.logging import get_logger

log = get_logger("engine.bus.publisher")


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
        overflow: Overflow = Overflow.BLOCK,
        backoff: Backoff | None = None,
        on_latency: Callable[[float], None] | None = None,
        on_degraded: Callable[[bool], None] | None = None,
    ) -> None:
        self._bus = bus
        self._queue: deque[tuple[str, BusMessage, float]] = deque()
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._overflow = overflow
        self._backoff = backoff or Backoff(base_ms=50, cap_ms=2_000)
        self._on_latency = on_latency
        self._on_degraded = on_degraded
        self._has_items = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.degraded = False
        self._stopping = False
        self.dropped = 0
        self.published = 0

    def __len__(self) -> int:
        return len(self._queue)

    async def put(self, stream: str, message: BusMessage) -> None:
        while len(self._queue) >= self._max_queue:
            if self._overflow is Overflow.DROP_OLDEST:
                self._queue.popleft()
                self.dropped += 1
                break
            self._has_room.clear()
            await self._has_room.wait()
        self._queue.append((stream, message, time.perf_counter()))
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
        while True:
            if not self._queue:
                self._idle.set()
                if self._stopping:
                    return
                self._has_items.clear()
                await self._has_items.wait()
                continue
            batch = [self._queue[i] for i in range(min(self._max_batch, len(self._queue)))]
            try:
                await self._bus.publish_many([(stream, message) for stream, message, _ in batch])
            except BusUnavailableError as exc:
                self._set_degraded(True, str(exc))
                await asyncio.sleep(self._backoff.next_delay_ms() / 1000)
                continue
            for _ in batch:
                self._queue.popleft()
            self.published += len(batch)
            self._has_room.set()
            if self.degraded:
                self._set_degraded(False, "")
                self._backoff.reset()
            if self._on_latency:
                now = time.perf_counter()
                for _, _, enqueued in batch:
                    self._on_latency(now - enqueued)

    def _set_degraded(self, degraded: bool, reason: str) -> None:
        if degraded == self.degraded:
            return
        self.degraded = degraded
        if degraded:
            log.warning("bus_degraded", reason=reason, queued=len(self._queue))
        else:
            log.info("bus_recovered", queued=len(self._queue))
        if self._on_degraded:
            self._on_degraded(degraded)
