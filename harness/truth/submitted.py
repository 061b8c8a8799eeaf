"""What submitters recorded of the intents they sent: the load generator's intents log and the
harness's own clients' (chaos actions that submit intents). One JSON object per line; the judge
reads the `submitted` events:

    {"event": "submitted", "intent_id": "...", "symbol": "BTCUSDT", "side": "BUY",
     "qty": "0.001", "order_type": "MARKET", "sent_ns": 1733500000000000000, "status": 202}

`status` is the intake's HTTP answer (202 accepted; anything else is no order). A line that is
not such an object is counted, never guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from harness.truth.records import IntentRecord

HARNESS_INTENTS = "harness-intents.jsonl"
"""In a stack's run directory: the intents chaos actions submitted."""


@dataclass(kw_only=True)
class Submissions:
    intents: list[IntentRecord] = field(default_factory=list)
    unreadable: int = 0


def read_submissions(paths: Iterable[Path], *, source: str) -> Submissions:
    out = Submissions()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                out.unreadable += 1
                continue
            if not isinstance(record, dict) or record.get("event") != "submitted":
                continue
            try:
                out.intents.append(
                    IntentRecord(
                        intent_id=str(record["intent_id"]),
                        source=source,
                        symbol=str(record["symbol"]),
                        side=str(record["side"]),
                        qty=Decimal(str(record["qty"])),
                        submitted_ns=int(record["sent_ns"]),
                        accepted=int(record["status"]) == 202,
                        status=int(record["status"]),
                        algo=str(record.get("algo", "") or ""),
                        order_type=str(record.get("order_type", "MARKET")),
                    )
                )
            except (KeyError, ValueError, TypeError, InvalidOperation):
                out.unreadable += 1
    return out


def record_submission(
    path: Path,
    *,
    intent_id: str,
    symbol: str,
    side: str,
    qty: str,
    order_type: str,
    sent_ns: int,
    status: int,
) -> None:
    """Append one `submitted` event (the harness's clients write theirs with this)."""
    line = json.dumps(
        {
            "event": "submitted",
            "intent_id": intent_id,
            "symbol": symbol,
            "side": side,
            "qty": qty,
            "order_type": order_type,
            "sent_ns": sent_ns,
            "status": status,
        }
    )
    with path.open("a") as out:
        out.write(line + "\n")


HARNESS_VENUE_ORDERS = "harness-venue-orders.jsonl"
"""In a stack's run directory: orders the harness placed at the venue itself, beside the engine
(a close by hand): no intent accounts for them, and none is a defect of the engine."""


def record_venue_order(path: Path, *, client_order_id: str, sent_ns: int) -> None:
    """Append one order the harness is about to place at the venue (written before it is sent:
    an order whose answer is lost is still the harness's)."""
    line = json.dumps({"event": "placed", "client_order_id": client_order_id, "sent_ns": sent_ns})
    with path.open("a") as out:
        out.write(line + "\n")


def read_venue_orders(path: Path) -> set[str]:
    """The clientOrderIds of the orders the harness placed at the venue itself; a line that does
    not read is skipped (its order then counts against the engine: never in its favour)."""
    if not path.exists():
        return set()
    ids: set[str] = set()
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("client_order_id"), str):
            ids.add(record["client_order_id"])
    return ids
