"""The order desk: child orders to the venue and the venue's truth back into the journal.

Write-ahead: an order is in the journal as SUBMITTING before its request leaves, under a
clientOrderId derived from (intent id, child index), so a redelivery, a retry, a restart or a
second instance finds it there and resolves it at the venue instead of sending it again.
Outcomes arrive three ways, all idempotent (fills keyed by venue trade id, order updates by seq):
the send response, the user data stream (push), and REST queries (poll, reconcile).
Journal first, then publish: the journal is the record, the bus the notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec

from engine.bus.base import Bus, exec_stream
from engine.core.clock import Clock
from engine.core.errors import (
    AmbiguousVenueError,
    FatalVenueError,
    FencingError,
    RetryableVenueError,
    VenueOrderNotFound,
)
from engine.core.messages import BusMessage, ExecutionReport, Fill, IntentDone
from engine.core.orders import OrderRecord, OrderState, is_stale_report
from engine.core.positions import PositionBook
from engine.core.pushhealth import PushHealth
from engine.core.reconcile import (
    Apply,
    Conflict,
    SendNow,
    Unchanged,
    Vanished,
    VenueOrder,
    Wait,
    resolve_order,
)
from engine.execution.gateway import VenueGateway
from engine.execution.journal import Journal
from engine.runtime.metrics import EngineMetrics
from plumbing.logging import get_logger

log = get_logger("engine.execution.desk")

_CCXT_TYPE = {"MARKET": "market", "LIMIT": "limit", "LIMIT_MAKER": "LIMIT_MAKER"}
OrderChanged = Callable[[OrderRecord], Awaitable[None]]


def dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def venue_order_of(raw: dict[str, Any]) -> VenueOrder:
    """A ccxt order (REST) or a raw executionReport (push) as the venue's view of an order."""
    info = raw.get("info") or raw
    if info.get("e") == "ORDER_TRADE_UPDATE":  # futures push: the order is under "o"
        pushed = info.get("o") or {}
        filled = dec(pushed.get("z"))
        return VenueOrder(
            client_order_id=str(pushed.get("c") or ""),
            venue_order_id=str(pushed.get("i") or ""),
            status=str(pushed.get("X") or ""),
            filled_qty=filled,
            quote_qty=dec(pushed.get("ap")) * filled,
        )
    if "cumQuote" in info or "cumBase" in info:  # a futures order (REST): no quote total on
        filled = dec(info.get("executedQty", raw.get("filled")))  # COIN-M, whose is in coin
        return VenueOrder(
            client_order_id=str(info.get("clientOrderId") or raw.get("clientOrderId") or ""),
            venue_order_id=str(info.get("orderId") or raw.get("id") or ""),
            status=str(info.get("status") or raw.get("status") or "").upper(),
            filled_qty=filled,
            quote_qty=dec(info.get("avgPrice")) * filled,
        )
    if "X" in info and "z" in info:  # executionReport
        return VenueOrder(
            client_order_id=str(info.get("C") or info.get("c") or ""),
            venue_order_id=str(info.get("i") or ""),
            status=str(info["X"]),
            filled_qty=dec(info.get("z")),
            quote_qty=dec(info.get("Z")),
        )
    return VenueOrder(
        client_order_id=str(info.get("clientOrderId") or raw.get("clientOrderId") or ""),
        venue_order_id=str(info.get("orderId") or raw.get("id") or ""),
        status=str(info.get("status") or raw.get("status") or "").upper(),
        filled_qty=dec(info.get("executedQty", raw.get("filled"))),
        quote_qty=dec(info.get("cummulativeQuoteQty", raw.get("cost"))),
    )


def cancel_key(client_order_id: str) -> str:
    """The journal meta key that records a cancel was asked for this order."""
    return f"cancel_requested.{client_order_id}"


class Deposed(FencingError):
    """This instance is no longer the leader: it must neither write nor send."""


