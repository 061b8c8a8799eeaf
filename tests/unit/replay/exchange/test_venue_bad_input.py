"""Whatever a client sends to the simulator's REST API, correctly signed or not, the answer is
Binance's: a 2xx or a 4xx with a code and a message, never a 500 from a bug in the venue."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay.exchange.http11 import Headers, HttpRequest, Reply
from replay.exchange.wsapi import _Outbox, signature_payload
from replay.server import ReplayServer, SimAccount, offline_venue

KEY, SECRET = "fuzz-key", "fuzz-secret"
ROUTES = [
    ("GET", "/api/v3/ping"),
    ("GET", "/api/v3/time"),
    ("GET", "/api/v3/exchangeInfo"),
    ("GET", "/api/v3/depth"),
    ("POST", "/api/v3/order"),
    ("GET", "/api/v3/order"),
    ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/openOrders"),
    ("GET", "/api/v3/allOrders"),
    ("GET", "/api/v3/myTrades"),
    ("GET", "/api/v3/account"),
    ("POST", "/api/v3/userDataStream"),
    ("PUT", "/api/v3/userDataStream"),
    ("DELETE", "/api/v3/userDataStream"),
]
NAMES = [
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "quoteOrderQty",
    "price",
    "newClientOrderId",
    "newOrderRespType",
    "orderId",
    "origClientOrderId",
    "limit",
    "fromId",
    "startTime",
    "endTime",
    "recvWindow",
    "listenKey",
]
ODD_VALUES = [
    "",
    "BTCUSDT",
    "btcusdt",
    "ETHUSDT",
    "BUY",
    "SELL",
    "LIMIT",
    "MARKET",
    "LIMIT_MAKER",
    "GTC",
    "IOC",
    "FOK",
    "ACK",
    "RESULT",
    "FULL",
    "0",
    "1",
    "-1",
    "0.001",
    "1e5",
    "NaN",
    "Infinity",
    "00000000000000000000.00000000000000000001",
    "9" * 40,
    "9" * 5000,  # int() refuses 4,300 digits and more with a ValueError
    "\u00b2",
    "\u0661",
    "a" * 40,
    "x y",
    "\x00",
]
VALUE = st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=12))


@pytest.fixture(scope="module")
def server(synth_recording: Path) -> ReplayServer:
    account = SimAccount(api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(10**9)})
    return offline_venue(synth_recording, account)


def _request(
    route: tuple[str, str], params: dict[str, str], sign: bool, in_body: bool
) -> HttpRequest:
    raw = "&".join(f"{quote(name)}={quote(value)}" for name, value in params.items())
    if sign:
        raw = (
            f"{raw}&timestamp={time.time_ns() // 1_000_000}"
            if raw
            else f"timestamp={time.time_ns() // 1_000_000}"
        )
        signature = hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()
        raw = f"{raw}&signature={signature}"
    headers = Headers()
    headers.add("X-MBX-APIKEY", KEY)
    method, path = route
    if in_body and method != "GET":
        return HttpRequest(method, path, "", headers, raw.encode(), None, "127.0.0.1")
    return HttpRequest(method, path, raw, headers, b"", None, "127.0.0.1")


@settings(max_examples=600, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    params=st.dictionaries(st.sampled_from(NAMES), VALUE, max_size=8),
    sign=st.booleans(),
    in_body=st.booleans(),
)
def test_any_request_gets_binances_answer_never_a_500(
    server: ReplayServer,
    route: tuple[str, str],
    params: dict[str, str],
    sign: bool,
    in_body: bool,
) -> None:
    reply = server.api.handle(_request(route, params, sign, in_body))
    if not isinstance(reply, Reply):  # depth before a book is known: not the case here
        pytest.fail(f"{route} waited")
    assert reply.status < 500, reply.body
    if reply.status >= 400:
        error = json.loads(reply.body)
        assert isinstance(error["code"], int) and error["code"] < 0 and error["msg"]


def _base(route: tuple[str, str], server: ReplayServer, n: int) -> dict[str, str]:
    """A request that is right, for one field of it to be spoiled."""
    book = server.market.book("BTCUSDT")
    assert book is not None and book.bids.best() is not None
    price = f"{book.bids.best()[0] * 0.95:.2f}"  # type: ignore[index]
    if route == ("POST", "/api/v3/order"):
        return {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.001",
            "price": price,
            "newClientOrderId": f"base-{n}",
        }
    if route[1] == "/api/v3/order":
        return {"symbol": "BTCUSDT", "origClientOrderId": f"base-{n}"}
    if route[1] in ("/api/v3/depth", "/api/v3/allOrders", "/api/v3/myTrades"):
        return {"symbol": "BTCUSDT", "limit": "5"}
    if route[1] == "/api/v3/openOrders":
        return {"symbol": "BTCUSDT"}
    return {}


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_each_field_spoiled_in_each_odd_way_is_refused_with_binances_codes(
    server: ReplayServer, route: tuple[str, str]
) -> None:
    n = 0
    for name in NAMES:
        for value in ODD_VALUES:
            n += 1
            params = {**_base(route, server, n), name: value}
            for in_body in (False, True):
                reply = server.api.handle(_request(route, params, True, in_body))
                assert isinstance(reply, Reply), f"{route} waited"
                assert reply.status < 500, (name, value, in_body, reply.body)


WS_METHODS = [
    "ping",
    "time",
    "userDataStream.subscribe.signature",
    "userDataStream.unsubscribe",
    "order.place",
    "order.cancel",
    "order.status",
    "no.such.method",
]
WS_ODD_VALUES: list[object] = [
    *ODD_VALUES,
    0,
    -1,
    10**30,
    1.5,
    float("inf"),
    True,
    None,
    [1],
    {"a": 1},
]


def _ws_request(method: str, params: dict[str, object]) -> str:
    signed = {**params, "apiKey": KEY, "timestamp": time.time_ns() // 1_000_000}
    payload = signature_payload(signed)
    signed["signature"] = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return json.dumps({"id": "f", "method": method, "params": signed})


def test_websocket_api_answers_every_spoiled_field_with_binances_codes(
    server: ReplayServer,
) -> None:
    outbox = _Outbox(None)  # type: ignore[arg-type]  # only queued into, never sent here
    subscriptions: set[int] = set()
    n = 0
    for method in WS_METHODS:
        for name in [*NAMES, "subscriptionId", "timestamp", "apiKey", "signature"]:
            for value in WS_ODD_VALUES:
                n += 1
                base: dict[str, object] = {
                    **_base(("POST", "/api/v3/order"), server, n),
                    "newClientOrderId": f"ws-{n}",
                }
                raw = _ws_request(method, base)
                spoiled = json.loads(raw)
                spoiled["params"][name] = value
                reply = server.private.handle(
                    json.dumps(spoiled), "127.0.0.1", outbox, subscriptions
                )
                assert reply["id"] == "f"
                assert reply["status"] < 500, (method, name, value, reply)
    for garbage in [b"", b"\xff", b"[]", b"null", b"{", b'{"method": 1}', b'{"params": []}']:
        reply = server.private.handle(garbage, "127.0.0.1", outbox, subscriptions)
        assert 400 <= reply["status"] < 500, (garbage, reply)
