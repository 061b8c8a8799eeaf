"""Intents submitted by the experiment itself, as an external signal source would: through the
engine's intake API (`POST /intents` on the strategy service), each recorded with the intake's
answer in RUN_DIR/harness-intents.jsonl, which the game day's judge reads as ground truth (a
position the engine must hold, an order it must not lose or double).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.chaos.configuration import client_of
from harness.client import http
from harness.truth.submitted import HARNESS_INTENTS, record_submission

__all__ = ["submit_intent"]


def submit_intent(
    side: str = "BUY",
    qty: str = "0.001",
    symbol: str | None = None,
    order_type: str = "MARKET",
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Submit one intent; its id and the intake's answer. An answer other than 202 fails the
    action (the experiment's setup did not happen)."""
    client = client_of(configuration)
    run_dir = client.run_dir
    engine_symbols = run_dir.symbols()
    symbol = (symbol or engine_symbols[0]).upper()
    intent_id = f"harness-{uuid.uuid4().hex[:16]}"
    body = {
        "intent_id": intent_id,
        "symbol": symbol,
        "side": side.upper(),
        "qty": qty,
        "order_type": order_type.upper(),
        "source": "harness",
    }
    sent_ns = time.time_ns()
    code, reply = http(
        "POST",
        f"{client.endpoints.intake_url}/intents",
        token=client.endpoints.intake_token,
        body=body,
    )
    record_submission(
        run_dir.file(HARNESS_INTENTS),
        intent_id=intent_id,
        symbol=symbol,
        side=body["side"],
        qty=qty,
        order_type=body["order_type"],
        sent_ns=sent_ns,
        status=code,
    )
    if code != 202:
        raise ActivityFailed(f"the intake refused intent {intent_id} ({code}): {reply}")
    return {"intent_id": intent_id, "status": code, "sent_ns": sent_ns}
