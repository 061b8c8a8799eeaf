"""The derived mark price and funding rate follow the documented formulas (replay/mark_price.py),
checked against values worked out by hand."""

from __future__ import annotations

import pytest

from replay.binance import TradeEvent
from replay.derived_futures import FuturesStreams
from replay.mark_price import MarkPriceConfig, MarkPriceModel

HOUR_MS = 3_600_000


def test_no_mark_before_the_first_quote() -> None:
    assert MarkPriceModel().mark("ETHUSDT", 0) is None


def test_with_no_premium_the_mark_is_the_mid_and_funding_is_the_interest_rate() -> None:
    model = MarkPriceModel()
    model.on_quote("ETHUSDT", 2000.0, 2000.2)
    mark = model.mark("ETHUSDT", 2 * HOUR_MS)
    assert mark is not None
    assert mark.index == pytest.approx(2000.1)
    assert mark.funding_rate == pytest.approx(0.0001)
    # price1 = 2000.1 * (1 + 0.0001 * 6/8) = 2000.250007..; median(price1, mid, last = mid)
    assert mark.mark == pytest.approx(2000.1)
    assert mark.next_funding_ms == 8 * HOUR_MS


def test_a_premium_moves_the_index_and_the_funding_rate_by_binances_clamp() -> None:
    model = MarkPriceModel(MarkPriceConfig(premium=0.002))
    model.on_quote("ETHUSDT", 2004.0, 2004.0)
    model.on_trade("ETHUSDT", 2010.0)
    mark = model.mark("ETHUSDT", 4 * HOUR_MS)
    assert mark is not None
    assert mark.index == pytest.approx(2004.0 / 1.002)  # 2000.0
    # P = 0.002; I - P = -0.0019 clamped to -0.0005: rate = 0.0015
    assert mark.funding_rate == pytest.approx(0.0015)
    # price1 = 2000 * (1 + 0.0015 * 4/8) = 2001.5; median(2001.5, 2004, 2010) = 2004
    assert mark.mark == pytest.approx(2004.0)


def test_the_funding_rate_is_capped_and_an_override_wins() -> None:
    assert MarkPriceModel(MarkPriceConfig(premium=0.03)).funding_rate() == pytest.approx(0.0075)
    assert MarkPriceModel(MarkPriceConfig(premium=-0.03)).funding_rate() == pytest.approx(-0.0075)
    spike = MarkPriceModel(MarkPriceConfig(premium=0.03, funding_rate=0.02))
    assert spike.funding_rate() == 0.02


def test_mark_shift_moves_the_mark_alone() -> None:
    model = MarkPriceModel(MarkPriceConfig(mark_shift=-0.05))
    model.on_quote("ETHUSDT", 100.0, 100.0)
    model.on_trade("ETHUSDT", 100.0)
    mark = model.mark("ETHUSDT", 0)
    assert mark is not None
    assert mark.mark == pytest.approx(95.0)
    assert mark.index == pytest.approx(100.0)


def test_funding_times_are_the_multiples_of_the_interval() -> None:
    model = MarkPriceModel(MarkPriceConfig(funding_interval_ms=8 * HOUR_MS))
    assert model.funding_times(0, 24 * HOUR_MS) == [8 * HOUR_MS, 16 * HOUR_MS, 24 * HOUR_MS]
    assert model.funding_times(8 * HOUR_MS, 8 * HOUR_MS) == []
    assert model.next_funding_ms(8 * HOUR_MS) == 16 * HOUR_MS


def trade(price: str, time_ms: int, kind: str = "MARKET") -> TradeEvent:
    return TradeEvent(E=time_ms, s="ETHUSDT", t=1, p=price, q="0.5", T=time_ms, m=True, X=kind)


def test_mark_price_streams_push_once_a_second_and_every_three_seconds() -> None:
    streams = FuturesStreams()
    streams.on_quote("ETHUSDT", 100.0, 100.2)
    everything = lambda stream: True  # noqa: E731
    pushes = [
        [name for name, _ in streams.due("ETHUSDT", t, everything)]
        for t in (1_000, 1_500, 2_000, 3_000, 4_100)
    ]
    assert pushes == [
        ["ethusdt@markPrice@1s", "ethusdt@markPrice"],
        [],
        ["ethusdt@markPrice@1s"],
        ["ethusdt@markPrice@1s", "ethusdt@markPrice"],
        ["ethusdt@markPrice@1s"],
    ]
    assert streams.due("ETHUSDT", 9_000, lambda stream: False) == []


def test_a_recorded_liquidation_trade_is_a_force_order() -> None:
    streams = FuturesStreams()
    everything = lambda stream: True  # noqa: E731
    assert streams.on_trade(trade("100.5", 1_000), everything) == []
    ((stream, payload),) = streams.on_trade(trade("99.0", 2_000, "LIQUIDATION"), everything)
    assert stream == "ethusdt@forceOrder"
    assert b'"S":"SELL"' in payload and b'"p":"99.0"' in payload and b'"X":"FILLED"' in payload
