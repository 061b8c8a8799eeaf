"""The replay's WebSocket port, probed as an attacker would: the feed (Binance's streams) and the
WebSocket API. Binance's rules bound what one connection may do (5 incoming messages a second on
a stream, 1024 streams, short names; request weight and bans on the API), bad requests get the
protocol's own errors, and memory goes when the connections do."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.adversarial.probes import bounded_venue, json_values, ping_ok, rss_mib, settled_rss_mib
from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess

pytestmark = pytest.mark.adversarial


@pytest.fixture(scope="module")
def venue(
    tmp_path_factory: pytest.TempPathFactory, synth_recording: Path
) -> Iterator[ReplayProcess]:
    with bounded_venue(
        tmp_path_factory.mktemp("ws"), synth_recording, "--weight-per-minute", "100000000"
    ) as sim:
        yield sim


def _signed_params(params: dict[str, Any]) -> dict[str, Any]:
    params = {"apiKey": SIM_KEY, "timestamp": time.time_ns() // 1_000_000, **params}
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    params["signature"] = hmac.new(
        SIM_SECRET.encode(), payload.encode(), hashlib.sha256
    ).hexdigest()
    return params


async def _call(ws: Any, message: str | dict[str, Any]) -> dict[str, Any]:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return reply


# --- the WebSocket API ---------------------------------------------------------------------


async def test_a_5000_digit_timestamp_is_illegal_on_the_websocket_api(venue: ReplayProcess) -> None:
    async with websockets.connect(f"{venue.ws_url}/ws-api/v3") as ws:
        params = _signed_params({"symbol": "BTCUSDT", "timestamp": "9" * 5000})
        reply = await _call(ws, {"id": 1, "method": "order.status", "params": params})
        assert reply["status"] == 400 and reply["error"]["code"] == -1100, reply
        params = _signed_params({"symbol": "BTCUSDT", "recvWindow": "5" * 5000})
        reply = await _call(ws, {"id": 2, "method": "order.status", "params": params})
        assert reply["status"] == 400 and reply["error"]["code"] == -1100, reply
        assert (await _call(ws, {"id": 3, "method": "ping"}))["status"] == 200


async def test_a_parameter_sent_twice_on_the_websocket_api_is_refused(venue: ReplayProcess) -> None:
    async with websockets.connect(f"{venue.ws_url}/ws-api/v3") as ws:
        raw = '{"id":7,"method":"order.status","params":{"symbol":"BTCUSDT","symbol":"ETHUSDT"}}'
        reply = await _call(ws, raw)
        assert reply["id"] == 7 and reply["status"] == 400
        assert reply["error"] == {
            "code": -1101,
            "msg": "Duplicate values for a parameter detected.",
        }
        many = {f"p{i}": 1 for i in range(100)}
        reply = await _call(ws, {"id": 8, "method": "ping", "params": many})
        assert reply["error"]["code"] == -1101


async def test_a_flood_on_the_websocket_api_is_throttled_then_banned_and_disconnected(
    tmp_path: Path, synth_recording: Path
) -> None:
    """Binance's WebSocket API: requests spend the IP's request weight; past it 429, and a client
    that keeps sending is banned (418) and disconnected. 20,000 pings were all answered."""
    with bounded_venue(tmp_path, synth_recording, "--weight-per-minute", "200") as sim:
        answered: list[int] = []

        async def read(ws: Any) -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    answered.append(json.loads(message)["status"])

        async with websockets.connect(f"{sim.ws_url}/ws-api/v3") as ws:
            reader = asyncio.create_task(read(ws))
            with pytest.raises(ConnectionClosed) as closed:
                await _flood(ws, 20_000)
            await asyncio.wait_for(reader, 5)
        statuses = set(answered)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert 418 in statuses and 429 in statuses
        assert len(answered) < 1000, f"{len(answered)} requests answered after the limit"


async def _flood(ws: Any, count: int) -> None:
    for n in range(count):
        await ws.send(json.dumps({"id": n, "method": "ping"}))
        if n % 20 == 0:
            await asyncio.sleep(0)


# --- the feed -----------------------------------------------------------------------------------


async def test_a_client_sending_more_than_5_messages_a_second_is_disconnected(
    venue: ReplayProcess,
) -> None:
    """Binance's streams: more than 5 incoming messages a second and the connection goes."""
    async with websockets.connect(f"{venue.ws_url}/ws") as ws:
        for n in range(5):
            reply = await _call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": n})
            assert reply == {"result": [], "id": n}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "Too many requests")


async def test_a_client_within_5_messages_a_second_keeps_its_connection(
    venue: ReplayProcess,
) -> None:
    async with websockets.connect(f"{venue.ws_url}/ws") as ws:
        for n in range(12):
            reply = await _call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": n})
            assert reply["id"] == n
            await asyncio.sleep(0.21)


