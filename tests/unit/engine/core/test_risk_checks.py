import math
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.messages import Intent, OrderType, Side
from engine.core.risk import (
    Denial,
    OrderRateWindow,
    RiskLimits,
    RiskView,
    TradingState,
    entry_block_reason,
    evaluate,
    funding_guard_trips,
    reduces_position,
)

pytestmark = pytest.mark.unit

LIMITS = RiskLimits(
    max_position_qty=Decimal("1"), max_notional_per_order=Decimal("1000"), max_intent_age_ms=5_000
)
NOW = 10_000_000_000


def intent(side: Side = Side.BUY, qty: str = "0.1", **kw: object) -> Intent:
    base: dict[str, object] = dict(
        intent_id="i",
        source="s",
        venue="binance",
        symbol="BTCUSDT",
        side=side,
        qty=Decimal(qty),
        created_ts_ns=NOW,
    )
    base.update(kw)
    return Intent(**base)  # type: ignore[arg-type]


def view(position: str = "0", state: TradingState = TradingState.ACTIVE, **kw: object) -> RiskView:
    base: dict[str, object] = dict(
        trading_state=state,
        position_qty=Decimal(position),
        reference_price=100.0,
        now_ns=NOW,
        data_age_ms=10.0,
    )
    base.update(kw)
    return RiskView(**base)  # type: ignore[arg-type]


def test_a_sound_intent_is_approved() -> None:
    assert evaluate(intent(), view(), LIMITS) is None


def test_notional_over_the_limit_is_denied_with_the_amount() -> None:
    denial = evaluate(intent(qty="11"), view(), LIMITS)
    assert denial is not None
    assert denial.check == "max_notional"
    assert "1100" in denial.reason


def test_limit_orders_are_valued_at_their_price() -> None:
    big = intent(qty="0.5", order_type=OrderType.LIMIT, limit_price=Decimal("2500"))
    denial = evaluate(big, view(), LIMITS)
    assert denial is not None
    assert denial.check == "max_notional"


def test_market_order_without_a_reference_price_is_denied() -> None:
    denial = evaluate(intent(), view(reference_price=0.0), LIMITS)
    assert denial is not None
    assert denial.check == "max_notional"


def test_position_limit_counts_approved_but_unfilled_exposure() -> None:
    assert evaluate(intent(qty="0.5"), view(position="0.4"), LIMITS) is None
    denial = evaluate(
        intent(qty="0.5"), view(position="0.4", pending_buy_qty=Decimal("0.2")), LIMITS
    )
    assert denial is not None
    assert denial.check == "max_position"


def test_reducing_a_position_is_allowed_even_beyond_the_limit() -> None:
    assert evaluate(intent(Side.SELL, qty="0.5"), view(position="3"), LIMITS) is None


def test_halted_denies_everything_but_cancels() -> None:
    denial = evaluate(intent(Side.SELL), view(position="1", state=TradingState.HALTED), LIMITS)
    assert denial is not None
    assert denial.check == "trading_state"
    cancel = intent(action="cancel", cancel_intent_id="x", qty="0")
    assert evaluate(cancel, view(state=TradingState.HALTED), LIMITS) is None


def test_reducing_state_allows_only_reductions() -> None:
    reducing = view(position="0.5", state=TradingState.REDUCING)
    assert evaluate(intent(Side.SELL, qty="0.2"), reducing, LIMITS) is None
    denial = evaluate(intent(Side.BUY, qty="0.2"), reducing, LIMITS)
    assert denial is not None
    assert denial.check == "trading_state"
    flip = evaluate(intent(Side.SELL, qty="0.8"), reducing, LIMITS)
    assert flip is not None, "crossing through zero is not a reduction"


def test_stale_intent_is_denied() -> None:
    old = intent(created_ts_ns=NOW - 6_000_000_000)
    denial = evaluate(old, view(), LIMITS)
    assert denial is not None
    assert denial.check == "intent_age"


def test_zero_quantity_and_priceless_limit_are_denied() -> None:
    assert evaluate(intent(qty="0"), view(), LIMITS).check == "quantity"  # type: ignore[union-attr]
    priceless = intent(order_type=OrderType.LIMIT)
    assert evaluate(priceless, view(), LIMITS).check == "quantity"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("position", "side", "qty", "expected"),
    [
        ("1", Side.SELL, "0.5", True),
        ("1", Side.SELL, "1", True),
        ("1", Side.SELL, "1.5", False),
        ("-1", Side.BUY, "0.5", True),
        ("0", Side.BUY, "1", False),
        ("1", Side.BUY, "0.1", False),
    ],
)
def test_reduces_position(position: str, side: Side, qty: str, expected: bool) -> None:
    assert reduces_position(intent(side, qty=qty), Decimal(position)) is expected


