"""An account's order and trade history on the simulator, held to Binance's documentation.

GET /api/v3/allOrders: "If orderId is set, it will get orders >= that orderId. Otherwise most
recent orders are returned"; startTime and endTime bound the orders' time, at most 24 hours
apart (-1127); limit 500 by default, 1000 at most; oldest first. GET /api/v3/myTrades: the
same for trades with fromId as the cursor, or one order's trades (orderId), in the parameter
combinations Binance lists (any other is -1128). Recovery's adoption reads a journal's lost
tail back with both."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from replay.exchange.http11 import Headers, HttpRequest, Reply
from replay.server import ReplayServer, SimAccount, offline_venue

pytestmark = pytest.mark.unit

KEY, SECRET = "all-orders-key", "all-orders-secret"
OTHER_KEY = "someone-else"
T0_MS = 1_765_000_000_000
N = 1_205
"""More orders than one page of the largest limit."""


@pytest.fixture(scope="module")
def server(synth_recording: Path) -> ReplayServer:
    account = SimAccount(api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(10**9)})
    other = SimAccount(api_key=OTHER_KEY, api_secret="x", balances={"USDT": Decimal(10**9)})
    venue = offline_venue(synth_recording, account)
    venue.matching.add_account(other.api_key, other.balances)
    book = venue.market.book("BTCUSDT")
    assert book is not None and book.bids.best() is not None
    price = f"{book.bids.best()[0] * 0.9:.2f}"  # type: ignore[index]
    for n in range(N):
        # one order a second, and another account's in between: its orders are never listed
        key = OTHER_KEY if n % 7 == 3 else KEY
        order = venue.matching.place(
            key,
            symbol="BTCUSDT",
            side="BUY",
            order_type="LIMIT",
            quantity=Decimal("0.001"),
            quote_order_qty=None,
            price=Decimal(price),
            time_in_force="GTC",
            client_order_id=f"o{n}",
        )
        order.time_ms = T0_MS + n * 1000
    return venue


def call(server: ReplayServer, path: str = "/api/v3/allOrders", **params: Any) -> Any:
    raw = urlencode({"symbol": "BTCUSDT", **params, "timestamp": time.time_ns() // 1_000_000})
    signature = hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()
    headers = Headers()
    headers.add("X-MBX-APIKEY", KEY)
    request = HttpRequest(
        "GET", path, f"{raw}&signature={signature}", headers, b"", None, "1.1.1.1"
    )
    reply = server.api.handle(request)
    assert isinstance(reply, Reply)
    return reply.status, json.loads(reply.body)


def ours(server: ReplayServer) -> list[Any]:
    return [o for o in server.matching.orders.values() if o.api_key == KEY]


def ids(orders: list[dict[str, Any]]) -> list[int]:
    return [o["orderId"] for o in orders]


def test_without_order_id_or_start_time_the_most_recent_come_oldest_first(
    server: ReplayServer,
) -> None:
    mine = [o.order_id for o in ours(server)]
    status, body = call(server)
    assert status == 200
    assert ids(body) == mine[-500:]
    assert ids(call(server, limit=3)[1]) == mine[-3:]
    assert ids(call(server, limit=5000)[1]) == mine[-1000:]


def test_with_order_id_the_orders_from_that_id_on(server: ReplayServer) -> None:
    mine = [o.order_id for o in ours(server)]
    assert ids(call(server, orderId=mine[10], limit=4)[1]) == mine[10:14]
    assert ids(call(server, orderId=mine[10])[1]) == mine[10:510]
    assert call(server, orderId=mine[-1] + 10**6)[1] == []


def test_with_start_time_the_orders_placed_at_or_after_it_oldest_first(
    server: ReplayServer,
) -> None:
    orders = ours(server)
    since = orders[100].time_ms
    expected = [o.order_id for o in orders if o.time_ms >= since]
    assert ids(call(server, startTime=since, limit=10)[1]) == expected[:10]
    assert ids(call(server, startTime=since + 1, limit=1)[1]) == expected[1:2]
    assert ids(call(server, startTime=since)[1]) == expected[:500]


def test_end_time_bounds_from_above_and_alone_gives_the_most_recent_up_to_it(
    server: ReplayServer,
) -> None:
    orders = ours(server)
    start, end = orders[100].time_ms, orders[120].time_ms
    window = [o.order_id for o in orders if start <= o.time_ms <= end]
    assert ids(call(server, startTime=start, endTime=end)[1]) == window
    before = [o.order_id for o in orders if o.time_ms <= end]
    assert ids(call(server, endTime=end, limit=5)[1]) == before[-5:]


def test_order_id_and_a_time_window_together_narrow_each_other(server: ReplayServer) -> None:
    orders = ours(server)
    start, end = orders[100].time_ms, orders[120].time_ms
    from_id = orders[110].order_id
    expected = [o.order_id for o in orders if o.order_id >= from_id and start <= o.time_ms <= end]
    assert ids(call(server, orderId=from_id, startTime=start, endTime=end)[1]) == expected


def test_start_and_end_more_than_24_hours_apart_are_refused(server: ReplayServer) -> None:
    day = 86_400_000
    assert call(server, startTime=T0_MS, endTime=T0_MS + day)[0] == 200
    status, body = call(server, startTime=T0_MS, endTime=T0_MS + day + 1)
    assert status == 400
    assert body == {"code": -1127, "msg": "More than 24 hours between startTime and endTime."}


def test_paging_by_start_time_then_order_id_lists_every_order_once(server: ReplayServer) -> None:
    """What recovery does: the first page from startTime, then from the last orderId + 1."""
    orders = ours(server)
    since = orders[3].time_ms
    seen: list[int] = []
    page = call(server, startTime=since, limit=1000)[1]
    while True:
        seen += ids(page)
        if len(page) < 1000:
            break
        page = call(server, orderId=seen[-1] + 1, limit=1000)[1]
    assert seen == [o.order_id for o in orders if o.time_ms >= since]


# --- myTrades --------------------------------------------------------------------------------


TRADES = 1_100


@pytest.fixture(scope="module")
def traded(server: ReplayServer) -> list[Any]:
    """Our fills, one a second, made by the matching engine itself (a fill of each of our
    resting orders at its own price), and one of another account's in between."""
    before = len(server.matching.fills)
    mine = ours(server)[:TRADES]
    others = [o for o in server.matching.orders.values() if o.api_key == OTHER_KEY]
    for n, order in enumerate(mine):
        server.matching._fill(order, order.price, Decimal("0.0001"), is_maker=True)
        server.matching.fills[-1].time_ms = T0_MS + n * 1000
        if n % 9 == 4:
            server.matching._fill(
                others[n % len(others)], order.price, Decimal("0.0001"), is_maker=True
            )
    return [
        f
        for f in server.matching.fills[before:]
        if server.matching.orders[f.order_id].api_key == KEY
    ]


