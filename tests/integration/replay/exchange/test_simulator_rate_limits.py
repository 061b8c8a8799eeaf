"""Rate limits as Binance enforces them: 429 with Retry-After, a 418 ban for a client that
ignores 429s, order counts, and ccxt's own limiter staying under the limit.

A 5-second weight window (instead of Binance's minute) keeps the tests short; the logic is the
same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from engine.execution.venue import binance_api_urls
from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess, replay_process

pytestmark = pytest.mark.integration
LIMIT = 20
OPTIONS = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}


@pytest.fixture
def venue(tmp_path: Path, synth_recording: Path) -> Iterator[ReplayProcess]:
    extra = [
        "--weight-per-minute",
        str(LIMIT),
        "--weight-window-s",
        "5",
        "--ban-base-s",
        "2",
        "--orders-per-10s",
        "3",
    ]
    with replay_process(tmp_path, synth_recording, speed="1", extra=extra) as sim:
        yield sim


async def test_a_client_that_ignores_429s_is_banned_with_418(venue: ReplayProcess) -> None:
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:
        while 418 not in statuses and len(statuses) < 100:
            async with http.get(f"{venue.rest_url}/api/v3/time") as response:
                statuses.append(response.status)
                if response.status in (429, 418):
                    assert int(response.headers["Retry-After"]) >= 1
                    body = await response.json()
                    assert body["code"] == -1003
                if response.status == 418:
                    assert "IP banned until" in body["msg"]
        assert statuses[:LIMIT] == [200] * LIMIT
        assert statuses[LIMIT] == 429 and statuses[-1] == 418
        async with http.get(f"{venue.rest_url}/api/v3/time") as response:
            assert response.status == 418, "still banned"


async def test_weight_header_counts_every_request(venue: ReplayProcess) -> None:
    async with aiohttp.ClientSession() as http:
        used = []
        for _ in range(3):
            async with http.get(
                f"{venue.rest_url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "10"}
            ) as response:
                used.append(int(response.headers["X-MBX-USED-WEIGHT-1M"]))
    assert used == [5, 10, 15], "depth with limit <= 100 weighs 5"


def ccxt_client(venue: ReplayProcess, **extra: Any) -> Any:
    exchange = ccxt.binance(
        {"apiKey": SIM_KEY, "secret": SIM_SECRET, "options": dict(OPTIONS), **extra}
    )
    exchange.urls["api"] = binance_api_urls(venue.rest_url)
    return exchange


async def test_ccxts_own_limiter_stays_under_the_limit(venue: ReplayProcess) -> None:
    # ccxt's binance costs are in units of 5 weight; 80% of 20 weight per 5 s gives 1562.5 ms
    # per cost unit: a weight-1 call (cost 0.2) every 312.5 ms, 16 per window
    exchange = ccxt_client(venue, enableRateLimit=True, rateLimit=5 / (0.8 * LIMIT / 5000))
    try:
        for _ in range(25):
            await exchange.fetch_time()
            assert int(exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"]) <= LIMIT
    finally:
        await exchange.close()
    unlimited = ccxt_client(venue, enableRateLimit=False)
    try:
        with pytest.raises(ccxt.DDoSProtection):  # ccxt maps 429 and 418 to DDoSProtection
            await hammer(unlimited, 2 * LIMIT)
    finally:
        await unlimited.close()


async def hammer(exchange: Any, times: int) -> None:
    for _ in range(times):
        await exchange.fetch_time()


async def test_order_count_limit_is_1015(tmp_path: Path, synth_recording: Path) -> None:
    with replay_process(tmp_path, synth_recording, extra=["--orders-per-10s", "3"]) as venue:
        await place_until_refused(venue)


async def place_until_refused(venue: ReplayProcess) -> None:
    exchange = ccxt_client(venue, enableRateLimit=False)
    try:
        await exchange.load_markets()
        book = await exchange.fetch_order_book("BTC/USDT", 5)
        price = round(book["bids"][0][0] * 0.9, 2)
        for _ in range(3):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, price)
        assert exchange.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "3"
        with pytest.raises(ccxt.DDoSProtection, match="-1015"):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, price)
    finally:
        await exchange.close()
