"""The risk service: intents in, approved order requests or denials out.

It keeps its own view of positions (from venue fills on exec.{venue}), of approved-but-unfilled
exposure (from execution reports) and of the market (mids from md.{venue}.{symbol}), and runs the
pure checks of engine.core.risk against that view. Operator commands arrive on `control`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from decimal import Decimal
from typing import Any

from engine.bus.base import (
    CONTROL,
    INTENTS,
    RISK_EVENTS,
    Delivery,
    exec_stream,
    md_stream,
    orders_stream,
    replay_stream,
)
from engine.bus.consumer import StreamConsumer
from engine.core.messages import (
    BookTop,
    Control,
    ExecutionReport,
    Fill,
    Intent,
    OrderRequest,
    OrderType,
    Quote,
    RiskDenial,
    Side,
    TradingStateChanged,
)
from engine.core.positions import PositionBook
from engine.core.risk import RiskLimits, RiskView, TradingState, evaluate
from engine.runtime.logging import bound_contextvars
from engine.runtime.service import Readiness, Service, ServiceContext

_TERMINAL = {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}
_COMMAND_STATE = {
    "pause": TradingState.REDUCING,
    "flatten": TradingState.REDUCING,
    "halt": TradingState.HALTED,
    "resume": TradingState.ACTIVE,
}


class _Exposure:
    """Approved quantity not yet filled, per intent."""

    def __init__(self) -> None:
        self.remaining: dict[str, tuple[str, Side, Decimal]] = {}

    def approve(self, intent: Intent) -> None:
        self.remaining[intent.intent_id] = (intent.symbol, intent.side, intent.qty)

    def update(self, report: ExecutionReport) -> None:
        current = self.remaining.get(report.intent_id)
        if current is None:
            return
        if report.state in _TERMINAL:
            del self.remaining[report.intent_id]
        else:
            symbol, side, _ = current
            self.remaining[report.intent_id] = (
                symbol,
                side,
                max(Decimal(0), report.qty - report.filled_qty),
            )

    def pending(self, symbol: str, side: Side) -> Decimal:
        return sum(
            (q for s, sd, q in self.remaining.values() if s == symbol and sd is side), Decimal(0)
        )


class RiskService(Service):
    name = "risk"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.venue = self.config.venue.name
        self.symbols = [s.upper() for s in self.config.venue.symbols]
        risk = self.config.risk
        self.limits = RiskLimits(
            max_position_qty=risk.max_position_qty,
            max_notional_per_order=risk.max_notional_per_order,
            max_intent_age_ms=risk.max_intent_age_ms,
            max_data_age_ms=risk.max_data_age_ms,
        )
        self.trading_state = TradingState.ACTIVE
        self.positions = PositionBook()
        self.exposure = _Exposure()
        self.mids: dict[str, float] = {}
        self.md_recv_ns: dict[str, int] = {}
        """When the freshest quote or book update of each symbol was received by the feed."""
        self._decided: OrderedDict[str, bool] = OrderedDict()
        self.approved = 0
        self.denied = 0
        bus_cfg = self.config.bus
        common: dict[str, Any] = dict(
            consumer=f"risk-{ctx.instance}",
            count=bus_cfg.read_count,
            block_ms=bus_cfg.read_block_ms,
            claim_min_idle_ms=bus_cfg.claim_min_idle_ms,
        )
        self.intent_consumer = StreamConsumer(
            self.bus,
            group="risk",
            streams=[INTENTS],
            handler=self._on_intent,
            start="earliest",
            **common,
        )
        self.state_consumer = StreamConsumer(
            self.bus,
            group="risk",
            streams=[exec_stream(self.venue)],
            handler=self._on_exec,
            start="earliest",
            **common,
        )
        self.control_consumer = StreamConsumer(
            self.bus,
            group="risk",
            streams=[CONTROL],
            handler=self._on_control,
            start="latest",
            **common,
        )
        self.md_consumer = StreamConsumer(
            self.bus,
            group="risk",
            streams=[md_stream(self.venue, s) for s in self.symbols],
            handler=self._on_market_data,
            start="latest",
            **common,
        )
        self.stoppables = [
            self.intent_consumer,
            self.state_consumer,
            self.control_consumer,
            self.md_consumer,
        ]
        self._set_state_metric()

    async def on_start(self) -> None:
        await self.bus.ping()
        # The group remembers where it was, not what it had built: rebuild positions and exposure.
        for delivery in await replay_stream(self.bus, exec_stream(self.venue)):
            await self._on_exec(delivery)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            # positions and exposure first: decisions need them
            tasks.create_task(self.state_consumer.run(), name="risk-exec")
            tasks.create_task(self.md_consumer.run(), name="risk-md")
            tasks.create_task(self.control_consumer.run(), name="risk-control")
            tasks.create_task(self.intent_consumer.run(), name="risk-intents")

    # --- inputs -------------------------------------------------------------------------------

    async def _on_market_data(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, Quote) and message.bid_price > 0 and message.ask_price > 0:
            self.mids[message.symbol] = (message.bid_price + message.ask_price) / 2
        if isinstance(message, Quote | BookTop):
            previous = self.md_recv_ns.get(message.symbol, 0)
            self.md_recv_ns[message.symbol] = max(previous, message.recv_ts_ns)

    async def _on_exec(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, Fill):
            if self.positions.apply(message):
                qty = self.positions.get(message.venue, message.symbol).qty
                self.metrics.position.labels(venue=message.venue, symbol=message.symbol).set(
                    float(qty)
                )
        elif isinstance(message, ExecutionReport):
            self.exposure.update(message)

    async def _on_control(self, delivery: Delivery) -> None:
        message = delivery.message
        if not isinstance(message, Control):
            return
        target = _COMMAND_STATE[message.command]
        await self._set_trading_state(target, f"ops {message.command}: {message.reason}".strip())
        if message.command == "flatten":
            await self._flatten(message)

    async def _flatten(self, command: Control) -> None:
        """Close every position with reduce-only market intents (checked like any other)."""
        for position in self.positions.all():
            if position.qty == 0:
                continue
            intent = Intent(
                correlation_id=command.correlation_id or f"flatten-{self.clock.time_ns()}",
                intent_id=f"flatten.{self.ctx.instance}.{position.symbol}.{self.clock.time_ns()}",
                source="risk-flatten",
                venue=position.venue,
                symbol=position.symbol,
                side=Side.SELL if position.qty > 0 else Side.BUY,
                qty=abs(position.qty),
                order_type=OrderType.MARKET,
                reduce_only=True,
                created_ts_ns=self.clock.time_ns(),
                reference_price=self.mids.get(position.symbol, 0.0),
            )
            await self.bus.publish(INTENTS, intent)

    async def _set_trading_state(self, state: TradingState, reason: str) -> None:
        if state is self.trading_state:
            return
        previous, self.trading_state = self.trading_state, state
        self._set_state_metric()
        self.log.warning("trading_state_changed", state=state, previous=previous, reason=reason)
        await self.bus.publish(
            RISK_EVENTS,
            TradingStateChanged(
                state=state.value,
                previous=previous.value,
                reason=reason,
                ts_ns=self.clock.time_ns(),
            ),
        )

    def _set_state_metric(self) -> None:
        for state in TradingState:
            self.metrics.trading_state.labels(state=state.value).set(
                int(state is self.trading_state)
            )

    # --- decisions ----------------------------------------------------------------------------

    async def _on_intent(self, delivery: Delivery) -> None:
        intent = delivery.message
        if not isinstance(intent, Intent):
            return
        with bound_contextvars(correlation_id=intent.correlation_id, intent_id=intent.intent_id):
            if intent.intent_id in self._decided:
                # redelivery: re-publish an approval (execution dedupes by clientOrderId)
                if self._decided[intent.intent_id]:
                    await self._approve(intent, again=True)
                return
            position = self.positions.get(intent.venue, intent.symbol).qty
            reference = self.mids.get(intent.symbol) or intent.reference_price
            now = self.clock.time_ns()
            last_md = self.md_recv_ns.get(intent.symbol)
            view = RiskView(
                trading_state=self.trading_state,
                position_qty=position,
                pending_buy_qty=self.exposure.pending(intent.symbol, Side.BUY),
                pending_sell_qty=self.exposure.pending(intent.symbol, Side.SELL),
                reference_price=reference,
                now_ns=now,
                data_age_ms=None if last_md is None else (now - last_md) / 1e6,
                bus_degraded=not all(c.connected for c in self.stoppables),
            )
            denial = evaluate(intent, view, self.limits)
            self._remember(intent.intent_id, denial is None)
            if denial is None:
                await self._approve(intent)
                return
            self.denied += 1
            self.metrics.risk_denials.labels(check=denial.check).inc()
            self.log.info("intent_denied", check=denial.check, reason=denial.reason)
            await self.bus.publish(
                RISK_EVENTS,
                RiskDenial(
                    correlation_id=intent.correlation_id,
                    intent_id=intent.intent_id,
                    source=intent.source,
                    check=denial.check,
                    reason=denial.reason,
                    ts_ns=self.clock.time_ns(),
                ),
            )

    async def _approve(self, intent: Intent, *, again: bool = False) -> None:
        if not again:
            self.approved += 1
            self.metrics.risk_approvals.inc()
            if intent.action == "new":
                self.exposure.approve(intent)
            self.log.info("intent_approved", action=intent.action)
        await self.bus.publish(
            orders_stream(intent.venue),
            OrderRequest(
                correlation_id=intent.correlation_id,
                intent=intent,
                approved_ts_ns=self.clock.time_ns(),
            ),
        )

    def _remember(self, intent_id: str, approved: bool) -> None:
        self._decided[intent_id] = approved
        while len(self._decided) > 100_000:
            self._decided.popitem(last=False)

    # --- health -------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        return Readiness.of(
            {
                "intent consumer connected": self.intent_consumer.connected,
                "exec consumer connected": self.state_consumer.connected,
            }
        )

    def status(self) -> dict[str, Any]:
        return {
            "trading_state": self.trading_state.value,
            "positions": {p.symbol: str(p.qty) for p in self.positions.all()},
            "approved": self.approved,
            "denied": self.denied,
            "mids": self.mids,
        }
