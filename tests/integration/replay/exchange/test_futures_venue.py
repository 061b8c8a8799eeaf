"""Unmodified ccxt `binanceusdm` and `binancecoinm` trade futures on the simulator standing on the
real recordings: leverage, resting and market orders, positions, reduce-only, balances; the
PnL it realises is the hand-computed linear or inverse PnL of the fills, and ground truth holds
the positions."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest
import websockets

from tests.helpers import SIM_KEY, SIM_SECRET, control, replay_process, wait_until
from tests.integration.replay.test_futures_fidelity import MARKETS

pytestmark = pytest.mark.integration

SETUP = {  # market: initial wallet, order size (~5x the wallet: a liquidation price), contract
    "usdm": ("USDT=10000", "20", Decimal(1)),
    "coinm": ("ETH=1", "500", Decimal(10)),
}


def client(market: str, rest_url: str, ws_url: str, pro: bool = False) -> Any:
    module = ccxtpro if pro else ccxt
    maker = module.binanceusdm if market == "usdm" else module.binancecoinm
    # the simulator serves no wallet (sapi) API: ccxt is told not to ask it for currencies
    exchange = maker(
        {"apiKey": SIM_KEY, "secret": SIM_SECRET, "options": {"fetchCurrencies": False}}
    )
    api = dict(exchange.urls["api"])
    for key, url in api.items():
        if isinstance(url, str) and url.startswith("https://"):
            api[key] = rest_url + url.split("binance.com", 1)[1]
    api["ws"] = {kind: f"{ws_url}/ws" for kind in ("spot", "margin", "linear", "inverse")}
    exchange.urls["api"] = api
    return exchange


def realized_by_hand(
    market: str, entry_fills: list[dict[str, Any]], exit_fills: list[dict[str, Any]], size: Decimal
) -> Decimal:
    """PnL of closing a long opened by `entry_fills` with `exit_fills`, from the venue's own
    fill prices: linear q * (exit - entry); inverse q * size * (1/entry - 1/exit), the entry
    being the harmonic mean of the entry fills."""
    qty = sum(Decimal(f["info"]["qty"]) for f in entry_fills)
    if market == "usdm":
        entry = sum(Decimal(f["info"]["qty"]) * Decimal(f["info"]["price"]) for f in entry_fills)
        exit_value = sum(
            Decimal(f["info"]["qty"]) * Decimal(f["info"]["price"]) for f in exit_fills
        )
        return exit_value - entry
    entry_coins = sum(Decimal(f["info"]["qty"]) / Decimal(f["info"]["price"]) for f in entry_fills)
    exit_coins = sum(Decimal(f["info"]["qty"]) / Decimal(f["info"]["price"]) for f in exit_fills)
    assert qty == sum(Decimal(f["info"]["qty"]) for f in exit_fills)
    return size * (entry_coins - exit_coins)


@pytest.mark.parametrize("market", sorted(MARKETS))
def test_unmodified_ccxt_trades_futures_on_the_simulator(
    tmp_path: Path, shared_data: Path, market: str
) -> None:
    name, symbol, _, _ = MARKETS[market]
    wallet, size, contract_size = SETUP[market]
    asset = wallet.split("=")[0]
    with replay_process(
        tmp_path, shared_data / name, speed="1", balances=(wallet,), wait_for_market=True
    ) as venue:
        exchange = client(market, venue.rest_url, venue.ws_url)
        exchange.load_markets()
        assert exchange.set_leverage(10, symbol)["leverage"] == 10
        book = exchange.fetch_order_book(symbol, 5)
        far = exchange.price_to_precision(symbol, book["bids"][0][0] * 0.97)
        resting = exchange.create_order(symbol, "limit", "buy", float(size), float(far))
        assert exchange.fetch_order(resting["id"], symbol)["status"] == "open"
        assert exchange.cancel_order(resting["id"], symbol)["status"] == "canceled"
        assert exchange.fetch_order(resting["id"], symbol)["status"] == "canceled"

        before = Decimal(str(exchange.fetch_balance()[asset]["total"]))
        bought = exchange.create_order(symbol, "market", "buy", float(size))
        assert exchange.fetch_order(bought["id"], symbol)["status"] == "closed"
        (position,) = exchange.fetch_positions([symbol])
        assert position["side"] == "long"
        assert position["contracts"] == float(size)
        # USD-M's positionRisk v3 names no leverage: its initial margin says it
        assert position["initialMargin"] == pytest.approx(position["notional"] / 10, rel=1e-6)
        assert position["liquidationPrice"] < position["entryPrice"]
        truth = control(venue, "GET", "/truth/positions")
        (held,) = [p for account in truth["accounts"] for p in account["positions"]]
        assert (held["symbol"], Decimal(held["qty"])) == (exchange.market_id(symbol), Decimal(size))

        with pytest.raises(ccxt.ExchangeError) as refused:  # reduce-only cannot add to a long
            exchange.create_order(symbol, "market", "buy", float(size), params={"reduceOnly": True})
        assert "-2022" in str(refused.value)
        sold = exchange.create_order(
            symbol, "market", "sell", float(size) * 3, params={"reduceOnly": True}
        )
        assert exchange.fetch_order(sold["id"], symbol)["filled"] == float(size)  # cut
        assert exchange.fetch_positions([symbol]) == []

        entry_fills = exchange.fetch_my_trades(symbol, params={"orderId": bought["id"]})
        exit_fills = exchange.fetch_my_trades(symbol, params={"orderId": sold["id"]})
        realized = sum(Decimal(f["info"]["realizedPnl"]) for f in exit_fills)
        expected = realized_by_hand(market, entry_fills, exit_fills, contract_size)
        assert realized == pytest.approx(expected, abs=Decimal("1e-8"))
        fees = sum(Decimal(f["info"]["commission"]) for f in entry_fills + exit_fills)
        after = Decimal(str(exchange.fetch_balance()[asset]["total"]))
        assert after - before == pytest.approx(realized - fees, abs=Decimal("1e-6"))


@pytest.mark.parametrize("market", sorted(MARKETS))
async def test_the_futures_user_stream_reports_orders_and_positions(
    tmp_path: Path, shared_data: Path, market: str
) -> None:
    name, symbol, _, _ = MARKETS[market]
    wallet, size, _ = SETUP[market]
    with replay_process(
        tmp_path, shared_data / name, speed="1", balances=(wallet,), wait_for_market=True
    ) as venue:
        exchange = client(market, venue.rest_url, venue.ws_url, pro=True)
        try:
            await exchange.load_markets()
            watching = asyncio.ensure_future(exchange.watch_orders(symbol))
            await asyncio.to_thread(
                wait_until,
                lambda: control(venue, "GET", "/status")["user_stream_subscribers"] >= 1,
                timeout_s=20,
                what="ccxt.pro's user stream to connect",
            )
            placed = await exchange.create_order(symbol, "market", "buy", float(size))
            orders = await asyncio.wait_for(watching, 20)
            while orders[-1]["status"] != "closed":
                orders = await asyncio.wait_for(exchange.watch_orders(symbol), 20)
            assert orders[-1]["id"] == placed["id"]
            assert orders[-1]["filled"] == float(size)
        finally:
            await exchange.close()


async def test_funding_is_paid_at_its_times_and_a_falling_mark_liquidates(
    tmp_path: Path, shared_data: Path
) -> None:
    """USD-M with funding every minute of event time (6 s at 10x): a long pays qty * mark * rate
    at each funding time; when the mark falls 10% the position (13x the wallet, at 20x) is
    liquidated at its bankruptcy price, the wallet is gone, and `forceOrder` says so."""
    name, symbol, lower, _ = MARKETS["usdm"]
    extra = ["--funding-interval-h", str(1 / 60)]
    with replay_process(
        tmp_path,
        shared_data / name,
        speed="10",
        balances=("USDT=2000",),
        extra=extra,
        wait_for_market=True,
    ) as venue:
        exchange = client("usdm", venue.rest_url, venue.ws_url)
        exchange.load_markets()
        exchange.set_leverage(20, symbol)
        exchange.create_order(symbol, "market", "buy", 10)
        (held,) = control(venue, "GET", "/truth/positions")["accounts"][0]["positions"]
        payments = wait_until(
            lambda: control(venue, "GET", "/truth/funding")["funding"],
            timeout_s=30,
            what="a funding time to pass",
        )
        first = payments[0]
        assert Decimal(first["qty"]) == Decimal(10)
        assert Decimal(first["paid"]) == Decimal(first["qty"]) * Decimal(
            first["mark_price"]
        ) * Decimal(first["rate"])
        assert Decimal(first["rate"]) == Decimal("0.0001")
        schedule = control(venue, "GET", "/truth/funding")["times"]
        (at_first,) = [t for t in schedule if t["time_ms"] == first["time_ms"]]
        assert Decimal(at_first["per_contract"]) * 10 == Decimal(first["paid"])
        async with websockets.connect(f"{venue.ws_url}/ws/{lower}@forceOrder") as feed:
            control(venue, "POST", "/replay/mark-price", {"mark_shift": -0.1})
            event = json.loads(await asyncio.wait_for(feed.recv(), 20))
        assert (event["e"], event["o"]["S"], event["o"]["q"]) == (
            "forceOrder",
            "SELL",
            "10.00000000",
        )
        (liquidation,) = control(venue, "GET", "/truth/liquidations")["liquidations"]
        wallet = Decimal(control(venue, "GET", "/truth/positions")["accounts"][0]["wallet"]["USDT"])
        entry = Decimal(held["entry_price"])
        # closed at the bankruptcy price: the collateral (the wallet at the liquidation) is lost
        collateral = Decimal(liquidation["loss"])
        assert Decimal(liquidation["price"]) == pytest.approx(entry - collateral / Decimal(10))
        assert wallet == pytest.approx(Decimal(0), abs=Decimal("1e-9"))
        assert control(venue, "GET", "/truth/positions")["accounts"][0]["positions"] == []


def test_the_venue_can_refuse_every_reduce_only_order(tmp_path: Path, shared_data: Path) -> None:
    """The `reject_reduce_only` venue fault: reduce-only orders get -2022 while it lasts (and it
    counts them), other orders go through; once it ends, reduce-only orders are served again."""
    name, symbol, _, _ = MARKETS["usdm"]
    with replay_process(
        tmp_path, shared_data / name, speed="1", balances=("USDT=10000",), wait_for_market=True
    ) as venue:
        exchange = client("usdm", venue.rest_url, venue.ws_url)
        exchange.load_markets()
        exchange.create_order(symbol, "market", "buy", 1.0)
        fault = control(venue, "POST", "/faults", {"kind": "reject_reduce_only"})
        with pytest.raises(ccxt.ExchangeError) as refused:
            exchange.create_order(symbol, "market", "sell", 1.0, params={"reduceOnly": True})
        assert "-2022" in str(refused.value)
        exchange.create_order(symbol, "market", "buy", 0.5)  # not reduce-only: served
        listed = control(venue, "GET", "/faults")
        (mine,) = [f for f in listed["faults"] if f["id"] == fault["id"]]
        assert mine["applied"] == 1
        control(venue, "DELETE", f"/faults/{fault['id']}")
        exchange.create_order(symbol, "market", "sell", 1.5, params={"reduceOnly": True})
        assert control(venue, "GET", "/truth/positions")["accounts"][0]["positions"] == []


def test_resting_reduce_only_orders_shrink_with_the_position_and_go_when_it_is_closed(
    tmp_path: Path, shared_data: Path
) -> None:
    """Binance keeps a resting reduce-only order within the position whoever reduces it: cut
    when another order shrinks the position, canceled when the position is closed (it could
    only open the other side)."""
    name, symbol, _, _ = MARKETS["usdm"]
    with replay_process(
        tmp_path, shared_data / name, speed="1", balances=("USDT=100000",), wait_for_market=True
    ) as venue:
        exchange = client("usdm", venue.rest_url, venue.ws_url)
        exchange.load_markets()
        exchange.create_order(symbol, "market", "buy", 2.0)
        far = round(exchange.fetch_order_book(symbol)["asks"][0][0] * 1.02, 2)  # rests above
        resting = exchange.create_order(
            symbol, "limit", "sell", 1.5, far, params={"reduceOnly": True}
        )
        exchange.create_order(symbol, "market", "sell", 1.0)  # another order shrinks it
        assert exchange.fetch_order(resting["id"], symbol)["amount"] == 1.0
        exchange.create_order(symbol, "market", "sell", 1.0)  # and closes it
        order = exchange.fetch_order(resting["id"], symbol)
        assert order["status"] == "canceled" and order["filled"] == 0
        assert control(venue, "GET", "/truth/positions")["accounts"][0]["positions"] == []


def test_a_futures_listen_key_is_kept_alive_and_closed_by_account(
    tmp_path: Path, shared_data: Path
) -> None:
    """Futures name the account's listen key without the parameter: PUT keeps it alive, DELETE
    closes it, and a closed key is -1125."""
    name, _, _, _ = MARKETS["usdm"]
    with replay_process(tmp_path, shared_data / name, speed="1", balances=("USDT=10",)) as venue:

        def call(method: str) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(
                f"{venue.rest_url}/fapi/v1/listenKey",
                method=method,
                headers={"X-MBX-APIKEY": SIM_KEY},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    return reply.status, json.loads(reply.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        code, created = call("POST")
        assert code == 200 and created["listenKey"]
        assert call("PUT") == (200, {"listenKey": created["listenKey"]})
        assert call("DELETE") == (200, {})
        code, refused = call("PUT")
        assert (code, refused["code"]) == (400, -1125)
