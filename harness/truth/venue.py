"""Reading the simulator's and the replay's ground truth through the replay's control API (never
the engine): accepted orders with fills, refused new orders, balances, the replay's own mid, and
the order requests the simulator has not answered yet."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from harness.truth.records import MidPoint, VenueFill, VenueOrder, VenueRefusal

Get = Callable[[str], tuple[int, Any]]
"""GET a control-API path (with the token); (status, parsed JSON)."""


class TruthUnavailable(RuntimeError):
    """The simulator's ground truth did not answer: the judge cannot judge."""


def _get(get: Get, path: str, key: str) -> Any:
    code, body = get(path)
    if code != 200 or not isinstance(body, dict) or key not in body:
        raise TruthUnavailable(f"GET {path} answered {code}")
    return body[key]


def venue_orders(get: Get, *, since_ms: int = 0) -> list[VenueOrder]:
    return [order_of(o) for o in _get(get, f"/truth/orders?since_ms={since_ms}", "orders")]


def order_of(raw: dict[str, Any]) -> VenueOrder:
    return VenueOrder(
        client_order_id=str(raw["client_order_id"]),
        symbol=str(raw["symbol"]),
        side=str(raw["side"]),
        order_type=str(raw["type"]),
        orig_qty=Decimal(raw["orig_qty"]),
        executed_qty=Decimal(raw["executed_qty"]),
        status=str(raw["status"]),
        time_ms=int(raw["time_ms"]),
        arrival_mid=raw.get("arrival_mid"),
        connection=raw.get("connection"),
        fills=tuple(
            VenueFill(
                trade_id=int(f["trade_id"]),
                price=Decimal(f["price"]),
                qty=Decimal(f["qty"]),
                time_ms=int(f["time_ms"]),
            )
            for f in raw.get("fills", [])
        ),
    )


def venue_refusals(get: Get, *, since_ms: int = 0) -> list[VenueRefusal]:
    return [
        VenueRefusal(
            client_order_id=str(r.get("client_order_id", "")),
            symbol=str(r.get("symbol", "")),
            code=int(r["code"]),
            msg=str(r["msg"]),
            time_ms=int(r["time_ms"]),
        )
        for r in _get(get, f"/truth/refusals?since_ms={since_ms}", "refusals")
    ]


def venue_balances(get: Get) -> tuple[dict[str, Decimal], dict[str, tuple[str, str]]]:
    """(asset -> balance change since the start, summed over accounts; symbol -> (base,
    quote)) as the simulator holds them."""
    code, body = get("/truth/balances")
    if code != 200 or not isinstance(body, dict):
        raise TruthUnavailable(f"GET /truth/balances answered {code}")
    change: dict[str, Decimal] = {}
    for account in body["accounts"].values():
        for asset, balance in account.items():
            moved = Decimal(balance["total"]) - Decimal(balance["initial"])
            change[asset] = change.get(asset, Decimal(0)) + moved
    symbols = {
        symbol: (str(assets["base"]), str(assets["quote"]))
        for symbol, assets in (body.get("symbols") or {}).items()
    }
    return change, symbols


def base_changes(
    change: dict[str, Decimal], symbols: dict[str, tuple[str, str]]
) -> dict[str, Decimal]:
    """The venue position of each traded base asset (quote assets move with every trade)."""
    bases = {base for base, _ in symbols.values()}
    return {asset: qty for asset, qty in change.items() if asset in bases}


def replay_mids(get: Get, *, since_ms: int = 0) -> list[MidPoint]:
    return [
        MidPoint(symbol=str(p["symbol"]), ts_ms=int(p["ts_ms"]), mid=float(p["mid"]))
        for p in _get(get, f"/truth/mids?since_ms={since_ms}", "mids")
    ]


def orders_in_flight(get: Get) -> list[dict[str, Any]]:
    """New-order requests the simulator received and has not answered yet."""
    return [
        r
        for r in _get(get, "/truth/in-flight", "in_flight")
        if r.get("method") == "POST" and r.get("path") == "/api/v3/order"
    ]


def venue_funding(
    get: Get, *, since_ms: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """Futures: the funding payments and the funding times (the schedule) since `since_ms`;
    None for a spot venue. Raises TruthUnavailable otherwise."""
    code, body = get(f"/truth/funding?since_ms={since_ms}")
    if code == 404:
        return None
    if (
        code != 200
        or not isinstance(body, dict)
        or not isinstance(body.get("funding"), list)
        or not isinstance(body.get("times"), list)
    ):
        raise TruthUnavailable(f"/truth/funding answered {code}")
    return list(body["funding"]), list(body["times"])


def venue_liquidations(get: Get, *, since_ms: int) -> list[dict[str, Any]] | None:
    """Futures: the simulator's liquidations since `since_ms`; None for a spot venue (it has
    none to list and says so with 404). Raises TruthUnavailable otherwise."""
    code, body = get(f"/truth/liquidations?since_ms={since_ms}")
    if code == 404:
        return None
    if code != 200 or not isinstance(body, dict) or not isinstance(body.get("liquidations"), list):
        raise TruthUnavailable(f"/truth/liquidations answered {code}")
    liquidations: list[dict[str, Any]] = body["liquidations"]
    return liquidations
