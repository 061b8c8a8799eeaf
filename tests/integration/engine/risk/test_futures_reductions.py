"""Reductions on a futures venue, on a real engine against the USD-M simulator: a funding spike
closes the position that pays it; a flatten of a position someone else already shrank (a
manual close on the exchange, with the engine's key), while the venue refuses reduce-only
orders, never resends without reduceOnly, never flips the position, and ends on the venue's
own report. Ground truth: the simulator's orders, refusals and positions."""

from __future__ import annotations

from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import control, wait_until
from tests.integration.engine.execution.test_futures_trading import (
    market_intent,
    usdm_engine,
    venue_position,
)
from tests.integration.engine.strategy.test_intake_trading import post_intent
from tests.integration.replay.exchange.test_futures_venue import client
from tests.integration.trading import OPS_TOKEN, post, status, venue_orders

pytestmark = pytest.mark.integration

SYMBOL = "ETHUSDT"
RISK = """
[risk]
max_position_qty = "100"
max_notional_per_order = "1000000"
max_adverse_funding_pct = 0.5
"""


def test_a_funding_spike_closes_the_position_that_pays_it(
    tmp_path: Path, shared_data: Path
) -> None:
    with ExitStack() as stack:
        sim, ports, _ = usdm_engine(stack, tmp_path, shared_data, extra=RISK)
        intake = f"http://127.0.0.1:{ports['strategy']}/intents"
        assert post_intent(intake, market_intent("fg-entry-1", SYMBOL, "2"))[0] == 202
        wait_until(lambda: venue_position(sim, SYMBOL) == 2, timeout_s=30, what="the position")
        control(sim, "POST", "/replay/mark-price", {"funding_rate": 0.004})  # under 0.5%
        assert post_intent(intake, market_intent("fg-entry-2", SYMBOL, "1"))[0] == 202
        wait_until(lambda: venue_position(sim, SYMBOL) == 3, timeout_s=30, what="the entry")

        control(sim, "POST", "/replay/mark-price", {"funding_rate": 0.01})
        wait_until(lambda: venue_position(sim, SYMBOL) == 0, timeout_s=30, what="the funding guard")
        risk = status(ports["risk"])
        assert risk["trading_state"] == "REDUCING"
        assert risk["trading_state_reason"].startswith("funding guard: ETHUSDT funding 1.0000%")
        assert risk["funding_guard_trips"] == 1
        closing = [o for o in venue_orders(sim) if o["side"] == "SELL"]
        assert len(closing) == 1 and closing[0]["reduce_only"], "one reduce-only market order"


def test_a_flatten_of_a_position_shrunk_by_hand_never_flips_while_reduce_only_is_refused(
    tmp_path: Path, shared_data: Path
) -> None:
    with ExitStack() as stack:
        sim, ports, _ = usdm_engine(
            stack, tmp_path, shared_data, extra=RISK, execution="position_poll_ms = 300"
        )
        intake = f"http://127.0.0.1:{ports['strategy']}/intents"
        assert post_intent(intake, market_intent("ro-entry-1", SYMBOL, "2"))[0] == 202
        wait_until(lambda: venue_position(sim, SYMBOL) == 2, timeout_s=30, what="the position")
        wait_until(
            lambda: Decimal(status(ports["risk"]).get("positions", {}).get(SYMBOL, "0")) == 2,
            timeout_s=20,
            what="risk to know the position",
        )
        human = client("usdm", sim.rest_url, sim.ws_url)
        human.load_markets()
        human.create_order(SYMBOL, "market", "sell", 1.5)  # a manual close on the exchange
        assert venue_position(sim, SYMBOL) == Decimal("0.5")
        fault = {"kind": "reject_reduce_only", "duration_ms": 2_000}
        control(sim, "POST", "/faults", fault)
        risk_url = f"http://127.0.0.1:{ports['risk']}"
        assert post(f"{risk_url}/ops/flatten", OPS_TOKEN, {"reason": "test"}) == 202

        flatten = wait_until(
            lambda: (f := status(ports["risk"]).get("flatten") or {}).get("finished_ns") and f,
            timeout_s=30,
            what="the flatten to finish",
        )
        assert venue_position(sim, SYMBOL) == 0, "flat at the venue, never short"
        ours = [o for o in venue_orders(sim) if o["client_order_id"].startswith("sp")]
        closing = [o for o in ours if o["side"] == "SELL"]
        assert closing and all(o["reduce_only"] for o in closing), "never resent without it"
        assert sum(Decimal(o["executed_qty"]) for o in closing) == Decimal("0.5")
        refused = control(sim, "GET", "/truth/refusals")["refusals"]
        assert any(r["code"] == -2022 for r in refused), "the venue did refuse reduce-only"
        assert not flatten.get("abandoned")
