"""Approved-but-unfilled quantity per intent: the worst case the position checks must assume.

An approved intent counts in full until its fills arrive and execution says it is done. Rebuilt at
start from the approvals on orders.{venue} and the fills and IntentDone messages on exec.{venue};
the order in which the two streams are replayed does not matter (a done intent is never
re-opened by a late approval).
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

from engine.core.messages import Fill, Intent, IntentDone, Side

_DONE_MEMORY = 100_000


class Exposure:
    def __init__(self) -> None:
        self._open: dict[str, tuple[str, Side, Decimal, bool]] = {}
        """intent id -> (symbol, side, unfilled qty, reduce_only)"""
        self._done: OrderedDict[str, None] = OrderedDict()

    def approve(self, intent: Intent) -> None:
        if intent.action != "new" or intent.intent_id in self._done:
            return
        if intent.intent_id not in self._open:
            self._open[intent.intent_id] = (
                intent.symbol,
                intent.side,
                intent.qty,
                intent.reduce_only,
            )

    def fill(self, fill: Fill) -> None:
        current = self._open.get(fill.intent_id)
        if current is None:
            return
        symbol, side, qty, reduce_only = current
        self._open[fill.intent_id] = (symbol, side, max(Decimal(0), qty - fill.qty), reduce_only)

    def done(self, message: IntentDone) -> None:
        self._open.pop(message.intent_id, None)
        self._done[message.intent_id] = None
        while len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)

    def pending(self, symbol: str, side: Side) -> Decimal:
        return sum(
            (q for s, sd, q, _ in self._open.values() if s == symbol and sd is side), Decimal(0)
        )

    def open_intents(self, *, reduce_only: bool | None = None) -> list[tuple[str, str]]:
        """(intent id, symbol) of intents still being worked."""
        return [
            (intent_id, symbol)
            for intent_id, (symbol, _, _, ro) in self._open.items()
            if reduce_only is None or ro == reduce_only
        ]

    def __len__(self) -> int:
        return len(self._open)
