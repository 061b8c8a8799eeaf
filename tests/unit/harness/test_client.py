"""Reading one value out of Prometheus text, as the metric probe and the game-day sampler do."""

from __future__ import annotations

import pytest

from harness.client import sample_sum

pytestmark = pytest.mark.unit

TEXT = """# HELP trading_orders_sent_total Orders sent to the venue
# TYPE trading_orders_sent_total counter
trading_orders_sent_total{venue="binance"} 7.0
trading_orders_sent_total{venue="other"} 2.0
trading_tick_to_order_seconds_sum 0.25
trading_tick_to_order_seconds_count 10.0
"""


def test_samples_are_summed_over_the_labels_asked_for() -> None:
    assert sample_sum(TEXT, "trading_orders_sent_total") == 9.0
    assert sample_sum(TEXT, "trading_orders_sent_total", {"venue": "binance"}) == 7.0


def test_an_unlabelled_sample_is_read_and_a_missing_one_is_none() -> None:
    assert sample_sum(TEXT, "trading_tick_to_order_seconds_count") == 10.0
    assert sample_sum(TEXT, "trading_tick_to_order_seconds") is None
    assert sample_sum(TEXT, "trading_orders_sent_total", {"venue": "none"}) is None
