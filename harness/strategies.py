"""The strategies every staging engine of ours runs: the local stack's and the Kubernetes
deployment's (deploy/kubernetes/base/engine.toml), one definition for both."""

from __future__ import annotations

from engine.config import StrategyConfig

STAGING_STRATEGIES = (
    StrategyConfig(
        kind="momentum",
        name="momentum",
        params={
            "window_ms": 3000,
            "threshold_bps": 1.5,
            "order_qty": "0.002",
            "max_position": "0.02",
            "cooldown_ms": 2000,
        },
    ),
    StrategyConfig(
        kind="quoter",
        name="quoter",
        params={
            "order_qty": "0.001",
            "max_position": "0.01",
            "requote_ticks": 200,
            "max_quote_age_ms": 8000,
        },
    ),
)


STAGING_FUTURES_STRATEGIES = (
    StrategyConfig(
        kind="momentum",
        name="momentum",
        params={
            "window_ms": 3000,
            "threshold_bps": 1.5,
            "order_qty": "0.01",
            "max_position": "0.1",
            "cooldown_ms": 2000,
        },
    ),
    StrategyConfig(
        kind="quoter",
        name="quoter",
        params={
            "order_qty": "0.01",
            "max_position": "0.05",
            "requote_ticks": 200,
            "max_quote_age_ms": 8000,
        },
    ),
)
"""The same strategies sized for a USD-M ETHUSDT perpetual (Binance's minimum notional there
is 20 USDT: 0.01 ETH is about 30)."""
