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
_OURS = re.compile(r"^(sp[a-z2-7]{26})-(0|[1-9][0-9]{0,4})\Z")


def family(intent_id: str) -> str:
    """What every clientOrderId of this intent's children starts with: `sp<token>`."""
    if not intent_id:
        raise ValueError("intent_id must not be empty")
    digest = hashlib.sha256(intent_id.encode()).digest()
    return "sp" + base64.b32encode(digest).decode().rstrip("=").lower()[:26]


def client_order_id(intent_id: str, child_index: int) -> str:
    if not 0 <= child_index < 100_000:
        raise ValueError(f"child_index out of range: {child_index}")
    return f"{family(intent_id)}-{child_index}"


def parse_client_order_id(value: str) -> tuple[str, int] | None:
    """(family, child index) of a clientOrderId made by `client_order_id`; None for any other
    id (another client on the account, a manual order). The hash is one-way: which intent a
    family belongs to is found by hashing candidate intent ids, never from the id itself."""
    match = _OURS.match(value)
    return None if match is None else (match[1], int(match[2]))


def is_valid_client_order_id(value: str) -> bool:
    return bool(_CLIENT_ORDER_ID.match(value))
