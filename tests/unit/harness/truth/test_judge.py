"""The judge reads ground truth only: hand-built truth makes each correctness SLI non-zero, and
the engine's word never enters."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harness.gameday.measure import Windows
from harness.gameday.truth_measures import measure_truth
from harness.truth import judge
from harness.truth.ids import client_order_id, family_of
from harness.truth.records import (
    EngineAnswer,
    IntentRecord,
    MdObservation,
    MidPoint,
    Truth,
    VenueFill,
    VenueOrder,
    VenueRefusal,
    merge_intents,
)

pytestmark = pytest.mark.unit
S = 1_000_000_000
MS = 1_000_000


def intent(
    intent_id: str,
    *,
    at_s: float = 1.0,
    qty: str = "0.001",
    source: str = "load",
    accepted: bool = True,
    algo: str = "",
    side: str = "BUY",
    correlation_id: str = "",
) -> IntentRecord:
    return IntentRecord(
        intent_id=intent_id,
        source=source,
        symbol="BTCUSDT",
        side=side,
        qty=Decimal(qty),
        submitted_ns=int(at_s * S),
        accepted=accepted,
        status=202 if accepted else 503,
        algo=algo,
        correlation_id=correlation_id,
    )


def order(
    cid: str,
    *,
    at_s: float = 1.1,
    qty: str = "0.001",
    executed: str | None = None,
    side: str = "BUY",
    fills: tuple[tuple[str, str], ...] = (),
    arrival_mid: float | None = None,
    connection: str | None = None,
) -> VenueOrder:
    done = Decimal(executed if executed is not None else qty)
    return VenueOrder(
        client_order_id=cid,
        symbol="BTCUSDT",
        side=side,
        order_type="MARKET",
        orig_qty=Decimal(qty),
        executed_qty=done,
        status="FILLED" if done == Decimal(qty) else "PARTIALLY_FILLED",
        time_ms=int(at_s * 1000),
        arrival_mid=arrival_mid,
        connection=connection,
        fills=tuple(
            VenueFill(trade_id=i, price=Decimal(p), qty=Decimal(q), time_ms=int(at_s * 1000))
            for i, (p, q) in enumerate(fills)
        ),
    )


def test_the_id_rule_restated_by_the_judge_is_the_engines() -> None:
    from engine.core.ids import client_order_id as engines

    for intent_id in ("load-1", "momentum.a.7", "harness-0f3c", "x" * 64):
        for child in (0, 1, 99_999):
            assert client_order_id(intent_id, child) == engines(intent_id, child)
    assert family_of("not-our-id") is None
    assert family_of(client_order_id("a", 3)) == family_of(client_order_id("a", 0))


# --- lost ---------------------------------------------------------------------------------------


def test_an_accepted_intent_with_no_venue_order_and_no_answer_is_lost() -> None:
    intents = [intent("a"), intent("b"), intent("c"), intent("refused", accepted=False)]
    orders = [order(client_order_id("a"))]
    answers = [EngineAnswer(intent_id="b", kind="risk_denial", outcome="denied", ts_ns=2 * S)]
    lost = judge.lost_intents(intents, orders, answers)
    assert [i.intent_id for i in lost] == ["c"]
    assert judge.rejected_intents(intents, orders, answers) == ["b"]


def test_an_intent_done_that_claims_a_fill_with_nothing_at_the_venue_does_not_excuse_a_loss() -> (
    None
):
    answers = [EngineAnswer(intent_id="a", kind="intent_done", outcome="filled", ts_ns=2 * S)]
    assert [i.intent_id for i in judge.lost_intents([intent("a")], [], answers)] == ["a"]
    rejected = [EngineAnswer(intent_id="a", kind="intent_done", outcome="rejected", ts_ns=2 * S)]
    assert judge.lost_intents([intent("a")], [], rejected) == []


# --- duplicated ---------------------------------------------------------------------------------


def test_a_resend_under_a_new_id_is_a_duplicate_even_though_the_venue_refused_no_repeat() -> None:
    intents = [intent("a", qty="0.2")]
    orders = [
        order(client_order_id("a"), qty="0.2"),
        order("resend-of-a-under-a-new-id", qty="0.2"),
    ]
    found = judge.duplicates(intents, orders)
    assert [(d.intent_id, d.reason) for d in found] == [
        (None, "no known intent accounts for this venue order")
    ]


def test_an_intent_executed_beyond_its_quantity_is_a_duplicate() -> None:
    intents = [intent("a", qty="0.2", algo="split")]
    orders = [
        order(client_order_id("a", 0), qty="0.2"),
        order(client_order_id("a", 1), qty="0.2"),
    ]
    (found,) = judge.duplicates(intents, orders)
    assert found.intent_id == "a" and found.reason == "executed 0.4 for an intent of 0.2"


def test_a_plain_intent_reaching_the_venue_as_two_orders_is_a_duplicate_an_algo_is_not() -> None:
    orders = [
        order(client_order_id("plain", 0), qty="0.1", executed="0"),
        order(client_order_id("plain", 1), qty="0.1", executed="0"),
        order(client_order_id("algo", 0), qty="0.1", executed="0.05"),
        order(client_order_id("algo", 1), qty="0.05"),
    ]
    intents = [intent("plain", qty="0.1"), intent("algo", qty="0.1", algo="twap")]
    assert [d.intent_id for d in judge.duplicates(intents, orders)] == ["plain"]


def test_refused_repeats_of_an_id_are_reported_never_counted() -> None:
    refusals = [
        VenueRefusal(
            client_order_id="x",
            symbol="BTCUSDT",
            code=-2010,
            msg="Duplicate order sent.",
            time_ms=1,
        ),
        VenueRefusal(
            client_order_id="y",
            symbol="BTCUSDT",
            code=-2010,
            msg="Account has insufficient balance for requested action.",
            time_ms=1,
        ),
    ]
    assert judge.duplicate_ids_refused(refusals) == 1


# --- drift --------------------------------------------------------------------------------------

ASSETS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}


def test_a_position_the_leader_forgot_is_drift_not_absence() -> None:
    drift = judge.position_drift(
        venue_change={"BTC": Decimal("0.005"), "USDT": Decimal("-250")},
        symbol_assets=ASSETS,
        leader_positions={},
    )
    assert drift == {"BTCUSDT": Decimal("-0.005")}
    assert judge.total_drift(drift) == 0.005


def test_drift_covers_the_union_of_both_sides_and_no_leader_is_no_measurement() -> None:
    drift = judge.position_drift(
        venue_change={"BTC": Decimal("0.005")},
        symbol_assets=ASSETS,
        leader_positions={"BTCUSDT": Decimal("0.005"), "ETHUSDT": Decimal("0.1")},
    )
    assert drift == {"BTCUSDT": Decimal(0), "ETHUSDT": Decimal("0.1")}
    none = judge.position_drift(venue_change={}, symbol_assets=ASSETS, leader_positions=None)
    assert none is None and judge.total_drift(none) is None


# --- orders after a halt, on stale data -------------------------------------------------------


def test_orders_landing_after_the_halt_and_its_grace_count() -> None:
    orders = [order("a", at_s=10.5), order("b", at_s=11.2), order("c", at_s=30)]
    after = judge.orders_after(orders, 10 * S, grace_ms=1_000)
    assert [o.client_order_id for o in after] == ["b", "c"]


def test_an_order_decided_on_a_tick_older_than_the_limit_is_an_order_on_stale_data() -> None:
    ticks = [
        MdObservation(symbol="BTCUSDT", entry_ms=1_000, event_ms=995, correlation_id="t1"),
        MdObservation(symbol="BTCUSDT", entry_ms=7_000, event_ms=6_998, correlation_id="t2"),
    ]
    stale = intent("momentum.a.1", at_s=7.2, source="bus", correlation_id="t1")
    fresh = intent("momentum.a.2", at_s=7.2, source="bus", correlation_id="t2")
    orders = [order(client_order_id("momentum.a.1")), order(client_order_id("momentum.a.2"))]
    decisions = judge.stale_decisions([stale, fresh], ticks, stale_ms=3_000)
    assert [(i.intent_id, age) for i, age in decisions] == [("momentum.a.1", 6_205)]
    on_stale = judge.orders_on_stale_data([stale, fresh], orders, ticks, stale_ms=3_000)
    assert [o.client_order_id for o in on_stale] == [client_order_id("momentum.a.1")]


# --- the market on the bus --------------------------------------------------------------------


def md(entry_ms: int, event_ms: int | None, feed: str = "a") -> MdObservation:
    return MdObservation(symbol="BTCUSDT", entry_ms=entry_ms, event_ms=event_ms, feed=feed)


def test_data_age_is_the_longest_the_bus_went_without_newer_market() -> None:
    observations = [md(t, t - 2) for t in range(0, 10_001, 100)]
    observations = [o for o in observations if not 4_000 < o.entry_ms < 7_000]
    assert judge.max_data_age_s(observations, 1_000, 10_000) == 3.002
    assert judge.max_data_age_s([], 1_000, 2_000) is None


def test_switch_time_runs_until_fresh_market_is_back_and_is_censored_when_it_never_is() -> None:
    before = [md(t, t - 1) for t in range(0, 5_001, 50)]
    after_switch = [md(t, t - 1, feed="b") for t in range(7_000, 9_001, 50)]
    switched = judge.time_to_fresh_again(before + after_switch, 5_000, 9_000)
    assert switched.seconds == 2.0 and not switched.censored
    never = judge.time_to_fresh_again(before, 5_000, 9_000)
    assert never.seconds == 4.0 and never.censored
    seamless = judge.time_to_fresh_again([md(t, t - 1) for t in range(0, 9_001, 50)], 5_000, 9_000)
    assert seamless.seconds == 0.0


def test_late_market_counts_as_stale_until_fresh_data_arrives() -> None:
    before = [md(t, t - 1) for t in range(0, 5_001, 50)]
    late = [md(t, t - 400) for t in range(5_050, 8_001, 50)]  # a 400 ms latency toxic
    fresh = [md(t, t - 2, feed="b") for t in range(8_050, 9_001, 50)]
    assert judge.time_to_fresh_again(before + late + fresh, 5_000, 9_000).seconds == 3.05


def test_fresh_again_means_as_fresh_as_before_the_fault_on_a_loaded_machine() -> None:
    before = [md(t, t - 200) for t in range(0, 5_001, 50)]  # every book 200 ms behind
    switched = [md(t, t - 270, feed="b") for t in range(5_300, 9_001, 50)]
    assert judge.time_to_fresh_again(before + switched, 5_000, 9_000).seconds == 0.3
    not_switched = [md(t, 4_800) for t in range(5_300, 9_001, 50)]
    late = judge.time_to_fresh_again(before + not_switched, 5_000, 9_000)
    assert late.seconds == 4.0 and late.censored


# --- flat, slippage, latency ----------------------------------------------------------------


def test_time_to_flat_reads_the_venue_balances_after_the_request() -> None:
    samples = [
        (1 * S, {"BTC": Decimal("0")}),  # flat before the request: not the flatten's doing
        (3 * S, {"BTC": Decimal("0.01")}),
        (4 * S, {"BTC": Decimal("0.00005")}),
    ]
    assert judge.time_to_flat_s(samples, 2 * S) == 2.0
    assert judge.time_to_flat_s(samples[:2], 2 * S) is None


def test_slippage_is_against_the_replays_mid_when_the_intent_was_sent() -> None:
    mids = [
        MidPoint(symbol="BTCUSDT", ts_ms=900, mid=100.0),
        MidPoint(symbol="BTCUSDT", ts_ms=1_500, mid=120.0),
    ]
    intents = [intent("buy", at_s=1.0), intent("sell", at_s=1.0, side="SELL")]
    orders = [
        order(client_order_id("buy"), fills=(("100.02", "0.001"),)),
        order(client_order_id("sell"), side="SELL", fills=(("99.99", "0.001"),)),
    ]
    bps, fills = judge.slippage_bps(intents, orders, mids, start_ns=0, end_ns=2 * S)
    assert fills == 2 and bps == pytest.approx(1.5)


def test_ack_latency_percentiles_come_from_raw_samples_with_their_count() -> None:
    intents = [intent(f"i{n}", at_s=n) for n in range(1, 101)]
    orders = [order(client_order_id(f"i{n}"), at_s=n + n / 1000) for n in range(1, 101)]
    samples = judge.ack_latencies_ms(intents, orders)
    assert len(samples) == 100
    assert judge.percentile(samples, 0.99) == pytest.approx(99.0)
    assert judge.percentile(samples, 0.5) == pytest.approx(50.0)
    assert judge.percentile([], 0.99) is None


# --- one scenario, end to end over hand-built truth --------------------------------------------


def test_a_scenario_measured_from_truth_names_what_was_lost_doubled_and_sent_after_the_halt() -> (
    None
):
    truth = Truth(
        intents=merge_intents(
            [
                intent("ok", at_s=2),
                intent("lost", at_s=3),
                intent("doubled", at_s=4, qty="0.2"),
                intent("ok", at_s=2.001, source="bus"),
            ]
        ),
        orders=[
            order(client_order_id("ok"), at_s=2.1),
            order(client_order_id("doubled"), at_s=4.1, qty="0.2"),
            order("doubled-again", at_s=12, qty="0.2"),
        ],
        md=[md(t, t - 1) for t in range(0, 20_001, 100)],
    )
    windows = Windows(
        baseline_start_ns=1 * S, fault_start_ns=5 * S, fault_end_ns=10 * S, end_ns=20 * S
    )
    activities = [{"name": "halt-trading", "event": "start", "ts_ns": 10 * S}]
    slis = measure_truth(truth, windows, activities=activities)
    assert slis.fault["orders_lost"] == 1 and slis.detail["lost_intents"] == ["lost"]
    assert slis.fault["orders_duplicated"] == 1
    assert slis.detail["duplicates"][0]["client_order_ids"] == ["doubled-again"]
    assert slis.fault["orders_after_halt"] == 1
    assert slis.fault["max_market_data_age_s"] == pytest.approx(0.101)
    assert slis.fault["time_to_switch_feed_s"] == 0.0


def test_merging_keeps_the_submitters_record_and_the_buses_correlation() -> None:
    merged = merge_intents(
        [
            intent("a", at_s=2.0, source="bus", correlation_id="t9", algo="twap"),
            intent("a", at_s=1.0, source="load"),
        ]
    )
    assert len(merged) == 1
    assert (merged[0].source, merged[0].submitted_ns, merged[0].algo) == ("load", 1 * S, "twap")
    assert merged[0].correlation_id == "t9"


def test_a_feed_never_switched_shows_as_stale_books_while_trades_and_quotes_keep_flowing() -> None:
    # the engine publishes trades and quotes from whichever feed delivers first, books only from
    # its active feed: with the active feed cut and no switch, only the books stop
    flowing = [
        MdObservation(
            symbol="BTCUSDT", kind=kind, entry_ms=t, event_ms=t - 1 if kind == "trade" else None
        )
        for t in range(0, 12_001, 50)
        for kind in ("trade", "quote")
    ]
    books = [md(t, t - 1) for t in range(0, 5_001, 50)] + [
        md(t, t - 1) for t in range(15_000, 15_001)
    ]
    switch = judge.time_to_fresh_again(flowing + books, 5_000, 12_000)
    assert switch.censored and switch.seconds == 7.0
    assert judge.max_data_age_s(flowing + books, 5_000, 12_000) == 7.001
    assert judge.max_data_age_s(flowing, 5_000, 12_000) == 0.05  # quotes alone: fresh


def test_a_quiet_market_without_trades_is_not_stale_data() -> None:
    quotes = [
        MdObservation(symbol="BTCUSDT", kind="quote", entry_ms=t, event_ms=None)
        for t in range(0, 10_001, 100)
    ]
    trades = [
        MdObservation(symbol="BTCUSDT", kind="trade", entry_ms=t, event_ms=t) for t in (0, 9_000)
    ]
    assert judge.max_data_age_s(quotes + trades, 1_000, 10_000) == 0.1


def test_an_intent_sent_after_the_drains_cut_is_not_judged_lost_and_one_before_it_is() -> None:
    truth = Truth(
        intents=merge_intents([intent("before-cut", at_s=8), intent("after-cut", at_s=9.5)]),
        orders=[],
    )
    windows = Windows(
        baseline_start_ns=1 * S,
        fault_start_ns=5 * S,
        fault_end_ns=6 * S,
        end_ns=10 * S,
        intents_end_ns=9 * S,
    )
    slis = measure_truth(truth, windows)
    assert slis.detail["lost_intents"] == ["before-cut"]


def test_the_longest_trading_gap_counts_from_the_windows_edges_and_between_orders() -> None:
    orders = [order(f"o{t}", at_s=t) for t in (1.0, 1.5, 5.5, 6.0)]
    gap = judge.max_trading_gap(orders, 1_000, 7_000)
    assert (gap.seconds, gap.censored) == (4.0, False)
    assert judge.max_trading_gap(orders, 6_500, 9_000) == judge.Gap(seconds=2.5, censored=True)
    assert judge.max_trading_gap(orders, 0, 1_200).seconds == 1.0  # start -> the first order


def test_the_deposed_leaders_orders_after_its_lease_could_be_taken_break_fencing() -> None:
    """A led alone before the fault (its connection :1001); its Lease could be taken at 10 s;
    B leads from 10.2 s on its own connection. A's order at 10.5 s is a second writer."""
    a, b = "10.0.0.7:1001", "10.0.0.7:1002"
    orders = [
        order("a-before", at_s=2.0, connection=a),
        order("a-in-term", at_s=9.9, connection=a),
        order("b-leads", at_s=10.2, connection=b),
        order("a-too-late", at_s=10.5, connection=a),
        order("unknown-conn", at_s=11.0),
    ]
    late = judge.orders_after_lease_expiry(
        orders, led_from_ms=1_000, led_until_ms=5_000, expiry_ms=10_000
    )
    assert [o.client_order_id for o in late or []] == ["a-too-late"]
    fenced = [o for o in orders if o.client_order_id != "a-too-late"]
    assert (
        judge.orders_after_lease_expiry(
            fenced, led_from_ms=1_000, led_until_ms=5_000, expiry_ms=10_000
        )
        == []
    )


def test_fencing_is_no_measurement_when_no_order_came_while_the_leader_led_alone() -> None:
    orders = [order("b-leads", at_s=10.2, connection="10.0.0.7:1002")]
    assert (
        judge.orders_after_lease_expiry(
            orders, led_from_ms=1_000, led_until_ms=5_000, expiry_ms=10_000
        )
        is None
    )
