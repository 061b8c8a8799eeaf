"""Futures arithmetic against values worked out by hand: linear (USD-M) and inverse (COIN-M)
PnL, entry averaging, liquidation and bankruptcy prices, funding."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from replay.exchange.futures.contract import Contract

LINEAR = Contract(inverse=False, maint_rate=D("0.005"))
INVERSE = Contract(inverse=True, size=D(10), maint_rate=D("0.005"))  # ETHUSD_PERP: 10 USD


def test_inverse_pnl_is_in_the_coin() -> None:
    # 100 contracts of 10 USD long from 2000 to 2500: 1000 USD * (1/2000 - 1/2500) = 0.1 ETH
    assert INVERSE.pnl(D(100), D(2000), D(2500)) == D("0.1")
    assert INVERSE.pnl(D(-100), D(2000), D(2500)) == D("-0.1")
    # down to 1600: 1000 * (1/2000 - 1/1600) = -0.125 ETH (a long loses more coin going down)
    assert INVERSE.pnl(D(100), D(2000), D(1600)) == D("-0.125")
    assert INVERSE.notional(D(-100), D(2500)) == D("0.4")


def test_linear_pnl_is_in_the_quote() -> None:
    assert LINEAR.pnl(D(2), D(2000), D(2500)) == D(1000)
    assert LINEAR.pnl(D(-2), D(2000), D(2500)) == D(-1000)
    assert LINEAR.notional(D("-0.5"), D(2000)) == D(1000)


def test_entry_averages_by_quantity_linear_and_harmonically_inverse() -> None:
    assert LINEAR.average_entry(D(1), D(2000), D(1), D(2500)) == D(2250)
    # 200 contracts / (100/2000 + 100/2500) coins = 200 / 0.09
    assert INVERSE.average_entry(D(100), D(2000), D(100), D(2500)) == D(200) / D("0.09")
    assert LINEAR.average_entry(D(0), D(0), D(-3), D(1900)) == D(1900)


def test_liquidation_price_is_where_margin_balance_meets_maintenance() -> None:
    # linear long 1 at 2000 with 1000 USDT: (1000 - 2000) / (0.005 - 1) = 1005.025...
    price = LINEAR.liquidation_price(D(1), D(2000), D(1000))
    assert price == pytest.approx(D(1000) / D("0.995"))
    assert price is not None
    balance = D(1000) + LINEAR.pnl(D(1), D(2000), price)
    assert balance == pytest.approx(LINEAR.maint_margin(D(1), price))
    # linear short 1 at 2000 with 1000 USDT: (1000 + 2000) / 1.005
    assert LINEAR.liquidation_price(D(-1), D(2000), D(1000)) == pytest.approx(D(3000) / D("1.005"))
    # a long whose collateral covers its whole notional cannot be liquidated
    assert LINEAR.liquidation_price(D(1), D(2000), D(2500)) is None


def test_inverse_liquidation_and_bankruptcy_prices() -> None:
    # long 100 contracts at 2000 with 1 ETH: 1000 * 1.005 / (1 + 0.5) = 670
    assert INVERSE.liquidation_price(D(100), D(2000), D(1)) == D(670)
    # bankruptcy: 1000 / 1.5 = 666.67: the whole coin is lost there
    bankrupt = INVERSE.bankruptcy_price(D(100), D(2000), D(1))
    assert bankrupt is not None
    assert D(1) + INVERSE.pnl(D(100), D(2000), bankrupt) == pytest.approx(D(0))
    # an inverse short's loss is bounded by size * |q| / entry = 0.5 ETH: with 1 ETH, never
    assert INVERSE.liquidation_price(D(-100), D(2000), D(1)) is None
    # with 0.25 ETH: (0.005 * 100 - 100) * 10 / (0.25 - 0.5) = 3980
    assert INVERSE.liquidation_price(D(-100), D(2000), D("0.25")) == D(3980)


def test_funding_is_paid_by_longs_when_the_rate_is_positive() -> None:
    assert LINEAR.funding_fee(D(2), D(2000), D("0.0001")) == D("0.4")
    assert LINEAR.funding_fee(D(-2), D(2000), D("0.0001")) == D("-0.4")
    # inverse: 100 contracts * 10 USD / 2000 = 0.5 ETH of notional; * 0.0001
    assert INVERSE.funding_fee(D(100), D(2000), D("0.0001")) == D("0.00005")
