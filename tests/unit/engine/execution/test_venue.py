"""The ccxt client's own rate limit keeps 70% of the venue's request weight
(engine/execution/venue.py)."""

import pytest

from engine.config import parse_config
from engine.strategy.registry import STRATEGY_PARAMS

pytestmark = pytest.mark.unit
MINIMAL = b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:2"
symbols = ["BTCUSDT"]
"""


def test_ccxt_rate_limit_keeps_70_percent_of_the_venue_weight() -> None:
    from engine.execution.venue import CCXT_BINANCE_WEIGHT_PER_COST, ccxt_rate_limit_ms

    venue = parse_config(MINIMAL, strategy_params=STRATEGY_PARAMS).venue
    ms_per_cost = ccxt_rate_limit_ms(venue)
    weight_per_minute = 60_000 / ms_per_cost * CCXT_BINANCE_WEIGHT_PER_COST
    assert weight_per_minute == pytest.approx(0.7 * 6000)
