"""Each venue fault, observed by a client exactly as specified (replay/exchange/venue_faults)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import pytest

from engine.execution.venue import binance_api_urls
from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess, control, replay_process

pytestmark = pytest.mark.integration
OPTIONS = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}


@pytest.fixture(scope="module")
def venue(
    tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    with replay_process(
        tmp_path_factory.mktemp("vf"),
        synth_recording,
        speed="1",
        extra=["--fault-seed", "7"],
        wait_for_market=True,
    ) as sim:
        yield sim


@pytest.fixture
async def ex(venue: ReplayProcess) -> AsyncIterator[Any]:
    exchange = ccxt.binance(
        {"apiKey": SIM_KEY, "secret": SIM_SECRET, "timeout": 1500, "options": dict(OPTIONS)}
    )
    exchange.urls["api"] = binance_api_urls(venue.rest_url)
    await exchange.load_markets()
    yield exchange
    control(venue, "DELETE", "/faults")
    await exchange.close()


def fault(venue: ReplayProcess, **body: Any) -> dict[str, Any]:
    return control(venue, "POST", "/faults", body)


def logged(venue: ReplayProcess, fault_id: int) -> dict[str, Any]:
    return next(f for f in control(venue, "GET", "/faults")["faults"] if f["id"] == fault_id)


async def test_latency_delays_matching_requests_only(venue: ReplayProcess, ex: Any) -> None:
    added = fault(venue, kind="latency", endpoint="GET /api/v3/time", latency_ms=400, jitter_ms=100)
    started = time.monotonic()
    await ex.fetch_time()
    slow = time.monotonic() - started
    started = time.monotonic()
    await ex.fetch_order_book("BTC/USDT", 5)
    fast = time.monotonic() - started
    assert slow >= 0.4 and fast < 0.4
    assert logged(venue, added["id"])["applied"] == 1


async def test_5xx_before_and_after_the_effect(venue: ReplayProcess, ex: Any) -> None:
    fault(venue, kind="error_5xx", endpoint="POST /api/v3/order", rate=1.0, duration_ms=2000)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await ex.create_order(
            "BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "five-xx-before"}
        )
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order("", "BTC/USDT", {"origClientOrderId": "five-xx-before"})
    control(venue, "DELETE", "/faults")
    fault(venue, kind="error_5xx", endpoint="POST /api/v3/order", rate=1.0, applied=True)
    with pytest.raises(ccxt.OperationFailed, match="Execution status unknown"):
        await ex.create_order(
            "BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "five-xx-after"}
        )
    found = await ex.fetch_order("", "BTC/USDT", {"origClientOrderId": "five-xx-after"})
    assert found["status"] == "closed", "the order was placed despite the error"


async def test_timeout_leaves_no_order(venue: ReplayProcess, ex: Any) -> None:
    fault(venue, kind="timeout", endpoint="POST /api/v3/order", hold_ms=3000)
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order(
            "BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "timed-out-1"}
        )
    control(venue, "DELETE", "/faults")
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order("", "BTC/USDT", {"origClientOrderId": "timed-out-1"})


async def test_accept_but_never_answer_leaves_an_order_found_by_client_id(
    venue: ReplayProcess, ex: Any
) -> None:
    fault(venue, kind="no_answer", endpoint="POST /api/v3/order", hold_ms=3000)
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order(
            "BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "never-answered-1"}
        )
    control(venue, "DELETE", "/faults")
    found = await ex.fetch_order("", "BTC/USDT", {"origClientOrderId": "never-answered-1"})
    assert found["status"] == "closed" and found["filled"] == pytest.approx(0.001)


async def test_reject_refuses_new_orders_with_a_venue_code(venue: ReplayProcess, ex: Any) -> None:
    fault(venue, kind="reject", endpoint="POST /api/v3/order")
    with pytest.raises(ccxt.InvalidOrder, match="-2010"):
        await ex.create_order("BTC/USDT", "market", "buy", 0.001)
    assert (await ex.fetch_order_book("BTC/USDT", 5))["bids"], "other requests are served"


async def test_maintenance_and_ban_refuse_everything(venue: ReplayProcess, ex: Any) -> None:
    fault(venue, kind="maintenance", duration_ms=1500)
    with pytest.raises(ccxt.OnMaintenance):
        await ex.fetch_time()
    control(venue, "DELETE", "/faults")
    fault(venue, kind="ban", duration_ms=5000)
    with pytest.raises(ccxt.DDoSProtection, match="IP banned until"):
        await ex.fetch_time()
    control(venue, "DELETE", "/faults")
    assert await ex.fetch_time() > 0


async def test_partial_fills_only(venue: ReplayProcess, ex: Any) -> None:
    fault(venue, kind="partial_fills", fraction=0.5)
    order = await ex.create_order("BTC/USDT", "market", "buy", 0.004)
    assert order["status"] == "expired" and order["filled"] == pytest.approx(0.002)


async def test_user_stream_delay_and_drop(venue: ReplayProcess, ex: Any) -> None:
    import ccxt.pro as ccxtpro

    pro = ccxtpro.binance({"apiKey": SIM_KEY, "secret": SIM_SECRET, "options": dict(OPTIONS)})
    pro.urls["api"] = {
        **binance_api_urls(venue.rest_url),
        "ws": {"spot": f"{venue.ws_url}/ws", "ws-api": {"spot": f"{venue.ws_url}/ws-api/v3"}},
    }

    def closed(orders: list[dict[str, Any]], order_id: str) -> bool:
        return any(o["id"] == order_id and o["status"] == "closed" for o in orders)

    async def filled(order_id: str, first: list[dict[str, Any]]) -> None:
        # the first update may already carry the fill (NEW and TRADE in one read)
        orders = first
        while not closed(orders, order_id):
            orders = await pro.watch_orders("BTC/USDT")

    async def subscribed_at_venue() -> None:
        # the subscriber count lives in another process: polling it is the only way to know
        while not control(venue, "GET", "/status")["user_stream_subscribers"]:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    try:
        await pro.load_markets()
        subscribed = asyncio.create_task(pro.watch_orders("BTC/USDT"))
        await asyncio.wait_for(subscribed_at_venue(), 10)
        fault(venue, kind="user_stream_delay", delay_ms=800)
        started = time.monotonic()
        placed = await ex.create_order("BTC/USDT", "market", "buy", 0.001)
        first = await asyncio.wait_for(subscribed, 10)
        assert time.monotonic() - started >= 0.8, "the first event came late"
        await asyncio.wait_for(filled(placed["id"], first), 10)
        control(venue, "DELETE", "/faults")
        pending = asyncio.create_task(pro.watch_orders("BTC/USDT"))
        await asyncio.sleep(0.2)
        added = fault(venue, kind="user_stream_drop", duration_ms=1000)
        with pytest.raises(ccxtpro.NetworkError):
            await asyncio.wait_for(pending, 5)
        assert logged(venue, added["id"])["applied"] >= 1, "a connection was dropped"
    finally:
        await pro.close()
