"""The engine's clientOrderId rule, as the judge reads it: a documented contract, restated here
so that the judge shares no code with the judged (a bug in the engine's id rule must show up as
orders the judge cannot attribute, not be reproduced by the judge).

    clientOrderId = "sp" + base32(sha256(intent_id))[:26].lower() + "-" + child_index

The part before the last "-" is the intent's *family*: every child order of one intent shares
it. `tests/unit/harness/truth/test_judge.py` holds this restatement to the engine's
`engine.core.ids`.
"""

from __future__ import annotations

import base64
import hashlib
import re

_RULE = re.compile(r"^(sp[a-z2-7]{26})-(\d{1,5})$")


def intent_family(intent_id: str) -> str:
    """The family every child order of this intent must carry."""
    digest = hashlib.sha256(intent_id.encode()).digest()
    return "sp" + base64.b32encode(digest).decode().rstrip("=").lower()[:26]


def client_order_id(intent_id: str, child: int = 0) -> str:
    return f"{intent_family(intent_id)}-{child}"


def family_of(client_order_id: str) -> str | None:
    """The family of a venue order's clientOrderId; None when the id does not follow the rule
    (an order no intent can be held to: the judge counts it as unattributed)."""
    match = _RULE.match(client_order_id)
    return match.group(1) if match else None


def child_of(client_order_id: str) -> int | None:
    match = _RULE.match(client_order_id)
    return int(match.group(2)) if match else None
