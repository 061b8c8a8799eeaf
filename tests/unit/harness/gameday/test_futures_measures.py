"""Futures SLIs from the venue's truth: funding paid against funding had the position been
held, and positions past zero while the engine reduces."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from harness.gameday import futures_measures as futures
from harness.gameday.measure import Windows
from harness.gameday.truth_measures import measure_truth
from harness.truth.records import Truth

pytestmark = pytest.mark.unit

S = 1_000_000_000  # ns
SAMPLES = [
    (1 * S, {"ETHUSDT": D("5")}),
    (2 * S, {"ETHUSDT": D("5")}),  # the fault begins at 2.5 s
    (3 * S, {"ETHUSDT": D("2")}),
    (4 * S, {}),  # flat: absent
    (5 * S, {"ETHUSDT": D("-0.3")}),  # past zero
    (7 * S, {"ETHUSDT": D("-4")}),  # after the resume at 6 s: trading again
]


def time(ms: int, per_contract: str, rate: str = "0.01") -> dict[str, Any]:
    return {"symbol": "ETHUSDT", "time_ms": ms, "rate": rate, "per_contract": per_contract}


def paid(ms: int, amount: str) -> dict[str, Any]:
    return {"symbol": "ETHUSDT", "time_ms": ms, "paid": amount}


def test_the_position_held_is_the_last_look_at_or_before_the_moment() -> None:
    assert futures.held_at(SAMPLES, int(2.5 * S)) == {"ETHUSDT": D("5")}
    assert futures.held_at(SAMPLES, 4 * S) == {}
    assert futures.held_at(SAMPLES, S // 2) is None


def test_funding_if_held_prices_the_held_position_at_every_funding_time_of_the_window() -> None:
    times = [time(2000, "30"), time(3000, "30"), time(6000, "-1"), time(9000, "30")]
    held = {"ETHUSDT": D("5"), "BTCUSDT": D("1")}
    assert futures.funding_if_held(held, times, 2500, 9000) == D("145")  # 5 x (30 - 1)
    payments = [paid(2000, "150"), paid(3000, "60"), paid(6000, "-0.2")]
    assert futures.funding_paid(payments, 2500, 9000) == D("59.8")
    assert futures.paid_vs_held_pct(D("59.8"), D("145")) == pytest.approx(41.241, abs=1e-3)
    assert futures.paid_vs_held_pct(D("1"), D("0")) is None  # holding cost nothing
    assert futures.paid_vs_held_pct(D("-1"), D("-5")) is None  # holding would have earned


def test_a_position_past_zero_counts_only_between_the_fault_and_the_resume() -> None:
    held = {"ETHUSDT": D("5")}
    assert futures.flipped_qty(SAMPLES, held, int(2.5 * S), 6 * S) == pytest.approx(0.3)
    assert futures.flipped_qty(SAMPLES, held, int(2.5 * S), int(4.5 * S)) == 0
    assert futures.flipped_qty(SAMPLES, {"ETHUSDT": D(0)}, 0, 10 * S) == 0  # nothing to flip


def test_the_futures_slis_reach_the_scenario_from_the_venues_records() -> None:
    truth = Truth(
        liquidations=[],
        funding=[paid(3000, "60")],
        funding_times=[time(3000, "30"), time(5000, "30")],
    )
    windows = Windows(
        baseline_start_ns=0, fault_start_ns=int(2.5 * S), fault_end_ns=6 * S, end_ns=8 * S
    )
    activities = [{"name": "resume-trading", "event": "start", "ts_ns": 6 * S}]
    slis = measure_truth(truth, windows, activities=activities, venue_positions=SAMPLES)
    assert slis.fault["funding_paid"] == 60
    assert slis.fault["funding_if_held"] == 300
    assert slis.fault["funding_paid_vs_held_pct"] == 20
    assert slis.fault["position_flipped_qty"] == pytest.approx(0.3)
    spot = measure_truth(Truth(), windows, activities=activities, venue_positions=SAMPLES)
    assert "funding_paid" not in spot.fault and "position_flipped_qty" not in spot.fault
