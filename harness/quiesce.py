"""Bring a running stack to rest before judging it: freeze the market, stop new entries, and
wait until the engine's journal agrees with the venue's ground truth.

Comparing positions while orders are in flight measures timing, not correctness.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from engine.core.orders import OrderState
from engine.execution.journal import SqliteJournalSync
from harness.errors import StackError
from harness.stack import Stack
from harness.summary import fetch_json


def post(url: str, token: str, body: dict[str, Any] | None = None, timeout_s: float = 5.0) -> Any:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read() or b"{}")


def quiesce(stack: Stack, *, timeout_s: float = 20.0) -> None:
    endpoints = stack.client().endpoints
    control, control_token = endpoints.control_url, endpoints.control_token
    post(f"{control}/replay/pause", control_token)
    try:
        post(
            f"{endpoints.ops_url('risk')}/ops/halt",
            endpoints.secrets["STORMPROOF_OPS_TOKEN"],
            {"reason": "quiesce before judging the run"},
        )
    except urllib.error.URLError as exc:
        raise StackError(f"cannot halt the engine: {exc}") from None
    in_flight = {OrderState.PENDING, OrderState.SUBMITTING, OrderState.UNKNOWN}
    deadline = time.monotonic() + timeout_s
    settled_since: float | None = None
    while time.monotonic() < deadline:
        journal = SqliteJournalSync(stack.journal_path, read_only=True)
        try:
            orders = journal.all_orders()
            journal_fills = {(f.venue, f.trade_id) for f in journal.fills()}
        finally:
            journal.close()
        truth = fetch_json(f"{control}/truth/orders", control_token)
        venue_fills = sum(len(o["fills"]) for o in truth["orders"])
        venue_ids = {o["client_order_id"] for o in truth["orders"]}
        journal_ids = {o.client_order_id for o in orders if o.sent_ts_ns}
        settled = (
            not any(o.state in in_flight for o in orders)
            and len(journal_fills) == venue_fills
            and venue_ids <= journal_ids
        )
        if settled:
            # stable for a moment: nothing approved before the halt is still on its way
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since >= 1.0:
                return
        else:
            settled_since = None
        time.sleep(0.1)
    raise StackError(f"the engine did not settle within {timeout_s:.0f}s after the halt")