class OrderDesk:
    def __init__(
        self,
        *,
        journal: Journal,
        gateway: VenueGateway,
        bus: Bus,
        clock: Clock,
        metrics: EngineMetrics,
        venue: str,
        unified: dict[str, str],
        push: PushHealth,
        may_send: Callable[[], bool],
        is_algo_parent: Callable[[str], bool],
        unknown_grace_ns: int,
        may_resend: Callable[[OrderRecord], bool] = lambda _: True,
        futures: bool = False,
    ) -> None:
        self.futures = futures
        """A futures venue: orders carry reduceOnly, positions are contracts."""
        self.journal = journal
        self.gateway = gateway
        self.bus = bus
        self.clock = clock
        self.metrics = metrics
        self.venue = venue
        self.unified = unified
        self.push = push
        self.may_send = may_send
        self.is_algo_parent = is_algo_parent
        self.unknown_grace_ns = unknown_grace_ns
        self.may_resend = may_resend
        """Whether an order that never reached the venue may be sent again now: not while
        trading is halted (no order leaves, resends included), not while reducing when it would
        add exposure. Otherwise it is dropped (REJECTED, "not sent"), never resent later."""
        self.positions = PositionBook(contracts=futures)
        self.on_change: OrderChanged | None = None
        self.sent = 0
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, client_order_id: str) -> asyncio.Lock:
        return self._locks.setdefault(client_order_id, asyncio.Lock())

    # --- sending ------------------------------------------------------------------------------

    async def place(self, order: OrderRecord) -> None:
        """Journal a new child order as SUBMITTING, then send it. A child already in the
        journal (redelivery, restart) is reconciled instead: never sent twice."""
        async with self.lock(order.client_order_id):
            now = self.clock.time_ns()
            submitting = msgspec.structs.replace(
                order.moved_to(OrderState.SUBMITTING, ts_ns=now), sent_ts_ns=now
            )
            if not self.may_send():
                raise Deposed("not the leader: refusing to place an order")
            if not await self.journal.insert_order(submitting):
                existing = await self.journal.get_order(order.client_order_id)
                log.info(
                    "order_request_redelivered",
                    client_order_id=order.client_order_id,
                    state=existing.state if existing else None,
                )
                if existing is not None:
                    if not existing.state.is_terminal:
                        await self._reconcile_locked(existing)
                    # the first delivery may have died between journal and bus: say it again
                    await self.republish(await self.journal.get_order(order.client_order_id))
                return
            await self._send(submitting)

    async def _send(self, order: OrderRecord) -> None:
        if not self.may_send():  # checked again after the journal write: a pause may sit between
            raise Deposed("not the leader: refusing to send")
        # measured here, after the journal write, when the order is handed to the gateway
        tick_to_order_us = None
        if order.tick_recv_ts_ns:
            tick_to_order_us = max(0, self.clock.time_ns() - order.tick_recv_ts_ns) // 1000
            self.metrics.tick_to_order.observe(tick_to_order_us / 1e6)
        self.metrics.orders_sent.labels(venue=self.venue).inc()
        self.sent += 1
        self.push.expect_event(self.clock.time_ns())
        params: dict[str, Any] = {
            "newClientOrderId": order.client_order_id,
            "newOrderRespType": "RESULT" if self.futures else "FULL",
        }
        if self.futures and order.reduce_only:
            params["reduceOnly"] = True  # the venue itself refuses to open or flip with it
        order_type = _CCXT_TYPE[order.order_type.value]
        if order.order_type.value == "LIMIT":
            params["timeInForce"] = order.time_in_force.value
        elif self.futures and order.order_type.value == "LIMIT_MAKER":
            order_type, params["timeInForce"] = "limit", "GTX"  # futures' post-only
        try:
            response = await self.gateway.call(
                "create_order",
                self.unified[order.symbol],
                order_type,
                order.side.value.lower(),
                float(order.qty),
                None if order.limit_price is None else float(order.limit_price),
                params,
                side_effect=True,
            )
        except (FatalVenueError, RetryableVenueError) as exc:
            # retryable after the gateway's retries means refused before execution: not placed
            rejected = order.moved_to(
                OrderState.REJECTED, ts_ns=self.clock.time_ns(), reason=str(exc)[:300]
            )
            self.metrics.order_rejections.labels(venue=self.venue).inc()
            await self.commit(rejected, [])
            log.warning(
                "order_rejected", client_order_id=order.client_order_id, reason=str(exc)[:300]
            )
            return
        except AmbiguousVenueError as exc:
            unknown = order.moved_to(
                OrderState.UNKNOWN, ts_ns=self.clock.time_ns(), reason=str(exc)[:300]
            )
            await self.commit(unknown, [])
            log.warning(
                "order_outcome_unknown", client_order_id=order.client_order_id, error=str(exc)[:300]
            )
            await self._reconcile_locked(unknown)
            return
        log.info(
            "order_sent",
            client_order_id=order.client_order_id,
            status=response.get("status"),
            side=order.side,
            qty=str(order.qty),
            order_type=order.order_type,
            tick_to_order_us=tick_to_order_us,
        )
        await self.apply(order, response)

    async def cancel(self, order: OrderRecord) -> None:
        async with self.lock(order.client_order_id):
            current = await self.journal.get_order(order.client_order_id) or order
            if current.state.is_terminal:
                return
            if not self.may_send():
                raise Deposed("not the leader: refusing to cancel")
            # durable before the request: should the venue not know the order yet ("Unknown
            # order" inside its grace period), a later reconcile queries it, never resends it
            await self.journal.set_meta(
                cancel_key(current.client_order_id), str(self.clock.time_ns())
            )
            self.push.expect_event(self.clock.time_ns())
            try:
                response = await self.gateway.call(
                    "cancel_order",
                    current.venue_order_id or "",
                    self.unified[current.symbol],
                    {"origClientOrderId": current.client_order_id},
                    side_effect=True,
                )
            except (FatalVenueError, AmbiguousVenueError, RetryableVenueError) as exc:
                # already filled, never placed, or unknown: the venue says which
                log.info(
                    "cancel_not_done", client_order_id=current.client_order_id, error=str(exc)[:200]
                )
                await self._reconcile_locked(current)
                return
            await self.apply(current, response)

    # --- venue truth --------------------------------------------------------------------------

    async def reconcile(self, order: OrderRecord) -> None:
        """Ask the venue about an order by clientOrderId and record what it says."""
        async with self.lock(order.client_order_id):
            current = await self.journal.get_order(order.client_order_id) or order
            await self._reconcile_locked(current)

    async def _reconcile_locked(self, order: OrderRecord) -> None:
        try:
            raw = await self.gateway.call(
                "fetch_order",
                "",
                self.unified[order.symbol],
                {"origClientOrderId": order.client_order_id},
                side_effect=False,
            )
            venue: VenueOrder | None = venue_order_of(raw)
        except VenueOrderNotFound:
            raw, venue = {}, None
        except (FatalVenueError, AmbiguousVenueError, RetryableVenueError) as exc:
            log.warning(
                "reconcile_deferred", client_order_id=order.client_order_id, error=str(exc)[:200]
            )
            return
        resolution = resolve_order(
            order,
            venue,
            now_ns=self.clock.time_ns(),
            grace_ns=self.unknown_grace_ns,
            resend=venue is None
            and self.may_resend(order)
            and await self.journal.get_meta(cancel_key(order.client_order_id)) is None,
        )
        if isinstance(resolution, Apply) and venue is None:
            # never reached the venue and may not be sent (halted, cancelled): record the drop
            log.warning(
                "order_dropped_not_sent",
                client_order_id=order.client_order_id,
                reason=resolution.order.reason,
            )
            await self.commit(resolution.order, [])
        elif isinstance(resolution, Apply | Unchanged):
            await self.apply(order, raw)
        elif isinstance(resolution, SendNow):
            log.warning(
                "order_resent_same_client_id",
                client_order_id=order.client_order_id,
                reason=resolution.reason,
            )
            now = self.clock.time_ns()
            resend = msgspec.structs.replace(
                resolution.order.moved_to(OrderState.SUBMITTING, ts_ns=now), sent_ts_ns=now
            )
            await self.journal.update_order(resend)
            await self._send(resend)
        elif isinstance(resolution, Wait):
            return
        elif isinstance(resolution, Vanished | Conflict):
            log.error(
                "order_venue_conflict",
                client_order_id=order.client_order_id,
                state=order.state,
                reason=resolution.reason,
            )

    async def apply(
        self, order: OrderRecord, raw: dict[str, Any], *, pushed_fill: Fill | None = None
    ) -> None:
        """Record what the venue says about an order (a ccxt order or an executionReport)."""
        venue = venue_order_of(raw)
        try:
            updated = order.with_venue_status(
                venue_status=venue.status,
                filled_qty=venue.filled_qty,
                quote_qty=venue.quote_qty,
                venue_order_id=venue.venue_order_id,
                ts_ns=self.clock.time_ns(),
            )
        except Exception as exc:
            if is_stale_report(order.state, venue.status):
                log.info(
                    "venue_report_stale",
                    client_order_id=order.client_order_id,
                    state=order.state,
                    status=venue.status,
                )
                return
            log.error(
                "venue_state_rejected",
                client_order_id=order.client_order_id,
                error=str(exc),
                status=venue.status,
            )
            return
        fills: list[Fill] = []
        if updated.filled_qty > 0:
            fills = await self._fills_for(updated, raw, pushed_fill)
        if updated is not order or fills:
            await self.commit(updated, fills)

    async def _fills_for(
        self, order: OrderRecord, raw: dict[str, Any], pushed_fill: Fill | None
    ) -> list[Fill]:
        """The order's trades: from the response or the push when they account for the whole
        filled quantity with what the journal already has, else from the venue's trade list."""
        known = [
            f for f in await self.journal.fills() if f.client_order_id == order.client_order_id
        ]
        have = {f.trade_id for f in known}
        candidates = [pushed_fill] if pushed_fill is not None else []
        # Binance's order response lists its fills without a time of their own: they happened
        # at the order's transactTime, which is what ccxt calls the order's timestamp
        placed_ms = raw.get("timestamp") or raw.get("lastTradeTimestamp")
        candidates += [
            self._fill_from_ccxt(order, t, fallback_ts_ms=placed_ms)
            for t in raw.get("trades") or []
            if t.get("id")
        ]
        total = sum((f.qty for f in known), Decimal(0)) + sum(
            (f.qty for f in candidates if f.trade_id not in have), Decimal(0)
        )
        if total >= order.filled_qty:
            return candidates
        if self.futures:  # ccxt's fetch_order_trades is spot's: futures ask userTrades by order
            trades = await self.gateway.call(
                "fetch_my_trades",
                self.unified[order.symbol],
                None,
                None,
                {"orderId": order.venue_order_id},
                side_effect=False,
            )
        else:
            trades = await self.gateway.call(
                "fetch_order_trades",
                order.venue_order_id,
                self.unified[order.symbol],
                side_effect=False,
            )
        return [self._fill_from_ccxt(order, t) for t in trades]

    def _fill_from_ccxt(
        self, order: OrderRecord, trade: dict[str, Any], *, fallback_ts_ms: Any = None
    ) -> Fill:
        fee = trade.get("fee") or {}
        return Fill(
            correlation_id=order.correlation_id,
            venue=order.venue,
            symbol=order.symbol,
            trade_id=int(trade["id"]),
            client_order_id=order.client_order_id,
            intent_id=order.intent_id,
            side=order.side,
            qty=dec(trade.get("amount")),
            price=dec(trade.get("price")),
            commission=dec(fee.get("cost")),
            commission_asset=str(fee.get("currency") or ""),
            is_maker=trade.get("takerOrMaker") == "maker",
            venue_ts_ms=int(trade.get("timestamp") or fallback_ts_ms or 0),
        )

    async def on_execution_report(self, info: dict[str, Any]) -> None:
        """A pushed executionReport (spot) or ORDER_TRADE_UPDATE (futures; the same letters,
        under "o") from the user data stream."""
        self.push.on_event(self.clock.time_ns())
        if info.get("e") == "ORDER_TRADE_UPDATE":
            await self._on_pushed(info.get("o") or {}, info)
            return
        await self._on_pushed(info, info)

    async def _on_pushed(self, info: dict[str, Any], raw: dict[str, Any]) -> None:
        client_order_id = str(info.get("C") or info.get("c") or "")
        order = await self.journal.get_order(client_order_id)
        if order is None:
            return  # not ours (another client on the account) or not journaled by us
        pushed: Fill | None = None
        if int(info.get("t", -1)) >= 0 and info.get("x", "TRADE") == "TRADE":
            pushed = Fill(
                correlation_id=order.correlation_id,
                venue=order.venue,
                symbol=order.symbol,
                trade_id=int(info["t"]),
                client_order_id=order.client_order_id,
                intent_id=order.intent_id,
                side=order.side,
                qty=dec(info.get("l")),
                price=dec(info.get("L")),
                commission=dec(info.get("n")),
                commission_asset=str(info.get("N") or ""),
                is_maker=bool(info.get("m")),
                venue_ts_ms=int(info.get("T") or 0),
            )
        async with self.lock(client_order_id):
            current = await self.journal.get_order(client_order_id) or order
            await self.apply(current, raw, pushed_fill=pushed)

    # --- recording ----------------------------------------------------------------------------

    async def commit(self, order: OrderRecord, fills: list[Fill]) -> None:
        new_fills = [f for f in fills if await self.journal.record_fill(f)]
        changed = await self.journal.update_order(order)
        out: list[tuple[str, BusMessage]] = []
        stream = exec_stream(self.venue)
        for fill in new_fills:
            self.positions.apply(fill)
            out.append((stream, fill))
            if order.sent_ts_ns:
                latency = max(0, self.clock.time_ns() - order.sent_ts_ns) / 1e9
                self.metrics.fill_latency.labels(exchange=self.venue).observe(latency)
        if changed:
            self.metrics.order_results.labels(venue=self.venue, state=order.state.value).inc()
            out.append((stream, self._report(order)))
            if order.state.is_terminal and not self.is_algo_parent(order.intent_id):
                out.append((stream, self._direct_done(order)))
        if out:
            await self.bus.publish_many(out)
        for fill in new_fills:
            log.info(
                "order_filled",
                client_order_id=order.client_order_id,
                trade_id=fill.trade_id,
                qty=str(fill.qty),
                price=str(fill.price),
                maker=fill.is_maker,
            )
        if (changed or new_fills) and self.on_change is not None:
            await self.on_change(order)

    async def republish(self, order: OrderRecord | None) -> None:
        """Publish an order's journaled state again (its fills, its report, IntentDone when it
        is a finished direct order): closes the gap of a crash between journal and bus. Every
        consumer is idempotent on these messages' natural keys."""
        if order is None:
            return
        stream = exec_stream(self.venue)
        out: list[tuple[str, BusMessage]] = [
            (stream, fill) for fill in await self.journal.fills_for_order(order.client_order_id)
        ]
        out.append((stream, self._report(order)))
        if order.state.is_terminal and await self.journal.get_parent(order.intent_id) is None:
            out.append((stream, self._direct_done(order)))
        await self.bus.publish_many(out)

    async def republish_many(
        self,
        orders: list[OrderRecord],
        fills_by_order: dict[str, list[Fill]],
        parent_ids: set[str],
        *,
        chunk: int = 500,
    ) -> int:
        """republish() for many orders at once (recovery), from state already read."""
        stream = exec_stream(self.venue)
        out: list[tuple[str, BusMessage]] = []
        for order in orders:
            out.extend((stream, f) for f in fills_by_order.get(order.client_order_id, []))
            out.append((stream, self._report(order)))
            if order.state.is_terminal and order.intent_id not in parent_ids:
                out.append((stream, self._direct_done(order)))
        for start in range(0, len(out), chunk):
            await self.bus.publish_many(out[start : start + chunk])
        return len(orders)

    def _report(self, order: OrderRecord) -> ExecutionReport:
        return ExecutionReport(
            correlation_id=order.correlation_id,
            venue=order.venue,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            intent_id=order.intent_id,
            venue_order_id=order.venue_order_id,
            state=order.state.value,
            side=order.side,
            order_type=order.order_type,
            qty=order.qty,
            limit_price=order.limit_price,
            filled_qty=order.filled_qty,
            avg_price=order.avg_price,
            reason=order.reason,
            seq=order.seq,
            ts_ns=self.clock.time_ns(),
        )

    def _direct_done(self, order: OrderRecord) -> IntentDone:
        if order.filled_qty >= order.qty:
            outcome = "filled"
        elif order.filled_qty > 0:
            outcome = "partial"
        elif order.state is OrderState.REJECTED:
            outcome = "rejected"
        else:
            outcome = "canceled"
        return IntentDone(
            correlation_id=order.correlation_id,
            venue=order.venue,
            symbol=order.symbol,
            intent_id=order.intent_id,
            side=order.side,
            qty=order.qty,
            filled_qty=order.filled_qty,
            outcome=outcome,  # type: ignore[arg-type]
            reason=order.reason,
            children=1,
            ts_ns=self.clock.time_ns(),
        )

    # --- polling ------------------------------------------------------------------------------

    async def poll_once(self) -> None:
        """Fallback for what the push did not tell us: one openOrders call per symbol, and an
        individual query only for orders whose state moved."""
        journal_open = [
            o for o in await self.journal.open_orders() if o.state is not OrderState.PENDING
        ]
        for symbol in sorted({o.symbol for o in journal_open}):
            try:
                venue_open = await self.gateway.call(
                    "fetch_open_orders", self.unified[symbol], side_effect=False
                )
            except (RetryableVenueError, FatalVenueError, AmbiguousVenueError) as exc:
                log.warning("poll_failed", symbol=symbol, error=str(exc)[:200])
                continue
            by_id = {o.get("clientOrderId"): o for o in venue_open}
            for order in journal_open:
                if order.symbol != symbol:
                    continue
                seen = by_id.get(order.client_order_id)
                if (
                    seen is not None
                    and order.state is not OrderState.UNKNOWN
                    and dec(seen.get("filled")) == order.filled_qty
                ):
                    continue  # still open, nothing new
                await self.reconcile(order)
