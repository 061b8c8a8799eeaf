"""Acceptance: unmodified ccxt.binance (URLs and options only) trades against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import pytest

from engine.execution.venue import binance_api_urls
from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess, replay_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def simulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    """The simulator on each event loop it can run on (replay serve --event-loop)."""
    with replay_process(
        tmp_path_factory.mktemp("sim"),
        synth_recording,
        speed="1",
        wait_for_market=True,
        extra=["--event-loop", request.param],
    ) as sim:
        yield sim


def make_client(rest_url: str, secret: str = SIM_SECRET) -> Any:
    exchange = ccxt.binance(
        {
            "apiKey": SIM_KEY,
            "secret": secret,
            "enableRateLimit": True,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    exchange.urls["api"] = binance_api_urls(rest_url)
    return exchange


@pytest.fixture
async def client(simulator: ReplayProcess) -> AsyncIterator[Any]:
    exchange = make_client(simulator.rest_url)
    yield exchange
    await exchange.close()


async def test_ccxt_loads_markets_and_reads_book_and_balance(client: Any) -> None:
    markets = await client.load_markets()
    assert "BTC/USDT" in markets
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01
    book = await client.fetch_order_book("BTC/USDT", 10)
    assert book["nonce"] > 0
    assert book["bids"][0][0] < book["asks"][0][0]
    balance = await client.fetch_balance()
    assert balance["USDT"]["total"] == pytest.approx(100_000) or balance["USDT"]["total"] > 0


async def test_ccxt_limit_order_create_fetch_cancel(client: Any) -> None:
    await client.load_markets()
    book = await client.fetch_order_book("BTC/USDT", 5)
    price = round(book["bids"][0][0] * 0.99, 2)
    created = await client.create_order(
        "BTC/USDT", "limit", "buy", 0.001, price, {"newClientOrderId": "it-limit-1"}
    )
    assert created["status"] == "open"
    assert created["clientOrderId"] == "it-limit-1"
    fetched = await client.fetch_order("", "BTC/USDT", {"origClientOrderId": "it-limit-1"})
    assert fetched["id"] == created["id"]
    assert fetched["price"] == price
    assert any(o["id"] == created["id"] for o in await client.fetch_open_orders("BTC/USDT"))
    free_usdt = (await client.fetch_balance())["USDT"]["used"]
    assert free_usdt == pytest.approx(0.001 * price)
    canceled = await client.cancel_order(created["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert (await client.fetch_balance())["USDT"]["used"] == 0


async def test_ccxt_market_order_fills_against_the_replayed_book(client: Any) -> None:
    await client.load_markets()
    before = await client.fetch_balance()
    order = await client.create_order("BTC/USDT", "market", "buy", 0.002)
    assert order["status"] == "closed"
    assert order["filled"] == pytest.approx(0.002)
    trades = await client.fetch_order_trades(order["id"], "BTC/USDT")
    assert sum(t["amount"] for t in trades) == pytest.approx(0.002)
    assert all(t["fee"]["currency"] == "BTC" for t in trades)
    after = await client.fetch_balance()
    fee = sum(t["fee"]["cost"] for t in trades)
    assert after["BTC"]["total"] - before["BTC"]["total"] == pytest.approx(0.002 - fee)
    assert before["USDT"]["total"] - after["USDT"]["total"] == pytest.approx(order["cost"])


@pytest.mark.parametrize(
    ("call", "exception"),
    [
        (
            lambda c: c.fetch_order("", "BTC/USDT", {"origClientOrderId": "never-existed"}),
            ccxt.OrderNotFound,
        ),
        (lambda c: c.cancel_order("999999", "BTC/USDT"), ccxt.OrderNotFound),
        (lambda c: c.create_order("BTC/USDT", "market", "buy", 50), ccxt.InsufficientFunds),
        # as with the real venue: ccxt maps MIN_NOTIONAL (-1013) to BadRequest, and the
        # PRICE_FILTER / LOT_SIZE failures to InvalidOrder by their message
        (lambda c: c.create_order("BTC/USDT", "limit", "buy", 0.0001, 50000.0), ccxt.BadRequest),
        (
            lambda c: c.private_post_order(
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "quantity": "0.001",
                    "price": "50000.005",
                }
            ),
            ccxt.InvalidOrder,
        ),
    ],
)
async def test_venue_errors_reach_ccxt_as_its_own_exceptions(
    client: Any, call: Any, exception: type
) -> None:
    await client.load_markets()
    with pytest.raises(exception):
        await call(client)


async def test_bad_signature_is_an_authentication_error(simulator: ReplayProcess) -> None:
    bad = make_client(simulator.rest_url, secret="not-the-secret")
    try:
        await bad.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="Signature for this request"):
            await bad.fetch_balance()
    finally:
        await bad.close()


async def test_duplicate_client_order_id_is_refused(client: Any) -> None:
    await client.load_markets()
    book = await client.fetch_order_book("BTC/USDT", 5)
    price = round(book["bids"][0][0] * 0.98, 2)
    await client.create_order(
        "BTC/USDT", "limit", "buy", 0.001, price, {"newClientOrderId": "dup-1"}
    )
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await client.create_order(
            "BTC/USDT", "limit", "buy", 0.001, price, {"newClientOrderId": "dup-1"}
        )


async def test_ccxt_lists_the_orders_and_trades_placed_since_a_time(client: Any) -> None:
    """fetch_orders / fetch_my_trades with `since` (allOrders / myTrades with startTime): what
    recovery reads to adopt the orders of a journal's lost tail."""
    await client.load_markets()
    since = await client.fetch_time()
    placed = [
        await client.create_order(
            "BTC/USDT", "market", "buy", 0.001, None, {"newClientOrderId": f"since-{n}"}
        )
        for n in range(3)
    ]
    listed = await client.fetch_orders("BTC/USDT", since)
    assert [o["clientOrderId"] for o in listed] == ["since-0", "since-1", "since-2"]
    assert [o["status"] for o in listed] == ["closed"] * 3
    recent = await client.fetch_orders("BTC/USDT", None, 2)
    assert [o["id"] for o in recent] == [placed[1]["id"], placed[2]["id"]]
    trades = await client.fetch_my_trades("BTC/USDT", since)
    assert {t["order"] for t in trades} == {o["id"] for o in placed}
    assert sum(t["amount"] for t in trades) == pytest.approx(0.003)
    after = await client.fetch_orders("BTC/USDT", None, 1000, {"orderId": int(placed[1]["id"])})
    assert [o["clientOrderId"] for o in after] == ["since-1", "since-2"]
