"""The replay process's control API (HTTP, bearer token): replay clock and the simulator's ground
truth. Harness, chaos actions and load generators use it; the engine never sees it.

    GET  /healthz                       no token: 200 once the servers listen
    GET  /readyz                        no token: 200 once they listen and every symbol's book
                                        is known (a market order can fill); 503 says which not
    GET  /status                        replay position, speed, clients, books
    POST /replay/pause | /replay/resume
    POST /replay/speed  {"speed": 10} or {"speed": "max"}
    POST /replay/seek   {"to": <receive time ns> | "+30s" | "-10s"}  (relative to the position);
                        past the end of the recording, the replay stands at its end, finished
    POST /replay/seek-to-drop  {"min_drop_pct": 2, "within_s": 10, "lead_s": 3, "symbol": "X"}
                        seek to `lead_s` before the start of the first fall of the trade price
                        by min_drop_pct within within_s in the recording (404 if there is none)
    POST /replay/burst  {"multiplier": 10, "duration_ms": 5000}  N times faster for a while
    POST /faults        {"kind", "stream", "client", "duration_ms", "count"} (see replay.faults)
    GET  /faults        every fault with its start and end time (ns)
    DELETE /faults/{id} | DELETE /faults   end one fault, or all
    GET  /truth/orders                  every order the simulator accepted, with fills and the
                                        client `ip:port` of the connection it came on;
                                        ?since_ms=T (accepted at or after T, venue time ms),
                                        ?client_order_id=X (repeatable)
    GET  /truth/balances                every account's balances, and each symbol's base and
                                        quote asset
    GET  /truth/refusals                every new order the simulator refused (clientOrderId,
                                        Binance code and message); ?since_ms=T
    GET  /truth/mids                    the replay's own mid over time (its books, sampled every
                                        20 ms when it moves); ?since_ms=T, ?symbol=X
    GET  /truth/in-flight               requests the simulator has not answered yet (a fault
                                        delays or holds their answer)
    GET  /truth/positions               futures: every account's wallet and positions at the
                                        venue's mark (PnL, liquidation price and distance)
    GET  /truth/funding                 futures: every funding payment, and every funding time
                                        (rate, mark, what one long contract paid: the
                                        schedule, held or not); ?since_ms=T
    GET  /truth/liquidations            futures: every liquidation; ?since_ms=T
    POST /replay/mark-price  {"funding_rate", "mark_shift", "premium", ...}  futures: move the
                                        derived mark price (replay/mark_price.py)

Bounded like every server (docs/limits.md); every error answer is JSON `{"error": ...}`.

The API needs of the replay process only what `ControlledReplay` declares (the `ReplayServer`
provides it; this module does not import it). Each route is one method of `ControlHandlers`;
`build_control_app` adds the bearer-token check and the routes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web

from plumbing.http_limits import HttpLimits, bearer_matches, bounded_app
from plumbing.logging import get_logger
from replay.exchange.futures.engine import FuturesMatchingEngine
from replay.exchange.futures.ledger import FuturesLedger
from replay.exchange.matching import MatchingEngine, SimOrder
from replay.exchange.rest import SimulatorApi
from replay.exchange.symbols import ExchangeInfo
from replay.exchange.venue_faults import KINDS as VENUE_KINDS
from replay.exchange.venue_faults import VenueFault, VenueFaultBook, VenueFaultError
from replay.faults import FaultError
from replay.feed_server import FeedServer
from replay.market import ReplayMarket
from replay.midtape import MidTape
from replay.pacing import Pacer
from replay.tools.drops import Drop

VENUE_ID_OFFSET = 10_000

log = get_logger("replay.control")


class ControlledReplay(Protocol):
    """What the control API reads and drives of the replay process."""

    # the replay clock
    @property
    def listening(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def symbols(self) -> list[str]: ...
    @property
    def pacer(self) -> Pacer: ...
    def status(self) -> dict[str, Any]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def set_speed(self, speed: float | None) -> None: ...
    def seek(self, recv_ns: int) -> None: ...
    async def find_drop(
        self, *, symbol: str, min_drop_pct: float, within_s: float
    ) -> Drop | None: ...
    def burst(self, multiplier: float, duration_ms: int) -> dict[str, Any]: ...
    def set_mark_price(self, **changes: Any) -> dict[str, Any]: ...

    # faults
    @property
    def feed(self) -> FeedServer: ...
    @property
    def venue_faults(self) -> VenueFaultBook: ...
    def add_venue_fault(self, **request: Any) -> VenueFault: ...
    def apply_venue_state(self) -> None: ...

    # ground truth
    @property
    def market(self) -> ReplayMarket: ...
    @property
    def matching(self) -> MatchingEngine: ...
    @property
    def api(self) -> SimulatorApi: ...
    @property
    def mid_tape(self) -> MidTape: ...
    @property
    def exchange_info(self) -> ExchangeInfo: ...
    @property
    def initial_balances(self) -> dict[str, dict[str, Decimal]]: ...


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str), status=status, content_type="application/json"
    )


def build_control_app(
    replay: ControlledReplay, token: str, limits: HttpLimits | None = None
) -> web.Application:
    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        open_path = request.path in ("/healthz", "/readyz")
        if not open_path and not bearer_matches(request.headers.get("Authorization"), token):
            return _json({"error": "missing or invalid bearer token"}, 401)
        return await handler(request)

    app = bounded_app(limits or HttpLimits(), middlewares=(auth,))
    ControlHandlers(replay).add_routes(app.router)
    return app


class ControlHandlers:
    """The control API's routes over one replay process."""

    def __init__(self, replay: ControlledReplay) -> None:
        self.replay = replay

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz)
        router.add_get("/status", self.status)
        router.add_post("/replay/pause", self.pause)
        router.add_post("/replay/resume", self.resume)
        router.add_post("/replay/speed", self.speed)
        router.add_post("/replay/seek", self.seek)
        router.add_post("/replay/seek-to-drop", self.seek_to_drop)
        router.add_post("/replay/burst", self.burst)
        router.add_post("/replay/mark-price", self.mark_price)
        router.add_post("/faults", self.add_fault)
        router.add_get("/faults", self.list_faults)
        router.add_delete("/faults/{fault_id}", self.end_fault)
        router.add_delete("/faults", self.end_all_faults)
        router.add_get("/truth/orders", self.orders)
        router.add_get("/truth/balances", self.balances)
        router.add_get("/truth/refusals", self.refusals)
        router.add_get("/truth/mids", self.mids)
        router.add_get("/truth/in-flight", self.in_flight)
        router.add_get("/truth/positions", self.positions)
        router.add_get("/truth/funding", self.funding)
        router.add_get("/truth/liquidations", self.liquidations)

    # --- health -------------------------------------------------------------------------------

    async def healthz(self, _: web.Request) -> web.Response:
        replay = self.replay
        return _json(
            {"ok": replay.listening, "state": replay.state}, 200 if replay.listening else 503
        )

    async def readyz(self, _: web.Request) -> web.Response:
        replay = self.replay
        waiting = replay.market.unsynced()
        ready = replay.listening and not waiting
        body = {"ready": ready, "state": replay.state, "books_not_synced": waiting}
        return _json(body, 200 if ready else 503)

    async def status(self, _: web.Request) -> web.Response:
        return _json(self.replay.status())

    # --- the replay clock ---------------------------------------------------------------------

    async def pause(self, _: web.Request) -> web.Response:
        self.replay.pause()
        return _json(self.replay.status())

    async def resume(self, _: web.Request) -> web.Response:
        self.replay.resume()
        return _json(self.replay.status())

    async def speed(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            raw = body["speed"]
            value = None if raw == "max" else float(raw)
            self.replay.set_speed(value)
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            return _json(
                {"error": f'body must be {{"speed": <positive number> | "max"}}: {exc}'}, 400
            )
        return _json(self.replay.status())

    async def seek(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            target = parse_seek(body["to"], self.replay.pacer.position_recv_ns)
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            return _json({"error": f'body must be {{"to": <ns> | "+30s" | "-1m"}}: {exc}'}, 400)
        self.replay.seek(target)
        return _json({"seeking_to_ns": target})

    async def seek_to_drop(self, request: web.Request) -> web.Response:
        replay = self.replay
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("expected an object")
            unknown = set(body) - {"min_drop_pct", "within_s", "lead_s", "symbol"}
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            min_drop_pct = float(body.get("min_drop_pct", 2.0))
            within_s = float(body.get("within_s", 10.0))
            lead_s = float(body.get("lead_s", 3.0))
            symbol = str(body.get("symbol") or replay.symbols[0]).upper()
            if not 0 < min_drop_pct < 100 or within_s <= 0 or lead_s < 0:
                raise ValueError("need 0 < min_drop_pct < 100, within_s > 0, lead_s >= 0")
            if symbol not in replay.symbols:
                raise ValueError(f"symbol {symbol} is not replayed")
        except (ValueError, TypeError, OverflowError) as exc:
            return _json({"error": f"bad seek-to-drop request: {exc}"}, 400)
        drop = await replay.find_drop(symbol=symbol, min_drop_pct=min_drop_pct, within_s=within_s)
        if drop is None:
            return _json(
                {
                    "error": f"no fall of {min_drop_pct}% within {within_s} s in"
                    f" {symbol}'s trades in the recording"
                },
                404,
            )
        target = drop.start_ns - int(lead_s * 1e9)
        replay.seek(target)
        log.warning("replay_seek_to_drop", symbol=symbol, seeking_to_ns=target, **drop.as_dict())
        return _json({"symbol": symbol, "seeking_to_ns": target, **drop.as_dict()})

    async def burst(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict) or set(body) - {"multiplier", "duration_ms"}:
                raise ValueError("unknown fields")
            result = self.replay.burst(float(body["multiplier"]), int(body["duration_ms"]))
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            return _json(
                {
                    "error": 'body must be {"multiplier": <1 < m <= 1000>, "duration_ms":'
                    f" <1..600000>}}: {exc}"
                },
                400,
            )
        log.warning("market_burst_started", **result)
        return _json(result, 201)

    async def mark_price(self, request: web.Request) -> web.Response:
        """Futures: move the derived mark price's levers (replay/mark_price.py), e.g.
        {"funding_rate": 0.003} for a funding spike, {"mark_shift": -0.05} for the mark 5% under
        the last price, {"funding_rate": null} to go back to the formula."""
        try:
            body = await request.json()
            if not isinstance(body, dict) or not body:
                raise TypeError("expected a non-empty object")
            changes: dict[str, Any] = {}
            for name, value in body.items():
                if name == "funding_interval_ms":
                    if not isinstance(value, int) or isinstance(value, bool) or value < 1_000:
                        raise ValueError("funding_interval_ms must be an integer >= 1000")
                    changes[name] = value
                elif name == "funding_rate" and value is None:
                    changes[name] = None
                else:
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise ValueError(f"{name} must be a number")
                    if not -0.5 < float(value) < 0.5:
                        raise ValueError(f"{name} must be within (-0.5, 0.5)")
                    changes[name] = float(value)
            result = self.replay.set_mark_price(**changes)
        except (ValueError, TypeError) as exc:
            return _json({"error": f"bad mark-price request: {exc}"}, 400)
        log.warning("mark_price_moved", **changes)
        return _json(result)

    # --- faults -------------------------------------------------------------------------------

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("expected an object")
            if body.get("kind") in VENUE_KINDS:
                venue_fault = self.replay.add_venue_fault(**body)
                log.warning("venue_fault_started", **venue_fault.as_dict())
                return _json(venue_fault.as_dict(), 201)
            unknown = set(body) - {"kind", "stream", "client", "duration_ms", "count"}
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            fault = self.replay.feed.add_fault(**body)
        except (FaultError, VenueFaultError, ValueError, TypeError, OverflowError) as exc:
            return _json({"error": str(exc)}, 400)
        log.warning("feed_fault_started", **fault.as_dict())
        return _json({**fault.as_dict(), "scope": "feed"}, 201)

    async def list_faults(self, _: web.Request) -> web.Response:
        replay = self.replay
        now = time.time_ns()
        replay.feed.faults.expire(now)
        replay.venue_faults.active(now)
        feed = [{**f.as_dict(), "scope": "feed"} for f in replay.feed.faults.faults]
        venue = [f.as_dict() for f in replay.venue_faults.faults]
        return _json({"faults": sorted(feed + venue, key=lambda f: f["start_ns"])})

    async def end_fault(self, request: web.Request) -> web.Response:
        replay = self.replay
        try:
            fault_id = int(request.match_info["fault_id"])
            book: Any = replay.venue_faults if fault_id >= VENUE_ID_OFFSET else replay.feed.faults
            fault = book.end(fault_id, time.time_ns())
        except (FaultError, VenueFaultError, ValueError) as exc:
            return _json({"error": str(exc)}, 404)
        replay.apply_venue_state()
        log.info("fault_ended", **fault.as_dict())
        return _json(fault.as_dict())

    async def end_all_faults(self, _: web.Request) -> web.Response:
        replay = self.replay
        now = time.time_ns()
        replay.feed.faults.end_all(now)
        replay.venue_faults.end_all(now)
        replay.apply_venue_state()
        return _json({"ended": True})

    # --- ground truth -------------------------------------------------------------------------

    async def orders(self, request: web.Request) -> web.Response:
        wanted = set(request.query.getall("client_order_id", []))
        try:
            since_ms = int(request.query.get("since_ms", "0"))
        except ValueError:
            return _json({"error": "since_ms must be an integer (venue time, ms)"}, 400)
        out = [
            order_truth(order)
            for order in self.replay.matching.orders.values()
            if not (order.time_ms < since_ms or (wanted and order.client_order_id not in wanted))
        ]
        return _json({"orders": out})

    async def refusals(self, request: web.Request) -> web.Response:
        log_ = self.replay.api.refusals
        return _json(
            {
                "refusals": [r.as_dict() for r in log_.since(query_since_ms(request))],
                "dropped": log_.dropped,
            }
        )

    async def mids(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        tape = self.replay.mid_tape
        points = tape.since(query_since_ms(request), symbol=symbol)
        return _json({"mids": points, "dropped": tape.dropped})

    async def in_flight(self, _: web.Request) -> web.Response:
        return _json({"in_flight": self.replay.api.in_flight.listing()})

    def _ledger(self) -> FuturesLedger:
        matching = self.replay.matching
        if not isinstance(matching, FuturesMatchingEngine):
            raise web.HTTPNotFound(
                text=json.dumps(
                    {"error": "this replay is spot: no positions, funding or liquidations"}
                ),
                content_type="application/json",
            )
        return matching.ledger

    async def positions(self, _: web.Request) -> web.Response:
        """Futures ground truth: each account's wallet and positions, valued at the venue's
        mark (replay/exchange/futures/ledger.py)."""
        ledger = self._ledger()
        accounts = []
        for key, account in ledger.accounts.items():
            positions = []
            for p in account.open_positions():
                liquidation = ledger.liquidation_price(account, p)
                mark = ledger.marks.get(p.symbol)
                positions.append(
                    {
                        "symbol": p.symbol,
                        "position_side": p.side,
                        "qty": str(p.qty),
                        "entry_price": str(p.entry),
                        "mark_price": str(mark) if mark is not None else None,
                        "unrealized_pnl": str(ledger.unrealized(p)),
                        "realized_pnl": str(p.realized_pnl),
                        "liquidation_price": str(liquidation) if liquidation else None,
                        "liquidation_distance_pct": (
                            float(abs(mark - liquidation) / mark * 100)
                            if liquidation and mark
                            else None
                        ),
                        "margin_type": "isolated" if p.symbol in account.isolated else "cross",
                        "leverage": account.leverage_of(p.symbol),
                        "notional": str(
                            ledger.contracts[p.symbol].notional(p.qty, mark or p.entry)
                        ),
                    }
                )
            accounts.append(
                {
                    "account": hash_key(key),
                    "wallet": {asset: str(v) for asset, v in account.wallet.items()},
                    "positions": positions,
                }
            )
        return _json({"marks": {s: str(m) for s, m in ledger.marks.items()}, "accounts": accounts})

    async def funding(self, request: web.Request) -> web.Response:
        since = query_since_ms(request)
        return _json(
            {
                "funding": [
                    {
                        "account": hash_key(f.api_key),
                        "symbol": f.symbol,
                        "position_side": f.position_side,
                        "time_ms": f.time_ms,
                        "rate": str(f.rate),
                        "mark_price": str(f.mark),
                        "qty": str(f.qty),
                        "paid": str(f.amount),
                        "asset": f.asset,
                    }
                    for f in self._ledger().funding
                    if f.time_ms >= since
                ],
                "times": [
                    {
                        "symbol": t.symbol,
                        "time_ms": t.time_ms,
                        "rate": str(t.rate),
                        "mark_price": str(t.mark),
                        "per_contract": str(t.per_contract),
                        "asset": t.asset,
                    }
                    for t in self._ledger().funding_times
                    if t.time_ms >= since
                ],
            }
        )

    async def liquidations(self, request: web.Request) -> web.Response:
        since = query_since_ms(request)
        return _json(
            {
                "liquidations": [
                    {
                        "account": hash_key(x.api_key),
                        "symbol": x.symbol,
                        "position_side": x.position_side,
                        "qty": str(x.qty),
                        "entry_price": str(x.entry),
                        "mark_price": str(x.mark),
                        "price": str(x.price),
                        "loss": str(x.loss),
                        "time_ms": x.time_ms,
                    }
                    for x in self._ledger().liquidations
                    if x.time_ms >= since
                ]
            }
        )

    async def balances(self, _: web.Request) -> web.Response:
        replay = self.replay
        return _json(
            {
                "symbols": {
                    symbol: {"base": rules.base, "quote": rules.quote}
                    for symbol, rules in replay.exchange_info.rules.items()
                    if symbol in replay.symbols
                },
                "accounts": {
                    hash_key(key): {
                        asset: {
                            "free": str(b.free),
                            "locked": str(b.locked),
                            "total": str(b.free + b.locked),
                            "initial": str(
                                replay.initial_balances.get(key, {}).get(asset, Decimal(0))
                            ),
                        }
                        for asset, b in account.balances.items()
                    }
                    for key, account in replay.matching.accounts.items()
                },
            }
        )


def order_truth(order: SimOrder) -> dict[str, Any]:
    """One accepted order as /truth/orders lists it, with its fills."""
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "api_key_hash": hash_key(order.api_key),
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "price": str(order.price),
        "orig_qty": str(order.orig_qty),
        "executed_qty": str(order.executed_qty),
        "cumm_quote": str(order.cumm_quote),
        "status": order.status.value,
        "time_ms": order.time_ms,
        "update_ms": order.update_ms,
        "arrival_mid": order.arrival_mid,
        "connection": order.connection,
        "reduce_only": order.reduce_only,
        "position_side": order.position_side or None,
        "fills": [
            {
                "trade_id": f.trade_id,
                "price": str(f.price),
                "qty": str(f.qty),
                "commission": str(f.commission),
                "commission_asset": f.commission_asset,
                "is_maker": f.is_maker,
                "time_ms": f.time_ms,
                "realized_pnl": str(f.realized_pnl),
            }
            for f in order.fills
        ],
    }


def query_since_ms(request: web.Request) -> int:
    try:
        return int(request.query.get("since_ms", "0"))
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "since_ms must be an integer (venue time, ms)"}),
            content_type="application/json",
        ) from None


def parse_seek(raw: object, position_ns: int) -> int:
    """An absolute receive time in ns, or a signed offset from the position: "+30s", "-2m"."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw[:1] in "+-" and raw[-1:] in "sm":
        amount = float(raw[1:-1]) * (60 if raw.endswith("m") else 1)
        return position_ns + int((amount if raw[0] == "+" else -amount) * 1e9)
    raise ValueError(f"cannot read {raw!r} as a time")


def hash_key(api_key: str) -> str:
    """Accounts are named by a hash of their API key: ground truth never shows a key."""
    import hashlib

    return hashlib.sha256(api_key.encode()).hexdigest()[:12]