async def test_long_stream_names_and_too_many_streams_are_refused_and_memory_stays_bounded(
    venue: ReplayProcess,
) -> None:
    """1,024 subscriptions with 64 KB names once took 130 MiB per connection and kept 190 MiB
    after it closed. Names are at most 64 characters and a connection at most 1024 streams."""
    before = rss_mib(venue.pid)
    clients = []
    try:
        for _ in range(4):
            ws = await websockets.connect(f"{venue.ws_url}/ws", max_size=None)
            clients.append(ws)
            reply = await _call(ws, {"method": "SUBSCRIBE", "params": ["x" * 60_000], "id": 1})
            assert reply["error"]["code"] == 2 and "64" in reply["error"]["msg"]
            names = [f"s{n:05d}@trade" for n in range(1024)]
            reply = await _call(ws, {"method": "SUBSCRIBE", "params": names, "id": 2})
            assert reply == {"result": None, "id": 2}
            reply = await _call(ws, {"method": "SUBSCRIBE", "params": ["one@more"], "id": 3})
            assert reply["error"]["code"] == 2, reply
            await asyncio.sleep(1.1)  # within 5 messages a second
        held = rss_mib(venue.pid)
    finally:
        for ws in clients:
            await ws.close()
    assert held - before < 20, f"RSS grew {held - before:.1f} MiB for four full connections"
    after = await asyncio.to_thread(settled_rss_mib, venue.pid, above_mib=before + 10)
    assert after - before < 10
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{venue.ws_url}/ws/{'y' * 200}"):
            pass
    assert refused.value.response.status_code == 400


async def test_connections_over_the_cap_are_refused_at_the_handshake(venue: ReplayProcess) -> None:
    clients = []
    statuses: list[int] = []
    try:
        for _ in range(70):  # the test venue's cap is 64
            try:
                clients.append(await websockets.connect(f"{venue.ws_url}/ws"))
            except InvalidStatus as exc:
                statuses.append(exc.response.status_code)
    finally:
        for ws in clients:
            await ws.close()
    assert len(statuses) >= 6 and set(statuses) == {503} and len(clients) <= 64
    async with websockets.connect(f"{venue.ws_url}/ws") as ws:  # room again once they left
        assert (await _call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}))["id"] == 1


# --- grammar fuzz -------------------------------------------------------------------------------

_JSON = json_values(["9" * 5000, "BTCUSDT", "BUY", "LIMIT", ""], key_size=5, allow_nan=False)
_PARAM_NAMES = st.sampled_from(
    [
        "symbol",
        "side",
        "type",
        "quantity",
        "price",
        "timeInForce",
        "newClientOrderId",
        "orderId",
        "origClientOrderId",
        "subscriptionId",
        "recvWindow",
        "timestamp",
        "apiKey",
        "signature",
    ]
) | st.text(max_size=5)
_API_METHODS = (
    st.sampled_from(
        [
            "ping",
            "time",
            "order.place",
            "order.cancel",
            "order.status",
            "userDataStream.subscribe.signature",
            "userDataStream.unsubscribe",
            "nope",
        ]
    )
    | _JSON
)


@st.composite
def _api_requests(draw: st.DrawFn) -> str:
    params = draw(st.dictionaries(_PARAM_NAMES, _JSON, max_size=6))
    if draw(st.booleans()):
        params = _signed_params({k: v for k, v in params.items() if isinstance(v, str | int)})
    message: Any = {"id": draw(_JSON), "method": draw(_API_METHODS), "params": params}
    shape = draw(st.sampled_from(["object", "object", "garbage", "json"]))
    if shape == "garbage":
        return draw(st.text(max_size=40))
    if shape == "json":
        message = draw(_JSON)
    return json.dumps(message)


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(_api_requests(), min_size=1, max_size=4))
def test_any_websocket_api_request_gets_binances_answer_never_a_500(
    venue: ReplayProcess, messages: list[str]
) -> None:
    async def run() -> None:
        async with websockets.connect(f"{venue.ws_url}/ws-api/v3") as ws:
            for message in messages:
                reply = await _call(ws, message)
                assert reply["status"] < 500, (message[:300], reply)
                if reply["status"] != 200:
                    error = reply["error"]
                    assert isinstance(error["code"], int) and error["msg"], reply
            assert (await _call(ws, {"id": "after", "method": "ping"}))["status"] == 200

    asyncio.run(run())


_FEED_METHODS = (
    st.sampled_from(
        ["SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY", "X"]
    )
    | _JSON
)


@st.composite
def _feed_requests(draw: st.DrawFn) -> str:
    message = {
        "method": draw(_FEED_METHODS),
        "params": draw(
            st.lists(st.sampled_from(["btcusdt@trade", "combined", "x" * 70]) | _JSON, max_size=3)
            | _JSON
        ),
        "id": draw(st.integers(min_value=-2, max_value=2**70) | _JSON),
    }
    shape = draw(st.sampled_from(["object", "object", "garbage", "json"]))
    if shape == "garbage":
        return draw(st.text(max_size=40))
    if shape == "json":
        return json.dumps(draw(_JSON))
    return json.dumps(message)


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(_feed_requests(), min_size=1, max_size=4))
def test_any_feed_request_gets_a_protocol_answer_and_the_connection_serves_on(
    venue: ReplayProcess, messages: list[str]
) -> None:
    async def run() -> None:
        async with websockets.connect(f"{venue.ws_url}/ws") as ws:
            for message in messages:  # at most 5 messages: within Binance's rate
                await ws.send(message)
                while True:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if "result" in reply or "error" in reply:
                        break  # a market message for a subscription made above: skip it
                if "error" in reply:
                    assert isinstance(reply["error"]["code"], int) and reply["error"]["msg"]
        assert ping_ok(venue.rest_port)

    asyncio.run(run())
