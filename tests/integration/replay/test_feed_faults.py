"""Each feed fault, observed from a real client exactly as specified (replay/faults.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from tests.helpers import SIM_TOKEN, ReplayProcess, replay_process

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {SIM_TOKEN}"}
DEPTH = "btcusdt@depth@100ms"
TRADE = "btcusdt@trade"


@pytest.fixture(scope="module")
def feed(
    tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    with replay_process(tmp_path_factory.mktemp("faults"), synth_recording, speed="2") as sim:
        yield sim


async def control(feed: ReplayProcess, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{feed.control_url}{path}", json=body, headers=AUTH) as response,
    ):
        data = await response.json()
        assert response.status < 300, data
        return data


async def client_id(feed: ReplayProcess, stream: str) -> int:
    status = await control(feed, "GET", "/status")
    return max(c["id"] for c in status["client_list"] if stream in c["subscriptions"])


async def drain(ws: websockets.ClientConnection) -> None:
    """Read until the connection ends (raises how it ended)."""
    while True:
        await asyncio.wait_for(ws.recv(), 10)


async def frames(ws: websockets.ClientConnection, n: int) -> list[str]:
    return [await asyncio.wait_for(ws.recv(), 10) for _ in range(n)]


@pytest.fixture(autouse=True)
async def clear_faults(feed: ReplayProcess) -> Any:
    yield
    await control(feed, "DELETE", "/faults")


async def test_gap_skips_exactly_k_depth_updates(feed: ReplayProcess) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws/{DEPTH}") as ws:
        first = json.loads(await ws.recv())
        cid = await client_id(feed, DEPTH)
        fault = await control(
            feed, "POST", "/faults", {"kind": "gap", "stream": DEPTH, "client": cid, "count": 3}
        )
        previous = first
        gaps = []
        for _ in range(15):
            current = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if current["U"] != previous["u"] + 1:
                gaps.append((previous["u"], current["U"]))
            previous = current
        assert len(gaps) == 1
        logged = (await control(feed, "GET", "/faults"))["faults"]
        entry = next(f for f in logged if f["id"] == fault["id"])
        assert entry["applied"] == 3
        assert entry["end_ns"] >= entry["start_ns"] > 0
        assert not entry["active"]


async def test_stall_silences_only_the_target_and_keeps_the_connection(feed: ReplayProcess) -> None:
    """While stalled, the connection stays open and the stream falls silent for the duration;
    the other stream keeps flowing. (Trades arrive ~40/s here: a second of silence is the fault.)"""
    loop = asyncio.get_running_loop()
    async with (
        websockets.connect(f"{feed.ws_url}/ws/{TRADE}") as stalled,
        websockets.connect(f"{feed.ws_url}/ws/{DEPTH}") as other,
    ):
        await stalled.recv()
        await other.recv()
        fault = await control(
            feed, "POST", "/faults", {"kind": "stall", "stream": TRADE, "duration_ms": 1500}
        )
        # the stall began before this answer came back: a silence counts from here, so one
        # that starts the window (nothing was left in the socket) is seen too
        arrivals: list[float] = [loop.time()]
        other_arrivals: list[float] = []

        async def read(ws: websockets.ClientConnection, into: list[float]) -> None:
            while True:
                await ws.recv()
                into.append(loop.time())

        readers = [
            asyncio.create_task(read(stalled, arrivals)),
            asyncio.create_task(read(other, other_arrivals)),
        ]
        await asyncio.wait(readers, timeout=3.0)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        other_during = len(other_arrivals)
        silences = [b - a for a, b in itertools.pairwise(arrivals)]
        assert max(silences) >= 1.0, "the trade stream fell silent"
        assert len(arrivals) > 1 + silences.index(max(silences)) + 1, "and resumed afterwards"
        assert other_during > 10
        logged = next(
            f for f in (await control(feed, "GET", "/faults"))["faults"] if f["id"] == fault["id"]
        )
        assert logged["end_ns"] - logged["start_ns"] == pytest.approx(1.5e9, rel=0.01)


async def test_duplicate_sends_each_message_twice(feed: ReplayProcess) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws/{TRADE}") as ws:
        await ws.recv()
        await control(feed, "POST", "/faults", {"kind": "duplicate", "stream": TRADE, "count": 2})
        got = [json.loads(m)["t"] for m in await frames(ws, 10)]
        doubled = sorted(t for t in set(got) if got.count(t) == 2)
        assert len(doubled) == 2, got
        assert all(got[got.index(t) + 1] == t for t in doubled), "each copy follows its original"
        assert all(got.count(t) <= 2 for t in got)


async def test_reorder_swaps_consecutive_messages(feed: ReplayProcess) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws/{TRADE}") as ws:
        await ws.recv()
        await control(
            feed, "POST", "/faults", {"kind": "reorder", "stream": TRADE, "duration_ms": 3000}
        )
        ids = [json.loads(m)["t"] for m in await frames(ws, 8)]
        assert any(later < earlier for earlier, later in itertools.pairwise(ids))
        assert len(set(ids)) == len(ids), "nothing doubled"
        missing = set(range(min(ids), max(ids) + 1)) - set(ids)
        assert len(missing) <= 1, "nothing lost (at most one message is still held back)"


async def test_malformed_inserts_invalid_json_before_the_real_message(feed: ReplayProcess) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws/{TRADE}") as ws:
        await ws.recv()
        await control(feed, "POST", "/faults", {"kind": "malformed", "stream": TRADE, "count": 1})
        received = await frames(ws, 8)

        def parses(frame: str) -> bool:
            try:
                json.loads(frame)
            except json.JSONDecodeError:
                return False
            return True

        broken = [i for i, frame in enumerate(received) if not parses(frame)]
        assert len(broken) == 1, "exactly one malformed frame for count=1"
        bad, good = received[broken[0]], received[broken[0] + 1]
        assert json.loads(good)["e"] == "trade"
        assert good.startswith(bad), "a truncated copy of the message that follows it"


async def test_drop_cuts_the_connection_without_a_close_frame(feed: ReplayProcess) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws/{TRADE}") as ws:
        await ws.recv()
        cid = await client_id(feed, TRADE)
        fault = await control(feed, "POST", "/faults", {"kind": "drop", "client": cid})
        assert fault["applied"] == 1
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as closed:
            await drain(ws)
        assert closed.value.rcvd is None, "no close frame: the link was cut"


async def test_slow_consumer_is_closed_with_1008(feed: ReplayProcess) -> None:
    async with websockets.connect(f"{feed.ws_url}/ws/{TRADE}") as ws:
        await ws.recv()
        await control(feed, "POST", "/faults", {"kind": "slow_consumer", "stream": TRADE})
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as closed:
            await drain(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"kind": "explode"}, "unknown fault kind"),
        ({"kind": "gap"}, "needs a positive count"),
        ({"kind": "stall", "duration_ms": -1}, "must be positive"),
        ({"kind": "stall", "duration_ms": 5, "when": "now"}, "unknown fields"),
    ],
)
async def test_bad_fault_requests_are_refused(
    feed: ReplayProcess, body: dict[str, Any], fragment: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{feed.control_url}/faults", json=body, headers=AUTH) as response,
    ):
        assert response.status == 400
        assert fragment in (await response.json())["error"]
