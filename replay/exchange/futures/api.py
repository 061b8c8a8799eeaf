"""Binance futures REST, USD-M (`/fapi`) and COIN-M (`/dapi`), on the simulator's HTTP server:
the public endpoints of `SimulatorApi` plus the signed ones a futures client uses.

Signed: order (POST/GET/DELETE; LIMIT and MARKET, timeInForce GTC/IOC/FOK/GTX, reduceOnly,
positionSide), openOrders, allOrders, userTrades, leverage, marginType, positionSide/dual (POST,
GET), account, balance, positionRisk (USD-M v2 and v3, COIN-M v1), leverageBracket. API key
only: listenKey (POST/PUT/DELETE). The venue around them (faults, rate limits, signatures) is
`SimulatorApi`'s. Conditional orders (STOP, TAKE_PROFIT, trailing) are refused as an invalid
order type (-1116): docs/futures.md.
"""

from __future__ import annotations

import functools
import time
from decimal import Decimal
from typing import Any

from replay.exchange import errors
from replay.exchange.auth import parse_params
from replay.exchange.errors import BinanceError
from replay.exchange.formats import fmt
from replay.exchange.futures import formats, refusals
from replay.exchange.futures.engine import FuturesMatchingEngine
from replay.exchange.futures.ledger import Position
from replay.exchange.http11 import Handler, HttpRequest, Reply
from replay.exchange.rest import _CLIENT_ID, SimulatorApi, _decimal, _int, _json, order_ref
from replay.market_kind import MarketKind

__all__ = ["FuturesApi"]

_ORDER_TYPES = ("LIMIT", "MARKET")
_CONDITIONAL = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
_TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")


