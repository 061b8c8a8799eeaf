"""A flatten issues each reduction once, however many of its steps run at the same time."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from engine.bus.base import CONTROL, INTENTS, exec_stream, make_delivery
from engine.bus.memory import MemoryBus
from engine.config import Secret, Secrets, Settings, parse_config
from engine.core.clock import LiveClock
from engine.core.messages import BusMessage, Control, Fill, Intent, Side, encode
from engine.risk.service import RiskService
from engine.runtime.metrics import EngineMetrics
from engine.runtime.service import ServiceContext
from engine.strategy.registry import STRATEGY_PARAMS

pytestmark = pytest.mark.integration
CONFIG = b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:2"
symbols = ["BTCUSDT"]
"""


class NetworkLikeBus(MemoryBus):
    """A MemoryBus whose publishes yield to the event loop, as a round trip to Redis does."""

    async def publish(self, stream: str, message: BusMessage) -> str:
        await asyncio.sleep(0)
        return await super().publish(stream, message)


def risk_service(bus: MemoryBus) -> RiskService:
    secret = Secret("")
    settings = Settings(
        config=parse_config(CONFIG, strategy_params=STRATEGY_PARAMS),
        secrets=Secrets(api_key=secret, api_secret=secret, ops_token=secret),
        path="<test>",
    )
    return RiskService(
        ServiceContext(
            settings=settings, clock=LiveClock(), bus=bus, metrics=EngineMetrics(), instance="r"
        )
    )


def bought(qty: str) -> Fill:
    return Fill(
        venue="binance",
        symbol="BTCUSDT",
        trade_id=1,
        client_order_id="c-1",
        intent_id="entry-1",
        side=Side.BUY,
        qty=Decimal(qty),
        price=Decimal(60_000),
        commission=Decimal(0),
        commission_asset="BTC",
        is_maker=False,
        venue_ts_ms=1,
    )


async def flatten_intents(bus: MemoryBus) -> list[Intent]:
    found = [d.message for d in await bus.read_range(INTENTS)]
    return [m for m in found if isinstance(m, Intent) and m.source == "risk-flatten"]


async def test_the_command_and_the_supervisor_stepping_together_issue_one_reduction() -> None:
    bus = NetworkLikeBus()
    risk = risk_service(bus)
    await risk._on_exec(make_delivery(exec_stream("binance"), "1-0", encode(bought("0.01"))))
    command = make_delivery(CONTROL, "2-0", encode(Control(command="flatten", reason="test")))
    # the supervisor's step runs while the command's own is between its awaits
    await asyncio.gather(risk._on_control(command), risk._flatten_step(), risk._flatten_step())
    intents = await flatten_intents(bus)
    assert [(i.side, i.qty, i.reduce_only) for i in intents] == [(Side.SELL, Decimal("0.01"), True)]
    assert risk.flatten is not None and risk.flatten["intents"] == [intents[0].intent_id]


async def test_a_reduction_is_issued_again_only_once_risk_decided_on_the_first() -> None:
    bus = NetworkLikeBus()
    risk = risk_service(bus)
    await risk._on_exec(make_delivery(exec_stream("binance"), "1-0", encode(bought("0.01"))))
    await risk._on_control(
        make_delivery(CONTROL, "2-0", encode(Control(command="flatten", reason="test")))
    )
    [first] = await flatten_intents(bus)
    await risk._flatten_step()
    assert len(await flatten_intents(bus)) == 1, "in transit: not issued again"
    await risk._on_intent(make_delivery(INTENTS, "3-0", encode(first)))
    assert risk._decided[first.intent_id] is True, "a reduction passes risk"
    await risk._flatten_step()
    assert len(await flatten_intents(bus)) == 1, "approved and still open: not issued again"
