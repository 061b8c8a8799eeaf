"""The user data stream: unmodified ccxt.pro gets execution reports, fills and balances by push;
the WebSocket API places orders; the older listen-key stream works too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import pytest
import websockets

from engine.execution.venue import binance_api_urls
from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess, replay_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def venue(
    tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    with replay_process(
        tmp_path_factory.mktemp("user"), synth_recording, speed="1", wait_for_market=True
    ) as sim:
        yield sim


def pro_client(sim: ReplayProcess) -> Any:
    exchange = ccxtpro.binance(
        {
            "apiKey": SIM_KEY,
            "secret": SIM_SECRET,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    exchange.urls["api"] = {
        **binance_api_urls(sim.rest_url),
        "ws": {
            "spot": f"{sim.ws_url}/ws",
            "margin": f"{sim.ws_url}/ws",
            "ws-api": {"spot": f"{sim.ws_url}/ws-api/v3"},
        },
    }
    return exchange


@pytest.fixture
async def pro(venue: ReplayProcess) -> AsyncIterator[Any]:
    exchange = pro_client(venue)
    await exchange.load_markets()
    yield exchange
    await exchange.close()


async def watch_until(watch: Any, accept: Any, timeout_s: float = 10) -> Any:
    async def loop() -> Any:
        while True:
            result = await watch()
            if accept(result):
                return result

    return await asyncio.wait_for(loop(), timeout_s)


async def test_ccxt_pro_watches_orders_trades_and_balance(pro: Any) -> None:
    orders = asyncio.create_task(
        watch_until(
            lambda: pro.watch_orders("BTC/USDT"),
            lambda os: any(o["status"] == "closed" and o["filled"] > 0 for o in os),
        )
    )
    trades = asyncio.create_task(
        watch_until(lambda: pro.watch_my_trades("BTC/USDT"), lambda ts: len(ts) > 0)
    )
    balance = asyncio.create_task(
        watch_until(lambda: pro.watch_balance(), lambda b: b.get("BTC", {}).get("total", 0) > 1)
    )
    await asyncio.sleep(0.5)  # the subscription is made by the watchers above
    placed = await pro.create_order("BTC/USDT", "market", "buy", 0.002)
    filled = [o for o in await orders if o["id"] == placed["id"]]
    assert filled and filled[-1]["status"] == "closed"
    assert filled[-1]["filled"] == pytest.approx(0.002)
    pushed = await trades
    assert {t["order"] for t in pushed} == {placed["id"]}
    assert sum(t["amount"] for t in pushed) == pytest.approx(0.002)
    assert (await balance)["BTC"]["total"] > 1


async def test_orders_over_the_websocket_api(pro: Any) -> None:
    book = await pro.fetch_order_book("BTC/USDT", 5)
    price = round(book["bids"][0][0] * 0.97, 2)
    placed = await pro.create_order_ws("BTC/USDT", "limit", "buy", 0.001, price)
    assert placed["status"] == "open"
    fetched = await pro.fetch_order_ws(placed["id"], "BTC/USDT")
    assert fetched["id"] == placed["id"] and fetched["price"] == price
    canceled = await pro.cancel_order_ws(placed["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    with pytest.raises(ccxtpro.InsufficientFunds):
        await pro.create_order_ws("BTC/USDT", "market", "buy", 100.0)


async def test_websocket_api_refuses_a_bad_signature(venue: ReplayProcess) -> None:
    async with websockets.connect(f"{venue.ws_url}/ws-api/v3") as ws:
        await ws.send(
            json.dumps(
                {
                    "id": "x1",
                    "method": "userDataStream.subscribe.signature",
                    "params": {"apiKey": SIM_KEY, "timestamp": 1, "signature": "00" * 32},
                }
            )
        )
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply["id"] == "x1" and reply["status"] == 400
    assert reply["error"]["code"] == -1022
    assert reply["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"


async def test_websocket_api_answers_a_non_ascii_signature_and_keeps_serving(
    venue: ReplayProcess,
) -> None:
    async with websockets.connect(f"{venue.ws_url}/ws-api/v3") as ws:
        params = {"apiKey": SIM_KEY, "timestamp": 1, "signature": "\u00e9" * 64}
        await ws.send(
            json.dumps(
                {"id": "x2", "method": "userDataStream.subscribe.signature", "params": params}
            )
        )
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(json.dumps({"id": "x3", "method": "ping"}))
        after = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert (reply["id"], reply["status"], reply["error"]["code"]) == ("x2", 400, -1022)
    assert (after["id"], after["status"]) == ("x3", 200), "the connection keeps serving"


async def test_listen_key_stream_pushes_raw_events(venue: ReplayProcess) -> None:
    headers = {"X-MBX-APIKEY": SIM_KEY}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{venue.rest_url}/api/v3/userDataStream", headers=headers) as r:
            key = (await r.json())["listenKey"]
        async with http.put(
            f"{venue.rest_url}/api/v3/userDataStream", params={"listenKey": key}, headers=headers
        ) as r:
            assert r.status == 200
        async with http.put(
            f"{venue.rest_url}/api/v3/userDataStream", params={"listenKey": "nope"}, headers=headers
        ) as r:
            assert (await r.json())["code"] == -1125
        async with websockets.connect(f"{venue.ws_url}/ws/{key}") as ws:
            exchange = pro_client(venue)
            try:
                await exchange.load_markets()
                placed = await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
            finally:
                await exchange.close()
            events = []
            while not any(e.get("X") == "FILLED" for e in events):
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        async with http.delete(
            f"{venue.rest_url}/api/v3/userDataStream", params={"listenKey": key}, headers=headers
        ) as r:
            assert r.status == 200
    reports = [e for e in events if e["e"] == "executionReport"]
    assert [e["x"] for e in reports][:2] == ["NEW", "TRADE"]
    assert all(e["i"] == int(placed["id"]) for e in reports)
    assert any(e["e"] == "outboundAccountPosition" for e in events)
