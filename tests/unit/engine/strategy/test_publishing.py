"""The strategy service publishes each emitted intent once, even when its two handlers (market
data and its own events) publish at the same time, and keeps what the bus refused."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from engine.bus.base import INTENTS
from engine.bus.memory import MemoryBus
from engine.config import Secret, Secrets, Settings, parse_config
from engine.core.clock import LiveClock
from engine.core.errors import BusUnavailableError
from engine.core.messages import BusMessage, Intent, OrderType, Side
from engine.runtime.metrics import EngineMetrics
from engine.runtime.service import ServiceContext
from engine.strategy.registry import STRATEGY_PARAMS
from engine.strategy.service import StrategyService

pytestmark = pytest.mark.unit

CONFIG = b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:2"
symbols = ["BTCUSDT"]
[[strategies]]
kind = "momentum"
name = "momentum"
"""


class GatedBus(MemoryBus):
    """Intent publishes wait for a gate, or fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail = False
        self.entered = asyncio.Event()

    async def publish(self, stream: str, message: BusMessage) -> str:
        if stream == INTENTS:
            if self.fail:
                raise BusUnavailableError("redis unavailable: connection refused")
            self.entered.set()
            await self.gate.wait()
        return await super().publish(stream, message)

    async def intent_ids(self) -> list[str]:
        return [
            d.message.intent_id
            for d in await self.read_range(INTENTS)
            if isinstance(d.message, Intent)
        ]


def service(bus: GatedBus) -> StrategyService:
    secret = Secret("")
    settings = Settings(
        config=parse_config(CONFIG, strategy_params=STRATEGY_PARAMS),
        secrets=Secrets(api_key=secret, api_secret=secret, ops_token=secret),
        path="<test>",
    )
    ctx = ServiceContext(
        settings=settings, clock=LiveClock(), bus=bus, metrics=EngineMetrics(), instance="t"
    )
    return StrategyService(ctx)


def an_intent(intent_id: str) -> Intent:
    return Intent(
        correlation_id=intent_id,
        intent_id=intent_id,
        source="momentum",
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=Decimal("0.001"),
        order_type=OrderType.MARKET,
    )


async def test_two_handlers_publishing_at_once_publish_each_intent_once() -> None:
    bus = GatedBus()
    strategy = service(bus)
    emitted = strategy.strategies["momentum"][1].emitted
    emitted.append(an_intent("momentum.1.1"))
    first = asyncio.create_task(strategy._publish_intents())
    await bus.entered.wait()
    second = asyncio.create_task(strategy._publish_intents())
    # the second finds nothing left to publish: it must not wait on the first one's intent
    done, _ = await asyncio.wait({second}, timeout=2)
    bus.gate.set()
    await asyncio.gather(first, second)
    assert second in done
    assert await bus.intent_ids() == ["momentum.1.1"]


async def test_intents_the_bus_refused_are_kept_in_order_ahead_of_later_ones() -> None:
    bus = GatedBus()
    bus.gate.set()
    strategy = service(bus)
    sctx = strategy.strategies["momentum"][1]
    sctx.emitted.extend([an_intent("momentum.1.1"), an_intent("momentum.1.2")])
    bus.fail = True
    with pytest.raises(BusUnavailableError):
        await strategy._publish_intents()
    sctx.emitted.append(an_intent("momentum.1.3"))
    bus.fail = False
    await strategy._publish_intents()
    assert await bus.intent_ids() == ["momentum.1.1", "momentum.1.2", "momentum.1.3"]
    assert sctx.emitted == []
