"""Positions from fills: commissions netted, a repeated fill counted once
(engine/core/positions.py)."""

from decimal import Decimal

import pytest

from engine.core.messages import Fill, Side
from engine.core.positions import PositionBook

pytestmark = pytest.mark.unit


def fill(trade_id: int, side: Side, qty: str, price: str, fee: str, asset: str) -> Fill:
    return Fill(
        venue="binance",
        symbol="BTCUSDT",
        trade_id=trade_id,
        client_order_id="c",
        intent_id="i",
        side=side,
        qty=Decimal(qty),
        price=Decimal(price),
        commission=Decimal(fee),
        commission_asset=asset,
        is_maker=False,
        venue_ts_ms=0,
    )


def test_positions_net_commissions_and_ignore_repeated_fills() -> None:
    book = PositionBook()
    assert book.apply(fill(1, Side.BUY, "1", "100", "0.001", "BTC"))
    assert not book.apply(fill(1, Side.BUY, "1", "100", "0.001", "BTC"))
    assert book.apply(fill(2, Side.SELL, "0.5", "110", "0.055", "USDT"))
    position = book.get("binance", "BTCUSDT")
    assert position.qty == Decimal("0.499")
    assert position.quote_flow == Decimal("-100") + Decimal("55") - Decimal("0.055")
    assert position.fills == 2
