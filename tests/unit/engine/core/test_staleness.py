"""Staleness thresholds per stream kind (engine/core/staleness.py)."""

import pytest

from engine.core.staleness import StalenessTracker

pytestmark = pytest.mark.unit


def test_staleness_thresholds_are_per_stream_kind() -> None:
    tracker = StalenessTracker(default_ms=1_000, per_kind_ms={"trade": 30_000})
    tracker.seen("BTCUSDT", "trade", 0)
    tracker.seen("BTCUSDT", "depth", 0)
    now = 5_000_000_000  # 5 s later
    stale = tracker.stale(now, {"BTCUSDT": ("trade", "depth", "bookTicker")})
    assert stale == ["BTCUSDT/depth", "BTCUSDT/bookTicker"]
    assert tracker.symbol_age_ns("BTCUSDT", now) == now
