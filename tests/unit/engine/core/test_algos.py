"""Execution algos: each algo's behaviour, and the properties that make them restart-safe."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.algos import (
    Action,
    CancelChild,
    Finished,
    Instrument,
    MarketView,
    PlaceChild,
    child_order,
    floor_to,
    make_algo,
)
from engine.core.errors import AlgoParamsError, StormproofError
from engine.core.ids import client_order_id
from engine.core.messages import Intent, OrderType, Side, TimeInForce
from engine.core.orders import OrderRecord, OrderState

pytestmark = pytest.mark.unit

D = Decimal
MS = 1_000_000
START = 1_000 * MS
LOT = D("0.001")
TICK = D("0.01")
INST = Instrument(tick_size=TICK, lot_size=LOT, min_qty=D("0.001"), min_notional=D("5"))
BOOK = MarketView(bid=D("100.00"), ask=D("100.02"), ts_ns=START)
WOULD_TAKE = "InvalidOrder: binance Order would immediately match and take."
LIVE = (
    OrderState.PENDING,
    OrderState.SUBMITTING,
    OrderState.UNKNOWN,
    OrderState.OPEN,
    OrderState.PARTIALLY_FILLED,
)


def intent(**kw: object) -> Intent:
    base: dict[str, object] = dict(
        intent_id="intent-1",
        source="test",
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=D("1"),
        order_type=OrderType.MARKET,
    )
    base.update(kw)
    return Intent(**base)  # type: ignore[arg-type]


def child(
    parent: Intent,
    index: int,
    *,
    state: OrderState,
    qty: str,
    filled: str = "0",
    order_type: OrderType = OrderType.MARKET,
    price: str | None = None,
    reason: str = "",
    created: int = 0,
    updated: int = 0,
) -> OrderRecord:
    place = PlaceChild(
        child_index=index,
        order_type=order_type,
        qty=D(qty),
        limit_price=None if price is None else D(price),
        time_in_force=TimeInForce.GTC,
        reason="",
    )
    return msgspec.structs.replace(
        child_order(parent, place, now_ns=created),
        state=state,
        filled_qty=D(filled),
        reason=reason,
        updated_ts_ns=updated,
    )


def step(
    parent: Intent,
    children: Sequence[OrderRecord] = (),
    *,
    now: int = START,
    market: MarketView = BOOK,
    instrument: Instrument = INST,
) -> list[Action]:
    algo = make_algo(parent, start_ns=START, instrument=instrument)
    return algo.step(now_ns=now, market=market, children=children)


def places(actions: Sequence[Action]) -> list[PlaceChild]:
    return [a for a in actions if isinstance(a, PlaceChild)]


# --- direct ---------------------------------------------------------------------------------


def test_direct_sends_the_intent_as_one_child_with_its_own_type_price_and_tif() -> None:
    parent = intent(order_type=OrderType.LIMIT, limit_price=D("99.5"), qty=D("0.2"))
    parent = msgspec.structs.replace(parent, time_in_force=TimeInForce.FOK)
    assert step(parent) == [
        PlaceChild(
            child_index=0,
            order_type=OrderType.LIMIT,
            qty=D("0.2"),
            limit_price=D("99.5"),
            time_in_force=TimeInForce.FOK,
            reason="direct",
        )
    ]


def test_direct_waits_for_its_child_and_finishes_complete_when_it_fills() -> None:
    parent = intent(qty=D("0.5"))
    working = child(parent, 0, state=OrderState.PARTIALLY_FILLED, qty="0.5", filled="0.2")
    assert step(parent, [working]) == []
    filled = msgspec.structs.replace(working, state=OrderState.FILLED, filled_qty=D("0.5"))
    [done] = step(parent, [filled])
    assert isinstance(done, Finished) and done.complete


def test_direct_never_sends_a_second_child_after_its_child_is_rejected() -> None:
    parent = intent(qty=D("0.5"))
    rejected = child(parent, 0, state=OrderState.REJECTED, qty="0.5")
    assert step(parent, [rejected]) == [
        Finished(reason="child 0 ended REJECTED with 0 of 0.5 filled", complete=False)
    ]


def test_a_market_intent_with_a_limit_price_is_sent_as_limit_ioc_at_the_cap() -> None:
    [place] = places(step(intent(qty=D("0.5"), limit_price=D("101.005"))))
    assert (place.order_type, place.limit_price, place.time_in_force) == (
        OrderType.LIMIT,
        D("101.00"),
        TimeInForce.IOC,
    )


# --- maker first ----------------------------------------------------------------------------


def maker(**params: float | int | str) -> Intent:
    return intent(algo="maker_first", qty=D("0.5"), algo_params=dict(params))


def test_maker_first_quotes_post_only_at_the_best_bid_for_a_buy() -> None:
    [place] = places(step(maker()))
    assert place == PlaceChild(
        child_index=0,
        order_type=OrderType.LIMIT_MAKER,
        qty=D("0.5"),
        limit_price=D("100.00"),
        time_in_force=TimeInForce.GTC,
        reason="maker at touch 100.00",
    )


def test_maker_first_quotes_at_the_best_ask_for_a_sell() -> None:
    [place] = places(step(msgspec.structs.replace(maker(), side=Side.SELL)))
    assert place.order_type is OrderType.LIMIT_MAKER and place.limit_price == D("100.02")


def test_maker_first_waits_while_its_quote_rests_at_the_touch() -> None:
    resting = child(
        maker(), 0, state=OrderState.OPEN, qty="0.5", order_type=OrderType.LIMIT_MAKER,
        price="100.00",
    )  # fmt: skip
    assert step(maker(), [resting]) == []


def test_maker_first_cancels_its_quote_when_the_touch_moves_away_by_requote_ticks() -> None:
    resting = child(
        maker(requote_ticks=3), 0, state=OrderState.PARTIALLY_FILLED, qty="0.5", filled="0.1",
        order_type=OrderType.LIMIT_MAKER, price="100.00",
    )  # fmt: skip
    two_ticks = MarketView(bid=D("100.02"), ask=D("100.04"), ts_ns=START)
    three_ticks = MarketView(bid=D("100.03"), ask=D("100.05"), ts_ns=START)
    assert step(maker(requote_ticks=3), [resting], market=two_ticks) == []
    assert step(maker(requote_ticks=3), [resting], market=three_ticks) == [
        CancelChild(client_order_id=resting.client_order_id, reason="requote to 100.03")
    ]


def test_maker_first_requotes_the_remainder_at_the_new_touch_once_the_cancel_is_done() -> None:
    canceled = child(
        maker(), 0, state=OrderState.CANCELED, qty="0.5", filled="0.1",
        order_type=OrderType.LIMIT_MAKER, price="100.00",
    )  # fmt: skip
    moved = MarketView(bid=D("100.05"), ask=D("100.07"), ts_ns=START)
    [place] = places(step(maker(), [canceled], market=moved))
    assert (place.child_index, place.qty, place.limit_price) == (1, D("0.4"), D("100.05"))


def test_a_maker_quote_that_would_have_taken_is_requoted_and_is_not_a_rejection() -> None:
    parent = maker()
    history = [
        child(
            parent, i, state=OrderState.REJECTED, qty="0.5", order_type=OrderType.LIMIT_MAKER,
            price="99.90", reason=WOULD_TAKE, updated=START,
        )
        for i in range(5)
    ]  # fmt: skip
    [place] = places(step(parent, history))
    assert (place.child_index, place.order_type, place.limit_price) == (
        5,
        OrderType.LIMIT_MAKER,
        D("100.00"),
    )


def test_maker_first_does_not_requote_a_rejected_price_until_the_view_is_newer() -> None:
    parent = maker()
    rejected = child(
        parent, 0, state=OrderState.REJECTED, qty="0.5", order_type=OrderType.LIMIT_MAKER,
        price="100.00", reason=WOULD_TAKE, updated=START + 5,
    )  # fmt: skip
    stale = MarketView(bid=D("100.00"), ask=D("100.02"), ts_ns=START + 5)
    fresh = MarketView(bid=D("100.00"), ask=D("100.02"), ts_ns=START + 6)
    assert step(parent, [rejected], market=stale, now=START + 6) == []
    assert len(places(step(parent, [rejected], market=fresh, now=START + 6))) == 1


def test_maker_first_cancels_its_quote_at_the_timeout_then_crosses_with_market() -> None:
    parent = maker(timeout_ms=2_000)
    resting = child(
        parent, 0, state=OrderState.PARTIALLY_FILLED, qty="0.5", filled="0.2",
        order_type=OrderType.LIMIT_MAKER, price="100.00",
    )  # fmt: skip
    late = START + 2_000 * MS
    assert step(parent, [resting], now=late - 1) == []
    assert step(parent, [resting], now=late) == [
        CancelChild(client_order_id=resting.client_order_id, reason="maker timeout: cross")
    ]
    canceled = msgspec.structs.replace(resting, state=OrderState.CANCELED)
    [place] = places(step(parent, [canceled], now=late))
    assert (place.child_index, place.order_type, place.qty, place.limit_price) == (
        1,
        OrderType.MARKET,
        D("0.3"),
        None,
    )


def test_maker_first_crosses_with_limit_ioc_at_the_cap() -> None:
    parent = msgspec.structs.replace(maker(timeout_ms=0), limit_price=D("100.05"))
    [place] = places(step(parent))
    assert (place.order_type, place.limit_price, place.time_in_force) == (
        OrderType.LIMIT,
        D("100.05"),
        TimeInForce.IOC,
    )


def test_urgent_maker_first_crosses_at_once() -> None:
    [place] = places(step(maker(urgency="urgent")))
    assert place.order_type is OrderType.MARKET and place.reason == "urgent: cross"


def test_maker_first_without_market_data_waits_and_crosses_only_at_a_cap() -> None:
    blind = MarketView(bid=None, ask=None, ts_ns=START)
    late = START + 5_000 * MS
    assert step(maker(), market=blind) == []
    assert step(maker(), market=blind, now=late) == []  # never a blind market order
    capped = msgspec.structs.replace(maker(), limit_price=D("100.10"))
    [place] = places(step(capped, market=blind, now=late))
    assert place.order_type is OrderType.LIMIT and place.limit_price == D("100.10")


def test_maker_first_never_quotes_a_buy_above_the_cap() -> None:
    parent = msgspec.structs.replace(maker(), limit_price=D("99.50"))
    [place] = places(step(parent))
    assert place.limit_price == D("99.50")
    resting = child(
        parent, 0, state=OrderState.OPEN, qty="0.5", order_type=OrderType.LIMIT_MAKER,
        price="99.50",
    )  # fmt: skip
    up = MarketView(bid=D("101.00"), ask=D("101.02"), ts_ns=START)
    assert step(parent, [resting], market=up) == []  # requoting to the same capped price: no


def test_maker_first_waits_while_the_market_is_beyond_the_cap_after_the_timeout() -> None:
    parent = msgspec.structs.replace(maker(timeout_ms=0), limit_price=D("100.01"))
    assert step(parent) == []  # ask 100.02 is above the cap: an IOC would die
    assert len(places(step(parent, market=MarketView(bid=D("99.99"), ask=D("100.01"))))) == 1


def test_maker_first_paces_a_retry_after_a_cross_that_did_not_fill() -> None:
    parent = maker(timeout_ms=0, cross_retry_ms=1_000)
    expired = child(parent, 0, state=OrderState.EXPIRED, qty="0.5", updated=START)
    assert step(parent, [expired], now=START + 999 * MS) == []
    assert len(places(step(parent, [expired], now=START + 1_000 * MS))) == 1


# --- split ----------------------------------------------------------------------------------


def split(qty: str = "1", **params: float | int | str) -> Intent:
    return intent(algo="split", qty=D(qty), algo_params={"max_child_qty": "0.3", **params})


def test_split_places_children_of_at_most_max_child_qty_one_at_a_time() -> None:
    parent = split()
    [first] = places(step(parent))
    assert (first.child_index, first.qty, first.order_type) == (0, D("0.3"), OrderType.MARKET)
    working = child(parent, 0, state=OrderState.OPEN, qty="0.3")
    assert step(parent, [working]) == []
    done = msgspec.structs.replace(working, state=OrderState.FILLED, filled_qty=D("0.3"))
    [second] = places(step(parent, [done]))
    assert (second.child_index, second.qty) == (1, D("0.3"))


def test_split_keeps_max_concurrent_children_live() -> None:
    parent = split(max_concurrent=3)
    assert [(p.child_index, p.qty) for p in places(step(parent))] == [
        (0, D("0.3")),
        (1, D("0.3")),
        (2, D("0.3")),
    ]
    live = [child(parent, i, state=OrderState.SUBMITTING, qty="0.3") for i in range(2)]
    assert [(p.child_index, p.qty) for p in places(step(parent, live))] == [(2, D("0.3"))]


def test_split_children_use_the_intent_order_type_price_and_tif() -> None:
    parent = msgspec.structs.replace(
        split(), order_type=OrderType.LIMIT, limit_price=D("99"), time_in_force=TimeInForce.GTC
    )
    [place] = places(step(parent))
    assert (place.order_type, place.limit_price, place.time_in_force) == (
        OrderType.LIMIT,
        D("99"),
        TimeInForce.GTC,
    )


def test_split_places_the_unfilled_rest_of_a_canceled_child_again() -> None:
    parent = split("0.5")
    history = [
        child(parent, 0, state=OrderState.FILLED, qty="0.3", filled="0.3"),
        child(parent, 1, state=OrderState.CANCELED, qty="0.2", filled="0.05"),
    ]
    [place] = places(step(parent, history))
    assert (place.child_index, place.qty) == (2, D("0.15"))


def test_split_finishes_complete_once_every_child_filled() -> None:
    parent = split("0.5")
    history = [
        child(parent, 0, state=OrderState.FILLED, qty="0.3", filled="0.3"),
        child(parent, 1, state=OrderState.FILLED, qty="0.2", filled="0.2"),
    ]
    [done] = step(parent, history)
    assert isinstance(done, Finished) and done.complete


# --- twap -----------------------------------------------------------------------------------


def twap(qty: str = "1", **params: float | int | str) -> Intent:
    return intent(algo="twap", qty=D(qty), algo_params={"duration_ms": 10_000, **params})


def test_twap_slice_k_is_due_at_its_time_with_a_cumulative_target() -> None:
    parent = twap(slices=4)
    [first] = places(step(parent, now=START))
    assert (first.qty, first.order_type, first.reason) == (D("0.25"), OrderType.MARKET,
                                                           "twap slice 1/4")  # fmt: skip
    done = child(parent, 0, state=OrderState.FILLED, qty="0.25", filled="0.25", created=START)
    assert step(parent, [done], now=START + 2_499 * MS) == []
    [second] = places(step(parent, [done], now=START + 2_500 * MS))
    assert (second.child_index, second.qty, second.reason) == (1, D("0.25"), "twap slice 2/4")


def test_twap_places_at_most_one_child_per_slice() -> None:
    parent = twap(slices=4)
    expired = child(parent, 0, state=OrderState.EXPIRED, qty="0.25", created=START + 1)
    assert step(parent, [expired], now=START + 2_000 * MS) == []


def test_twap_catches_up_a_slice_that_did_not_fill_in_the_next_slice() -> None:
    parent = twap(slices=4)
    expired = child(parent, 0, state=OrderState.EXPIRED, qty="0.25", created=START)
    [place] = places(step(parent, [expired], now=START + 5_000 * MS))
    assert place.qty == D("0.75")  # slices 1-3 are due, nothing filled


def test_twap_places_the_remainder_after_the_duration() -> None:
    parent = twap(slices=4)
    history = [
        child(parent, 0, state=OrderState.FILLED, qty="0.25", filled="0.25", created=START),
        child(parent, 1, state=OrderState.REJECTED, qty="0.25", created=START + 7_500 * MS),
    ]
    [place] = places(step(parent, history, now=START + 10_000 * MS))
    assert (place.child_index, place.qty, place.reason) == (2, D("0.75"), "twap catch-up")


def test_twap_never_places_over_a_child_in_flight() -> None:
    parent = twap(slices=2)
    unknown = child(parent, 0, state=OrderState.UNKNOWN, qty="0.5", created=START)
    assert step(parent, [unknown], now=START + 5_000 * MS) == [
        PlaceChild(
            child_index=1,
            order_type=OrderType.MARKET,
            qty=D("0.5"),
            limit_price=None,
            time_in_force=TimeInForce.GTC,
            reason="twap slice 2/2",
        )
    ]
    two = [unknown, child(parent, 1, state=OrderState.UNKNOWN, qty="0.5", created=START)]
    assert step(parent, two, now=START + 20_000 * MS) == []


def test_twap_with_a_limit_price_sends_limit_ioc_at_the_cap() -> None:
    parent = msgspec.structs.replace(twap(), side=Side.SELL, limit_price=D("99.999"))
    [place] = places(step(parent))
    assert (place.order_type, place.limit_price, place.time_in_force) == (
        OrderType.LIMIT,
        D("100.00"),  # a sell cap rounds up to the tick: never below the intent's price
        TimeInForce.IOC,
    )


def test_twap_finishes_complete_when_filled() -> None:
    parent = twap("0.5", slices=1)
    done = child(parent, 0, state=OrderState.FILLED, qty="0.5", filled="0.5")
    assert step(parent, [done], now=START + 20_000 * MS) == [
        Finished(reason="filled 0.5 of 0.5", complete=True)
    ]


# --- shared rules ---------------------------------------------------------------------------


def test_child_quantities_are_quantized_down_to_the_lot() -> None:
    [place] = places(step(split("1.23456", max_child_qty="0.7777")))
    assert place.qty == D("0.777")
    assert floor_to(D("0.0019"), LOT) == D("0.001") and floor_to(D("-1"), LOT) == 0


def test_a_remainder_below_min_qty_ends_the_algo_incomplete() -> None:
    parent = split("1.0005", max_child_qty="1")
    done = child(parent, 0, state=OrderState.FILLED, qty="1.000", filled="1.000")
    [finished] = step(parent, [done])
    assert isinstance(finished, Finished) and not finished.complete
    assert "min_qty" in finished.reason


def test_a_remainder_below_min_notional_at_the_price_used_ends_the_algo_incomplete() -> None:
    parent = msgspec.structs.replace(
        split("0.1", max_child_qty="1"), order_type=OrderType.LIMIT, limit_price=D("100")
    )
    done = child(parent, 0, state=OrderState.CANCELED, qty="0.1", filled="0.06")
    [finished] = step(parent, [done])  # 0.04 * 100 = 4 < 5
    assert isinstance(finished, Finished) and not finished.complete
    assert "min_notional" in finished.reason
    assert places(step(parent, [msgspec.structs.replace(done, filled_qty=D("0.05"))]))


def test_consecutive_venue_rejections_end_the_algo_at_max_rejects() -> None:
    parent = split(max_rejects=3)
    rejected = [child(parent, i, state=OrderState.REJECTED, qty="0.3") for i in range(3)]
    assert step(parent, rejected[:2])  # two: try again
    [finished] = step(parent, rejected)
    assert finished == Finished(reason="3 consecutive venue rejections", complete=False)


def test_a_child_that_reached_the_venue_resets_the_rejection_count() -> None:
    parent = split(max_rejects=2)
    history = [
        child(parent, 0, state=OrderState.REJECTED, qty="0.3"),
        child(parent, 1, state=OrderState.FILLED, qty="0.3", filled="0.3"),
        child(parent, 2, state=OrderState.REJECTED, qty="0.3"),
    ]
    assert places(step(parent, history))


def test_giving_up_cancels_live_children_before_finishing() -> None:
    parent = split(max_rejects=1, max_concurrent=2)
    history = [
        child(parent, 0, state=OrderState.OPEN, qty="0.3"),
        child(parent, 1, state=OrderState.REJECTED, qty="0.3"),
    ]
    assert step(parent, history) == [
        CancelChild(
            client_order_id=history[0].client_order_id,
            reason="giving up: 1 consecutive venue rejections",
        )
    ]


def test_max_children_caps_the_children_of_one_parent() -> None:
    parent = split(max_children=2)
    history = [child(parent, i, state=OrderState.CANCELED, qty="0.3") for i in range(2)]
    assert step(parent, history) == [
        Finished(reason="max_children (2) reached; filled 0 of 1", complete=False)
    ]


def test_cancel_cancels_every_live_child_and_finishes_the_parent() -> None:
    parent = split(max_concurrent=2)
    history = [
        child(parent, 0, state=OrderState.FILLED, qty="0.3", filled="0.3"),
        child(parent, 1, state=OrderState.OPEN, qty="0.3"),
        child(parent, 2, state=OrderState.PENDING, qty="0.3"),
    ]
    algo = make_algo(parent, start_ns=START, instrument=INST)
    assert algo.cancel(history) == [
        CancelChild(client_order_id=history[1].client_order_id, reason="parent canceled"),
        CancelChild(client_order_id=history[2].client_order_id, reason="parent canceled"),
        Finished(reason="parent canceled", complete=False),
    ]


def test_child_order_is_journaled_pending_under_the_deterministic_client_order_id() -> None:
    parent = intent(correlation_id="corr-1")
    [place] = places(step(parent))
    record = child_order(parent, place, now_ns=42)
    assert record.client_order_id == client_order_id("intent-1", 0)
    assert (record.state, record.created_ts_ns, record.correlation_id) == (
        OrderState.PENDING,
        42,
        "corr-1",
    )


@pytest.mark.parametrize(
    ("algo", "params", "named"),
    [
        ("split", {}, "max_child_qty"),
        ("split", {"max_child_qty": "lots"}, "max_child_qty"),
        ("split", {"max_child_qty": -1}, "max_child_qty"),
        ("split", {"max_child_qty": "0.0001"}, "max_child_qty"),
        ("split", {"max_child_qty": 1, "max_concurrent": 0}, "max_concurrent"),
        ("split", {"max_child_qty": 1, "max_concurrent": 1.5}, "max_concurrent"),
        ("split", {"max_child_qty": 1, "spread": 2}, "spread"),
        ("twap", {}, "duration_ms"),
        ("twap", {"duration_ms": 1000, "slices": 0}, "slices"),
        ("maker_first", {"urgency": "now"}, "urgency"),
        ("maker_first", {"requote_ticks": 0}, "requote_ticks"),
        ("maker_first", {"timeout_ms": -1}, "timeout_ms"),
        ("maker_first", {"max_rejects": True}, "max_rejects"),
        ("", {"max_children": 3}, "max_children"),
    ],
)
def test_bad_params_raise_algo_params_error_naming_the_param(
    algo: str, params: dict[str, float | int | str], named: str
) -> None:
    with pytest.raises(AlgoParamsError, match=named) as raised:
        make_algo(intent(algo=algo, algo_params=params), start_ns=START, instrument=INST)
    assert "\n" not in str(raised.value) and isinstance(raised.value, StormproofError)


def test_a_bad_instrument_or_an_unknown_algo_is_refused() -> None:
    with pytest.raises(AlgoParamsError, match="lot_size"):
        make_algo(intent(), start_ns=START, instrument=Instrument(tick_size=TICK, lot_size=D(0)))
    with pytest.raises(AlgoParamsError, match="unknown algo"):
        make_algo(
            msgspec.structs.replace(intent(), algo="vwap"),  # type: ignore[arg-type]
            start_ns=START,
            instrument=INST,
        )


# --- properties -----------------------------------------------------------------------------

PRICES = st.integers(9_900, 10_100).map(lambda cents: D(cents) / 100)


@st.composite
def parents(draw: st.DrawFn) -> Intent:
    algo = draw(st.sampled_from(["", "maker_first", "split", "twap"]))
    params: dict[str, float | int | str] = {}
    if algo == "split":
        params = {
            "max_child_qty": str(D(draw(st.integers(10, 400))) * LOT),
            "max_concurrent": draw(st.integers(1, 4)),
        }
    elif algo == "twap":
        params = {"duration_ms": draw(st.integers(1, 20_000)), "slices": draw(st.integers(1, 12))}
    elif algo == "maker_first":
        params = {
            "timeout_ms": draw(st.integers(0, 10_000)),
            "requote_ticks": draw(st.integers(1, 4)),
            "urgency": draw(st.sampled_from(["normal", "urgent"])),
        }
    if algo:
        params["max_rejects"] = draw(st.integers(1, 4))
        params["max_children"] = draw(st.integers(1, 12))
    order_type = draw(st.sampled_from([OrderType.MARKET, OrderType.LIMIT]))
    cap = draw(st.none() | PRICES)
    if order_type is OrderType.LIMIT and algo in ("", "split") and cap is None:
        cap = draw(PRICES)
    return intent(
        algo=algo,
        algo_params=params,
        side=draw(st.sampled_from(Side)),
        qty=D(draw(st.integers(1, 2_000))) * LOT + draw(st.sampled_from([D(0), D("0.0004")])),
        order_type=order_type,
        limit_price=cap,
        time_in_force=draw(st.sampled_from(TimeInForce)),
    )


@st.composite
def histories(draw: st.DrawFn, parent: Intent) -> list[OrderRecord]:
    indexes = sorted(draw(st.sets(st.integers(0, 15), max_size=8)))
    out = []
    for index in indexes:
        lots = draw(st.integers(1, 800))
        state = draw(st.sampled_from(OrderState))
        filled = draw(st.integers(0, lots)) if state is not OrderState.PENDING else 0
        out.append(
            msgspec.structs.replace(
                child(
                    parent,
                    index,
                    state=state,
                    qty=str(lots * LOT),
                    filled=str(filled * LOT),
                    order_type=draw(st.sampled_from(OrderType)),
                    price=str(draw(PRICES)),
                    reason=draw(st.sampled_from(["", WOULD_TAKE, "insufficient balance"])),
                    created=START + draw(st.integers(0, 30_000)) * MS,
                ),
                updated_ts_ns=START + draw(st.integers(0, 30_000)) * MS,
            )
        )
    return draw(st.permutations(out))


MARKETS = st.builds(
    MarketView,
    bid=st.none() | PRICES,
    ask=st.none() | PRICES,
    ts_ns=st.integers(START, START + 30_000 * MS),
)
INSTRUMENTS = st.builds(
    Instrument,
    tick_size=st.just(TICK),
    lot_size=st.just(LOT),
    min_qty=st.sampled_from([D(0), LOT, D("0.01")]),
    min_notional=st.sampled_from([D(0), D("1"), D("5")]),
)


@st.composite
def situations(
    draw: st.DrawFn,
) -> tuple[Intent, Instrument, list[OrderRecord], int, MarketView]:
    parent = draw(parents())
    return (
        parent,
        draw(INSTRUMENTS),
        draw(histories(parent)),
        START + draw(st.integers(-1_000, 40_000)) * MS,
        draw(MARKETS),
    )


Situation = tuple[Intent, Instrument, list[OrderRecord], int, MarketView]


@settings(max_examples=200, deadline=None)
@given(situations())
def test_two_fresh_algos_built_from_the_same_inputs_decide_the_same(situation: Situation) -> None:
    parent, instrument, history, now, market = situation
    first = make_algo(parent, start_ns=START, instrument=instrument)
    second = make_algo(parent, start_ns=START, instrument=instrument)
    decided = first.step(now_ns=now, market=market, children=history)
    assert decided == second.step(now_ns=now, market=market, children=list(reversed(history)))
    assert decided == first.step(now_ns=now, market=market, children=history)  # no memory
    assert first.cancel(history) == second.cancel(history)


@settings(max_examples=200, deadline=None)
@given(situations())
def test_no_child_is_placed_over_filled_and_in_flight_qty_nor_beyond_the_cap(
    situation: Situation,
) -> None:
    parent, instrument, history, now, market = situation
    actions = make_algo(parent, start_ns=START, instrument=instrument).step(
        now_ns=now, market=market, children=history
    )
    filled = sum((c.filled_qty for c in history), D(0))
    in_flight = sum((c.qty - c.filled_qty for c in history if c.state in LIVE), D(0))
    placed = places(actions)
    assert filled + in_flight + sum((p.qty for p in placed), D(0)) <= parent.qty or not placed
    existing = {c.child_index for c in history}
    for place in placed:
        assert place.qty > 0 and place.qty % LOT == 0 and place.qty >= instrument.min_qty
        assert place.child_index not in existing and place.child_index > max(existing, default=-1)
    finished = [a for a in actions if isinstance(a, Finished)]
    assert len(finished) <= 1 and not (finished and placed)
    for place in placed if parent.limit_price is not None else []:
        # intent.limit_price is a hard cap for every algo: never a market order under it
        assert place.order_type is not OrderType.MARKET and place.limit_price is not None
        if parent.side is Side.BUY:
            assert place.limit_price <= parent.limit_price
        else:
            assert place.limit_price >= parent.limit_price