def test_stale_data_or_a_degraded_bus_stops_entries_but_not_reductions() -> None:
    stale = view(position="0.5", data_age_ms=2_500.0)
    denial = evaluate(intent(), stale, LIMITS)
    assert denial is not None and denial.check == "stale_data" and "2500 ms old" in denial.reason
    assert evaluate(intent(Side.SELL, qty="0.2"), stale, LIMITS) is None, "reducing is allowed"
    degraded = view(data_age_ms=10.0, bus_degraded=True)
    assert evaluate(intent(), degraded, LIMITS).check == "stale_data"  # type: ignore[union-attr]
    never = view(data_age_ms=None)
    assert "no market data" in evaluate(intent(), never, LIMITS).reason  # type: ignore[union-attr]
    assert evaluate(intent(), view(data_age_ms=100.0), LIMITS) is None


def test_order_rate_stops_entries_at_the_limit_but_never_a_reduction() -> None:
    limits = RiskLimits(
        max_position_qty=Decimal("1"),
        max_notional_per_order=Decimal("1000"),
        max_orders_per_window=3,
    )
    assert evaluate(intent(), view(orders_in_window=2), limits) is None
    denial = evaluate(intent(), view(orders_in_window=3), limits)
    assert denial is not None and denial.check == "order_rate"
    assert "3 orders" in denial.reason
    reduce = intent(Side.SELL, qty="0.1", reduce_only=True)
    assert evaluate(reduce, view(position="0.5", orders_in_window=99), limits) is None


def test_order_rate_window_forgets_approvals_older_than_the_window() -> None:
    window = OrderRateWindow(window_ms=1_000)
    for t_ms in (0, 100, 900):
        window.record(t_ms * 1_000_000)
    assert window.count(950 * 1_000_000) == 3
    assert window.count(1_050 * 1_000_000) == 2, "the approval at 0 ms left the window"
    assert window.count(2_000 * 1_000_000) == 0


def test_a_limit_price_outside_the_band_around_mid_is_a_fat_finger() -> None:
    limits = RiskLimits(
        max_position_qty=Decimal("1"),
        max_notional_per_order=Decimal("100000"),
        price_band_percent=5.0,
    )
    near = intent(order_type=OrderType.LIMIT, limit_price=Decimal("104"))
    far = intent(order_type=OrderType.LIMIT, limit_price=Decimal("106"))
    assert evaluate(near, view(mid=100.0), limits) is None
    denial = evaluate(far, view(mid=100.0), limits)
    assert denial is not None and denial.check == "price_band" and "6.00%" in denial.reason
    low = intent(Side.SELL, order_type=OrderType.LIMIT, limit_price=Decimal("90"))
    assert evaluate(low, view(position="0.5", mid=100.0), limits).check == "price_band"  # type: ignore[union-attr]


def test_daily_loss_over_the_limit_stops_entries_but_allows_reducing() -> None:
    limits = RiskLimits(
        max_position_qty=Decimal("1"),
        max_notional_per_order=Decimal("1000"),
        daily_loss_limit=Decimal("50"),
    )
    assert evaluate(intent(), view(daily_pnl=Decimal("-49.99")), limits) is None
    denial = evaluate(intent(), view(daily_pnl=Decimal("-50.01")), limits)
    assert denial is not None and denial.check == "daily_loss"
    reduce = intent(Side.SELL, qty="0.2")
    assert evaluate(reduce, view(position="0.5", daily_pnl=Decimal("-900")), limits) is None


def test_entries_are_blocked_by_state_bus_or_stale_data_and_say_why() -> None:
    def reason(**kw: object) -> str | None:
        args: dict[str, object] = {
            "trading_state": TradingState.ACTIVE,
            "bus_degraded": False,
            "data_age_ms": {"BTCUSDT": 10.0, "ETHUSDT": 20.0},
            "limits": LIMITS,
        }
        args.update(kw)
        return entry_block_reason(**args)  # type: ignore[arg-type]

    assert reason() is None
    assert reason(trading_state=TradingState.REDUCING) == "trading state REDUCING"
    assert reason(bus_degraded=True) == "the bus is degraded"
    stale = {"BTCUSDT": LIMITS.max_data_age_ms + 1.0, "ETHUSDT": None}
    assert reason(data_age_ms=stale) == "market data stale: BTCUSDT, ETHUSDT"


# --- numbers a check cannot judge by -------------------------------------------------------------

NOT_NUMBERS = ["NaN", "sNaN", "Infinity", "-Infinity"]
BIG = intent(qty="1000")
"""A 1,000 BTC market order: what an infinite limit used to approve."""
SOUND_ENTRY = intent(qty="0.1", order_type=OrderType.LIMIT, limit_price=Decimal("100"))
"""A limit buy at mid that every check consults its limit for, and approves."""
SOUND_VIEW = view(mid=100.0)


