"""A consumer-group reader loop: at-least-once, acknowledge after the handler's effect is durable.

On start (and after every reconnect) it first re-reads its own pending entries (a previous run of
this consumer crashed mid-batch), then claims entries other consumers left pending for longer than
`claim_min_idle_ms` (they died), then reads new entries. Handlers must be idempotent on the
message's natural key. A payload that cannot be decoded, or that makes the handler raise, goes to
the dead-letter stream with the reason and is acknowledged: it is kept, not lost, and it does not
block the stream. A handler raises RetryLater when the effect could not be made durable yet; the
entry is not acknowledged and is read again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from engine.bus.base import DEAD_LETTERS, Bus, Delivery, GroupStart
from engine.core.errors import BusUnavailableError, StormproofError
from plumbing.backoff import Backoff
from plumbing.logging import get_logger
from plumbing.waits import wait_set

log = get_logger("engine.bus")

Handler = Callable[[Delivery], Awaitable[None]]


class RetryLater(StormproofError):
    """The handler could not make its effect durable now; read the entry again later."""


class DeadLetter(msgspec.Struct, frozen=True):
    stream: str
    entry_id: str
    group: str
    reason: str
    raw: str


class StreamConsumer:
    def __init__(
        self,
        bus: Bus,
        *,
        group: str,
        consumer: str,
        streams: Sequence[str],
        handler: Handler,
        start: GroupStart = "earliest",
        count: int = 256,
        block_ms: int = 200,
        claim_min_idle_ms: int = 5_000,
        backoff: Backoff | None = None,
        on_state: Callable[[bool, str], None] | None = None,
        concurrency: int = 1,
        key: Callable[[Delivery], str] | None = None,
        first_claim_min_idle_ms: int | None = None,
    ) -> None:
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.streams = list(streams)
        self.handler = handler
        self.start = start
        self.count = count
        self.block_ms = block_ms
        self.claim_min_idle_ms = claim_min_idle_ms
        self._first_claim_min_idle_ms = first_claim_min_idle_ms
        """A sole owner of the group (an elected leader) takes every pending entry at once."""
        self.backoff = backoff or Backoff(base_ms=100, cap_ms=5_000)
        self._on_state = on_state or (lambda ok, reason: None)
        self.concurrency = concurrency
        self.key = key
        self._stopping = asyncio.Event()
        self.handled = 0
        self.dead_lettered = 0
        self.connected = False

    def stop(self) -> None:
        """Finish (and acknowledge) the batch in hand, then return from run()."""
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                for stream in self.streams:
                    await self.bus.ensure_group(stream, self.group, self.start)
                await self._drain_own_pending()
                await self._claim_abandoned(self._first_claim_min_idle_ms)
                self._first_claim_min_idle_ms = None
                self._set_connected(True, "")
                self.backoff.reset()
                await self._read_new_forever()
            except (BusUnavailableError, RetryLater) as exc:
                self._set_connected(False, str(exc))
                delay = self.backoff.next_delay_ms()
                log.warning(
                    "bus_consumer_retry", group=self.group, error=str(exc), delay_ms=round(delay)
                )
                await wait_set(self._stopping, delay / 1000)

    def _set_connected(self, ok: bool, reason: str) -> None:
        if ok != self.connected:
            self.connected = ok
            self._on_state(ok, reason)

    async def _drain_own_pending(self) -> None:
        while True:
            batch = await self.bus.read_group(
                group=self.group,
                consumer=self.consumer,
                streams=self.streams,
                count=self.count,
                block_ms=0,
                pending=True,
            )
            if not batch:
                return
            await self._process(batch)

    async def _claim_abandoned(self, min_idle_ms: int | None = None) -> None:
        for stream in self.streams:
            while True:
                claimed = await self.bus.autoclaim(
                    stream=stream,
                    group=self.group,
                    consumer=self.consumer,
                    min_idle_ms=self.claim_min_idle_ms if min_idle_ms is None else min_idle_ms,
                    count=self.count,
                )
                if not claimed:
                    break
                log.info("bus_claimed_pending", stream=stream, group=self.group, n=len(claimed))
                await self._process(claimed)

    async def _read_new_forever(self) -> None:
        idle_reads = 0
        handled: list[Delivery] = []
        try:
            while not self._stopping.is_set():
                # the batch just handled is acknowledged with the next read, in one round trip
                batch = await self.bus.ack_then_read(
                    group=self.group,
                    consumer=self.consumer,
                    streams=self.streams,
                    count=self.count,
                    block_ms=self.block_ms,
                    handled=handled,
                )
                handled = []
                if batch:
                    idle_reads = 0
                    handled = await self._process(batch, ack=False)
                else:
                    idle_reads += 1
                    if idle_reads * self.block_ms >= self.claim_min_idle_ms:
                        idle_reads = 0
                        await self._claim_abandoned()
        except asyncio.CancelledError:
            raise  # a cancelled command may leave the connection mid-reply: redelivery is safe
        except BaseException:
            await self._ack_quietly(handled)
            raise
        await self._ack_quietly(handled)

    async def _ack_quietly(self, handled: Sequence[Delivery]) -> None:
        if handled:
            # if not acknowledged they are read again; handlers are idempotent
            with contextlib.suppress(BusUnavailableError):
                await self.bus.ack(self.group, handled)

    async def _process(self, batch: Sequence[Delivery], *, ack: bool = True) -> list[Delivery]:
        """Handle a batch and return what was handled; acknowledge it here unless `ack` is
        False (the caller then acknowledges it with its next read). On an error, what was
        handled is acknowledged here whatever `ack` says.

        With concurrency > 1, entries with different keys run concurrently (at most
        `concurrency` at once) while entries with the same key keep their stream order.
        """
        done: list[Delivery] = []
        failed = True
        try:
            if self.concurrency <= 1 or self.key is None or len(batch) == 1:
                for delivery in batch:
                    await self._handle_one(delivery)
                    done.append(delivery)
            else:
                lanes: dict[str, list[Delivery]] = {}
                for delivery in batch:
                    lane = self.key(delivery) if delivery.message is not None else delivery.entry_id
                    lanes.setdefault(lane, []).append(delivery)
                gate = asyncio.Semaphore(self.concurrency)

                async def run_lane(items: list[Delivery]) -> None:
                    async with gate:
                        for delivery in items:
                            await self._handle_one(delivery)
                            done.append(delivery)

                results = await asyncio.gather(
                    *(run_lane(items) for items in lanes.values()), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
            failed = False
        finally:
            if done and (ack or failed):
                # if not acknowledged they are read again; handlers are idempotent
                with contextlib.suppress(BusUnavailableError):
                    await self.bus.ack(self.group, done)
        return [] if ack else done

    async def _handle_one(self, delivery: Delivery) -> None:
        if delivery.message is None:
            await self._dead_letter(delivery, f"undecodable: {delivery.error}")
        else:
            try:
                await self.handler(delivery)
            except (RetryLater, BusUnavailableError, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.exception(
                    "bus_handler_failed",
                    stream=delivery.stream,
                    entry_id=delivery.entry_id,
                    group=self.group,
                )
                await self._dead_letter(delivery, f"{type(exc).__name__}: {exc}")
        self.handled += 1

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.dead_lettered += 1
        log.warning(
            "bus_dead_letter",
            stream=delivery.stream,
            entry_id=delivery.entry_id,
            group=self.group,
            reason=reason[:300],
        )
        record = DeadLetter(
            stream=delivery.stream,
            entry_id=delivery.entry_id,
            group=self.group,
            reason=reason,
            raw=delivery.raw.decode("utf-8", "replace"),
        )
        await self.bus.publish_raw(DEAD_LETTERS, msgspec.json.encode(record))
