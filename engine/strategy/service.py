"""The strategy service: market data and our own order events in, intents out on `intents`.

It also serves the order intake (`POST /intents`, engine.strategy.intake_api) on its ops server:
external signal sources put intents on the same stream, stamped with the last mid seen here.

Restart: each strategy's checkpoint (its snapshot(), stored on the bus under
`strategy.{name}`) is restored, then every fill, execution report and IntentDone still on
exec.{venue} is replayed to it, so it also knows what happened after the checkpoint.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from engine.bus.base import (
    INTENTS,
    RISK_EVENTS,
    Delivery,
    exec_stream,
    md_stream,
    replay_stream,
)
from engine.bus.consumer import StreamConsumer
from engine.core.messages import (
    BookTop,
    ExecutionReport,
    Fill,
    FundingPaid,
    IntentDone,
    MarkPrice,
    Quote,
    RiskDenial,
    Trade,
)
from engine.runtime.service import Readiness, Service, ServiceContext
from engine.strategy.base import Strategy, StrategyContext
from engine.strategy.intake_api import IntentIntake
from engine.strategy.registry import build_strategy
from plumbing.logging import bound_contextvars

if TYPE_CHECKING:
    from aiohttp import web


class StrategyService(Service):
    name = "strategy"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.venue = self.config.venue.name
        self.symbols = [s.upper() for s in self.config.venue.symbols]
        self.strategies: dict[str, tuple[Strategy, StrategyContext]] = {}
        for cfg in self.config.strategies:
            sctx = StrategyContext(
                name=cfg.name,
                venue=self.venue,
                clock=self.clock,
                instance=ctx.instance,
                contracts=self.config.venue.market != "spot",
            )
            self.strategies[cfg.name] = (build_strategy(cfg, sctx), sctx)
        self._max_tick_age_ns = {
            cfg.name: cfg.max_tick_age_ms * 1_000_000 for cfg in self.config.strategies
        }
        self._last_md_id: dict[tuple[str, str], int] = {}
        self._reports_seen: set[tuple[str, int]] = set()
        bus_cfg = self.config.bus
        common = dict(
            consumer=f"strategy-{ctx.instance}",
            count=bus_cfg.read_count,
            block_ms=bus_cfg.read_block_ms,
            claim_min_idle_ms=bus_cfg.claim_min_idle_ms,
        )
        self.md_consumer = StreamConsumer(
            self.bus,
            group="strategy",
            streams=[md_stream(self.venue, s) for s in self.symbols],
            handler=self._on_market_data,
            start="latest",
            **common,  # type: ignore[arg-type]
        )
        self.exec_consumer = StreamConsumer(
            self.bus,
            group="strategy",
            streams=[exec_stream(self.venue), RISK_EVENTS],
            handler=self._on_own_event,
            start="earliest",
            **common,  # type: ignore[arg-type]
        )
        self.stoppables = [self.md_consumer, self.exec_consumer]
        self.intents_emitted = 0
        self._checkpoints: dict[str, bytes] = {}
        self.mids: dict[str, float] = {}
        """Last mid per symbol (quotes, else the book's top): intake intents' reference price."""
        self.intake: IntentIntake | None = None
        if self.config.intake.enabled:
            self.intake = IntentIntake(
                config=self.config.intake,
                token=ctx.settings.secrets.intake_token,
                bus=self.bus,
                clock=self.clock,
                metrics=self.metrics,
                venue=self.venue,
                symbols=self.symbols,
                reference_prices=self.mids,
                not_accepting=self._not_accepting,
                log=self.log,
            )

    async def on_start(self) -> None:
        await self.bus.ping()
        for name, (strategy, _) in self.strategies.items():
            raw = await self.bus.get_value(f"strategy.{name}")
            if raw is not None:
                strategy.restore(json.loads(raw))
                self._checkpoints[name] = raw
                self.log.info("strategy_restored", strategy=name)
        for delivery in await replay_stream(self.bus, exec_stream(self.venue)):
            message = delivery.message
            if not isinstance(message, Fill | ExecutionReport | IntentDone):
                continue
            owner = self._owner(message.intent_id)
            if owner is None:
                continue
            if isinstance(message, Fill):
                owner[1].positions.apply(message)
            elif isinstance(message, ExecutionReport):
                self._reports_seen.add((message.client_order_id, message.seq))
                owner[0].on_order(message)
            else:
                owner[0].on_intent_done(message)
        for strategy, sctx in self.strategies.values():
            strategy.on_start()
            sctx.drain()  # a decision taken on replayed history is not taken

    async def on_stop(self) -> None:
        try:
            await self._checkpoint()
        except Exception as exc:  # the bus may be what is failing; the last checkpoint stands
            self.log.warning("strategy_checkpoint_failed", error=str(exc)[:200])

    async def _checkpoint(self) -> None:
        for name, (strategy, _) in self.strategies.items():
            raw = json.dumps(strategy.snapshot(), sort_keys=True, default=str).encode()
            if self._checkpoints.get(name) != raw:
                await self.bus.set_value(f"strategy.{name}", raw)
                self._checkpoints[name] = raw

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.md_consumer.run(), name="strategy-md")
            tasks.create_task(self.exec_consumer.run(), name="strategy-exec")
            tasks.create_task(self._timers(), name="strategy-timers")

    async def _timers(self) -> None:
        interval = min(cfg.timer_interval_ms for cfg in self.config.strategies) / 1000
        while not await self.pause(interval):
            now = self.clock.time_ns()
            for strategy, sctx in self.strategies.values():
                sctx.set_trigger(correlation_id="", tick_recv_ns=0)
                strategy.on_timer(now)
            await self._publish_intents()
            await self._checkpoint()

    async def _on_market_data(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, MarkPrice):
            for _, sctx in self.strategies.values():
                sctx.marks[message.symbol] = message
            return
        if isinstance(message, Trade):
            key, ident = (message.symbol, "t"), message.trade_id
        elif isinstance(message, Quote):
            key, ident = (message.symbol, "q"), message.update_id
        elif isinstance(message, BookTop):
            key, ident = (message.symbol, "b"), message.update_id
        else:
            return
        if ident <= self._last_md_id.get(key, -1):
            return  # redelivered or duplicate: already handled
        self._last_md_id[key] = ident
        if isinstance(message, Quote) and message.bid_price > 0 and message.ask_price > 0:
            self.mids[message.symbol] = (message.bid_price + message.ask_price) / 2
        elif isinstance(message, BookTop) and message.bids and message.asks:
            bid, ask = message.bids[0][0], message.asks[0][0]
            if bid > 0 and ask > 0:
                self.mids[message.symbol] = (bid + ask) / 2
        age_ns = self.clock.time_ns() - message.recv_ts_ns
        for name, (strategy, sctx) in self.strategies.items():
            if isinstance(message, Quote):
                sctx.quotes[message.symbol] = message
            elif isinstance(message, BookTop):
                sctx.books[message.symbol] = message
            if age_ns > self._max_tick_age_ns[name]:
                continue
            sctx.set_trigger(correlation_id=message.correlation_id, tick_recv_ns=message.recv_ts_ns)
            if isinstance(message, Trade):
                strategy.on_trade(message)
            elif isinstance(message, Quote):
                strategy.on_quote(message)
            else:
                strategy.on_book(message)
        await self._publish_intents()

    async def _on_own_event(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, FundingPaid):  # the account's: every strategy sees it
            for _, sctx in self.strategies.values():
                sctx.funding.apply(
                    venue=message.venue,
                    symbol=message.symbol,
                    tran_id=message.tran_id,
                    income=message.income,
                )
            return
        if isinstance(message, Fill):
            owner = self._owner(message.intent_id)
            if owner is not None:
                strategy, sctx = owner
                if sctx.positions.apply(message):
                    with bound_contextvars(correlation_id=message.correlation_id):
                        strategy.on_fill(message)
        elif isinstance(message, ExecutionReport):
            key = (message.client_order_id, message.seq)
            owner = self._owner(message.intent_id)
            if owner is not None and key not in self._reports_seen:
                self._reports_seen.add(key)
                owner[0].on_order(message)
        elif isinstance(message, IntentDone):
            owner = self._owner(message.intent_id)
            if owner is not None:
                owner[0].on_intent_done(message)
        elif isinstance(message, RiskDenial):
            owner = self._owner(message.intent_id)
            if owner is not None:
                owner[0].on_denied(message.intent_id, message.reason)
        await self._publish_intents()

    def _owner(self, intent_id: str) -> tuple[Strategy, StrategyContext] | None:
        # a strategy's ids are "<name>.<instance>.<seq>"; an intake id (no dot) that happens to
        # equal a strategy's name is not that strategy's
        name, dot, _ = intent_id.partition(".")
        return self.strategies.get(name) if dot else None

    async def _publish_intents(self) -> None:
        # taken before the first await: two handlers (market data, own events) publish
        # concurrently, and what one is publishing must not be published by the other too
        taken = [(sctx, sctx.drain()) for _, sctx in self.strategies.values()]
        pending = [(sctx, intent) for sctx, intents in taken for intent in intents]
        if not pending:
            return
        # durable before the trigger is acknowledged; kept for the next attempt if the bus is down
        try:
            await self.bus.publish_many([(INTENTS, intent) for _, intent in pending])
        except BaseException:
            for sctx, intents in taken:
                sctx.emitted[:0] = intents  # ahead of what was emitted meanwhile, in order
            raise
        for sctx, intent in pending:
            self.metrics.intents.labels(strategy=sctx.name).inc()
            self.log.info(
                "intent_emitted",
                correlation_id=intent.correlation_id,
                intent_id=intent.intent_id,
                action=intent.action,
                side=intent.side,
                qty=str(intent.qty),
                order_type=intent.order_type,
                limit_price=str(intent.limit_price),
            )
        self.intents_emitted += len(pending)

    def _not_accepting(self) -> str:
        if self.stopping.is_set():
            return "the strategy service is stopping"
        if not self.lifecycle.is_up:
            return f"the strategy service is {self.lifecycle.state.value}"
        return ""

    def http_routes(self) -> list[web.AbstractRouteDef]:
        return [] if self.intake is None else self.intake.routes()

    def readiness(self) -> Readiness:
        return Readiness.of(
            {
                "market data consumer connected": self.md_consumer.connected,
                "order events consumer connected": self.exec_consumer.connected,
            }
        )

    def status(self) -> dict[str, Any]:
        return {
            "strategies": {
                name: {
                    "kind": strategy.kind,
                    "positions": {p.symbol: str(p.qty) for p in sctx.positions.all()},
                }
                for name, (strategy, sctx) in self.strategies.items()
            },
            "intents_emitted": self.intents_emitted,
            "intake": {"enabled": False} if self.intake is None else self.intake.status(),
        }
