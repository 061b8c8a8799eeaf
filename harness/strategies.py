"""The strategies every staging engine of ours runs: the local stack's and the Kubernetes
deployment's (deploy/kubernetes/base/engine.toml), one definition for both."""

from __future__ import annotations

from engine.config import StrategyConfig


def _strategies(
    *, momentum_qty: str, momentum_max: str, quoter_qty: str, quoter_max: str
) -> tuple[StrategyConfig, ...]:
    return (
        StrategyConfig(
            kind="momentum",
            name="momentum",
            params={
                "window_ms": 3000,
                "threshold_bps": 1.5,
                "order_qty": momentum_qty,
                "max_position": momentum_max,
                "cooldown_ms": 2000,
            },
        ),
        StrategyConfig(
            kind="quoter",
            name="quoter",
            params={
                "order_qty": quoter_qty,
                "max_position": quoter_max,
                "requote_ticks": 200,
                "max_quote_age_ms": 8000,
            },
        ),
    )


STAGING_STRATEGIES = _strategies(
    momentum_qty="0.002", momentum_max="0.02", quoter_qty="0.001", quoter_max="0.01"
)
STAGING_FUTURES_STRATEGIES = {
    "usdm": _strategies(
        momentum_qty="0.01", momentum_max="0.1", quoter_qty="0.01", quoter_max="0.05"
    ),
    "coinm": _strategies(momentum_qty="3", momentum_max="30", quoter_qty="3", quoter_max="15"),
}
"""The same strategies sized for a perpetual, per market: USD-M ETHUSDT in ETH (Binance's
minimum notional there is 20 USDT: 0.01 ETH is about 30), COIN-M ETHUSD_PERP in contracts of
10 USD (3 contracts are about 0.01 ETH)."""