def test_the_sound_entry_is_approved() -> None:
    assert evaluate(SOUND_ENTRY, SOUND_VIEW, LIMITS) is None


@pytest.mark.parametrize("bad", NOT_NUMBERS)
@pytest.mark.parametrize(
    "field", ["max_position_qty", "max_notional_per_order", "daily_loss_limit"]
)
def test_a_non_finite_decimal_limit_is_a_denial(field: str, bad: str) -> None:
    limits = msgspec.structs.replace(LIMITS, **{field: Decimal(bad)})
    for order in (BIG, SOUND_ENTRY):
        denial = evaluate(order, SOUND_VIEW, limits)
        assert denial is not None, f"{field}={bad} approved {order.qty}"
    assert field in evaluate(SOUND_ENTRY, SOUND_VIEW, limits).reason  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
@pytest.mark.parametrize(
    "field",
    ["price_band_percent", "max_intent_age_ms", "max_data_age_ms", "max_orders_per_window"],
)
def test_a_non_finite_or_negative_number_limit_is_a_denial(field: str, bad: float) -> None:
    limits = msgspec.structs.replace(LIMITS, **{field: bad})
    denial = evaluate(SOUND_ENTRY, SOUND_VIEW, limits)
    assert denial is not None and field in denial.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_reference_price_or_mid_is_a_denial(bad: float) -> None:
    denial = evaluate(BIG, view(reference_price=bad), LIMITS)
    assert denial is not None and denial.check == "max_notional"
    denial = evaluate(SOUND_ENTRY, view(mid=bad), LIMITS)
    assert denial is not None and denial.check == "price_band"
    denial = evaluate(SOUND_ENTRY, view(data_age_ms=bad, mid=100.0), LIMITS)
    assert denial is not None and denial.check == "stale_data" and str(bad) in denial.reason


@pytest.mark.parametrize("bad", NOT_NUMBERS)
def test_a_non_finite_quantity_price_or_position_is_a_denial(bad: str) -> None:
    assert evaluate(intent(qty=bad), SOUND_VIEW, LIMITS).check == "quantity"  # type: ignore[union-attr]
    limit = intent(order_type=OrderType.LIMIT, limit_price=Decimal(bad))
    assert evaluate(limit, SOUND_VIEW, LIMITS).check == "quantity"  # type: ignore[union-attr]
    for broken in (
        view(position=bad, mid=100.0),
        view(pending_buy_qty=Decimal(bad), mid=100.0),
        view(daily_pnl=Decimal(bad), mid=100.0),
    ):
        assert evaluate(SOUND_ENTRY, broken, LIMITS) is not None
    halted_flatten = intent(Side.SELL, qty="0.1", reduce_only=True)
    reducing = view(position=bad, state=TradingState.REDUCING)
    assert evaluate(halted_flatten, reducing, LIMITS).check == "trading_state"  # type: ignore[union-attr]


def test_an_unusable_limit_blocks_entries_in_the_entry_watch() -> None:
    limits = msgspec.structs.replace(LIMITS, max_data_age_ms=math.nan)
    reason = entry_block_reason(
        trading_state=TradingState.ACTIVE,
        bus_degraded=False,
        data_age_ms={"BTCUSDT": 10.0},
        limits=limits,
    )
    assert reason is not None and "max_data_age_ms" in reason
    nan_age = entry_block_reason(
        trading_state=TradingState.ACTIVE,
        bus_degraded=False,
        data_age_ms={"BTCUSDT": math.nan},
        limits=LIMITS,
    )
    assert nan_age == "market data stale: BTCUSDT"


def test_a_check_whose_arithmetic_fails_denies_instead_of_raising() -> None:
    def overflowing(intent: Intent, view: RiskView, limits: RiskLimits) -> Denial | None:
        Decimal("9e999999") * 10  # past the context's Emax: decimal.Overflow
        return None

    denial = evaluate(SOUND_ENTRY, SOUND_VIEW, LIMITS, checks=(overflowing,))
    assert denial == Denial(check="overflowing", reason="cannot judge: Overflow")


