"""The risk service: intents in, approved order requests or denials out.

It keeps its own view of positions (from venue fills on exec.{venue}), of approved-but-unfilled
exposure (approvals, fills and IntentDone), and of the market (mids from md.{venue}.{symbol}),
and runs the pure checks of engine.core.risk against that view. Operator commands arrive on
`control`. The trading state, the flatten in progress and the day's PnL baseline are stored on
the bus (a small value beside the streams) at every change, so a restart resumes them.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import msgspec

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
from engine.core.futures import FundingTally, liquidation_distance_pct
from engine.core.messages import (
    BookTop,
    ContractTerms,
    Control,
    Fill,
    FundingPaid,
    Intent,
    IntentDone,
    MarkPrice,
    OrderRequest,
    OrderType,
    Quote,
    RiskDenial,
    Side,
    TradingStateChanged,
    VenuePosition,
)
from engine.core.positions import DailyPnl, Position, PositionBook, marked_value
from engine.core.risk import (
    OrderRateWindow,
    RiskLimits,
    RiskView,
    TradingState,
    entry_block_reason,
    evaluate,
    funding_guard_trips,
    liquidation_breaker_trips,
)
from engine.risk.exposure import Exposure
from engine.runtime.service import Readiness, Service, ServiceContext
from plumbing.logging import bound_contextvars

STATE_KEY = "risk.state"
FLATTEN_REFUSALS_BEFORE_HALT = 10
"""Flatten orders the venue refused before trading halts for an operator: reduce-only refused
that often says our view of the position and the venue's disagree in a way we cannot fix."""
_COMMAND_STATE = {
    "pause": TradingState.REDUCING,
    "flatten": TradingState.REDUCING,
    "halt": TradingState.HALTED,
    "resume": TradingState.ACTIVE,
}


