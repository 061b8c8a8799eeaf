"""Binance spot REST on our small HTTP/1.1 server (`http11`): the subset our engine and ccxt
use, with Binance's errors, rate limits and the venue faults Toxiproxy cannot produce.

Public: ping, time, exchangeInfo, depth. Signed (HMAC-SHA256): order (POST/GET/DELETE),
openOrders, allOrders, myTrades, account. API key only: userDataStream (POST/PUT/DELETE, the
listen-key user data stream). Every response carries X-MBX-USED-WEIGHT-1M; order responses
carry X-MBX-ORDER-COUNT-10S and -1D.

Order of checks for each request: venue-fault latency, maintenance and bans (the venue is not
serving), rate limits (429 / 418 with Retry-After), the other venue faults, then the request.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import msgspec

from replay.book import OrderBook
from replay.exchange import errors
from replay.exchange.auth import ascii_digits, parse_params, verify
from replay.exchange.errors import BinanceError
from replay.exchange.formats import (
    account_json,
    cancel_json,
    new_order_json,
    order_json,
    trade_json,
)
from replay.exchange.http11 import Handler, HttpRequest, Reply
from replay.exchange.ledger import InFlight, RefusalLog
from replay.exchange.matching import MatchingEngine
from replay.exchange.symbols import ExchangeInfo
from replay.exchange.userdata import UserDataHub
from replay.exchange.venue_faults import Plan, VenueFaultBook
from replay.exchange.venue_limits import RateLimiter, RateLimits, Verdict
from replay.mark_price import MarkPrice
from replay.market_kind import MarketKind

try:
    from replay.exchange import _signed
except ImportError:  # pragma: no cover - the build step installs it (scripts/bootstrap.sh)
    _signed = None  # type: ignore[assignment]

_CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
WEIGHTS = {  # Binance spot request weights
    ("GET", "ping"): 1,
    ("GET", "time"): 1,
    ("GET", "exchangeInfo"): 20,
    ("POST", "order"): 1,
    ("GET", "order"): 4,
    ("DELETE", "order"): 1,
    ("GET", "openOrders"): 6,
    ("GET", "allOrders"): 20,
    ("GET", "myTrades"): 20,
    ("GET", "account"): 20,
    ("POST", "userDataStream"): 2,
    ("PUT", "userDataStream"): 2,
    ("DELETE", "userDataStream"): 2,
}
FUTURES_WEIGHTS = {  # Binance USD-M / COIN-M request weights of the endpoints served
    ("GET", "ping"): 1,
    ("GET", "time"): 1,
    ("GET", "exchangeInfo"): 1,
    ("GET", "premiumIndex"): 1,
    ("POST", "order"): 0,
    ("GET", "order"): 1,
    ("DELETE", "order"): 1,
    ("GET", "openOrders"): 1,
    ("GET", "allOrders"): 5,
    ("GET", "userTrades"): 5,
    ("GET", "account"): 5,
    ("GET", "balance"): 5,
    ("GET", "positionRisk"): 5,
    ("GET", "leverageBracket"): 1,
    ("GET", "income"): 30,
}


class MarketView(Protocol):
    def book(self, symbol: str) -> OrderBook | None: ...

    async def wait_book(self, symbol: str, timeout_s: float) -> OrderBook | None: ...


def depth_weight(limit: int) -> int:
    return MarketKind.SPOT.depth_weight(limit)


def request_weight(
    method: str, path: str, query: Callable[[], Any], kind: MarketKind | None = None
) -> int:
    """Binance's weight of a request (`kind` None: spot); `query` gives its parameters, read
    only where the weight depends on them (parsing every request's query string would cost more
    than the lookup)."""
    name = path.rsplit("/", 1)[-1]
    if name == "depth":
        market = kind or MarketKind.SPOT
        default = market.default_depth_limit
        raw = query().get("limit", str(default))
        return market.depth_weight(int(raw) if ascii_digits(raw) else default)
    if kind is not None:
        if name == "premiumIndex" and not query().get("symbol"):
            return 10
        if name == "openOrders" and not query().get("symbol"):
            return 40
        return FUTURES_WEIGHTS.get((method, name), 1)
    if name == "openOrders" and not query().get("symbol"):
        return 80
    return WEIGHTS.get((method, name), 1)


_encode = msgspec.json.Encoder().encode


_DAY_MS = 86_400_000
_TRADE_QUERIES = frozenset(
    frozenset(names)
    for names in (
        (),
        ("orderId",),
        ("startTime",),
        ("endTime",),
        ("fromId",),
        ("startTime", "endTime"),
        ("orderId", "fromId"),
    )
)
"""The parameter combinations Binance documents for GET /api/v3/myTrades."""


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(_encode(data), status=status, headers=headers)


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
    if not ascii_digits(raw):
        raise errors.illegal(name)
    return int(raw)


def new_order_args(params: dict[str, str], matching: MatchingEngine) -> dict[str, Any]:
    """Validate new-order parameters as Binance does (REST and WebSocket API alike). The
    compiled accepting path answers an order whose every field is plainly right; any other goes
    to new_order_args_py, the definition, which also words every refusal."""
    if _signed is not None:
        args = _signed.order_args(params, matching.rules, Decimal)
        if args is not None:
            return args
    return new_order_args_py(params, matching)


def new_order_args_py(params: dict[str, str], matching: MatchingEngine) -> dict[str, Any]:
    symbol = params.get("symbol", "").upper()
    if not symbol:
        raise errors.mandatory("symbol")
    matching.rules_for(symbol)
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
    client_id = params.get("newClientOrderId") or f"sim-{matching._next_order_id}"
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
    return {
        "symbol": symbol,
        "side": side,
        "order_type": order_type,
        "quantity": quantity,
        "quote_order_qty": quote_qty,
        "price": price,
        "time_in_force": tif,
        "client_order_id": client_id,
        "resp_type": resp_type,
    }


def order_ref(params: dict[str, str]) -> tuple[int | None, str | None]:
    order_id = _int(params, "orderId")
    client_id = params.get("origClientOrderId") or None
    if order_id is None and client_id is None:
        raise BinanceError(
            -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    return order_id, client_id


def _refusal(verdict: Verdict | Plan) -> Reply:
    headers = dict(getattr(verdict, "headers", {}) or {})
    if verdict.retry_after_s:
        headers["Retry-After"] = str(verdict.retry_after_s)
    if not verdict.code:  # not the venue speaking: a plain-text gateway error
        return Reply(
            verdict.msg.encode(), status=verdict.status, content_type="text/plain", headers=headers
        )
    return _json({"code": verdict.code, "msg": verdict.msg}, verdict.status, headers)


async def _settled(outcome: Reply | Awaitable[Reply]) -> Reply:
    return outcome if isinstance(outcome, Reply) else await outcome


def _depth_reply(book: OrderBook, limit: int, head: dict[str, Any] | None = None) -> Reply:
    """Spot: lastUpdateId, bids, asks. Futures add the message and transaction times (`E`, `T`)
    and, on COIN-M, `symbol` and `pair` (`head`), in Binance's order."""
    return _json(
        {
            "lastUpdateId": book.update_id,
            **(head or {}),
            "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in book.bids.top(limit)],
            "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in book.asks.top(limit)],
        }
    )


