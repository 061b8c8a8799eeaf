"""The replay feed speaks Binance's public WebSocket protocol, from a real client's side."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import websockets

from engine.core.book import DepthDiff, DepthSync, SyncAction
from tests.helpers import ReplayProcess, replay_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def feed(
    tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    with replay_process(tmp_path_factory.mktemp("feed"), synth_recording, speed="5") as sim:
        yield sim


async def recv_json(ws: websockets.ClientConnection) -> dict:  # type: ignore[type-arg]
    return json.loads(await asyncio.wait_for(ws.recv(), 5.0))


async def test_combined_stream_url_delivers_wrapped_messages_with_rebased_times(
    feed: ReplayProcess,
) -> None:
    url = f"{feed.ws_url}/stream?streams=btcusdt@trade/btcusdt@bookTicker"
    async with websockets.connect(url) as ws:
        streams = set()
        for _ in range(30):
            message = await recv_json(ws)
            streams.add(message["stream"])
            if message["stream"] == "btcusdt@trade":
                assert abs(message["data"]["E"] - time.time() * 1000) < 5_000
        assert streams == {"btcusdt@trade", "btcusdt@bookTicker"}


async def test_raw_ws_subscribe_list_and_unsubscribe(feed: ReplayProcess) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}))
        assert await recv_json(ws) == {"result": None, "id": 1}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        reply = None
        while reply is None or "id" not in reply:
            reply = await recv_json(ws)
        assert reply == {"result": ["btcusdt@trade"], "id": 2}
        trade = await recv_json(ws)
        assert trade["e"] == "trade"
        assert "stream" not in trade
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}))
        while (reply := await recv_json(ws)).get("id") != 3:
            pass
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert await recv_json(ws) == {"result": [], "id": 4}


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ("not json", 3),
        (json.dumps({"method": "SUBSCRIBEX", "id": 1}), 2),
        (json.dumps({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 1}), 2),
        (json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": -4}), 2),
    ],
)
async def test_bad_requests_get_error_replies_and_keep_the_connection(
    feed: ReplayProcess, request_text: str, code: int
) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws") as ws:
        await ws.send(request_text)
        reply = await recv_json(ws)
        assert reply["error"]["code"] == code
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 9}))
        assert await recv_json(ws) == {"result": [], "id": 9}


async def test_unknown_path_is_refused(feed: ReplayProcess) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(f"{feed.ws_url}/nope"):
            pass


async def test_snapshot_plus_diffs_builds_the_book_the_venue_serves(feed: ReplayProcess) -> None:
    """A client following Binance's documented procedure ends up with the venue's own book."""
    sync = DepthSync()
    async with (
        websockets.connect(f"{feed.ws_url}/ws/btcusdt@depth@100ms") as ws,
        aiohttp.ClientSession() as http,
    ):

        async def snapshot() -> tuple[int, list, list]:  # type: ignore[type-arg]
            async with http.get(
                f"{feed.rest_url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "5000"}
            ) as response:
                body = await response.json()
            return (
                body["lastUpdateId"],
                [(float(p), float(q)) for p, q in body["bids"]],
                [(float(p), float(q)) for p, q in body["asks"]],
            )

        applied = 0
        while applied < 30:
            d = await recv_json(ws)
            diff = DepthDiff(
                d["U"],
                d["u"],
                [(float(p), float(q)) for p, q in d["b"]],
                [(float(p), float(q)) for p, q in d["a"]],
            )
            action = sync.on_diff(diff)
            while action is SyncAction.FETCH_SNAPSHOT:
                action = sync.on_snapshot(*await snapshot())
            applied += action is SyncAction.APPLIED
        assert sync.gaps == 0
        assert not sync.book.is_crossed()
        # pause the market, drain, then the venue's snapshot must equal our book
        async with http.post(
            f"{feed.control_url}/replay/pause",
            headers={"Authorization": "Bearer integration-control-token"},
        ):
            pass
        try:
            venue_id, bids, asks = await snapshot()
            while sync.book.update_id < venue_id:
                d = await recv_json(ws)
                sync.on_diff(
                    DepthDiff(
                        d["U"],
                        d["u"],
                        [(float(p), float(q)) for p, q in d["b"]],
                        [(float(p), float(q)) for p, q in d["a"]],
                    )
                )
            assert sync.book.update_id == venue_id
            assert sync.book.bids.top(5000) == bids
            assert sync.book.asks.top(5000) == asks
        finally:
            async with http.post(
                f"{feed.control_url}/replay/resume",
                headers={"Authorization": "Bearer integration-control-token"},
            ):
                pass


async def test_control_api_requires_its_token(feed: ReplayProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{feed.control_url}/status") as response:
            assert response.status == 401
        async with http.get(
            f"{feed.control_url}/status",
            headers={"Authorization": "Bearer integration-control-token"},
        ) as r:
            status = await r.json()
    assert status["books"]["BTCUSDT"]["synced"] is True


def test_readiness_waits_for_every_book(tmp_path: Path, synth_recording: Path) -> None:
    """/readyz (no token) is 503 while a book is unknown, and says which; 200 once all are."""
    from tests.helpers import control, http_status, wait_until

    with replay_process(tmp_path, synth_recording, speed="5", extra=["--paused"]) as sim:
        status, body = http_status(f"{sim.control_url}/readyz")
        assert status == 503
        assert json.loads(body) == {
            "ready": False,
            "state": "paused",
            "books_not_synced": ["BTCUSDT"],
        }
        control(sim, "POST", "/replay/resume")
        wait_until(
            lambda: http_status(f"{sim.control_url}/readyz")[0] == 200,
            timeout_s=10,
            what="every book to be known",
        )
