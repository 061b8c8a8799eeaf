"""Load statistics become SLIs: Locust's JSON, Prometheus histograms and Redis lag samples."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.load import parse_duration_s, parse_slo
from harness.errors import HarnessError
from harness.load.stats import (
    LoadStatsError,
    histogram_buckets,
    histogram_quantile,
    lag_slis,
    locust_slis,
    percentile_ms,
    read_stats_json,
)
from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.unit
LOAD_DIR = PROJECT_ROOT / "load"


def entry(name: str, times: dict[int, int], failures: int = 0) -> dict[str, object]:
    return {
        "name": name,
        "method": "POST",
        "num_requests": sum(times.values()),
        "num_failures": failures,
        "response_times": {str(k): v for k, v in times.items()},
    }


def test_locust_statistics_become_slis() -> None:
    entries = [
        entry("POST /intents", {3: 90, 8: 9, 40: 1}),
        entry("intent_to_venue_ack", {10: 50, 20: 45, 60: 4, 10000: 1}, failures=1),
        entry("GET /status risk", {2: 10}),
    ]
    slis = locust_slis(entries)
    assert slis["load_requests"] == 210
    assert slis["load_failure_ratio"] == round(1 / 210, 6)
    assert (slis["intents_sent"], slis["intents_acked"], slis["intent_ack_timeouts"]) == (
        100,
        99,
        1,
    )
    assert (slis["intake_p95_ms"], slis["intake_p99_ms"]) == (8, 8)
    assert slis["intent_to_ack_p50_ms"] == 10
    assert slis["intent_to_ack_p95_ms"] == 20
    assert slis["intent_to_ack_p99_ms"] == 60


def test_missing_entries_are_missing_data_not_zero() -> None:
    slis = locust_slis([entry("GET /status risk", {2: 10})])
    assert slis["intent_to_ack_p99_ms"] is None and slis["intents_sent"] is None
    assert locust_slis([])["load_failure_ratio"] is None
    assert percentile_ms(entry("x", {}), 0.99) is None


def test_unreadable_statistics_are_named(tmp_path: Path) -> None:
    with pytest.raises(LoadStatsError, match="no Locust statistics"):
        read_stats_json(tmp_path / "absent.json")
    (tmp_path / "other.json").write_text(json.dumps({"stats": []}))
    with pytest.raises(LoadStatsError, match="not Locust's JSON"):
        read_stats_json(tmp_path / "other.json")


METRICS = """# TYPE trading_tick_to_order_seconds histogram
trading_tick_to_order_seconds_bucket{le="0.001",venue="binance"} %d
trading_tick_to_order_seconds_bucket{le="0.01",venue="binance"} %d
trading_tick_to_order_seconds_bucket{le="0.1",venue="binance"} %d
trading_tick_to_order_seconds_bucket{le="+Inf",venue="binance"} %d
trading_tick_to_order_seconds_count{venue="binance"} %d
"""


def test_histogram_quantile_is_over_the_window_between_two_scrapes() -> None:
    before = histogram_buckets(METRICS % (10, 10, 10, 10, 10), "trading_tick_to_order_seconds")
    # in the window: 90 under 10 ms, 9 under 100 ms, 1 slower than that
    after = histogram_buckets(METRICS % (10, 100, 109, 110, 110), "trading_tick_to_order_seconds")
    assert after == {0.001: 10, 0.01: 100, 0.1: 109, math.inf: 110}
    assert histogram_quantile(before, after, 0.5) == 0.01
    assert histogram_quantile(before, after, 0.95) == 0.1
    assert histogram_quantile(before, after, 0.999) == math.inf
    assert histogram_quantile(after, after, 0.99) is None


def test_lag_slis_report_the_peak_and_whether_it_drained() -> None:
    assert lag_slis([(1, 0), (2, 500), (3, None), (4, 30), (5, 0)]) == {
        "stream_lag_max": 500,
        "stream_lag_end": 0,
    }
    assert lag_slis([(1, None)]) == {"stream_lag_max": None, "stream_lag_end": None}


def test_slo_and_duration_arguments() -> None:
    assert parse_slo("intent_to_ack_p99_ms<=50") == ("intent_to_ack_p99_ms", "max", 50.0)
    assert parse_slo(" intents_acked >= 10 ") == ("intents_acked", "min", 10.0)
    for bad in ("p99<50", "x<=fast", "x<=inf"):
        with pytest.raises(HarnessError):
            parse_slo(bad)
    assert [parse_duration_s(d) for d in ("90", "90s", "5m", "1h", "500ms")] == [
        90,
        90,
        300,
        3600,
        0.5,
    ]
    with pytest.raises(HarnessError):
        parse_duration_s("soon")


PLAN_PROBE = """
import json, shapes
plan = shapes.Plan(duration_s=100, peak_users=8, burst_override=None)
out = {n: [plan.at(p, t) for t in (0, 29, 35, 60, 99, 100)] for n, p in shapes.PROFILES.items()}
out["override"] = shapes.Plan(100, 8, 10.0).at(shapes.PROFILES["flash-crash"], 35)
print(json.dumps(out))
"""


def test_load_shapes_follow_their_stages() -> None:
    """Run in a subprocess: importing Locust monkey-patches the process with gevent."""
    done = subprocess.run(
        [sys.executable, "-c", PLAN_PROBE],
        cwd=LOAD_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    plans = json.loads(done.stdout)
    assert plans["steady"] == [[8, None]] * 5 + [None]
    assert plans["ramp"][0] == [1, None] and plans["ramp"][4] == [8, None]
    assert plans["market-open"][:4] == [[2, None], [2, None], [8, 10], [5, None]]
    assert plans["flash-crash"][:4] == [[4, None], [4, None], [8, 100], [4, None]]
    assert plans["soak"][0] == [4, None]
    assert plans["override"] == [8, 10.0]


def test_bursts_consume_recorded_market_by_shape_and_multiplier() -> None:
    from harness.gameday.schema import LoadSection
    from harness.load.runner import extra_market_s

    assert extra_market_s(LoadSection(shape="steady"), 100) == 0
    assert extra_market_s(LoadSection(shape="market-open"), 100) == 20 * 9  # 180 s more
    assert extra_market_s(LoadSection(shape="flash-crash", burst_multiplier=10), 100) == 15 * 9
    periodic = LoadSection(shape=None, burst_every_s=20, burst_s=5, burst_multiplier=10)
    assert extra_market_s(periodic, 100) == 25 * 9


def test_a_game_day_load_section_is_validated_with_its_scenario_named(tmp_path: Path) -> None:
    import json as _json

    from harness.errors import GameDayConfigError
    from harness.gameday.runner import load_spec, scenario_load
    from harness.gameday.slo import load_gameday

    (tmp_path / "load").mkdir()
    (tmp_path / "load" / "trading.py").write_text("")
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "x.json").write_text("{}")

    def gameday(load: dict[str, object]) -> Path:
        path = tmp_path / "day.yaml"
        scenario = {"name": "x", "experiment": "experiments/x.json", "load": load}
        scenario["slos"] = [{"name": "rto_s", "max": 1}]
        path.write_text(_json.dumps({"name": "d", "scenarios": [scenario]}))
        return path

    day = load_gameday(
        gameday({"locustfile": "load/trading.py", "shape": "ramp", "users": 3}), root=tmp_path
    )
    section = scenario_load(day, day.scenarios[0])
    assert section is not None
    spec = load_spec(section, tmp_path, where="scenario 'x'")
    assert (spec.shape, spec.users, spec.locustfile) == ("ramp", 3, tmp_path / "load/trading.py")

    def played(path: Path) -> None:
        day = load_gameday(path, root=tmp_path)
        section = scenario_load(day, day.scenarios[0])
        assert section is not None
        load_spec(section, tmp_path, where="scenario 'x'")

    for raw, words in [
        ({"shape": "ramp"}, "'locustfile' is required"),
        ({"locustfile": "load/trading.py", "shape": "tsunami"}, "'shape' must be steady or ramp"),
        ({"locustfile": "load/trading.py", "userz": 3}, "unknown key 'userz'"),
        ({"locustfile": "load/none.py"}, "locustfile not found"),
        ({"locustfile": "load/trading.py", "users": 0}, "'users' must be a whole number >= 1"),
    ]:
        with pytest.raises(GameDayConfigError) as caught:
            played(gameday(raw))
        assert "scenario 'x'" in str(caught.value) and words in str(caught.value)