def _bool(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return raw == "true"


class FuturesApi(SimulatorApi):
    matching: FuturesMatchingEngine

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes = super().routes()  # the public ones
        p = self.kind.rest_prefix
        root = p.rsplit("/", 1)[0]  # /fapi or /dapi
        routes.update(
            {
                ("POST", f"{p}/order"): self.new_order,
                ("GET", f"{p}/order"): self.query_order,
                ("DELETE", f"{p}/order"): self.cancel_order,
                ("GET", f"{p}/openOrders"): self.open_orders,
                ("GET", f"{p}/allOrders"): self.all_orders,
                ("GET", f"{p}/userTrades"): self.user_trades,
                ("GET", f"{p}/income"): self.income,
                ("POST", f"{p}/leverage"): self.leverage,
                ("POST", f"{p}/marginType"): self.margin_type,
                ("POST", f"{p}/positionSide/dual"): self.set_position_mode,
                ("GET", f"{p}/positionSide/dual"): self.position_mode,
                ("POST", f"{p}/listenKey"): self.new_listen_key,
                ("PUT", f"{p}/listenKey"): self.keepalive_futures_listen_key,
                ("DELETE", f"{p}/listenKey"): self.close_futures_listen_key,
            }
        )
        if self.kind is MarketKind.USDM:
            versions = {"v2": 2, "v3": 3}
            routes[("GET", f"{root}/v1/leverageBracket")] = self.leverage_bracket
        else:
            versions = {"v1": 1}
            routes[("GET", f"{root}/v1/leverageBracket")] = self.leverage_bracket
            routes[("GET", f"{root}/v2/leverageBracket")] = self.leverage_bracket
        for name, version in versions.items():
            routes[("GET", f"{root}/{name}/account")] = self.account
            routes[("GET", f"{root}/{name}/balance")] = self.balance
            routes[("GET", f"{root}/{name}/positionRisk")] = functools.partial(
                self.position_risk, version=version
            )
        return routes

    @property
    def inverse(self) -> bool:
        return self.kind is MarketKind.COINM

    def _contract(self, symbol: str) -> Any:
        return self.matching.ledger.contracts[symbol]

    def _asset(self, symbol: str) -> str:
        return self.matching.ledger.margin_assets[symbol]

    # --- orders -------------------------------------------------------------------------------

    def new_order(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        try:
            args = self._order_args(params)
            resp_type = args.pop("resp_type")
            if args["reduce_only"]:
                fault = self.faults.active_of("reject_reduce_only", time.time_ns())
                if fault is not None:
                    fault.applied += 1
                    raise refusals.REDUCE_ONLY_REJECTED
            order = self.matching.place(api_key, **args, connection=request.peer)
        except BinanceError as exc:
            self.refusals.record(params, exc.code, exc.msg, self.clock_ms())
            raise
        body = formats.order_json(order, self._contract(order.symbol), new=True)
        if resp_type == "ACK":
            body = {k: body[k] for k in ("orderId", "symbol", "status", "clientOrderId")} | {
                "updateTime": order.update_ms
            }
        return _json(body)

    def _order_args(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params) or ""
        side = params.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            raise errors.mandatory("side") if not side else BinanceError(-1117, "Invalid side.")
        order_type = params.get("type", "").upper()
        if order_type not in _ORDER_TYPES:
            if not order_type:
                raise errors.mandatory("type")
            if order_type in _CONDITIONAL:
                raise BinanceError(-1116, f"Invalid orderType: {order_type} is not simulated.")
            raise BinanceError(-1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"sim-{self.matching._next_order_id}"
        if not _CLIENT_ID.match(client_id):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId';"
                " legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        resp_type = params.get("newOrderRespType", "ACK").upper()
        if resp_type not in ("ACK", "RESULT"):
            raise BinanceError(-1177, "Invalid newOrderRespType.")
        quantity = _decimal(params, "quantity", required=True)
        price = _decimal(params, "price", required=order_type == "LIMIT")
        tif = params.get("timeInForce", "").upper() or None
        if order_type == "LIMIT":
            if tif is None:
                raise errors.mandatory("timeInForce")
            if tif not in _TIME_IN_FORCE:
                raise BinanceError(-1115, "Invalid timeInForce.")
        elif price is not None:
            raise BinanceError(-1106, "Parameter 'price' sent when not required.")
        return {
            "symbol": symbol,
            "side": side,
            "order_type": order_type,
            "quantity": quantity,
            "quote_order_qty": None,
            "price": price,
            "time_in_force": tif if order_type == "LIMIT" else "GTC",
            "client_order_id": client_id,
            "position_side": params.get("positionSide", "").upper(),
            "reduce_only": _bool(params, "reduceOnly"),
            "resp_type": resp_type,
        }

    def query_order(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        order_id, client_id = order_ref(params)
        order = self.matching.query(api_key, symbol, order_id=order_id, client_order_id=client_id)
        return _json(formats.order_json(order, self._contract(symbol)))

    def cancel_order(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        order_id, client_id = order_ref(params)
        order = self.matching.cancel(api_key, symbol, order_id=order_id, client_order_id=client_id)
        return _json(formats.order_json(order, self._contract(symbol), new=True))

    def open_orders(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params, required=False)
        orders = self.matching.open_orders(api_key, symbol)
        return _json([formats.order_json(o, self._contract(o.symbol)) for o in orders])

    def all_orders(self, request: HttpRequest) -> Reply:
        key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        limit = min(_int(params, "limit") or 500, 1000)
        from_id = _int(params, "orderId")
        orders = [
            o
            for o in self.matching.orders.values()
            if o.api_key == key
            and o.symbol == symbol
            and (from_id is None or o.order_id >= from_id)
        ]
        chosen = orders[:limit] if from_id is not None else orders[-limit:]
        return _json([formats.order_json(o, self._contract(symbol)) for o in chosen])

    def user_trades(self, request: HttpRequest) -> Reply:
        key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        order_id = _int(params, "orderId")
        from_id = _int(params, "fromId")
        limit = min(_int(params, "limit") or 500, 1000)
        orders = self.matching.orders
        fills = [
            f
            for f in self.matching.fills
            if f.symbol == symbol
            and orders[f.order_id].api_key == key
            and (order_id is None or f.order_id == order_id)
            and (from_id is None or f.trade_id >= from_id)
        ]
        chosen = fills[:limit] if from_id is not None else fills[-limit:]
        contract, asset = self._contract(symbol), self._asset(symbol)
        return _json([formats.trade_json(f, orders[f.order_id], contract, asset) for f in chosen])

    def income(self, request: HttpRequest) -> Reply:
        """GET income: the account's FUNDING_FEE, REALIZED_PNL and COMMISSION records, oldest
        first, filtered by symbol, incomeType, startTime, endTime; at most `limit` (100, 1000).
        Funding is negative when paid; tranId is unique per record."""
        key, params = self._signed(request)
        symbol = self._symbol(params, required=False)
        wanted = params.get("incomeType", "").upper() or None
        start_ms = _int(params, "startTime")
        end_ms = _int(params, "endTime")
        limit = min(_int(params, "limit") or 100, 1000)
        records: list[dict[str, Any]] = []
        ledger, orders = self.matching.ledger, self.matching.orders
        for n, paid in enumerate(ledger.funding):
            if paid.api_key == key:
                records.append(
                    self._income(
                        paid.symbol,
                        "FUNDING_FEE",
                        -paid.amount,
                        paid.asset,
                        paid.time_ms,
                        1_000_000_000 + n,
                    )
                )
        for fill in self.matching.fills:
            if orders[fill.order_id].api_key != key:
                continue
            asset = self._asset(fill.symbol)
            if fill.realized_pnl:
                records.append(
                    self._income(
                        fill.symbol,
                        "REALIZED_PNL",
                        fill.realized_pnl,
                        asset,
                        fill.time_ms,
                        2_000_000_000 + fill.trade_id,
                        fill.trade_id,
                    )
                )
            if fill.commission:
                records.append(
                    self._income(
                        fill.symbol,
                        "COMMISSION",
                        -fill.commission,
                        asset,
                        fill.time_ms,
                        3_000_000_000 + fill.trade_id,
                        fill.trade_id,
                    )
                )
        chosen = [
            r
            for r in sorted(records, key=lambda r: (r["time"], r["tranId"]))
            if (symbol is None or r["symbol"] == symbol)
            and (wanted is None or r["incomeType"] == wanted)
            and (start_ms is None or r["time"] >= start_ms)
            and (end_ms is None or r["time"] <= end_ms)
        ]
        return _json(chosen[:limit])

    @staticmethod
    def _income(
        symbol: str,
        kind: str,
        amount: Decimal,
        asset: str,
        time_ms: int,
        tran_id: int,
        trade_id: int | None = None,
    ) -> dict[str, Any]:
        return {
            "symbol": symbol,
            "incomeType": kind,
            "income": fmt(amount),
            "asset": asset,
            "info": kind,
            "time": time_ms,
            "tranId": tran_id,
            "tradeId": "" if trade_id is None else str(trade_id),
        }

    # --- settings -----------------------------------------------------------------------------

    def leverage(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        raw = params.get("leverage", "")
        if not raw:
            raise errors.mandatory("leverage")
        if not raw.isdigit():
            raise refusals.invalid_leverage(raw)
        leverage = int(raw)
        self.matching.ledger.set_leverage(api_key, symbol, leverage)
        body: dict[str, Any] = {"leverage": leverage, "symbol": symbol}
        if self.inverse:
            body["maxQty"] = "1000000"
        else:
            body["maxNotionalValue"] = "1000000000"
        return _json(body)

    def margin_type(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params) or ""
        raw = params.get("marginType", "").upper()
        if raw not in ("ISOLATED", "CROSSED"):
            raise (
                errors.mandatory("marginType")
                if not raw
                else BinanceError(-4044, "The margin type is invalid.")
            )
        self.matching.ledger.set_margin_type(
            api_key,
            symbol,
            raw == "ISOLATED",
            has_orders=self.matching.has_open(api_key, symbol),
        )
        return _json({"code": 200, "msg": "success"})

    def set_position_mode(self, request: HttpRequest) -> Reply:
        api_key, params = self._signed(request)
        if "dualSidePosition" not in params:
            raise errors.mandatory("dualSidePosition")
        dual = _bool(params, "dualSidePosition")
        has_orders = bool(self.matching.open_orders(api_key, None))
        self.matching.ledger.set_dual_side(api_key, dual, has_orders=has_orders)
        return _json({"code": 200, "msg": "success"})

    def position_mode(self, request: HttpRequest) -> Reply:
        api_key, _ = self._signed(request)
        return _json({"dualSidePosition": self.matching.ledger.accounts[api_key].dual_side})

    # --- account ------------------------------------------------------------------------------

    def account(self, request: HttpRequest) -> Reply:
        api_key, _ = self._signed(request)
        ledger = self.matching.ledger
        return _json(
            formats.account_json(
                ledger,
                ledger.accounts[api_key],
                self.matching.open_margins(api_key),
                now_ms=self.clock_ms(),
            )
        )

    def balance(self, request: HttpRequest) -> Reply:
        api_key, _ = self._signed(request)
        ledger = self.matching.ledger
        return _json(
            formats.balance_json(
                ledger,
                ledger.accounts[api_key],
                self.matching.open_margins(api_key),
                now_ms=self.clock_ms(),
            )
        )

    def position_risk(self, request: HttpRequest, version: int) -> Reply:
        api_key, params = self._signed(request)
        symbol = self._symbol(params, required=False)
        ledger = self.matching.ledger
        account = ledger.accounts[api_key]
        sides = ("LONG", "SHORT") if account.dual_side else ("BOTH",)
        now = self.clock_ms()
        entries = []
        for name in [symbol] if symbol else list(ledger.contracts):
            for side in sides:
                # a GET lists what is held: it makes no entry in the ledger
                position = account.positions.get((name, side)) or Position(name, side)
                if version == 3 and position.qty == 0:
                    continue  # v3 lists only the positions held
                entries.append(
                    formats.position_json(
                        ledger, account, position, inverse=self.inverse, version=version, now_ms=now
                    )
                )
        return _json(entries)

    def leverage_bracket(self, request: HttpRequest) -> Reply:
        self._signed(request)
        ledger = self.matching.ledger
        out = []
        for symbol, contract in ledger.contracts.items():
            bracket: dict[str, Any] = {
                "bracket": 1,
                "initialLeverage": 125,
                "maintMarginRatio": float(contract.maint_rate),
                "cum": 0.0,
            }
            if self.inverse:
                bracket.update(qtyCap=1_000_000, qtyFloor=0)
                out.append({"pair": symbol.split("_", 1)[0], "brackets": [bracket]})
            else:
                bracket.update(notionalCap=1_000_000_000, notionalFloor=0)
                out.append({"symbol": symbol, "brackets": [bracket]})
        return _json(out)

    # --- listen keys --------------------------------------------------------------------------

    def _account_listen_key(self, request: HttpRequest) -> tuple[str, str]:
        """(API key, listen key): futures name the account's key without the parameter."""
        api_key = self._api_key_only(request)
        key = parse_params(request.query_string).get("listenKey") or next(
            (k for k, v in self.hub.listen_keys.items() if v.api_key == api_key), ""
        )
        return api_key, key

    def keepalive_futures_listen_key(self, request: HttpRequest) -> Reply:
        """Futures keep the account's key alive; the key parameter is optional."""
        api_key, key = self._account_listen_key(request)
        if not key or not self.hub.keepalive(key, api_key, time.time()):
            raise BinanceError(-1125, "This listenKey does not exist.")
        return _json({"listenKey": key})

    def close_futures_listen_key(self, request: HttpRequest) -> Reply:
        api_key, key = self._account_listen_key(request)
        if not key or not self.hub.close_listen_key(key, api_key):
            raise BinanceError(-1125, "This listenKey does not exist.")
        return _json({})
