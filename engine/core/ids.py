"""Deterministic identifiers.

The venue's clientOrderId is derived from the intent id and the child index, so a retry, a
restart or a second execution instance computes the same id and the venue rejects the duplicate
instead of creating a second order. Binance accepts `^[a-zA-Z0-9-_]{1,36}$`.
"""

from __future__ import annotations

import base64
import hashlib
import re

_CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def client_order_id(intent_id: str, child_index: int) -> str:
    if not intent_id:
        raise ValueError("intent_id must not be empty")
    if not 0 <= child_index < 100_000:
        raise ValueError(f"child_index out of range: {child_index}")
    digest = hashlib.sha256(intent_id.encode()).digest()
    token = base64.b32encode(digest).decode().rstrip("=").lower()[:26]
    return f"sp{token}-{child_index}"


def is_valid_client_order_id(value: str) -> bool:
    return bool(_CLIENT_ORDER_ID.match(value))