class RiskService(Service):
    name = "risk"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.venue = self.config.venue.name
        self.symbols = [s.upper() for s in self.config.venue.symbols]
        self.risk = risk = self.config.risk
        self.limits = RiskLimits(
            max_position_qty=risk.max_position_qty,
            max_notional_per_order=risk.max_notional_per_order,
            max_intent_age_ms=risk.max_intent_age_ms,
            max_data_age_ms=risk.max_data_age_ms,
            max_orders_per_window=risk.max_orders_per_window,
            order_rate_window_ms=risk.order_rate_window_ms,
            price_band_percent=risk.price_band_percent,
            daily_loss_limit=risk.daily_loss_limit,
            min_liquidation_distance_pct=risk.min_liquidation_distance_pct,
            liquidation_breaker_pct=risk.liquidation_breaker_pct,
            max_adverse_funding_pct=risk.max_adverse_funding_pct,
        )
        self.futures = self.config.venue.market != "spot"
        self.trading_state = TradingState.ACTIVE
        self.state_reason = "start"
        self.positions = PositionBook(contracts=self.config.venue.market != "spot")
        self.exposure = Exposure()
        self.order_rate = OrderRateWindow(risk.order_rate_window_ms)
        self.daily = DailyPnl()
        self.mids: dict[str, float] = {}
        self.marks: dict[str, MarkPrice] = {}
        """Futures: the latest mark price and funding per symbol (the feed's)."""
        self.venue_positions: dict[str, VenuePosition] = {}
        """Futures: each symbol's position as the venue last reported it (execution polls)."""
        self.breaker_trips = 0
        self.funding_guard_trips = 0
        self.inverse = self.config.venue.market == "coinm"
        self.contract_usd: dict[str, Decimal] = {}
        """Inverse futures: each symbol's contract face value in USD, as execution published it
        from the venue's markets (ContractTerms on exec.{venue})."""
        self._last_reduction_ns: dict[str, int] = {}
        """Futures: per symbol, when our last fill or refused order happened (wall ns): a venue
        position report asked for after it includes it."""
        self._refused_flatten_ns: dict[str, int] = {}
        """Futures: per symbol, when the venue last refused a flatten order: the next one waits
        for a position report asked for after it (the refusal may say there is nothing left)."""
        self.funding = FundingTally()
        self.md_recv_ns: dict[str, int] = {}
        """When the freshest quote or book update of each symbol was received by the feed."""
        self.flatten: dict[str, Any] | None = None
        """The flatten in progress or last finished: started/finished ns, intents issued."""
        self._flatten_seq = 0
        self._flatten_in_transit: dict[str, int] = {}
        """Flatten intents published and not yet decided by our own intent consumer (id -> ns
        issued). Until they are, exposure does not know them, and another flatten step (the
        supervisor's, the command's) would issue the same reduction again."""
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

    # --- lifecycle ----------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self.bus.ping()
        await self._load_state()
        # The group remembers where it was, not what it had built: rebuild positions and
        # exposure, approvals first so that fills and IntentDone apply to them.
        for delivery in await replay_stream(self.bus, orders_stream(self.venue)):
            if isinstance(delivery.message, OrderRequest):
                self.exposure.approve(delivery.message.intent)
        for delivery in await replay_stream(self.bus, exec_stream(self.venue)):
            await self._on_exec(delivery)
        self.log.info(
            "risk_recovered",
            trading_state=self.trading_state,
            open_intents=len(self.exposure),
            positions={p.symbol: str(p.qty) for p in self.positions.all()},
        )

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            # positions and exposure first: decisions need them
            tasks.create_task(self.state_consumer.run(), name="risk-exec")
            tasks.create_task(self.md_consumer.run(), name="risk-md")
            tasks.create_task(self.control_consumer.run(), name="risk-control")
            tasks.create_task(self.intent_consumer.run(), name="risk-intents")
            tasks.create_task(self._supervise(), name="risk-supervise")

    async def _load_state(self) -> None:
        raw = await self.bus.get_value(STATE_KEY)
        if raw is None:
            return
        try:
            saved = json.loads(raw)
            self.trading_state = TradingState(saved["trading_state"])
            self.state_reason = str(saved.get("reason", ""))
            self.flatten = saved.get("flatten")
            self.daily.restore(saved.get("daily", {}))
        except (ValueError, KeyError, TypeError) as exc:
            # an unreadable state must not silently become ACTIVE
            self.trading_state = TradingState.HALTED
            self.state_reason = f"stored risk state unreadable ({exc}): halted"
            self.log.error("risk_state_unreadable", error=str(exc))
        self._set_state_metric()
        self.log.info("risk_state_restored", state=self.trading_state, reason=self.state_reason)

    async def _save_state(self) -> None:
        state = {
            "trading_state": self.trading_state.value,
            "reason": self.state_reason,
            "flatten": self.flatten,
            "daily": self.daily.snapshot(),
        }
        await self.bus.set_value(STATE_KEY, json.dumps(state).encode())

    # --- inputs -------------------------------------------------------------------------------

    async def _on_market_data(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, Quote) and message.bid_price > 0 and message.ask_price > 0:
            self.mids[message.symbol] = (message.bid_price + message.ask_price) / 2
        if isinstance(message, MarkPrice):
            self.marks[message.symbol] = message
            return
        if isinstance(message, Quote | BookTop):
            previous = self.md_recv_ns.get(message.symbol, 0)
            self.md_recv_ns[message.symbol] = max(previous, message.recv_ts_ns)

    async def _on_exec(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, Fill):
            self._note_reduction(message.symbol)
            if self.positions.apply(message):
                self.exposure.fill(message)
                qty = self.positions.get(message.venue, message.symbol).qty
                self.metrics.position.labels(venue=message.venue, symbol=message.symbol).set(
                    float(qty)
                )
        elif isinstance(message, IntentDone):
            self.exposure.done(message)
            if (
                message.outcome == "rejected"
                and self.flatten
                and (message.intent_id in self.flatten.get("intents", ()))
            ):
                self._note_reduction(message.symbol)
                self._refused_flatten_ns[message.symbol] = self.clock.time_ns()
                refusals = self.flatten["refusals"] = int(self.flatten.get("refusals", 0)) + 1
                if (
                    refusals >= FLATTEN_REFUSALS_BEFORE_HALT
                    and self.trading_state is not TradingState.HALTED
                ):
                    await self._set_trading_state(
                        TradingState.HALTED,
                        f"the venue refused {refusals} flatten orders: an operator must look",
                    )
        elif isinstance(message, ContractTerms):
            if message.inverse and message.contract_size > 0:
                self.contract_usd[message.symbol] = message.contract_size
        elif isinstance(message, VenuePosition):
            self.venue_positions[message.symbol] = message
        elif isinstance(message, FundingPaid):
            self.funding.apply(
                venue=message.venue,
                symbol=message.symbol,
                tran_id=message.tran_id,
                income=message.income,
            )

    async def _on_control(self, delivery: Delivery) -> None:
        message = delivery.message
        if not isinstance(message, Control):
            return
        with bound_contextvars(correlation_id=message.correlation_id or f"ops-{message.command}"):
            target = _COMMAND_STATE[message.command]
            reason = f"ops {message.command}: {message.reason}".strip().rstrip(":")
            if message.command == "flatten":
                self.flatten = {
                    "started_ns": self.clock.time_ns(),
                    "finished_ns": None,
                    "duration_ms": None,
                    "intents": [],
                    "correlation_id": message.correlation_id or f"flatten-{self.clock.time_ns()}",
                }
            await self._set_trading_state(target, reason)
            if message.command in ("flatten", "halt"):
                await self._cancel_open_entries(message.command)
            if message.command == "flatten":
                await self._flatten_step()

    # --- flatten ------------------------------------------------------------------------------

    async def _cancel_open_entries(self, why: str) -> None:
        """Resting entries would re-open what a flatten closes, and a halt means no exposure
        we did not choose: cancel every intent still being worked that is not a reduction."""
        for intent_id, symbol in self.exposure.open_intents(reduce_only=False):
            cancel = Intent(
                correlation_id=f"{why}-cancel",
                intent_id=f"{why}.{self.ctx.instance}.cancel.{intent_id}",
                source=f"risk-{why}",
                venue=self.venue,
                symbol=symbol,
                action="cancel",
                cancel_intent_id=intent_id,
                created_ts_ns=self.clock.time_ns(),
            )
            await self._approve(cancel)

    def _note_reduction(self, symbol: str) -> None:
        """When we learned of a fill or a refusal on `symbol`, on our own clock: a venue report
        asked for later includes it (the fill happened at the venue before we learned of it)."""
        self._last_reduction_ns[symbol] = self.clock.time_ns()

    def _venue_report_since(self, symbol: str, ts_ns: int) -> VenuePosition | None:
        """Futures: the venue's position report for `symbol` if it was asked for after ts_ns."""
        held = self.venue_positions.get(symbol)
        return held if held is not None and held.ts_ns > ts_ns else None

    def _flatten_scope(self) -> list[Position]:
        only = (self.flatten or {}).get("symbols")
        return [p for p in self.positions.all() if not only or p.symbol in only]

    def _left_to_close(self, position: Position) -> Decimal:
        """What a flatten must close (signed): on futures the venue's own position when a
        report of it was asked for after our last fill or refusal there (the venue is the truth
        of a futures position: a close by hand or an auto-deleverage changed it without our
        fills), else what our fills say."""
        if self.futures:
            report = self._venue_report_since(
                position.symbol, self._last_reduction_ns.get(position.symbol, 0)
            )
            if report is not None:
                return report.own_contracts
        return position.qty

    def _symbol_flat(self, position: Position) -> bool:
        return abs(self._left_to_close(position)) <= self.risk.flat_tolerance_qty

    def _is_flat(self) -> bool:
        return all(self._symbol_flat(p) for p in self._flatten_scope())

    async def _flatten_step(self) -> None:
        """Issue reduce-only intents for what is left, unless a flatten intent is still being
        worked; note the time to flat when nothing is left."""
        flatten = self.flatten
        if flatten is None or flatten.get("finished_ns"):
            return
        if self._is_flat():
            now = self.clock.time_ns()
            flatten["finished_ns"] = now
            flatten["duration_ms"] = round((now - flatten["started_ns"]) / 1e6, 1)
            self.metrics.flatten_seconds.observe(flatten["duration_ms"] / 1000)
            self.log.warning(
                "flatten_complete",
                duration_ms=flatten["duration_ms"],
                intents=len(flatten["intents"]),
            )
            await self._save_state()
            return
        working = {intent_id for intent_id, _ in self.exposure.open_intents()}
        if working & set(flatten["intents"]) or self._flatten_awaiting_decision():
            return
        if self._entries_still_open(flatten):
            return
        issued: list[Intent] = []  # decided and registered with no await in between: two
        for position in self._flatten_scope():  # concurrent steps cannot both issue
            left = self._left_to_close(position)
            if abs(left) <= self.risk.flat_tolerance_qty:
                continue
            if self._awaiting_venue_report(position.symbol):
                continue
            self._flatten_seq += 1
            intent = Intent(
                correlation_id=flatten["correlation_id"],
                intent_id=f"flatten.{self.ctx.instance}.{position.symbol}.{self._flatten_seq}",
                source="risk-flatten",
                venue=position.venue,
                symbol=position.symbol,
                side=Side.SELL if left > 0 else Side.BUY,
                qty=abs(left),
                order_type=OrderType.MARKET,
                reduce_only=True,
                created_ts_ns=self.clock.time_ns(),
                reference_price=self.mids.get(position.symbol, 0.0),
                algo="" if flatten.get("urgent") else self.risk.flatten_algo,
                algo_params={} if flatten.get("urgent") else dict(self.risk.flatten_algo_params),
            )
            flatten["intents"].append(intent.intent_id)
            self._flatten_in_transit[intent.intent_id] = self.clock.time_ns()
            issued.append(intent)
        for intent in issued:
            self.log.warning(
                "flatten_intent", symbol=intent.symbol, side=intent.side, qty=str(intent.qty)
            )
            await self.bus.publish(INTENTS, intent)
        await self._save_state()

    def _entries_still_open(self, flatten: dict[str, Any]) -> bool:
        """Futures: the entries canceled when the flatten began go first (for flatten_retry_ms
        at most): one that fills after the flatten closed the position would open the other
        side, which no reduce-only order can prevent."""
        if not self.futures or not self.exposure.open_intents(reduce_only=False):
            return False
        waited_ns = self.clock.time_ns() - int(flatten["started_ns"])
        return waited_ns < self.risk.flatten_retry_ms * 1_000_000

    def _awaiting_venue_report(self, symbol: str) -> bool:
        """Futures: after the venue refused a flatten order, the next waits for a position
        report asked for after the refusal (never resent blindly, never without reduceOnly),
        or flatten_retry_ms when no report comes."""
        refused = self._refused_flatten_ns.get(symbol)
        if refused is None or self._venue_report_since(symbol, refused) is not None:
            return False
        return self.clock.time_ns() - refused < self.risk.flatten_retry_ms * 1_000_000

    def _flatten_awaiting_decision(self) -> bool:
        """Whether a flatten intent is still on its way through our own intent stream. One not
        decided within flatten_retry_ms is given up on (lost with a failed publish): the next
        step issues what is left."""
        now = self.clock.time_ns()
        patience_ns = self.risk.flatten_retry_ms * 1_000_000
        for intent_id, issued_ns in list(self._flatten_in_transit.items()):
            if intent_id in self._decided or now - issued_ns > patience_ns:
                del self._flatten_in_transit[intent_id]
        return bool(self._flatten_in_transit)

    async def _supervise(self) -> None:
        """The flatten in progress, the daily-loss breaker and utilisation gauges."""
        while not await self.pause(0.2):
            self._update_daily_pnl()
            if (
                self.trading_state is TradingState.ACTIVE
                and self.daily.pnl < -self.limits.daily_loss_limit
            ):
                await self._set_trading_state(
                    TradingState.REDUCING,
                    f"daily loss {-self.daily.pnl:.2f} over {self.limits.daily_loss_limit}",
                )
            await self._liquidation_breaker()
            await self._funding_guard()
            if self.flatten is not None and not self.flatten.get("finished_ns"):
                await self._flatten_step()
            for position in self.positions.all():
                self.metrics.risk_utilisation.labels(
                    limit="max_position", symbol=position.symbol
                ).set(float(abs(position.qty) / self.limits.max_position_qty))
            self.metrics.risk_utilisation.labels(limit="order_rate", symbol="*").set(
                self.order_rate.count(self.clock.time_ns()) / self.limits.max_orders_per_window
            )
            self.metrics.risk_utilisation.labels(limit="daily_loss", symbol="*").set(
                float(max(Decimal(0), -self.daily.pnl) / self.limits.daily_loss_limit)
            )

    def liquidation_distance(self, symbol: str) -> float | None:
        """How far the mark is from the venue's liquidation price, in percent: the venue's
        liquidation price with the freshest mark (the feed's, else the venue's own)."""
        held = self.venue_positions.get(symbol)
        if held is None or held.liquidation_price is None or held.contracts == 0:
            return None
        mark = self.marks.get(symbol)
        fresher = mark is not None and mark.recv_ts_ns > held.ts_ns
        price = mark.mark_price if fresher and mark is not None else held.mark_price
        return liquidation_distance_pct(mark=price, liquidation=held.liquidation_price)

    async def _liquidation_breaker(self) -> None:
        """Reduce before the venue liquidates: a position closer to its liquidation price than
        liquidation_breaker_pct makes trading REDUCING and starts a flatten."""
        for symbol in self.symbols:
            distance = self.liquidation_distance(symbol)
            if not liquidation_breaker_trips(distance, self.limits):
                continue
            if self.flatten is not None and not self.flatten.get("finished_ns"):
                self._widen_flatten(symbol)
                return  # already reducing
            self.breaker_trips += 1
            reason = (
                f"liquidation breaker: {symbol} mark {distance:.2f}% from its liquidation"
                f" price, under {self.limits.liquidation_breaker_pct}%"
            )
            self.log.warning("liquidation_breaker_tripped", symbol=symbol, distance_pct=distance)
            await self._protective_flatten("liquidation-breaker", reason)
            return

    def _widen_flatten(self, symbol: str) -> None:
        """A flatten of some symbols in progress takes in another that must be reduced too."""
        only = (self.flatten or {}).get("symbols")
        if only and symbol not in only:
            only.append(symbol)
            self.log.warning("flatten_widened", symbol=symbol, symbols=only)

    async def _protective_flatten(
        self, name: str, reason: str, symbols: list[str] | None = None
    ) -> None:
        """Trading REDUCING, open entries canceled, and a flatten of `symbols` (all: None) with
        one market order each: no maker-first wait when the bad day is already here."""
        self.flatten = {
            "started_ns": self.clock.time_ns(),
            "finished_ns": None,
            "duration_ms": None,
            "intents": [],
            "correlation_id": f"{name}-{self.clock.time_ns()}",
            "reason": reason,
            "urgent": True,
        }
        if symbols is not None:
            self.flatten["symbols"] = symbols
        await self._set_trading_state(TradingState.REDUCING, reason)
        await self._cancel_open_entries("flatten")
        await self._flatten_step()

    async def _funding_guard(self) -> None:
        """Futures: a position paying a funding rate at or over max_adverse_funding_pct is
        closed (one reduce-only market order: a spike costs more per interval than crossing the
        spread) and trading goes REDUCING until an operator resumes. Not while HALTED: an
        operator's halt is not the guard's to lift."""
        if self.trading_state is TradingState.HALTED:
            return
        for symbol in self.symbols:
            mark = self.marks.get(symbol)
            position = self.positions.get(self.venue, symbol)
            if mark is None or not funding_guard_trips(
                position.qty, mark.funding_rate, self.limits
            ):
                continue
            if self._symbol_flat(position):
                continue  # the venue already holds none of it
            if self.flatten is not None and not self.flatten.get("finished_ns"):
                self._widen_flatten(symbol)
                return  # already reducing
            self.funding_guard_trips += 1
            reason = (
                f"funding guard: {symbol} funding {mark.funding_rate * 100:.4f}% per interval"
                f" against a position of {position.qty}, over"
                f" {self.limits.max_adverse_funding_pct}%"
            )
            self.log.warning("funding_guard_tripped", symbol=symbol, funding_rate=mark.funding_rate)
            await self._protective_flatten("funding-guard", reason, [symbol])
            return

    def _update_daily_pnl(self) -> Decimal:
        day_before = self.daily.day
        # funding is PnL: what it cost since the day began counts against the daily loss
        marked = marked_value(self.positions.all(), self.mids)
        value = None if marked is None else marked + self.funding.total()
        pnl = self.daily.update(now_ns=self.clock.time_ns(), value=value)
        if self.daily.day != day_before:
            self.log.info("daily_pnl_baseline", baseline=str(self.daily.baseline))
        self.metrics.daily_pnl.set(float(pnl))
        return pnl

    async def _set_trading_state(self, state: TradingState, reason: str) -> None:
        if state is self.trading_state:
            self.state_reason = reason
            await self._save_state()
            return
        previous, self.trading_state = self.trading_state, state
        self.state_reason = reason
        if state is TradingState.ACTIVE and self.flatten and not self.flatten.get("finished_ns"):
            self.flatten["finished_ns"] = self.clock.time_ns()
            self.flatten["abandoned"] = True
        await self._save_state()
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
                mid=self.mids.get(intent.symbol),
                orders_in_window=self.order_rate.count(now),
                daily_pnl=self._update_daily_pnl(),
                liquidation_distance_pct=self.liquidation_distance(intent.symbol),
                contract_usd=self.contract_usd.get(intent.symbol),
                contract_terms_unknown=(self.inverse and intent.symbol not in self.contract_usd),
                funding_rate=(
                    None if (mark := self.marks.get(intent.symbol)) is None else mark.funding_rate
                ),
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
        if (
            self.futures
            and self.trading_state is not TradingState.ACTIVE
            and intent.action == "new"
            and not intent.reduce_only
        ):
            # what risk admitted as a reduction, the venue enforces: a stale position (a manual
            # close, an auto-deleverage) cannot turn it into a flip
            intent = msgspec.structs.replace(intent, reduce_only=True)
        if not again:
            self.approved += 1
            self.metrics.risk_approvals.inc()
            if intent.action == "new":
                self.exposure.approve(intent)
                self.order_rate.record(self.clock.time_ns())
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
        now = self.clock.time_ns()
        return {
            "entries_blocked": entry_block_reason(
                trading_state=self.trading_state,
                bus_degraded=not all(c.connected for c in self.stoppables),
                data_age_ms={
                    s: None if (t := self.md_recv_ns.get(s)) is None else (now - t) / 1e6
                    for s in self.symbols
                },
                limits=self.limits,
            ),
            "trading_state": self.trading_state.value,
            "trading_state_reason": self.state_reason,
            "positions": {p.symbol: str(p.qty) for p in self.positions.all()},
            "open_intents": len(self.exposure),
            "approved": self.approved,
            "denied": self.denied,
            "mids": self.mids,
            "daily_pnl": str(self.daily.pnl),
            "flatten": self.flatten,
            "liquidation_distance_pct": {s: self.liquidation_distance(s) for s in self.symbols},
            "funding_rates": {s: m.funding_rate for s, m in self.marks.items()},
            "funding_income": {s: str(v) for s, v in self.funding.by_symbol().items()},
            "liquidation_breaker_trips": self.breaker_trips,
            "funding_guard_trips": self.funding_guard_trips,
        }
