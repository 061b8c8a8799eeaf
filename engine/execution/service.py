"""The execution gateway: approved order requests in, venue orders out, every step journaled.

Write-ahead: the order is in the journal (PENDING) before it is sent, under a clientOrderId
derived from the intent id, so a redelivered request, a retry or a restart finds it there and
resolves it at the venue instead of sending it again. Outcomes come back from the send response,
from polling open orders, and from the venue's trade list (fills keyed by venue trade id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt
import msgspec

from engine.bus.base import Delivery, exec_stream, orders_stream
from engine.bus.consumer import RetryLater, StreamConsumer
from engine.core.backoff import Backoff
from engine.core.errors import (
    AmbiguousVenueError,
    FatalVenueError,
    RetryableVenueError,
    VenueOrderNotFound,
)
from engine.core.ids import client_order_id
from engine.core.messages import BusMessage, ExecutionReport, Fill, Intent, OrderRequest
from engine.core.orders import OrderRecord, OrderState
from engine.core.positions import PositionBook
from engine.execution.errors import ErrorClass, classify
from engine.execution.journal import SqliteJournal
from engine.execution.venue import make_binance
from engine.runtime.logging import bound_contextvars
from engine.runtime.service import Readiness, Service, ServiceContext

T = TypeVar("T")


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _order_lane(delivery: Delivery) -> str:
    """Requests about the same intent keep their order (a cancel never overtakes its order)."""
    message = delivery.message
    if isinstance(message, OrderRequest):
        intent = message.intent
        return intent.cancel_intent_id if intent.action == "cancel" else intent.intent_id
    return delivery.entry_id


class ExecutionService(Service):
    name = "execution"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.venue = self.config.venue.name
        self.exec_config = self.config.execution
        self.journal = SqliteJournal(self.exec_config.journal_path)
        self.exchange: Any = None
        self.positions = PositionBook()
        self._unified: dict[str, str] = {}
        self._order_locks: dict[str, asyncio.Lock] = {}
        self.venue_ok = False
        self.sent = 0
        bus_cfg = self.config.bus
        self.consumer = StreamConsumer(
            self.bus,
            group="execution",
            streams=[orders_stream(self.venue)],
            handler=self._on_request,
            start="earliest",
            consumer=f"execution-{ctx.instance}",
            count=bus_cfg.read_count,
            block_ms=bus_cfg.read_block_ms,
            claim_min_idle_ms=bus_cfg.claim_min_idle_ms,
            concurrency=self.exec_config.max_orders_in_flight,
            key=_order_lane,
        )
        self.stoppables = [self.consumer]
        self._unknown_grace_ns = 2 * self.config.venue.request_timeout_ms * 1_000_000

    # --- lifecycle ----------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self.bus.ping()
        await self.journal.open()
        for fill in await self.journal.fills():
            self.positions.apply(fill)
        self.exchange = make_binance(self.config.venue, self.ctx.settings.secrets)
        await self._call(self.exchange.load_markets, side_effect=False)
        for symbol in self.config.venue.symbols:
            market = self.exchange.markets_by_id.get(symbol.upper())
            if not market:
                raise FatalVenueError(f"venue does not list symbol {symbol}")
            self._unified[symbol.upper()] = market[0]["symbol"]
        self.venue_ok = True
        # Recovery: every order the journal does not know the end of is resolved at the venue.
        for order in await self.journal.open_orders():
            await self._reconcile(order)
        self.log.info(
            "execution_recovered", positions={p.symbol: str(p.qty) for p in self.positions.all()}
        )

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.consumer.run(), name="execution-orders")
            tasks.create_task(self._poll_open_orders(), name="execution-poller")

    async def on_stop(self) -> None:
        if self.exchange is not None:
            await self.exchange.close()
        await self.journal.close()

    # --- requests -----------------------------------------------------------------------------

    async def _on_request(self, delivery: Delivery) -> None:
        request = delivery.message
        if not isinstance(request, OrderRequest):
            return
        intent = request.intent
        with bound_contextvars(correlation_id=intent.correlation_id, intent_id=intent.intent_id):
            if intent.action == "cancel":
                await self._cancel_intent(intent)
            else:
                await self._submit(intent)

    def _lock(self, coid: str) -> asyncio.Lock:
        return self._order_locks.setdefault(coid, asyncio.Lock())

    async def _submit(self, intent: Intent) -> None:
        coid = client_order_id(intent.intent_id, 0)
        now = self.clock.time_ns()
        order = OrderRecord(
            client_order_id=coid,
            intent_id=intent.intent_id,
            child_index=0,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            qty=intent.qty,
            limit_price=intent.limit_price,
            time_in_force=intent.time_in_force,
            correlation_id=intent.correlation_id,
            created_ts_ns=now,
            updated_ts_ns=now,
            tick_recv_ts_ns=intent.tick_recv_ts_ns,
            reference_price=intent.reference_price,
        )
        async with self._lock(coid):
            sent_ns = self.clock.time_ns()
            order = msgspec.structs.replace(
                order.moved_to(OrderState.SUBMITTING, ts_ns=sent_ns), sent_ts_ns=sent_ns
            )
            # write-ahead: the order is durable, as SUBMITTING, before the request leaves
            if not await self.journal.insert_order(order):
                existing = await self.journal.get_order(coid)
                self.log.info(
                    "order_request_redelivered",
                    client_order_id=coid,
                    state=existing.state if existing else None,
                )
                if existing is not None:
                    await self._reconcile(existing, locked=True)
                return
            await self._send(order, journaled=True)

    async def _send(self, order: OrderRecord, *, journaled: bool = False) -> None:
        if not journaled:
            sent_ns = self.clock.time_ns()
            order = msgspec.structs.replace(
                order.moved_to(OrderState.SUBMITTING, ts_ns=sent_ns), sent_ts_ns=sent_ns
            )
            await self.journal.update_order(order)  # durable before the request leaves
        sent_ns = order.sent_ts_ns
        if order.tick_recv_ts_ns:
            self.metrics.tick_to_order.observe(max(0, sent_ns - order.tick_recv_ts_ns) / 1e9)
        self.metrics.orders_sent.labels(venue=self.venue).inc()
        self.sent += 1
        params: dict[str, Any] = {
            "newClientOrderId": order.client_order_id,
            "newOrderRespType": "FULL",
        }
        if order.order_type.value == "LIMIT":
            params["timeInForce"] = order.time_in_force.value
        ccxt_type = {"MARKET": "market", "LIMIT": "limit", "LIMIT_MAKER": "LIMIT_MAKER"}[
            order.order_type.value
        ]
        try:
            response = await self._call(
                self.exchange.create_order,
                self._unified[order.symbol],
                ccxt_type,
                order.side.value.lower(),
                float(order.qty),
                None if order.limit_price is None else float(order.limit_price),
                params,
                side_effect=True,
            )
        except FatalVenueError as exc:
            rejected = order.moved_to(
                OrderState.REJECTED, ts_ns=self.clock.time_ns(), reason=str(exc)[:300]
            )
            await self._commit(rejected, [])
            self.log.warning(
                "order_rejected", client_order_id=order.client_order_id, reason=str(exc)[:300]
            )
            return
        except (AmbiguousVenueError, RetryableVenueError) as exc:
            unknown = order.moved_to(
                OrderState.UNKNOWN, ts_ns=self.clock.time_ns(), reason=str(exc)[:300]
            )
            await self._commit(unknown, [])
            self.log.warning(
                "order_outcome_unknown", client_order_id=order.client_order_id, error=str(exc)[:300]
            )
            await self._reconcile(unknown, locked=True)
            return
        self.log.info(
            "order_sent",
            client_order_id=order.client_order_id,
            status=response.get("status"),
            side=order.side,
            qty=str(order.qty),
            order_type=order.order_type,
        )
        await self._apply_venue_order(order, response)

    async def _cancel_intent(self, intent: Intent) -> None:
        for order in await self.journal.orders_for_intent(intent.cancel_intent_id):
            if order.state.is_terminal:
                continue
            async with self._lock(order.client_order_id):
                current = await self.journal.get_order(order.client_order_id) or order
                if current.state.is_terminal:
                    continue
                try:
                    response = await self._call(
                        self.exchange.cancel_order,
                        current.venue_order_id or "",
                        self._unified[current.symbol],
                        {"origClientOrderId": current.client_order_id},
                        side_effect=True,
                    )
                except (FatalVenueError, AmbiguousVenueError, RetryableVenueError) as exc:
                    # already filled, or never placed, or unknown: the venue says which
                    self.log.info(
                        "cancel_not_done",
                        client_order_id=current.client_order_id,
                        error=str(exc)[:200],
                    )
                    await self._reconcile(current, locked=True)
                    continue
                await self._apply_venue_order(current, response)

    # --- venue truth --------------------------------------------------------------------------

    async def _reconcile(self, order: OrderRecord, *, locked: bool = False) -> None:
        """Ask the venue about an order by clientOrderId and record what it says."""
        if not locked:
            async with self._lock(order.client_order_id):
                current = await self.journal.get_order(order.client_order_id) or order
                await self._reconcile(current, locked=True)
            return
        try:
            venue_order = await self._call(
                self.exchange.fetch_order,
                "",
                self._unified[order.symbol],
                {"origClientOrderId": order.client_order_id},
                side_effect=False,
            )
        except VenueOrderNotFound:
            await self._on_not_at_venue(order)
            return
        except (FatalVenueError, AmbiguousVenueError) as exc:
            self.log.warning(
                "reconcile_failed", client_order_id=order.client_order_id, error=str(exc)[:200]
            )
            return
        except RetryableVenueError as exc:
            self.log.warning(
                "reconcile_deferred", client_order_id=order.client_order_id, error=str(exc)[:200]
            )
            return
        await self._apply_venue_order(order, venue_order)

    async def _on_not_at_venue(self, order: OrderRecord) -> None:
        age_ns = self.clock.time_ns() - (order.sent_ts_ns or order.created_ts_ns)
        if order.state is OrderState.PENDING:
            await self._send(order)  # journaled, never sent: send it now (same clientOrderId)
        elif order.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
            if age_ns < self._unknown_grace_ns:
                return  # the request may still be on its way; the poller asks again
            self.log.warning("order_never_reached_venue", client_order_id=order.client_order_id)
            await self._send(msgspec.structs.replace(order, state=OrderState.PENDING))
        else:
            self.log.error(
                "order_vanished_at_venue", client_order_id=order.client_order_id, state=order.state
            )

    async def _apply_venue_order(self, order: OrderRecord, venue_order: dict[str, Any]) -> None:
        info = venue_order.get("info") or {}
        status = info.get("status") or str(venue_order.get("status", "")).upper()
        filled = _dec(info.get("executedQty", venue_order.get("filled")))
        quote = _dec(info.get("cummulativeQuoteQty", venue_order.get("cost")))
        venue_id = str(info.get("orderId") or venue_order.get("id") or "")
        try:
            updated = order.with_venue_status(
                venue_status=status,
                filled_qty=filled,
                quote_qty=quote,
                venue_order_id=venue_id,
                ts_ns=self.clock.time_ns(),
            )
        except Exception as exc:
            self.log.error(
                "venue_state_rejected",
                client_order_id=order.client_order_id,
                error=str(exc),
                status=status,
            )
            return
        fills: list[Fill] = []
        if updated.filled_qty > 0:
            fills = await self._new_fills(updated, venue_order)
        if updated is not order or fills:
            await self._commit(updated, fills)

    async def _new_fills(self, order: OrderRecord, venue_order: dict[str, Any]) -> list[Fill]:
        trades = [t for t in venue_order.get("trades") or [] if t.get("id")]
        total = sum((_dec(t.get("amount")) for t in trades), Decimal(0))
        if total < order.filled_qty:
            trades = await self._call(
                self.exchange.fetch_order_trades,
                order.venue_order_id,
                self._unified[order.symbol],
                side_effect=False,
            )
        fills = []
        for trade in trades:
            fee = trade.get("fee") or {}
            fills.append(
                Fill(
                    correlation_id=order.correlation_id,
                    venue=order.venue,
                    symbol=order.symbol,
                    trade_id=int(trade["id"]),
                    client_order_id=order.client_order_id,
                    intent_id=order.intent_id,
                    side=order.side,
                    qty=_dec(trade.get("amount")),
                    price=_dec(trade.get("price")),
                    commission=_dec(fee.get("cost")),
                    commission_asset=str(fee.get("currency") or ""),
                    is_maker=trade.get("takerOrMaker") == "maker",
                    venue_ts_ms=int(trade.get("timestamp") or 0),
                )
            )
        return fills

    async def _commit(self, order: OrderRecord, fills: list[Fill]) -> None:
        """Journal first, then publish: the journal is the record, the bus the notification."""
        new_fills = [f for f in fills if await self.journal.record_fill(f)]
        changed = await self.journal.update_order(order)
        out: list[tuple[str, BusMessage]] = []
        for fill in new_fills:
            self.positions.apply(fill)
            out.append((exec_stream(self.venue), fill))
            if order.sent_ts_ns:
                latency = max(0, self.clock.time_ns() - order.sent_ts_ns) / 1e9
                self.metrics.fill_latency.labels(exchange=self.venue).observe(latency)
        if changed:
            self.metrics.order_results.labels(venue=self.venue, state=order.state.value).inc()
            out.append(
                (
                    exec_stream(self.venue),
                    ExecutionReport(
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
                    ),
                )
            )
        if out:
            await self.bus.publish_many(out)
        for fill in new_fills:
            self.log.info(
                "order_filled",
                client_order_id=order.client_order_id,
                trade_id=fill.trade_id,
                qty=str(fill.qty),
                price=str(fill.price),
                maker=fill.is_maker,
            )

    async def _poll_open_orders(self) -> None:
        """Fallback for fills and cancels we were not told about: one openOrders call per
        symbol, and an individual query only for orders whose state moved."""
        interval = self.exec_config.poll_interval_ms / 1000
        while not await self.pause(interval):
            journal_open = [
                o for o in await self.journal.open_orders() if o.state is not OrderState.PENDING
            ]
            if not journal_open:
                continue
            for symbol in sorted({o.symbol for o in journal_open}):
                try:
                    venue_open = await self._call(
                        self.exchange.fetch_open_orders, self._unified[symbol], side_effect=False
                    )
                except (RetryableVenueError, FatalVenueError, AmbiguousVenueError) as exc:
                    self.log.warning("poll_failed", symbol=symbol, error=str(exc)[:200])
                    continue
                by_id = {o.get("clientOrderId"): o for o in venue_open}
                for order in journal_open:
                    if order.symbol != symbol:
                        continue
                    seen = by_id.get(order.client_order_id)
                    if (
                        seen is not None
                        and order.state is not OrderState.UNKNOWN
                        and _dec(seen.get("filled")) == order.filled_qty
                    ):
                        continue  # still open, nothing new
                    await self._reconcile(order)

    # --- calls --------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, side_effect: bool) -> T:
        backoff = Backoff(
            base_ms=self.exec_config.retry_base_ms, cap_ms=self.exec_config.retry_cap_ms
        )
        attempt = 0
        while True:
            try:
                result = await fn(*args)
                self.venue_ok = True
                return result
            except Exception as exc:
                verdict = classify(exc, side_effect=side_effect)
                self.metrics.venue_errors.labels(venue=self.venue, error_class=verdict.value).inc()
                if verdict is ErrorClass.FATAL:
                    if isinstance(exc, ccxt.OrderNotFound):
                        raise VenueOrderNotFound(f"{type(exc).__name__}: {exc}") from exc
                    raise FatalVenueError(f"{type(exc).__name__}: {exc}") from exc
                if verdict is ErrorClass.AMBIGUOUS:
                    raise AmbiguousVenueError(f"{type(exc).__name__}: {exc}") from exc
                self.venue_ok = False
                attempt += 1
                if attempt > self.exec_config.max_retries:
                    raise RetryableVenueError(f"{type(exc).__name__}: {exc}") from exc
                delay = backoff.next_delay_ms()
                self.log.warning(
                    "venue_call_retry",
                    call=getattr(fn, "__name__", "?"),
                    attempt=attempt,
                    delay_ms=round(delay),
                    error=str(exc)[:200],
                )
                await asyncio.sleep(delay / 1000)

    # --- health -------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        return Readiness.of(
            {
                "orders consumer connected": self.consumer.connected,
                "venue reachable": self.venue_ok,
            }
        )

    def status(self) -> dict[str, Any]:
        return {
            "positions": {p.symbol: str(p.qty) for p in self.positions.all()},
            "orders_sent": self.sent,
            "leader_epoch": None,
        }


__all__ = ["ExecutionService", "RetryLater"]
