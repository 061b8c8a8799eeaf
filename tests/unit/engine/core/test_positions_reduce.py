"""Which orders reduce a position: what a paused or flattening engine may still resend."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.messages import Side
from engine.core.positions import order_reduces

pytestmark = pytest.mark.unit
D = Decimal


@pytest.mark.parametrize(
    ("side", "qty", "position", "reduces"),
    [
        (Side.SELL, "0.5", "1", True),
        (Side.SELL, "1", "1", True),  # to flat
        (Side.SELL, "1.5", "1", False),  # crosses zero: new exposure the other way
        (Side.BUY, "0.5", "1", False),
        (Side.BUY, "0.5", "-1", True),
        (Side.SELL, "0.5", "0", False),  # flat: anything is exposure
        (Side.SELL, "0", "1", False),
        (Side.SELL, "NaN", "1", False),
        (Side.SELL, "0.5", "Infinity", False),
    ],
)
def test_an_order_reduces_only_towards_zero_without_crossing_it(
    side: Side, qty: str, position: str, reduces: bool
) -> None:
    assert order_reduces(side, D(qty), D(position)) is reduces


quantities = st.decimals(min_value=0, max_value=10, places=3, allow_nan=False)
positions = st.decimals(min_value=-10, max_value=10, places=3, allow_nan=False)


@given(st.sampled_from(list(Side)), quantities, positions)
def test_a_reducing_order_always_leaves_a_smaller_position_of_the_same_sign(
    side: Side, qty: Decimal, position: Decimal
) -> None:
    after = position + (qty if side is Side.BUY else -qty)
    if order_reduces(side, qty, position):
        assert abs(after) < abs(position)
        assert after == 0 or (after > 0) == (position > 0)