class SimulatorApi:
    def __init__(
        self,
        *,
        matching: MatchingEngine,
        exchange_info: ExchangeInfo,
        market: MarketView,
        secrets_by_key: dict[str, str],
        hub: UserDataHub | None = None,
        limiter: RateLimiter | None = None,
        faults: VenueFaultBook | None = None,
        clock_ms: Callable[[], int] | None = None,
        kind: MarketKind = MarketKind.SPOT,
        mark_of: Callable[[str], MarkPrice | None] | None = None,
    ) -> None:
        self.kind = kind
        self.mark_of = mark_of
        """Futures: a symbol's derived mark price and funding now, in served time."""
        self.matching = matching
        self.info = exchange_info
        self.market = market
        self.secrets = secrets_by_key
        self.hub = hub or UserDataHub(matching)
        self.limiter = limiter or RateLimiter(RateLimits())
        self.faults = faults or VenueFaultBook()
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.requests = 0
        self.held = 0
        self.refusals = RefusalLog()
        self.in_flight = InFlight()
        self._order_path = f"{kind.rest_prefix}/order"
        self._futures_kind = kind if kind.is_futures else None
        self._routes = self.routes()
        self._paths = {path for _, path in self._routes}

    def routes(self) -> dict[tuple[str, str], Handler]:
        if self.kind.is_futures:
            prefix = self.kind.rest_prefix
            return {
                ("GET", f"{prefix}/ping"): self.ping,
                ("GET", f"{prefix}/time"): self.time,
                ("GET", f"{prefix}/exchangeInfo"): self.exchange_info,
                ("GET", f"{prefix}/depth"): self.depth,
                ("GET", f"{prefix}/premiumIndex"): self.premium_index,
            }
        return {
            ("GET", "/api/v3/ping"): self.ping,
            ("GET", "/api/v3/time"): self.time,
            ("GET", "/api/v3/exchangeInfo"): self.exchange_info,
            ("GET", "/api/v3/depth"): self.depth,
            ("POST", "/api/v3/order"): self.new_order,
            ("GET", "/api/v3/order"): self.query_order,
            ("DELETE", "/api/v3/order"): self.cancel_order,
            ("GET", "/api/v3/openOrders"): self.open_orders,
            ("GET", "/api/v3/allOrders"): self.all_orders,
            ("GET", "/api/v3/myTrades"): self.my_trades,
            ("GET", "/api/v3/account"): self.account,
            ("POST", "/api/v3/userDataStream"): self.new_listen_key,
            ("PUT", "/api/v3/userDataStream"): self.keepalive_listen_key,
            ("DELETE", "/api/v3/userDataStream"): self.close_listen_key,
        }

    def handle(self, request: HttpRequest) -> Reply | Awaitable[Reply]:
        """Every request: the venue around it (faults, limits), then its route's handler. The
        answer is a Reply when nothing has to wait, which is nearly always: the HTTP server
        writes it at once, without a task. A fault's delay or hold, or a route that waits,
        makes it an awaitable."""
        self.requests += 1
        method, path = request.method, request.path
        handler = self._routes.get((method, path))
        if handler is None:
            handler = self._method_not_allowed if path in self._paths else self._not_found
        is_new_order = method == "POST" and path == self._order_path
        plan = self.faults.plan(method, path, time.time_ns(), is_new_order=is_new_order)
        if plan.delay_s:
            return self.in_flight.track(
                method, path, self._after_delay(request, handler, plan, is_new_order=is_new_order)
            )
        outcome = self._admit(request, handler, plan, is_new_order=is_new_order)
        if type(outcome) is Reply:
            return outcome
        return self.in_flight.track(method, path, _settled(outcome))  # a fault holds its answer

    async def _after_delay(
        self, request: HttpRequest, handler: Handler, plan: Plan, *, is_new_order: bool
    ) -> Reply:
        await asyncio.sleep(plan.delay_s)
        return await _settled(self._admit(request, handler, plan, is_new_order=is_new_order))

    def _admit(
        self, request: HttpRequest, handler: Handler, plan: Plan, *, is_new_order: bool
    ) -> Reply | Awaitable[Reply]:
        if plan.status in (503, 418) and not plan.process_first and plan.code in (1, -1003):
            return _refusal(plan)  # maintenance or a ban: nothing is counted or served
        ip = request.remote or "?"
        now = time.monotonic()
        if plan.status == 429:
            return _refusal(self.limiter.throttle(ip, plan.retry_after_s, now))
        method, path = request.method, request.path
        weight = request_weight(method, path, lambda: request.query, self._futures_kind)
        verdict = self.limiter.check(ip, weight, now)
        if verdict.status != 200:
            return _refusal(verdict)
        headers = verdict.headers  # a fresh dict per verdict: ours to extend
        if is_new_order:
            counted = self.limiter.check_order(request.headers.get("X-MBX-APIKEY", ""), now)
            headers.update(counted.headers)
            if counted.status != 200:
                self.refusals.record({}, counted.code, counted.msg, self.clock_ms())
                return _refusal(counted)
        if plan.hold_s and not plan.process_first:
            return self._hold_and_cut(request, plan.hold_s)
        if plan.status and not plan.process_first:
            return _refusal(plan)
        try:
            response = handler(request)
        except BinanceError as exc:
            response = _json(exc.body(), exc.status)
        if not isinstance(response, Reply):
            return self._finish_later(request, response, plan, headers)
        return self._finish(request, response, plan, headers)

    async def _finish_later(
        self, request: HttpRequest, pending: Awaitable[Reply], plan: Plan, headers: dict[str, str]
    ) -> Reply:
        try:
            response = await pending
        except BinanceError as exc:
            response = _json(exc.body(), exc.status)
        return await _settled(self._finish(request, response, plan, headers))

    def _finish(
        self, request: HttpRequest, response: Reply, plan: Plan, headers: dict[str, str]
    ) -> Reply | Awaitable[Reply]:
        """The venue's last word on a served request: a fault that strikes after processing,
        or the response with the rate-limit headers."""
        if plan.hold_s:
            return self._hold_and_cut(request, plan.hold_s)
        if plan.status:
            return _refusal(plan)
        if response.headers:
            response.headers.update(headers)
        else:
            response.headers = headers
        if plan.answer_delay_s:
            return self._answer_later(response, plan.answer_delay_s)
        return response

    @staticmethod
    async def _answer_later(response: Reply, delay_s: float) -> Reply:
        """The request took effect; its sender hears of it only after the delay."""
        await asyncio.sleep(delay_s)
        return response

    def _not_found(self, _: HttpRequest) -> Reply:
        return _json({"code": -1000, "msg": "Unknown endpoint."}, 404)

    def _method_not_allowed(self, _: HttpRequest) -> Reply:
        return _json({"code": -1000, "msg": "Method not allowed."}, 405)

    async def _hold_and_cut(self, request: HttpRequest, hold_s: float) -> Reply:
        """The request never gets an answer: hold the connection, then cut it."""
        self.held += 1
        await asyncio.sleep(hold_s)
        if request.transport is not None:
            request.transport.abort()
        return Reply(status=504, content_type="")

    def _signed(self, request: HttpRequest) -> tuple[str, dict[str, str]]:
        """The API key and the parameters of a signed request (key, signature and timing
        checked)."""
        body = ""
        if request.body and request.method in ("POST", "PUT", "DELETE"):
            body = request.body.decode("utf-8", "replace")
        api_key = request.headers.get("X-MBX-APIKEY")
        params = verify(
            query=request.query_string,
            body=body,
            secrets_by_key=self.secrets,
            api_key=api_key,
            now_ms=self.clock_ms(),
        )
        return api_key or "", params  # verify refuses a request without a key

    def _api_key_only(self, request: HttpRequest) -> str:
        api_key = request.headers.get("X-MBX-APIKEY")
        if not api_key:
            raise errors.BAD_API_KEY_FORMAT
        if api_key not in self.secrets:
            raise errors.INVALID_API_KEY
        return api_key

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

    def ping(self, _: HttpRequest) -> Reply:
        return _json({})

    def time(self, _: HttpRequest) -> Reply:
        return _json({"serverTime": self.clock_ms()})

    def exchange_info(self, request: HttpRequest) -> Reply:
        only = None
        query = parse_params(request.query_string)  # -1101 for a repeated name
        if "symbol" in query:
            only = [self._symbol(query) or ""]
        return _json(self.info.response(self.clock_ms(), only))

    def depth(self, request: HttpRequest) -> Reply | Awaitable[Reply]:
        query = parse_params(request.query_string)
        symbol = self._symbol(query) or ""
        raw_limit = query.get("limit", str(self.kind.default_depth_limit))
        if not ascii_digits(raw_limit):
            raise errors.illegal("limit")
        allowed = self.kind.depth_limits
        limit = min(int(raw_limit), allowed[-1])
        if limit not in allowed:
            limit = next((x for x in allowed if x >= limit), allowed[-1])
        book = self.market.book(symbol)
        if book is None:  # not known yet (start, or the recording's connection dropped): wait
            return self._depth_once_known(symbol, limit)
        return _depth_reply(book, limit, self._depth_head(symbol))

    def _depth_head(self, symbol: str) -> dict[str, Any] | None:
        if not self.kind.is_futures:
            return None
        now = self.clock_ms()
        head: dict[str, Any] = {"E": now, "T": now}
        if self.kind is MarketKind.COINM:
            head.update(symbol=symbol, pair=symbol.split("_", 1)[0])
        return head

    async def _depth_once_known(self, symbol: str, limit: int) -> Reply:
        book = await self.market.wait_book(symbol, timeout_s=2.0)
        if book is None:
            raise BinanceError(
                -1001, "Internal error; unable to process your request. Please try again.", 503
            )
        return _depth_reply(book, limit, self._depth_head(symbol))

    def premium_index(self, request: HttpRequest) -> Reply:
        """GET premiumIndex: mark and index price, funding rate and next funding time (derived:
        replay/mark_price.py). USD-M answers one object for a symbol; COIN-M always a list."""
        query = parse_params(request.query_string)
        symbol = self._symbol(query, required=False)
        now = self.clock_ms()
        entries = []
        for name in [symbol] if symbol else list(self.info.rules):
            mark = self.mark_of(name) if self.mark_of is not None else None
            if mark is None:
                continue
            entry: dict[str, Any] = {
                "symbol": name,
                "markPrice": f"{mark.mark:.8f}",
                "indexPrice": f"{mark.index:.8f}",
                "estimatedSettlePrice": f"{mark.index:.8f}",
                "lastFundingRate": f"{mark.funding_rate:.8f}",
                "interestRate": f"{mark.interest_rate:.8f}",
                "nextFundingTime": mark.next_funding_ms,
                "time": now,
            }
            if self.kind is MarketKind.COINM:
                entry["pair"] = name.split("_", 1)[0]
            entries.append(entry)
        if symbol and not entries:
            raise BinanceError(
                -1001, "Internal error; unable to process your request. Please try again.", 503
            )
        if symbol and self.kind is MarketKind.USDM:
            return _json(entries[0])
        return _json(entries)

    # --- signed -------------------------------------------------------------------------------

    def new_order(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        try:
            args = new_order_args(params, self.matching)
            resp_type = args.pop("resp_type")
            order = self.matching.place(api_key, **args, connection=request.peer)
        except BinanceError as exc:  # the ground truth keeps every refused attempt
            self.refusals.record(params, exc.code, exc.msg, self.clock_ms())
            raise
        return _json(new_order_json(order, resp_type))

    def query_order(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        order_id, client_id = order_ref(params)
        order = self.matching.query(api_key, symbol, order_id=order_id, client_order_id=client_id)
        return _json(order_json(order))

    def cancel_order(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        order_id, client_id = order_ref(params)
        order = self.matching.cancel(api_key, symbol, order_id=order_id, client_order_id=client_id)
        return _json(cancel_json(order, client_id))

    def open_orders(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params, required=False)
        orders = self.matching.open_orders(api_key, symbol)
        return _json([order_json(o) for o in orders])

    def all_orders(self, request: HttpRequest) -> Reply:
        """GET /api/v3/allOrders as Binance documents it: with orderId, the orders from that id
        on; with startTime, the orders placed at or after it; endTime, at or before it (at most
        24 hours after startTime: -1127); oldest first, at most `limit` (500 by default, 1000
        at most). Without orderId and startTime the most recent orders are returned, oldest
        first among them (with endTime alone: the most recent up to it)."""
        key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        limit = min(_int(params, "limit") or 500, 1000)
        from_id = _int(params, "orderId")
        start_ms = _int(params, "startTime")
        end_ms = _int(params, "endTime")
        if start_ms is not None and end_ms is not None and end_ms - start_ms > _DAY_MS:
            raise errors.LOOKUP_INTERVAL_TOO_BIG
        orders = [  # ascending order ids: the venue adds each order as it is placed
            o
            for o in self.matching.orders.values()
            if o.api_key == key
            and o.symbol == symbol
            and (from_id is None or o.order_id >= from_id)
            and (start_ms is None or o.time_ms >= start_ms)
            and (end_ms is None or o.time_ms <= end_ms)
        ]
        chosen = orders[:limit] if from_id is not None or start_ms is not None else orders[-limit:]
        return _json([order_json(o) for o in chosen])

    def my_trades(self, request: HttpRequest) -> Reply:
        """GET /api/v3/myTrades as Binance documents it: an order's trades (orderId, with
        fromId or alone), the trades from a trade id on (fromId), those of a time window
        (startTime and/or endTime, at most 24 hours apart: -1127), or without any of them the
        most recent trades (with endTime alone: the most recent up to it); oldest first, at
        most `limit` (500 by default, 1000 at most). Any other combination is -1128."""
        key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        order_id = _int(params, "orderId")
        from_id = _int(params, "fromId")
        start_ms = _int(params, "startTime")
        end_ms = _int(params, "endTime")
        limit = min(_int(params, "limit") or 500, 1000)
        given = frozenset(
            name
            for name, value in (
                ("orderId", order_id),
                ("fromId", from_id),
                ("startTime", start_ms),
                ("endTime", end_ms),
            )
            if value is not None
        )
        if given not in _TRADE_QUERIES:
            raise errors.BAD_PARAMETER_COMBINATION
        if start_ms is not None and end_ms is not None and end_ms - start_ms > _DAY_MS:
            raise errors.LOOKUP_INTERVAL_TOO_BIG
        fills = [
            f
            for f in self.matching.fills
            if f.symbol == symbol
            and self.matching.orders[f.order_id].api_key == key
            and (order_id is None or f.order_id == order_id)
            and (from_id is None or f.trade_id >= from_id)
            and (start_ms is None or f.time_ms >= start_ms)
            and (end_ms is None or f.time_ms <= end_ms)
        ]
        from_start = order_id is not None or from_id is not None or start_ms is not None
        chosen = fills[:limit] if from_start else fills[-limit:]
        return _json([trade_json(f) for f in chosen])

    def account(self, request: HttpRequest) -> Reply:
        api_key, _ = self._signed(request)
        account = self.matching.accounts[api_key]
        return _json(
            account_json(
                account,
                maker_fee=self.matching.maker_fee,
                taker_fee=self.matching.taker_fee,
                now_ms=self.clock_ms(),
            )
        )

    # --- listen keys (API key, no signature) ----------------------------------------------------

    def new_listen_key(self, request: HttpRequest) -> Reply:
        api_key = self._api_key_only(request)
        return _json({"listenKey": self.hub.new_listen_key(api_key, time.time())})

    def _listen_key_param(self, request: HttpRequest) -> str:
        key = parse_params(request.query_string).get("listenKey")
        if not key and request.body:
            body = request.body.decode("utf-8", "replace")
            key = parse_params(body).get("listenKey")
        if not key:
            raise errors.mandatory("listenKey")
        return key

    def keepalive_listen_key(self, request: HttpRequest) -> Reply:
        api_key = self._api_key_only(request)
        key = self._listen_key_param(request)
        if not self.hub.keepalive(key, api_key, time.time()):
            raise BinanceError(-1125, "This listenKey does not exist.")
        return _json({})

    def close_listen_key(self, request: HttpRequest) -> Reply:
        api_key = self._api_key_only(request)
        key = self._listen_key_param(request)
        if not self.hub.close_listen_key(key, api_key):
            raise BinanceError(-1125, "This listenKey does not exist.")
        return _json({})
