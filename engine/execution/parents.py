"""Works the intents that have an execution algo (maker-first, split, TWAP) as parents.

    OrderRequest ─► journal parent (active) ─► algo.step(now, market, children from journal)
                                                  ├─ PlaceChild  ─► desk.place (write-ahead)
                                                  ├─ CancelChild ─► desk.cancel
                                                  └─ Finished    ─► parent done, IntentDone
A parent is driven again whenever one of its children changes, and on every tick (re-quotes,
timeouts, TWAP slices). Drives of one parent never overlap; different parents run on a fixed
pool of workers. The set of parents waiting for a drive is bounded by the parents themselves:
a parent marked twice is driven once (overflow is impossible by construction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from engine.bus.base import Bus, exec_stream
from engine.core.algos import (
    Algo,
    CancelChild,
    Finished,
    Instrument,
    MarketView,
    PlaceChild,
    make_algo,
)
from engine.core.clock import Clock
from engine.core.errors import AlgoParamsError, FencingError
from engine.core.ids import client_order_id
from engine.core.messages import Intent, decode, encode, intent_done
from engine.core.orders import OrderRecord, OrderState
from engine.execution.desk import OrderDesk
from engine.execution.journal import Journal, ParentRecord
from plumbing.logging import bound_contextvars, get_logger
from plumbing.ratelimited_log import RateLimitedLog
from plumbing.waits import wait_set

log = get_logger("engine.execution.parents")

NO_MARKET = MarketView(bid=None, ask=None, ts_ns=0)


class _Parent:
    __slots__ = ("algo", "intent", "state")

    def __init__(self, intent: Intent, algo: Algo, state: str) -> None:
        self.intent = intent
        self.algo = algo
        self.state = state


class ParentOrders:
    def __init__(
        self,
        *,
        journal: Journal,
        desk: OrderDesk,
        bus: Bus,
        clock: Clock,
        venue: str,
        instruments: dict[str, Instrument],
        market: Callable[[str], MarketView | None],
        workers: int,
        tick_ms: int = 100,
    ) -> None:
        self.journal = journal
        self.desk = desk
        self.bus = bus
        self.clock = clock
        self.venue = venue
        self.instruments = instruments
        self.market = market
        self.workers = max(1, workers)
        self.tick_s = tick_ms / 1000
        self.parents: dict[str, _Parent] = {}
        self._dirty: set[str] = set()
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.finished = 0
        self._errors = RateLimitedLog(log, clock, interval_ms=10_000)

    def is_parent(self, intent_id: str) -> bool:
        return intent_id in self.parents

    # --- entry points -------------------------------------------------------------------------

    async def load(self) -> None:
        """Resume every parent the journal says is not done."""
        for record in await self.journal.active_parents():
            intent = decode(record.payload)
            if not isinstance(intent, Intent):
                log.error("parent_payload_unreadable", intent_id=record.intent_id)
                continue
            self._register(intent, record.created_ts_ns, record.state)
        if self.parents:
            log.info("parents_resumed", n=len(self.parents))

    async def submit(self, intent: Intent, *, position_qty: Decimal) -> None:
        """Journal a new parent (idempotent) and start working it."""
        if intent.reduce_only:
            # spot has no reduce-only flag: never sell more than we hold (or buy more than short)
            intent = msgspec.structs.replace(intent, qty=min(intent.qty, abs(position_qty)))
        now = self.clock.time_ns()
        existing = await self.journal.get_parent(intent.intent_id)
        if existing is None:
            record = ParentRecord(
                intent_id=intent.intent_id,
                payload=encode(intent).decode(),
                created_ts_ns=now,
            )
            if not await self.journal.insert_parent(record):
                existing = await self.journal.get_parent(intent.intent_id)
        if existing is not None:
            if existing.state != "done" and intent.intent_id not in self.parents:
                stored = decode(existing.payload)
                if isinstance(stored, Intent):
                    self._register(stored, existing.created_ts_ns, existing.state)
            self.mark(intent.intent_id)
            return
        self._register(intent, now, "active")
        self.mark(intent.intent_id)

    async def cancel(self, intent_id: str) -> bool:
        """Cancel a parent: no new children, live ones cancelled. False if not a parent."""
        parent = self.parents.get(intent_id)
        if parent is None:
            return False
        if parent.state == "active":
            await self.journal.update_parent(intent_id, state="canceling")
            parent.state = "canceling"
        self.mark(intent_id)
        return True

    async def on_order_changed(self, order: OrderRecord) -> None:
        if order.intent_id in self.parents:
            self.mark(order.intent_id)

    def mark(self, intent_id: str) -> None:
        self._dirty.add(intent_id)
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _register(self, intent: Intent, start_ns: int, state: str) -> None:
        instrument = self.instruments.get(intent.symbol)
        if instrument is None:
            log.error("parent_unknown_symbol", intent_id=intent.intent_id, symbol=intent.symbol)
            return
        try:
            algo = make_algo(intent, start_ns=start_ns, instrument=instrument)
        except AlgoParamsError as exc:
            self.parents[intent.intent_id] = _Parent(intent, _Rejected(str(exc)), state)
            return
        self.parents[intent.intent_id] = _Parent(intent, algo, state)

    # --- loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._ticker(), name="parents-ticker")
            for n in range(self.workers):
                tasks.create_task(self._worker(), name=f"parents-worker-{n}")

    async def _ticker(self) -> None:
        while not self._stopping.is_set():
            for intent_id in list(self.parents):
                self.mark(intent_id)
            await wait_set(self._stopping, self.tick_s)

    async def _worker(self) -> None:
        while not self._stopping.is_set():
            ready = [i for i in self._dirty if i not in self._busy]
            if not ready:
                self._wake.clear()
                await self._wake.wait()
                continue
            intent_id = ready[0]
            self._dirty.discard(intent_id)
            self._busy.add(intent_id)
            try:
                await self._drive(intent_id)
            except FencingError:
                raise  # deposed: the service stops everything
            except Exception as exc:
                # the journal or the bus is failing: this parent is driven again on a later tick
                self._errors.warning(
                    type(exc).__name__,
                    "parent_drive_failed",
                    intent_id=intent_id,
                    error=str(exc)[:200],
                )
            finally:
                self._busy.discard(intent_id)
                if self._dirty:
                    self._wake.set()

    async def _drive(self, intent_id: str) -> None:
        parent = self.parents.get(intent_id)
        if parent is None:
            return
        intent = parent.intent
        with bound_contextvars(correlation_id=intent.correlation_id, intent_id=intent_id):
            children = await self.journal.orders_for_intent(intent_id)
            now = self.clock.time_ns()
            if parent.state == "canceling":
                actions = list(parent.algo.cancel(children))
                if all(c.state.is_terminal for c in children) and not any(
                    isinstance(a, Finished) for a in actions
                ):
                    actions.append(Finished(reason="canceled", complete=False))
            else:
                market = self.market(intent.symbol) or NO_MARKET
                actions = list(parent.algo.step(now_ns=now, market=market, children=children))
            by_id = {c.client_order_id: c for c in children}
            for action in actions:
                if isinstance(action, PlaceChild):
                    await self.desk.place(self._child(intent, action, now))
                elif isinstance(action, CancelChild):
                    child = by_id.get(action.client_order_id)
                    if child is not None:
                        await self.desk.cancel(child)
                elif isinstance(action, Finished):
                    await self._finish(parent, action, children)
                    return

    def _child(self, intent: Intent, action: PlaceChild, now: int) -> OrderRecord:
        return OrderRecord(
            client_order_id=client_order_id(intent.intent_id, action.child_index),
            intent_id=intent.intent_id,
            child_index=action.child_index,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            order_type=action.order_type,
            qty=action.qty,
            limit_price=action.limit_price,
            time_in_force=action.time_in_force,
            correlation_id=intent.correlation_id,
            created_ts_ns=now,
            updated_ts_ns=now,
            tick_recv_ts_ns=intent.tick_recv_ts_ns if action.child_index == 0 else 0,
            reference_price=intent.reference_price,
            reduce_only=intent.reduce_only,
        )

    async def _finish(self, parent: _Parent, action: Finished, children: list[OrderRecord]) -> None:
        intent = parent.intent
        filled = sum((c.filled_qty for c in children), Decimal(0))
        if filled >= intent.qty and intent.qty > 0:
            outcome = "filled"
        elif filled > 0:
            outcome = "partial"
        elif parent.state == "canceling":
            outcome = "canceled"
        elif (children and all(c.state is OrderState.REJECTED for c in children)) or not children:
            outcome = "rejected"
        else:
            outcome = "canceled"
        # bus first, journal second: a crash in between finishes the parent again after the
        # restart and says so again (IntentDone is idempotent), instead of never saying it
        await self._publish_done(intent, filled, outcome, action.reason, len(children))
        await self.journal.update_parent(
            intent.intent_id, state="done", outcome=outcome, reason=action.reason
        )
        self.parents.pop(intent.intent_id, None)
        self.finished += 1
        log.info(
            "parent_done",
            outcome=outcome,
            filled=str(filled),
            qty=str(intent.qty),
            children=len(children),
            reason=action.reason,
        )

    async def _publish_done(
        self, intent: Intent, filled: Decimal, outcome: str, reason: str, children: int
    ) -> None:
        await self.bus.publish(
            exec_stream(self.venue),
            intent_done(
                intent,
                filled_qty=filled,
                outcome=outcome,  # type: ignore[arg-type]
                reason=reason,
                children=children,
                ts_ns=self.clock.time_ns(),
            ),
        )

    def state(self) -> list[dict[str, Any]]:
        return [
            {
                "intent_id": intent_id,
                "algo": p.intent.algo,
                "symbol": p.intent.symbol,
                "side": p.intent.side.value,
                "qty": str(p.intent.qty),
                "state": p.state,
            }
            for intent_id, p in list(self.parents.items())[:50]
        ]


class _Rejected:
    """An intent whose algo params were refused: finished at once with the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def step(self, *, now_ns: int, market: MarketView, children: Any) -> list[Any]:
        return [Finished(reason=self.reason, complete=False)]

    def cancel(self, children: Any) -> list[Any]:
        return [Finished(reason=self.reason, complete=False)]
