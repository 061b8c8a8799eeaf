"""The engine's clientOrderId: deterministic, valid for Binance, distinct per child
(engine/core/ids.py)."""

import pytest

from engine.core.ids import client_order_id, is_valid_client_order_id

pytestmark = pytest.mark.unit


def test_client_order_id_is_deterministic_valid_and_distinct() -> None:
    first = client_order_id("strategy.123.45", 0)
    assert first == client_order_id("strategy.123.45", 0)
    assert is_valid_client_order_id(first)
    assert len(first) <= 36
    others = {client_order_id(f"strategy.123.{n}", c) for n in range(200) for c in range(3)}
    assert len(others) == 600
    with pytest.raises(ValueError, match="intent_id must not be empty"):
        client_order_id("", 0)
