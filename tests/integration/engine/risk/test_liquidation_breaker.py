"""The liquidation-distance breaker on a real engine against the USD-M simulator: a long at 20x
sits about 7% from its liquidation price; entries are refused under 8%; when the mark falls 3%
the breaker (5%) flattens it reduce-only before the venue can liquidate it, and a further fall
liquidates nothing. Without the breaker the same fall liquidates it: the venue's own record
(`/truth/liquidations`) says which happened."""

from __future__ import annotations

from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import control, wait_until
from tests.integration.engine.execution.test_futures_trading import (
    market_intent,
    usdm_engine,
    venue_position,
)
from tests.integration.engine.strategy.test_intake_trading import (
    post_intent,
)
from tests.integration.trading import (
    Bus,
    status,
    venue_orders,
)

pytestmark = pytest.mark.integration

SERVICES = ("feed", "execution", "risk", "strategy")
SYMBOL = "ETHUSDT"


def risk_toml(breaker_pct: float) -> str:
    return f"""
[risk]
max_position_qty = "100"
max_notional_per_order = "1000000"
min_liquidation_distance_pct = 8.0
liquidation_breaker_pct = {breaker_pct}
"""


def intent(intent_id: str, qty: str) -> dict[str, Any]:
    return market_intent(intent_id, SYMBOL, qty)


@pytest.mark.parametrize("breaker_pct", [5.0, 0.0], ids=["breaker", "no-breaker"])
def test_the_breaker_flattens_before_the_venue_liquidates(
    tmp_path: Path, shared_data: Path, breaker_pct: float
) -> None:
    with ExitStack() as stack:
        sim, ports, redis_port = usdm_engine(
            stack,
            tmp_path,
            shared_data,
            wallet="USDT=2000",
            extra=risk_toml(breaker_pct),
            venue="leverage = 20",
            execution="position_poll_ms = 300",
        )
        intake = f"http://127.0.0.1:{ports['strategy']}/intents"
        assert post_intent(intake, intent("brk-entry-1", "10"))[0] == 202
        wait_until(lambda: venue_position(sim, SYMBOL) == 10, timeout_s=30, what="the position")
        distance = wait_until(
            lambda: status(ports["risk"]).get("liquidation_distance_pct", {}).get(SYMBOL),
            timeout_s=20,
            what="risk to know the liquidation distance",
        )
        assert 5.0 < distance < 8.0
        assert post_intent(intake, intent("brk-entry-2", "1"))[0] == 202
        bus = Bus(redis_port)
        stack.callback(bus.close)
        denial = bus.denial("brk-entry-2", what="the second entry to be refused")
        assert denial.check == "liquidation_distance"
        assert venue_position(sim, SYMBOL) == 10, "the entry under 8% never reached the venue"

        control(sim, "POST", "/replay/mark-price", {"mark_shift": -0.03})
        if breaker_pct:
            wait_until(
                lambda: venue_position(sim, SYMBOL) == 0,
                timeout_s=30,
                what="the breaker's flatten",
            )
            risk = status(ports["risk"])
            assert risk["trading_state"] == "REDUCING"
            assert risk["trading_state_reason"].startswith("liquidation breaker")
        control(sim, "POST", "/replay/mark-price", {"mark_shift": -0.08})
        if breaker_pct:
            truth = control(sim, "GET", "/truth/liquidations")["liquidations"]
            assert truth == []
            closing = [o for o in venue_orders(sim) if o["side"] == "SELL"]
            assert closing and all(o["reduce_only"] for o in closing)
        else:
            (liquidated,) = wait_until(
                lambda: control(sim, "GET", "/truth/liquidations")["liquidations"],
                timeout_s=30,
                what="the venue to liquidate the unprotected position",
            )
            assert Decimal(liquidated["qty"]) == 10