def trade_ids(trades: list[dict[str, Any]]) -> list[int]:
    return [t["id"] for t in trades]


def test_trades_without_cursor_are_the_most_recent_oldest_first(
    server: ReplayServer, traded: list[Any]
) -> None:
    everything = [f.trade_id for f in traded]
    status, body = call(server, "/api/v3/myTrades")
    assert status == 200
    assert trade_ids(body) == everything[-500:]
    assert trade_ids(call(server, "/api/v3/myTrades", limit=2)[1]) == everything[-2:]


def test_trades_from_an_id_from_a_time_and_of_one_order(
    server: ReplayServer, traded: list[Any]
) -> None:
    everything = [f.trade_id for f in traded]
    assert (
        trade_ids(call(server, "/api/v3/myTrades", fromId=everything[7], limit=3)[1])
        == (everything[7:10])
    )
    since = traded[20].time_ms
    expected = [f.trade_id for f in traded if f.time_ms >= since]
    assert trade_ids(call(server, "/api/v3/myTrades", startTime=since)[1]) == expected[:500]
    until = traded[30].time_ms
    window = [f.trade_id for f in traded if since <= f.time_ms <= until]
    assert trade_ids(call(server, "/api/v3/myTrades", startTime=since, endTime=until)[1]) == window
    upto = [f.trade_id for f in traded if f.time_ms <= until]
    assert trade_ids(call(server, "/api/v3/myTrades", endTime=until, limit=4)[1]) == upto[-4:]
    one = traded[5]
    of_order = call(server, "/api/v3/myTrades", orderId=one.order_id)[1]
    assert {t["orderId"] for t in of_order} == {one.order_id}
    assert call(server, "/api/v3/myTrades", orderId=one.order_id, fromId=one.trade_id + 1)[1] == []


@pytest.mark.parametrize(
    "params",
    [
        {"fromId": 1, "startTime": T0_MS},
        {"fromId": 1, "endTime": T0_MS},
        {"orderId": 1, "startTime": T0_MS},
        {"orderId": 1, "endTime": T0_MS},
    ],
)
def test_trade_queries_binance_does_not_list_are_refused(
    server: ReplayServer, params: dict[str, int]
) -> None:
    status, body = call(server, "/api/v3/myTrades", **params)
    assert status == 400
    assert body == {"code": -1128, "msg": "Combination of optional parameters invalid."}


def test_trade_windows_over_24_hours_are_refused(server: ReplayServer) -> None:
    status, body = call(server, "/api/v3/myTrades", startTime=T0_MS, endTime=T0_MS + 86_400_001)
    assert (status, body["code"]) == (400, -1127)


def test_paging_trades_by_start_time_then_from_id_lists_every_trade_once(
    server: ReplayServer, traded: list[Any]
) -> None:
    since = traded[2].time_ms
    seen: list[int] = []
    page = call(server, "/api/v3/myTrades", startTime=since, limit=1000)[1]
    while True:
        seen += trade_ids(page)
        if len(page) < 1000:
            break
        page = call(server, "/api/v3/myTrades", fromId=seen[-1] + 1, limit=1000)[1]
    assert seen == [f.trade_id for f in traded if f.time_ms >= since]
