"""The harness's own record of the orders it placed at the venue beside the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.truth.submitted import read_venue_orders, record_venue_order

pytestmark = pytest.mark.unit


def test_orders_placed_by_hand_are_read_back_and_a_bad_line_is_never_one(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    assert read_venue_orders(path) == set()
    record_venue_order(path, client_order_id="by-hand-1", sent_ns=1)
    with path.open("a") as out:
        out.write('{"client_order_id": 7}\nnot json\n')
    record_venue_order(path, client_order_id="by-hand-2", sent_ns=2)
    assert read_venue_orders(path) == {"by-hand-1", "by-hand-2"}
