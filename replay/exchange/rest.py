"""Binance spot REST on aiohttp: the subset our engine and ccxt use, with Binance's errors.

Public: ping, time, exchangeInfo, depth. Signed (HMAC-SHA256): order (POST/GET/DELETE),
openOrders, allOrders, myTrades, account. Every response carries X-MBX-USED-WEIGHT-1M.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from aiohttp import web

from engine.core.book import OrderBook
from replay.exchange import errors
from replay.exchange.auth import verify
from replay.exchange.errors import BinanceError
from replay.exchange.formats import (
    account_json,
    cancel_json,
    new_order_json,
    order_json,
    trade_json,
)
from replay.exchange.matching import MatchingEngine
from replay.exchange.symbols import ExchangeInfo

_CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
WEIGHTS = {
    "ping": 1,
    "time": 1,
    "exchangeInfo": 20,
    "order": 1,
    "openOrders": 6,
    "allOrders": 20,
    "myTrades": 20,
    "account": 20,
}


class MarketView(Protocol):
    def book(self, symbol: str) -> OrderBook | None: ...

    async def wait_book(self, symbol: str, timeout_s: float) -> OrderBook | None: ...


def depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class WeightMeter:
    """Request weight used per client IP in the current minute (reported as Binance does)."""

    def __init__(self) -> None:
        self._used: dict[str, deque[tuple[float, int]]] = {}

    def add(self, ip: str, weight: int, now_s: float) -> int:
        window = self._used.setdefault(ip, deque())
        minute = now_s - now_s % 60
        while window and window[0][0] < minute:
            window.popleft()
        window.append((now_s, weight))
        return sum(w for _, w in window)


def _decimal(params: dict[str, str], name: str, *, required: bool) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise errors.mandatory(name)
        return None
    if not _DECIMAL.match(raw):
        raise errors.illegal(name)
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise errors.illegal(name) from None


def _int(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise errors.illegal(name)
    return int(raw)


class SimulatorApi:
    def __init__(
        self,
        *,
        matching: MatchingEngine,
        exchange_info: ExchangeInfo,
        market: MarketView,
        secrets_by_key: dict[str, str],
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.matching = matching
        self.info = exchange_info
        self.market = market
        self.secrets = secrets_by_key
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.weights = WeightMeter()
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        routes = [
            ("GET", "/api/v3/ping", self.ping),
            ("GET", "/api/v3/time", self.time),
            ("GET", "/api/v3/exchangeInfo", self.exchange_info),
            ("GET", "/api/v3/depth", self.depth),
            ("POST", "/api/v3/order", self.new_order),
            ("GET", "/api/v3/order", self.query_order),
            ("DELETE", "/api/v3/order", self.cancel_order),
            ("GET", "/api/v3/openOrders", self.open_orders),
            ("GET", "/api/v3/allOrders", self.all_orders),
            ("GET", "/api/v3/myTrades", self.my_trades),
            ("GET", "/api/v3/account", self.account),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        return app

    # --- plumbing -----------------------------------------------------------------------------

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests += 1
        name = request.path.rsplit("/", 1)[-1]
        weight = WEIGHTS.get(name, 1)
        if name == "depth":
            weight = depth_weight(
                int(request.query.get("limit", "100") or 100)
                if request.query.get("limit", "100").isdigit()
                else 100
            )
        used = self.weights.add(request.remote or "?", weight, time.monotonic())
        try:
            response = await handler(request)
        except BinanceError as exc:
            response = web.json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            if exc.status == 404:
                response = web.json_response(
                    {"code": -1000, "msg": "Unknown endpoint."}, status=404
                )
            elif exc.status == 405:
                response = web.json_response(
                    {"code": -1000, "msg": "Method not allowed."}, status=405
                )
            else:
                raise
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        return response

    async def _signed(self, request: web.Request) -> dict[str, str]:
        body = ""
        if request.method in ("POST", "PUT", "DELETE") and request.can_read_body:
            body = (await request.read()).decode("utf-8", "replace")
        return verify(
            query=request.query_string,
            body=body,
            secrets_by_key=self.secrets,
            api_key=request.headers.get("X-MBX-APIKEY"),
            now_ms=self.clock_ms(),
        )

    def _symbol(self, params: dict[str, str] | Any, *, required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise errors.mandatory("symbol")
            return None
        symbol = symbol.upper()
        self.matching.rules_for(symbol)
        return symbol

    # --- public -------------------------------------------------------------------------------

    async def ping(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def time(self, _: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.clock_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        only = None
        if "symbol" in request.query:
            only = [self._symbol(request.query) or ""]
        return web.json_response(self.info.response(self.clock_ms(), only))

    async def depth(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request.query) or ""
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit():
            raise errors.illegal("limit")
        limit = min(int(raw_limit), 5000)
        if limit not in _DEPTH_LIMITS:
            limit = next((x for x in _DEPTH_LIMITS if x >= limit), 5000)
        book = await self.market.wait_book(symbol, timeout_s=2.0)
        if book is None:
            raise BinanceError(
                -1001, "Internal error; unable to process your request. Please try again.", 503
            )
        return web.json_response(
            {
                "lastUpdateId": book.update_id,
                "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in book.bids.top(limit)],
                "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in book.asks.top(limit)],
            }
        )

    # --- signed -------------------------------------------------------------------------------

    async def new_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        symbol = self._symbol(params) or ""
        side = params.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            raise errors.mandatory("side") if not side else BinanceError(-1117, "Invalid side.")
        order_type = params.get("type", "").upper()
        if order_type not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise (
                errors.mandatory("type")
                if not order_type
                else BinanceError(-1116, "Invalid orderType.")
            )
        client_id = params.get("newClientOrderId") or f"sim-{self.matching._next_order_id}"
        if not _CLIENT_ID.match(client_id):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId';"
                " legal range is '^[a-zA-Z0-9-_]{1,36}$'.",
            )
        resp_type = params.get("newOrderRespType", "FULL").upper()
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(-1177, "Invalid newOrderRespType.")
        quantity = _decimal(params, "quantity", required=False)
        quote_qty = _decimal(params, "quoteOrderQty", required=False)
        price = _decimal(params, "price", required=order_type != "MARKET")
        tif = params.get("timeInForce")
        if order_type == "LIMIT" and not tif:
            raise errors.mandatory("timeInForce")
        if order_type != "MARKET" and quantity is None:
            raise errors.mandatory("quantity")
        if order_type == "MARKET" and quantity is None and quote_qty is None:
            raise BinanceError(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
            )
        order = self.matching.place(
            request.headers["X-MBX-APIKEY"],
            symbol=symbol,
            side=side,
            order_type=order_type,
            quantity=quantity,
            quote_order_qty=quote_qty,
            price=price,
            time_in_force=tif,
            client_order_id=client_id,
        )
        return web.json_response(new_order_json(order, resp_type))

    def _order_ref(self, params: dict[str, str]) -> tuple[int | None, str | None]:
        order_id = _int(params, "orderId")
        client_id = params.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        return order_id, client_id

    async def query_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        symbol = self._symbol(params) or ""
        order_id, client_id = self._order_ref(params)
        order = self.matching.query(
            request.headers["X-MBX-APIKEY"], symbol, order_id=order_id, client_order_id=client_id
        )
        return web.json_response(order_json(order))

    async def cancel_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        symbol = self._symbol(params) or ""
        order_id, client_id = self._order_ref(params)
        order = self.matching.cancel(
            request.headers["X-MBX-APIKEY"], symbol, order_id=order_id, client_order_id=client_id
        )
        return web.json_response(cancel_json(order, client_id))

    async def open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        symbol = self._symbol(params, required=False)
        orders = self.matching.open_orders(request.headers["X-MBX-APIKEY"], symbol)
        return web.json_response([order_json(o) for o in orders])

    async def all_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        symbol = self._symbol(params) or ""
        key = request.headers["X-MBX-APIKEY"]
        limit = min(_int(params, "limit") or 500, 1000)
        from_id = _int(params, "orderId")
        orders = [
            o
            for o in self.matching.orders.values()
            if o.api_key == key
            and o.symbol == symbol
            and (from_id is None or o.order_id >= from_id)
        ]
        return web.json_response([order_json(o) for o in orders[:limit]])

    async def my_trades(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        symbol = self._symbol(params) or ""
        key = request.headers["X-MBX-APIKEY"]
        order_id = _int(params, "orderId")
        from_id = _int(params, "fromId")
        limit = min(_int(params, "limit") or 500, 1000)
        fills = [
            f
            for f in self.matching.fills
            if f.symbol == symbol
            and self.matching.orders[f.order_id].api_key == key
            and (order_id is None or f.order_id == order_id)
            and (from_id is None or f.trade_id >= from_id)
        ]
        return web.json_response([trade_json(f) for f in fills[:limit]])

    async def account(self, request: web.Request) -> web.Response:
        await self._signed(request)
        account = self.matching.accounts[request.headers["X-MBX-APIKEY"]]
        return web.json_response(
            account_json(
                account,
                maker_fee=self.matching.maker_fee,
                taker_fee=self.matching.taker_fee,
                now_ms=self.clock_ms(),
            )
        )