DECIMALS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal(s) for s in (*NOT_NUMBERS, "-sNaN", "1e999999", "-1e999999")]),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=400)
@given(
    qty=DECIMALS,
    limit_price=st.none() | DECIMALS,
    position=DECIMALS,
    pending=DECIMALS,
    pnl=DECIMALS,
    reference=FLOATS,
    mid=st.none() | FLOATS,
    age=st.none() | FLOATS,
    max_position=DECIMALS,
    max_notional=DECIMALS,
    loss=DECIMALS,
    band=FLOATS,
    side=st.sampled_from(Side),
    reduce_only=st.booleans(),
    state=st.sampled_from(TradingState),
)
def test_no_number_makes_a_check_raise_and_a_bad_limit_never_approves_an_entry(
    qty: Decimal,
    limit_price: Decimal | None,
    position: Decimal,
    pending: Decimal,
    pnl: Decimal,
    reference: float,
    mid: float | None,
    age: float | None,
    max_position: Decimal,
    max_notional: Decimal,
    loss: Decimal,
    band: float,
    side: Side,
    reduce_only: bool,
    state: TradingState,
) -> None:
    order = intent(
        side,
        order_type=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
        limit_price=limit_price,
        reduce_only=reduce_only,
    )
    order = msgspec.structs.replace(order, qty=qty)
    limits = RiskLimits(
        max_position_qty=max_position,
        max_notional_per_order=max_notional,
        daily_loss_limit=loss,
        price_band_percent=band,
    )
    seen = view(
        position="0",
        state=state,
        reference_price=reference,
        mid=mid,
        data_age_ms=age,
        pending_buy_qty=pending,
        pending_sell_qty=pending,
        daily_pnl=pnl,
    )
    seen = msgspec.structs.replace(seen, position_qty=position)
    denial = evaluate(order, seen, limits)  # never raises
    entry = not reduces_position(order, position)
    unusable = not all(v.is_finite() and v >= 0 for v in (max_position, max_notional, loss))
    if entry and unusable:
        assert denial is not None, "an entry approved under a limit that is not a number"
    if denial is None:
        assert qty.is_finite() and qty > 0
        if entry:
            assert reference > 0 or limit_price is not None


FUNDING = msgspec.structs.replace(LIMITS, max_adverse_funding_pct=0.5)


def test_an_entry_that_would_pay_a_funding_spike_is_denied_one_that_receives_it_is_not() -> None:
    spiked = view(funding_rate=0.006)  # 0.6% per interval: longs pay
    denial = evaluate(intent(Side.BUY), spiked, FUNDING)
    assert denial is not None and denial.check == "funding"
    assert "0.6000%" in denial.reason
    assert evaluate(intent(Side.SELL), spiked, FUNDING) is None  # a short receives it
    shorts_pay = view(funding_rate=-0.006)
    assert evaluate(intent(Side.SELL), shorts_pay, FUNDING) is not None
    assert evaluate(intent(Side.BUY), view(funding_rate=0.004), FUNDING) is None  # under 0.5%
    assert evaluate(intent(Side.BUY), spiked, LIMITS) is None  # 0: the check is off


def test_a_reduction_passes_the_funding_check_whatever_the_rate() -> None:
    spiked = view(position="0.5", funding_rate=0.02)
    assert evaluate(intent(Side.SELL, qty="0.2"), spiked, FUNDING) is None
    denial = evaluate(intent(Side.BUY, qty="0.2"), spiked, FUNDING)
    assert denial is not None and denial.check == "funding"


def test_the_funding_guard_trips_for_a_position_that_pays_the_rate() -> None:
    assert funding_guard_trips(Decimal("2"), 0.005, FUNDING)
    assert funding_guard_trips(Decimal("-2"), -0.005, FUNDING)
    assert not funding_guard_trips(Decimal("-2"), 0.005, FUNDING)  # it receives
    assert not funding_guard_trips(Decimal("2"), 0.0049, FUNDING)
    assert not funding_guard_trips(Decimal("0"), 0.05, FUNDING)
    assert not funding_guard_trips(Decimal("2"), None, FUNDING)
    assert not funding_guard_trips(Decimal("2"), 0.05, LIMITS)
    assert funding_guard_trips(Decimal("-2"), math.nan, FUNDING)  # unreadable: reduce


def test_a_funding_rate_exactly_at_the_limit_is_at_it() -> None:
    at_limit = msgspec.structs.replace(LIMITS, max_adverse_funding_pct=0.07)
    assert 0.0007 * 100 < 0.07  # binary floating point
    assert funding_guard_trips(Decimal("1"), 0.0007, at_limit)
    assert evaluate(intent(Side.BUY), view(funding_rate=0.0007), at_limit) is not None


def test_an_inverse_contracts_order_is_valued_at_its_face_value_not_at_the_price() -> None:
    limits = msgspec.structs.replace(
        LIMITS, max_notional_per_order=Decimal("500"), max_position_qty=Decimal("1000")
    )
    coinm = view(contract_usd=Decimal("10"))  # the reference price (100) plays no part
    assert evaluate(intent(qty="50"), coinm, limits) is None  # 500 USD
    denial = evaluate(intent(qty="51"), coinm, limits)
    assert denial is not None and denial.check == "max_notional" and "510" in denial.reason
    unknown = evaluate(intent(qty="1"), view(contract_terms_unknown=True), limits)
    assert unknown is not None and "not known yet" in unknown.reason
