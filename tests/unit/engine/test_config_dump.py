"""`engine.config.dump_config` writes the file the engine's own loader reads back into an equal
config: the harness writes every stack's engine.toml with it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import (
    EngineConfig,
    ExecutionConfig,
    FeedConfig,
    LeaseConfig,
    OpsConfig,
    RiskConfig,
    StrategyConfig,
    VenueConfig,
    dump_config,
    load_settings,
    parse_config,
)
from engine.strategy.registry import STRATEGY_PARAMS
from harness.stack import Stack, StackOptions

pytestmark = pytest.mark.unit

VENUE = VenueConfig(
    ws_urls=["ws://127.0.0.1:9001", "ws://127.0.0.1:9002"],
    rest_url="http://127.0.0.1:9003",
    symbols=["BTCUSDT", "ETHUSDT"],
)


@pytest.mark.parametrize(
    "config",
    [
        EngineConfig(venue=VENUE),
        EngineConfig(
            venue=VENUE,
            feed=FeedConfig(stream_stale_after_ms={"trade": 30_000, "depth": 900}, failback_ms=0.0),
            strategies=[
                StrategyConfig(
                    kind="momentum", name="m", params={"window_ms": 3000, "threshold_bps": 1.5}
                ),
                StrategyConfig(kind="quoter", name="q", params={"order_qty": "0.001"}),
            ],
            risk=RiskConfig(max_position_qty=Decimal("0.0001"), flatten_algo=""),
            lease=LeaseConfig(backend="redis", ttl_ms=2000, renew_interval_ms=500),
            ops=OpsConfig(ports={"feed": 1, "strategy": 2, "risk": 3, "execution": 65535}),
        ),
    ],
    ids=["defaults", "everything-set"],
)
def test_a_dumped_config_loads_back_equal(config: EngineConfig) -> None:
    assert parse_config(dump_config(config), strategy_params=STRATEGY_PARAMS) == config


def test_the_stacks_engine_toml_loads_back_as_the_config_it_was_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Stack, "_symbols", staticmethod(lambda options: ["BTCUSDT"]))
    names = ["proxy_feed", "proxy_feed_b", "proxy_rest", "proxy_user_stream", "proxy_redis"]
    names += ["ops_feed", "ops_strategy", "ops_risk", "ops_execution"]
    ports = {name: 20_000 + i for i, name in enumerate(names)}
    stack = Stack(tmp_path)
    options = StackOptions(
        recordings=[],
        orders_per_10s=2000,
        standby=True,
        journal="postgres",
        extra_engine_toml='[feed]\nswitch_lag_ms = 20.0\n[[strategies]]\nkind = "momentum"\n'
        'name = "extra"\n',
    )
    made = stack._engine_config(ports, options)
    path = tmp_path / "engine.toml"
    path.write_bytes(stack._engine_toml(ports, options))
    env = {"STORMPROOF_JOURNAL_DSN": "postgresql://u@127.0.0.1:1/db"}
    assert load_settings(path, env=env, strategy_params=STRATEGY_PARAMS).config == made
    assert made.feed.switch_lag_ms == 20.0
    assert [s.name for s in made.strategies] == ["momentum", "quoter", "extra"]
    assert (made.execution.max_orders_per_10s, made.risk.max_orders_per_window) == (1000, 1000)
    assert made.venue.ws_urls == ["ws://127.0.0.1:20000", "ws://127.0.0.1:20001"]


@pytest.mark.parametrize(
    "path",
    ['runs/"quoted"/journal.sqlite', "C:\\back\\slash.sqlite", "emoji-😀/j.sqlite", "del\x7f/j"],
)
def test_any_path_survives_the_dump(path: str) -> None:
    """A run directory's name is the user's: quotes, backslashes, characters beyond U+FFFF and
    DEL all come back as written."""
    config = EngineConfig(venue=VENUE, execution=ExecutionConfig(journal_path=path))
    loaded = parse_config(dump_config(config), strategy_params=STRATEGY_PARAMS)
    assert loaded.execution.journal_path == path
