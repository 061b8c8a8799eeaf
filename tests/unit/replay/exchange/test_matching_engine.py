"""The simulator's matching engine against a hand-built book."""

from decimal import Decimal

import pytest

from replay.book import OrderBook
from replay.exchange.errors import BinanceError
from replay.exchange.matching import MatchingEngine, Status
from replay.exchange.symbols import ExchangeInfo

pytestmark = pytest.mark.unit
KEY = "k"


def engine(balances: dict[str, str] | None = None) -> tuple[MatchingEngine, OrderBook]:
    info = ExchangeInfo(["BTCUSDT"])
    clock = iter(range(1_000, 10**9))
    m = MatchingEngine(info.rules, clock_ms=lambda: next(clock))
    m.add_account(
        KEY, {k: Decimal(v) for k, v in (balances or {"USDT": "100000", "BTC": "1"}).items()}
    )
    book = OrderBook()
    book.load_snapshot(
        bids=[(100.0, 1.0), (99.0, 2.0), (98.0, 5.0)],
        asks=[(101.0, 1.0), (102.0, 2.0), (103.0, 5.0)],
        update_id=1,
    )
    m.attach_book("BTCUSDT", book)
    return m, book


def place(m: MatchingEngine, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(
        symbol="BTCUSDT",
        side="BUY",
        order_type="MARKET",
        quantity=None,
        quote_order_qty=None,
        price=None,
        time_in_force=None,
        client_order_id=f"c{len(m.orders)}",
    )
    args.update(kw)
    return m.place(KEY, **args)  # type: ignore[arg-type]


def balances(m: MatchingEngine) -> dict[str, tuple[Decimal, Decimal]]:
    return {a: (b.free, b.locked) for a, b in m.accounts[KEY].balances.items()}


def test_market_buy_walks_the_book_at_the_volume_weighted_price() -> None:
    m, _ = engine()
    order = place(m, quantity=Decimal("2.5"))
    assert order.status is Status.FILLED
    assert [(f.price, f.qty) for f in order.fills] == [
        (Decimal("101.0"), Decimal("1.0")),
        (Decimal("102.0"), Decimal("1.5")),
    ]
    assert order.cumm_quote / order.executed_qty == Decimal("101.6")
    assert all(not f.is_maker for f in order.fills)


def test_liquidity_taken_stays_taken_until_the_replay_updates_the_level() -> None:
    m, _ = engine()
    place(m, quantity=Decimal("1"))
    second = place(m, quantity=Decimal("1"))
    assert second.fills[0].price == Decimal("102.0")
    m.on_book_levels("BTCUSDT", bids=[], asks=[(101.0, 1.0)])
    third = place(m, quantity=Decimal("0.5"))
    assert third.fills[0].price == Decimal("101.0")


def test_market_order_beyond_the_book_expires_with_what_it_got() -> None:
    m, _ = engine()
    order = place(m, side="SELL", quantity=Decimal("1"), client_order_id="s")
    assert order.status is Status.FILLED
    big = place(m, quantity=Decimal("9"))
    assert big.status is Status.EXPIRED
    assert big.executed_qty == Decimal("8.0")


def test_buy_fee_is_charged_in_base_and_balances_stay_consistent() -> None:
    m, _ = engine()
    place(m, quantity=Decimal("1"))
    free = balances(m)
    assert free["BTC"] == (Decimal("1.999"), Decimal(0))  # 1 + 1 - 0.1% of 1
    assert free["USDT"] == (Decimal("99899.00000000"), Decimal(0))


def test_limit_rests_behind_the_queue_and_fills_as_maker_when_trades_eat_it() -> None:
    m, _ = engine()
    order = place(
        m, order_type="LIMIT", price=Decimal("100"), quantity=Decimal("0.5"), time_in_force="GTC"
    )
    assert order.status is Status.NEW
    assert order.queue_ahead == Decimal("1.0")
    assert balances(m)["USDT"] == (Decimal("99950.0"), Decimal("50.0"))
    m.on_trade("BTCUSDT", 100.0, 0.8, buyer_is_maker=True)  # eats 0.8 of the 1.0 ahead
    assert order.executed_qty == 0
    m.on_trade("BTCUSDT", 100.0, 0.5, buyer_is_maker=True)  # 0.2 ahead, 0.3 for us
    assert order.executed_qty == Decimal("0.3")
    assert order.status is Status.PARTIALLY_FILLED
    m.on_trade("BTCUSDT", 99.0, 1.0, buyer_is_maker=True)  # trades through our price
    assert order.status is Status.FILLED
    assert all(f.is_maker for f in order.fills)
    assert balances(m)["USDT"] == (Decimal("99950.0"), Decimal("0.0"))


def test_buyer_initiated_trades_do_not_fill_resting_bids() -> None:
    m, _ = engine()
    order = place(
        m, order_type="LIMIT", price=Decimal("100"), quantity=Decimal("0.5"), time_in_force="GTC"
    )
    m.on_trade("BTCUSDT", 100.0, 5.0, buyer_is_maker=False)
    assert order.executed_qty == 0


def test_marketable_limit_takes_then_rests() -> None:
    m, _ = engine()
    order = place(
        m, order_type="LIMIT", price=Decimal("102"), quantity=Decimal("4"), time_in_force="GTC"
    )
    assert order.executed_qty == Decimal("3.0")
    assert order.status is Status.PARTIALLY_FILLED
    assert list(m.open["BTCUSDT"]) == [order.order_id]


def test_ioc_and_fok() -> None:
    m, _ = engine()
    ioc = place(
        m, order_type="LIMIT", price=Decimal("101"), quantity=Decimal("2"), time_in_force="IOC"
    )
    assert ioc.status is Status.EXPIRED
    assert ioc.executed_qty == Decimal("1.0")
    fok = place(
        m, order_type="LIMIT", price=Decimal("102"), quantity=Decimal("5"), time_in_force="FOK"
    )
    assert fok.status is Status.EXPIRED
    assert fok.executed_qty == 0
    assert balances(m)["USDT"][1] == 0, "nothing stays locked by expired orders"


def test_limit_maker_that_would_take_is_rejected_with_binance_error() -> None:
    m, _ = engine()
    with pytest.raises(BinanceError) as error:
        place(m, order_type="LIMIT_MAKER", price=Decimal("101"), quantity=Decimal("1"))
    assert (error.value.code, error.value.msg) == (-2010, "Order would immediately match and take.")


def test_filters_and_balance_are_enforced() -> None:
    m, _ = engine({"USDT": "50"})
    cases = [
        (
            dict(
                order_type="LIMIT",
                price=Decimal("100.001"),
                quantity=Decimal("1"),
                time_in_force="GTC",
            ),
            "Filter failure: PRICE_FILTER",
        ),
        (
            dict(
                order_type="LIMIT",
                price=Decimal("100"),
                quantity=Decimal("0.000001"),
                time_in_force="GTC",
            ),
            "Filter failure: LOT_SIZE",
        ),
        (
            dict(
                order_type="LIMIT",
                price=Decimal("100"),
                quantity=Decimal("0.01"),
                time_in_force="GTC",
            ),
            "Filter failure: MIN_NOTIONAL",
        ),
        (
            dict(
                order_type="LIMIT",
                price=Decimal("1000"),
                quantity=Decimal("0.1"),
                time_in_force="GTC",
            ),
            "Filter failure: PERCENT_PRICE",
        ),
        (dict(quantity=Decimal("1")), "Account has insufficient balance for requested action."),
    ]
    for kwargs, message in cases:
        with pytest.raises(BinanceError) as error:
            place(m, **kwargs)
        assert error.value.msg == message


def test_duplicate_client_order_id_and_unknown_orders() -> None:
    m, _ = engine()
    place(
        m,
        order_type="LIMIT",
        price=Decimal("90"),
        quantity=Decimal("1"),
        time_in_force="GTC",
        client_order_id="dup",
    )
    with pytest.raises(BinanceError, match="Duplicate order sent"):
        place(
            m,
            order_type="LIMIT",
            price=Decimal("90"),
            quantity=Decimal("1"),
            time_in_force="GTC",
            client_order_id="dup",
        )
    with pytest.raises(BinanceError) as error:
        m.query(KEY, "BTCUSDT", order_id=None, client_order_id="nope")
    assert error.value.code == -2013
    canceled = m.cancel(KEY, "BTCUSDT", order_id=None, client_order_id="dup")
    assert canceled.status is Status.CANCELED
    with pytest.raises(BinanceError) as error:
        m.cancel(KEY, "BTCUSDT", order_id=canceled.order_id, client_order_id=None)
    assert error.value.code == -2011


def test_an_old_open_order_does_not_keep_closed_client_ids_recent_forever() -> None:
    info = ExchangeInfo(["BTCUSDT"])
    clock = iter(range(1_000, 10**9))
    m = MatchingEngine(info.rules, clock_ms=lambda: next(clock), recent_client_ids=3)
    m.add_account(KEY, {"USDT": Decimal("100000"), "BTC": Decimal("1")})
    _, book = engine()
    m.attach_book("BTCUSDT", book)
    resting = {"order_type": "LIMIT", "price": Decimal("90"), "quantity": Decimal("1")}
    place(m, **resting, time_in_force="GTC", client_order_id="old-open")
    for n in range(6):  # each placed and cancelled: closed
        place(m, **resting, time_in_force="GTC", client_order_id=f"closed-{n}")
        m.cancel(KEY, "BTCUSDT", order_id=None, client_order_id=f"closed-{n}")
    # the oldest closed ids left the window although an older order is still open
    place(m, **resting, time_in_force="GTC", client_order_id="closed-0")
    for still_known in ("old-open", "closed-5"):
        with pytest.raises(BinanceError, match="Duplicate order sent"):
            place(m, **resting, time_in_force="GTC", client_order_id=still_known)
    assert len(m._client_ids[(KEY, "BTCUSDT")]) <= 3 + 1  # the window, plus the open order


def test_resting_order_fills_when_the_replayed_book_moves_through_it() -> None:
    m, book = engine()
    order = place(
        m, order_type="LIMIT", price=Decimal("100.5"), quantity=Decimal("0.5"), time_in_force="GTC"
    )
    book.apply_levels(bids=[], asks=[(100.4, 2.0)], update_id=2)
    m.on_book_levels("BTCUSDT", bids=[], asks=[(100.4, 2.0)])
    assert order.status is Status.FILLED
    assert order.fills[0].price == Decimal("100.5")
    assert order.fills[0].is_maker


def test_same_order_flow_gives_the_same_result() -> None:
    def run() -> list[tuple[int, str, str]]:
        m, _ = engine()
        place(m, quantity=Decimal("1.5"))
        place(
            m, order_type="LIMIT", price=Decimal("99"), quantity=Decimal("1"), time_in_force="GTC"
        )
        m.on_trade("BTCUSDT", 98.0, 3.0, buyer_is_maker=True)
        return [(f.trade_id, str(f.price), str(f.qty)) for f in m.fills]

    assert run() == run()


def test_events_follow_binance_execution_types() -> None:
    m, _ = engine()
    events: list[tuple[str, str, str]] = []
    m.listeners.append(
        lambda o, kind, fill: events.append((kind, o.status.value, str(o.executed_qty)))
    )
    place(m, quantity=Decimal("1.5"))
    assert events == [
        ("NEW", "NEW", "0"),
        ("TRADE", "PARTIALLY_FILLED", "1.0"),
        ("TRADE", "FILLED", "1.5"),
    ]
    events.clear()
    place(m, quantity=Decimal("9"))  # more than the book holds
    assert [e[0] for e in events] == ["NEW", "TRADE", "TRADE", "EXPIRED"]
    events.clear()
    resting = place(
        m, order_type="LIMIT", price=Decimal("90"), quantity=Decimal("1"), time_in_force="GTC"
    )
    m.cancel(KEY, "BTCUSDT", order_id=resting.order_id, client_order_id=None)
    assert events == [("NEW", "NEW", "0"), ("CANCELED", "CANCELED", "0")]


def test_partial_fill_only_mode_caps_every_order() -> None:
    m, _ = engine()
    m.fill_cap = Decimal("0.5")
    market = place(m, quantity=Decimal("2"))
    assert market.executed_qty == Decimal("1.0") and market.status is Status.EXPIRED
    resting = place(
        m, order_type="LIMIT", price=Decimal("100"), quantity=Decimal("1"), time_in_force="GTC"
    )
    m.on_trade("BTCUSDT", 99.0, 5.0, buyer_is_maker=True)
    assert resting.executed_qty == Decimal("0.5") and resting.status is Status.PARTIALLY_FILLED
    m.fill_cap = None
    m.on_trade("BTCUSDT", 99.0, 5.0, buyer_is_maker=True)
    assert resting.status is Status.FILLED
