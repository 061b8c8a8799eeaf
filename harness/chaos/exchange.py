"""What someone else does at the exchange with the engine's own API key: a trader closing part
of a futures position by hand (the exchange's UI, a script), the classic out-of-band change an
engine's position book does not see. A signed Binance futures order straight to the simulator's
REST API (not through the engine's Toxiproxy link: the human is elsewhere), on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.chaos.configuration import client_of, run_dir_of
from harness.truth.submitted import HARNESS_VENUE_ORDERS, record_venue_order
from replay.control import hash_key

__all__ = ["close_by_hand"]

REST_PREFIX = {"usdm": "/fapi/v1", "coinm": "/dapi/v1"}


def close_by_hand(
    symbol: str, qty: str, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Close `qty` of the account's `symbol` position with a market order on the engine's key,
    as a human would (no reduceOnly: a human does not think of it). Fails when the account
    holds less than `qty` (it would open, not close) or the venue refuses. Returns the venue's
    order and the position before and after (the simulator's ground truth)."""
    try:
        wanted = Decimal(str(qty))
    except InvalidOperation:
        raise ActivityFailed(f"qty must be a number, got {qty!r}") from None
    if not wanted.is_finite() or wanted <= 0:
        raise ActivityFailed(f"qty must be positive, got {qty!r}")
    run_dir = run_dir_of(configuration)
    market = str(run_dir.engine_config().get("venue", {}).get("market", "spot"))
    if market not in REST_PREFIX:
        raise ActivityFailed(f"close_by_hand closes futures positions; this stack is {market}")
    secrets = run_dir.secrets()
    account = hash_key(secrets["STORMPROOF_API_KEY"])
    before = _position(configuration, symbol, account)
    if abs(before) < wanted:
        raise ActivityFailed(f"the account holds {before} {symbol}: cannot close {qty} of it")
    endpoints = client_of(configuration).endpoints
    params = {
        "symbol": symbol,
        "side": "SELL" if before > 0 else "BUY",
        "type": "MARKET",
        "quantity": format(wanted, "f"),
        "newClientOrderId": f"by-hand-{time.time_ns()}",
        "recvWindow": "5000",
        "timestamp": str(time.time_ns() // 1_000_000),
    }
    record_venue_order(
        run_dir.file(HARNESS_VENUE_ORDERS),
        client_order_id=params["newClientOrderId"],
        sent_ns=time.time_ns(),
    )
    query = urllib.parse.urlencode(params)
    signature = hmac.new(
        secrets["STORMPROOF_API_SECRET"].encode(), query.encode(), hashlib.sha256
    ).hexdigest()
    url = f"{endpoints.url('replay_rest')}{REST_PREFIX[market]}/order?{query}&signature={signature}"
    request = urllib.request.Request(
        url, method="POST", headers={"X-MBX-APIKEY": secrets["STORMPROOF_API_KEY"]}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            order = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise ActivityFailed(
            f"the venue refused the order ({error.code}): {error.read()[:300]!r}"
        ) from None
    except OSError as exc:
        raise ActivityFailed(f"the venue did not answer: {exc}") from None
    return {
        "order": order,
        "position_before": str(before),
        "position_after": str(_position(configuration, symbol, account)),
    }


def _position(configuration: dict[str, Any] | None, symbol: str, account: str) -> Decimal:
    """The engine's account's net position in `symbol` (the simulator's ground truth)."""
    code, body = client_of(configuration).truth("/truth/positions", timeout_s=2)
    if code != 200 or not isinstance(body, dict):
        raise ActivityFailed(f"the simulator's positions answered {code}")
    return sum(
        (
            Decimal(str(p["qty"]))
            for held in body.get("accounts", [])
            if held.get("account") == account
            for p in held.get("positions", [])
            if p.get("symbol") == symbol
        ),
        Decimal(0),
    )
