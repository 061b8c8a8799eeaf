"""What happened in a stack run: from the engine's journal and the simulator's ground truth."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.core.positions import PositionBook, split_symbol
from engine.execution.journal import SqliteJournalSync


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def fetch_json(url: str, token: str, timeout_s: float = 5.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


@dataclass
class RunSummary:
    orders_by_state: dict[str, int] = field(default_factory=dict)
    orders_sent: int = 0
    fills: int = 0
    engine_position: dict[str, Decimal] = field(default_factory=dict)
    venue_position: dict[str, Decimal] = field(default_factory=dict)
    tick_to_order_ms: list[float] = field(default_factory=list)
    venue_orders: int = 0
    venue_duplicate_client_ids: int = 0
    venue_fills: int = 0

    @property
    def tick_to_order_p50_ms(self) -> float | None:
        return percentile(self.tick_to_order_ms, 50)

    @property
    def tick_to_order_p99_ms(self) -> float | None:
        return percentile(self.tick_to_order_ms, 99)

    @property
    def position_drift(self) -> dict[str, Decimal]:
        symbols = set(self.engine_position) | set(self.venue_position)
        return {
            s: self.engine_position.get(s, Decimal(0)) - self.venue_position.get(s, Decimal(0))
            for s in sorted(symbols)
        }

    def count(self, *states: str) -> int:
        return sum(self.orders_by_state.get(s, 0) for s in states)

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders_sent": self.orders_sent,
            "orders_by_state": self.orders_by_state,
            "fills": self.fills,
            "engine_position": {k: str(v) for k, v in self.engine_position.items()},
            "venue_position": {k: str(v) for k, v in self.venue_position.items()},
            "position_drift": {k: str(v) for k, v in self.position_drift.items()},
            "tick_to_order_p50_ms": self.tick_to_order_p50_ms,
            "tick_to_order_p99_ms": self.tick_to_order_p99_ms,
            "venue_orders": self.venue_orders,
            "venue_fills": self.venue_fills,
            "venue_duplicate_client_ids": self.venue_duplicate_client_ids,
        }


def summarize(journal_path: Path, control_url: str, control_token: str) -> RunSummary:
    summary = RunSummary()
    journal = SqliteJournalSync(journal_path, read_only=True)
    try:
        orders = journal.all_orders()
        fills = journal.fills()
    finally:
        journal.close()
    summary.orders_by_state = dict(Counter(o.state.value for o in orders))
    summary.orders_sent = sum(1 for o in orders if o.sent_ts_ns)
    summary.fills = len(fills)
    book = PositionBook()
    for fill in fills:
        book.apply(fill)
    summary.engine_position = {p.symbol: p.qty for p in book.all()}
    summary.tick_to_order_ms = [
        (o.sent_ts_ns - o.tick_recv_ts_ns) / 1e6
        for o in orders
        if o.sent_ts_ns and o.tick_recv_ts_ns
    ]
    truth = fetch_json(f"{control_url}/truth/orders", control_token)["orders"]
    balances = fetch_json(f"{control_url}/truth/balances", control_token)["accounts"]
    summary.venue_orders = len(truth)
    summary.venue_fills = sum(len(o["fills"]) for o in truth)
    ids = Counter(o["client_order_id"] for o in truth)
    summary.venue_duplicate_client_ids = sum(n - 1 for n in ids.values() if n > 1)
    symbols = {o["symbol"] for o in truth} | set(summary.engine_position)
    for symbol in symbols:
        base, _ = split_symbol(symbol)
        change = Decimal(0)
        for account in balances.values():
            if base in account:
                change += Decimal(account[base]["total"]) - Decimal(account[base]["initial"])
        summary.venue_position[symbol] = change
    return summary
