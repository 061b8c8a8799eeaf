"""The venue's ledger of what it refused and what it has not answered yet: ground truth beside the
accepted orders (`MatchingEngine.orders`), read by the harness through the control API.

    RefusalLog    every new-order request the venue refused after reading it: its
                  clientOrderId (when it sent one), Binance's code and message, the venue time.
                  A repeated clientOrderId (-2010 "Duplicate order sent.") is one of these: the
                  judge reports them beside the duplicates it counts
    InFlight      requests whose answer the venue has not written yet (a delayed or held
                  answer): what proves a crash hit an order in flight

Bounded: past `max_refusals` the oldest refusal goes and `dropped` counts it.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Refusal:
    client_order_id: str
    symbol: str
    code: int
    msg: str
    time_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "code": self.code,
            "msg": self.msg,
            "time_ms": self.time_ms,
        }


class RefusalLog:
    def __init__(self, *, max_refusals: int = 100_000) -> None:
        self.refusals: deque[Refusal] = deque(maxlen=max_refusals)
        self.dropped = 0

    def record(self, params: dict[str, str], code: int, msg: str, time_ms: int) -> None:
        if len(self.refusals) == self.refusals.maxlen:
            self.dropped += 1
        self.refusals.append(
            Refusal(
                client_order_id=params.get("newClientOrderId", "")[:64],
                symbol=params.get("symbol", "")[:32],
                code=code,
                msg=msg,
                time_ms=time_ms,
            )
        )

    def since(self, since_ms: int) -> list[Refusal]:
        return [r for r in self.refusals if r.time_ms >= since_ms]


@dataclass(slots=True)
class Pending:
    method: str
    path: str
    since_ns: int

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "since_ns": self.since_ns}


class InFlight:
    def __init__(self) -> None:
        self.pending: dict[int, Pending] = {}
        self._ids = itertools.count()

    async def track(self, method: str, path: str, answer: Awaitable[Any]) -> Any:
        """Await `answer`, listed as unanswered meanwhile."""
        key = next(self._ids)
        self.pending[key] = Pending(method, path, time.time_ns())
        try:
            return await answer
        finally:
            del self.pending[key]

    def listing(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.pending.values()]
