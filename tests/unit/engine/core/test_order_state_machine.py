from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.errors import OrderStateError
from engine.core.messages import OrderType, Side
from engine.core.orders import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    VENUE_STATUS,
    OrderRecord,
    OrderState,
    is_stale_report,
    transition,
)

pytestmark = pytest.mark.unit


def order(**kw: object) -> OrderRecord:
    base = dict(
        client_order_id="c1",
        intent_id="i1",
        child_index=0,
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("1"),
        limit_price=Decimal("100"),
    )
    base.update(kw)
    return OrderRecord(**base)  # type: ignore[arg-type]


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL_STATES:
        assert ALLOWED_TRANSITIONS[state] == frozenset()
        for target in OrderState:
            if target != state:
                with pytest.raises(OrderStateError):
                    transition(state, target)


def test_a_sent_order_can_become_unknown_and_be_resolved_by_the_venue() -> None:
    o = order(state=OrderState.SUBMITTING)
    o = o.moved_to(OrderState.UNKNOWN, ts_ns=1, reason="timeout")
    resolved = o.with_venue_status(
        venue_status="FILLED",
        filled_qty=Decimal(1),
        quote_qty=Decimal(100),
        venue_order_id="7",
        ts_ns=2,
    )
    assert resolved.state is OrderState.FILLED
    assert resolved.venue_order_id == "7"
    assert resolved.seq == o.seq + 1


def test_venue_may_skip_states_but_never_go_back() -> None:
    o = order(state=OrderState.SUBMITTING).with_venue_status(
        venue_status="FILLED",
        filled_qty=Decimal(1),
        quote_qty=Decimal(100),
        venue_order_id="1",
        ts_ns=1,
    )
    assert o.state is OrderState.FILLED
    with pytest.raises(OrderStateError):
        o.with_venue_status(
            venue_status="NEW",
            filled_qty=Decimal(1),
            quote_qty=Decimal(100),
            venue_order_id="1",
            ts_ns=2,
        )


def test_filled_quantity_never_decreases() -> None:
    o = order(state=OrderState.PARTIALLY_FILLED, filled_qty=Decimal("0.5"))
    with pytest.raises(OrderStateError, match="backwards"):
        o.with_venue_status(
            venue_status="PARTIALLY_FILLED",
            filled_qty=Decimal("0.4"),
            quote_qty=Decimal(40),
            venue_order_id="1",
            ts_ns=1,
        )


def test_repeating_the_same_venue_status_changes_nothing() -> None:
    o = order(state=OrderState.OPEN, venue_order_id="9")
    same = o.with_venue_status(
        venue_status="NEW", filled_qty=Decimal(0), quote_qty=Decimal(0), venue_order_id="9", ts_ns=5
    )
    assert same is o


def test_unknown_venue_status_is_an_error_not_a_guess() -> None:
    with pytest.raises(OrderStateError, match="unknown venue order status"):
        order(state=OrderState.OPEN).with_venue_status(
            venue_status="WEIRD",
            filled_qty=Decimal(0),
            quote_qty=Decimal(0),
            venue_order_id="",
            ts_ns=1,
        )


venue_updates = st.lists(
    st.tuples(st.sampled_from(sorted(VENUE_STATUS)), st.integers(min_value=0, max_value=10)),
    max_size=30,
)


@given(venue_updates)
def test_any_sequence_of_venue_reports_keeps_fills_monotonic_and_terminal_final(
    updates: list[tuple[str, int]],
) -> None:
    o = order(state=OrderState.SUBMITTING, qty=Decimal(10))
    for status, filled in updates:
        try:
            nxt = o.with_venue_status(
                venue_status=status,
                filled_qty=Decimal(filled),
                quote_qty=Decimal(filled) * 100,
                venue_order_id="1",
                ts_ns=1,
            )
        except OrderStateError:
            continue  # refused: the record is unchanged
        assert nxt.filled_qty >= o.filled_qty
        if o.state.is_terminal:
            assert nxt.state == o.state
        o = nxt


@pytest.mark.parametrize("closed", [OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED])
def test_a_working_status_after_the_venue_closed_the_order_is_old_news(closed: OrderState) -> None:
    assert is_stale_report(closed, "NEW")
    assert is_stale_report(closed, "PARTIALLY_FILLED")
    assert not is_stale_report(closed, "CANCELED")


def test_a_venue_report_contradicting_our_own_rejection_is_not_old_news() -> None:
    assert not is_stale_report(OrderState.REJECTED, "NEW")
    assert not is_stale_report(OrderState.OPEN, "NEW")
    assert not is_stale_report(OrderState.CANCELED, "NO_SUCH_STATUS")
