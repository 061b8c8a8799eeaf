"""Strategy kinds by name, and construction from config with one-line errors."""

from __future__ import annotations

import msgspec

from engine.config import StrategyConfig
from engine.core.errors import ConfigError
from engine.strategy.base import Strategy, StrategyContext
from engine.strategy.examples.momentum import MomentumTaker
from engine.strategy.examples.quoter import MakerQuoter

KINDS: dict[str, type[Strategy]] = {cls.kind: cls for cls in (MomentumTaker, MakerQuoter)}
STRATEGY_PARAMS: dict[str, type[msgspec.Struct]] = {kind: cls.Params for kind, cls in KINDS.items()}
"""What `engine.config.parse_config` checks each strategy's params with, by kind."""


def build_strategy(config: StrategyConfig, ctx: StrategyContext) -> Strategy:
    cls = KINDS.get(config.kind)
    if cls is None:
        raise ConfigError(
            f"unknown strategy kind {config.kind!r} for {config.name!r}; known: {sorted(KINDS)}"
        )
    try:
        params = msgspec.convert(config.params, cls.Params, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid params for strategy {config.name!r}: {exc}") from None
    return cls(ctx, params)
