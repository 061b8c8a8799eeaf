"""Acceptance (issue 4): unmodified ccxt exercises every endpoint and error code; market orders
fill at the book-walk price computed independently from the recording."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from engine.core.book import DepthDiff, DepthSync
from replay.recording import read_records
from tests.helpers import ReplayProcess, control, replay_process, sim_exchange

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def venue(
    tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    with replay_process(
        tmp_path_factory.mktemp("venue"), synth_recording, speed="1", wait_for_market=True
    ) as sim:
        yield sim


@pytest.fixture
async def ex(venue: ReplayProcess) -> AsyncIterator[Any]:
    exchange = sim_exchange(venue.rest_url)
    await exchange.load_markets()
    yield exchange
    await exchange.close()


async def test_time_depth_and_every_order_type(ex: Any) -> None:
    assert abs(await ex.fetch_time() - ex.milliseconds()) < 5_000
    book = await ex.fetch_order_book("BTC/USDT", 20)
    bid, ask = book["bids"][0][0], book["asks"][0][0]
    gtc = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.99, 2))
    assert gtc["status"] == "open"
    ioc = await ex.create_order(
        "BTC/USDT", "limit", "buy", 0.001, round(bid * 0.99, 2), {"timeInForce": "IOC"}
    )
    assert ioc["status"] == "expired" and ioc["filled"] == 0
    fok = await ex.create_order(
        "BTC/USDT", "limit", "buy", 0.001, round(bid * 0.99, 2), {"timeInForce": "FOK"}
    )
    assert fok["status"] == "expired" and fok["filled"] == 0, "nothing at that price: no fill"
    maker = await ex.create_order(
        "BTC/USDT", "limit", "sell", 0.001, round(ask * 1.01, 2), {"postOnly": True}
    )
    assert maker["info"]["type"] == "LIMIT_MAKER" and maker["status"] == "open"
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await ex.create_order(
            "BTC/USDT", "limit", "sell", 0.001, round(bid * 0.99, 2), {"postOnly": True}
        )
    by_qty = await ex.create_order("BTC/USDT", "market", "buy", 0.002)
    assert by_qty["status"] == "closed" and by_qty["filled"] == pytest.approx(0.002)
    by_cost = await ex.create_market_buy_order_with_cost("BTC/USDT", 100.0)
    assert by_cost["cost"] == pytest.approx(100.0, rel=0.01) and by_cost["status"] == "closed"
    by_client = await ex.fetch_order("", "BTC/USDT", {"origClientOrderId": gtc["clientOrderId"]})
    assert by_client["id"] == gtc["id"]
    assert (await ex.fetch_order(gtc["id"], "BTC/USDT"))["clientOrderId"] == gtc["clientOrderId"]
    open_ids = {o["id"] for o in await ex.fetch_open_orders("BTC/USDT")}
    assert {gtc["id"], maker["id"]} <= open_ids
    canceled = await ex.cancel_order("", "BTC/USDT", {"origClientOrderId": maker["clientOrderId"]})
    assert canceled["status"] == "canceled"
    await ex.cancel_order(gtc["id"], "BTC/USDT")
    every = await ex.fetch_orders("BTC/USDT")
    assert {gtc["id"], ioc["id"], fok["id"], by_qty["id"]} <= {o["id"] for o in every}
    trades = await ex.fetch_my_trades("BTC/USDT")
    mine = [t for t in trades if t["order"] == by_qty["id"]]
    assert mine and all(t["takerOrMaker"] == "taker" for t in mine)
    assert sum(t["fee"]["cost"] for t in mine) == pytest.approx(0.002 * 0.001)


async def test_balance_reports_free_and_locked(ex: Any) -> None:
    before = await ex.fetch_balance()
    book = await ex.fetch_order_book("BTC/USDT", 5)
    price = round(book["bids"][0][0] * 0.95, 2)
    order = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, price)
    during = await ex.fetch_balance()
    assert during["USDT"]["used"] == pytest.approx(before["USDT"]["used"] + 0.01 * price)
    assert during["USDT"]["free"] == pytest.approx(before["USDT"]["free"] - 0.01 * price)
    await ex.cancel_order(order["id"], "BTC/USDT")
    assert (await ex.fetch_balance())["USDT"]["free"] == pytest.approx(before["USDT"]["free"])


@pytest.mark.parametrize(
    ("call", "exception", "fragment"),
    [
        (
            lambda c: c.fetch_order("", "BTC/USDT", {"origClientOrderId": "nope"}),
            ccxt.OrderNotFound,
            "-2013",
        ),
        (lambda c: c.cancel_order("424242", "BTC/USDT"), ccxt.OrderNotFound, "-2011"),
        (
            lambda c: c.create_order("BTC/USDT", "market", "buy", 500),
            ccxt.InsufficientFunds,
            "insufficient balance",
        ),
        (
            lambda c: c.private_post_order(
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "quantity": "0.001",
                    "price": "50000.001",
                }
            ),
            ccxt.InvalidOrder,
            "PRICE_FILTER",
        ),
        (
            lambda c: c.private_post_order(
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "quantity": "0.0000001",
                    "price": "50000",
                }
            ),
            ccxt.InvalidOrder,
            "LOT_SIZE",
        ),
        (
            lambda c: c.create_order("BTC/USDT", "limit", "buy", 0.0001, 50_000.0),
            ccxt.BadRequest,
            "MIN_NOTIONAL",
        ),
        (
            lambda c: c.create_order("BTC/USDT", "limit", "buy", 0.02, 1000.0),
            ccxt.BadRequest,
            "PERCENT_PRICE",
        ),
        (
            lambda c: c.private_get_order(
                {"symbol": "BTCUSDT", "orderId": "1", "recvWindow": "70000"}
            ),
            ccxt.ExchangeError,
            "-1131",
        ),
    ],
)
async def test_venue_errors_carry_binance_codes_into_ccxt(
    ex: Any, call: Any, exception: type, fragment: str
) -> None:
    with pytest.raises(exception, match=fragment):
        await call(ex)


async def test_timestamp_outside_the_window_is_1021(venue: ReplayProcess) -> None:
    skewed = sim_exchange(venue.rest_url)
    try:
        await skewed.load_markets()
        skewed.options["timeDifference"] = 30_000  # our clock runs 30 s behind
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await skewed.fetch_balance()
    finally:
        await skewed.close()


async def test_bad_signature_is_1022(venue: ReplayProcess) -> None:
    forged = sim_exchange(venue.rest_url, secret="not-the-secret")
    try:
        await forged.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await forged.fetch_balance()
    finally:
        await forged.close()


def offline_book(recording: Path, update_id: int) -> DepthSync:
    sync = DepthSync()
    for record in read_records(recording):
        if not record.payload:
            continue
        message = json.loads(record.payload)
        if "lastUpdateId" in message:
            sync.on_snapshot(
                message["lastUpdateId"],
                [(float(p), float(q)) for p, q in message["bids"]],
                [(float(p), float(q)) for p, q in message["asks"]],
            )
        elif message["stream"].endswith("@depth@100ms"):
            d = message["data"]
            sync.on_diff(
                DepthDiff(
                    d["U"],
                    d["u"],
                    [(float(p), float(q)) for p, q in d["b"]],
                    [(float(p), float(q)) for p, q in d["a"]],
                )
            )
            if sync.synced and sync.book.update_id >= update_id:
                break
    assert sync.book.update_id == update_id
    return sync


async def test_market_order_fills_at_the_independently_computed_book_walk_price(
    tmp_path: Path, shared_recording: Path
) -> None:
    with replay_process(
        tmp_path, shared_recording, speed="10", balances=("USDT=1000000", "BTC=10")
    ) as sim:
        exchange = sim_exchange(sim.rest_url)
        try:
            await exchange.load_markets()
            await exchange.fetch_order_book("BTC/USDT", 5)  # the book is known
            await asyncio.sleep(0)
            control(sim, "POST", "/replay/pause", {})
            update_id = int((await exchange.fetch_order_book("BTC/USDT", 5))["nonce"])
            qty = Decimal("7.5")  # deep enough to walk several levels
            order = await exchange.create_order("BTC/USDT", "market", "buy", float(qty))
        finally:
            await exchange.close()
    sync = offline_book(shared_recording, update_id)
    remaining, cost = qty, Decimal(0)
    levels = 0
    for price, level_qty in sync.book.asks.levels():
        take = min(remaining, Decimal(repr(level_qty)))
        cost += take * Decimal(repr(price))
        remaining -= take
        levels += 1
        if remaining == 0:
            break
    assert levels > 1, "the order walked the book"
    assert Decimal(order["info"]["cummulativeQuoteQty"]) == cost.quantize(Decimal("0.00000001"))
    assert Decimal(order["info"]["executedQty"]) == qty


async def test_an_unknown_endpoint_or_method_gets_binances_json_error(venue: ReplayProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{venue.rest_url}/api/v3/nonsense") as response:
            assert response.status == 404
            assert await response.json() == {"code": -1000, "msg": "Unknown endpoint."}
        async with http.patch(f"{venue.rest_url}/api/v3/order") as response:
            assert response.status == 405
            assert await response.json() == {"code": -1000, "msg": "Method not allowed."}
            # a refused request is still weighed, as the venue does
            assert "X-MBX-USED-WEIGHT-1M" in response.headers
