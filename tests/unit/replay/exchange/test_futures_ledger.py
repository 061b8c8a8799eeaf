"""The futures ledger: margin checks, fills into positions, reduce-only and position modes,
funding and liquidation, with the numbers worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from replay.exchange.errors import BinanceError
from replay.exchange.futures.contract import Contract
from replay.exchange.futures.ledger import FuturesLedger

KEY = "k"


def ledger(*, inverse: bool = False, wallet: str = "1000") -> FuturesLedger:
    symbol, asset = ("ETHUSD_PERP", "ETH") if inverse else ("ETHUSDT", "USDT")
    contract = Contract(inverse=inverse, size=D(10) if inverse else D(1), maint_rate=D("0.005"))
    made = FuturesLedger({symbol: contract}, {symbol: asset}, taker_fee=D(0))
    made.add_account(KEY, {asset: D(wallet)})
    made.marks[symbol] = D(2000)
    return made


def fill(book: FuturesLedger, side: str, qty: str, price: str, symbol: str = "ETHUSDT") -> D:
    realized, _ = book.settle_fill(
        KEY,
        symbol=symbol,
        position_side="BOTH",
        side=side,
        qty=D(qty),
        price=D(price),
        fee_rate=D(0),
        time_ms=1,
    )
    return realized


def check(book: FuturesLedger, side: str, qty: str, *, reduce_only: bool = False) -> D:
    return book.check_new_order(
        KEY,
        symbol="ETHUSDT",
        position_side="BOTH",
        side=side,
        qty=D(qty),
        price=D(2000),
        reduce_only=reduce_only,
        orders=[],
    )


def test_margin_is_notional_over_leverage() -> None:
    book = ledger()  # 1000 USDT at 20x: 20,000 USDT of notional, 10 ETH at 2000
    assert check(book, "BUY", "10") == D(10)
    with pytest.raises(BinanceError) as refused:
        check(book, "BUY", "10.5")
    assert refused.value.code == -2019
    book.set_leverage(KEY, "ETHUSDT", 5)
    with pytest.raises(BinanceError):
        check(book, "BUY", "3")  # 6000 / 5 = 1200 > 1000
    with pytest.raises(BinanceError) as bad:
        book.set_leverage(KEY, "ETHUSDT", 126)
    assert bad.value.code == -4028


def test_fills_open_add_reduce_and_flip_a_one_way_position() -> None:
    book = ledger()
    fill(book, "BUY", "1", "2000")
    fill(book, "BUY", "1", "2200")
    position = book.accounts[KEY].positions[("ETHUSDT", "BOTH")]
    assert (position.qty, position.entry) == (D(2), D(2100))
    assert fill(book, "SELL", "0.5", "2300") == D(100)  # 0.5 * (2300 - 2100)
    assert fill(book, "SELL", "2.5", "2000") == D("-150")  # 1.5 * (2000 - 2100)
    assert (position.qty, position.entry) == (D(-1), D(2000))
    assert book.accounts[KEY].wallet["USDT"] == D(950)


def test_reduce_only_never_opens_or_flips() -> None:
    book = ledger()
    with pytest.raises(BinanceError) as refused:
        check(book, "SELL", "1", reduce_only=True)
    assert refused.value.code == -2022
    fill(book, "BUY", "1", "2000")
    assert check(book, "SELL", "3", reduce_only=True) == D(1)  # cut to the position
    with pytest.raises(BinanceError):
        check(book, "BUY", "1", reduce_only=True)


def test_position_side_must_match_the_mode() -> None:
    book = ledger()
    account = book.accounts[KEY]
    with pytest.raises(BinanceError) as refused:
        book.position_side_for(account, "LONG")
    assert refused.value.code == -4061
    book.set_dual_side(KEY, True, has_orders=False)
    assert book.position_side_for(account, "SHORT") == "SHORT"
    with pytest.raises(BinanceError):
        book.position_side_for(account, None)
    with pytest.raises(BinanceError) as again:
        book.set_dual_side(KEY, True, has_orders=False)
    assert again.value.code == -4059


def test_inverse_fills_realize_pnl_in_the_coin() -> None:
    book = ledger(inverse=True, wallet="1")
    fill(book, "BUY", "100", "2000", symbol="ETHUSD_PERP")
    assert fill(book, "SELL", "100", "2500", symbol="ETHUSD_PERP") == D("0.1")
    assert book.accounts[KEY].wallet["ETH"] == D("1.1")


def test_funding_moves_the_wallet_by_the_position_and_rate() -> None:
    book = ledger()
    fill(book, "BUY", "2", "2000")
    (payment,) = book.apply_funding("ETHUSDT", rate=D("0.0001"), mark=D(2000), time_ms=8)
    assert payment.amount == D("0.4")
    assert book.accounts[KEY].wallet["USDT"] == D("999.6")


def test_every_funding_time_is_kept_with_what_one_long_contract_paid_held_or_not() -> None:
    book = ledger()
    assert book.apply_funding("ETHUSDT", rate=D("0.01"), mark=D(2000), time_ms=8) == []
    fill(book, "BUY", "2", "2000")
    book.apply_funding("ETHUSDT", rate=D("-0.001"), mark=D(1900), time_ms=16)
    assert [(t.time_ms, t.rate, t.per_contract) for t in book.funding_times] == [
        (8, D("0.01"), D(20)),  # nobody held it: the schedule still says what it cost
        (16, D("-0.001"), D("-1.9")),  # a negative rate pays longs
    ]


def test_a_position_under_maintenance_is_closed_at_its_bankruptcy_price() -> None:
    book = ledger()  # 1000 USDT, long 5 ETH at 2000: liquidation near 1804
    fill(book, "BUY", "5", "2000")
    book.marks["ETHUSDT"] = D(1850)
    assert book.underwater("ETHUSDT") == []
    book.marks["ETHUSDT"] = D(1800)
    ((account, position),) = book.underwater("ETHUSDT")
    record = book.liquidate(account, position, time_ms=9)
    assert record.price == D(1800)  # 2000 - 1000 / 5: the whole collateral is gone
    assert record.loss == D(1000)
    assert account.wallet["USDT"] == D(0)
    assert position.qty == 0
