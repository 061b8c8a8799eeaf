"""Mark price, index price and funding rate, derived from the replayed book and trades.

Futures recordings rarely carry `@markPrice`: the replay derives it, deterministically, from what
it has, with Binance's published formulas where the recording has their inputs and a configured
stand-in where it has not (docs/futures.md):

    mid          = (best bid + best ask) / 2                  (latest bookTicker)
    index        = mid / (1 + premium)                        (no spot index was recorded:
                                                               `premium` is configured)
    P            = (mid - index) / index                      premium index (= premium)
    funding rate = clamp(P + clamp(I - P, -0.05%, +0.05%), -cap, +cap)
                   I: interest rate per funding interval (Binance: 0.01% per 8 h)
    price1       = index * (1 + funding rate * time to next funding / funding interval)
    price2       = index + (mid - index)                      Binance averages the basis over
                                                               time; we take its latest value
    mark         = median(price1, price2, last trade price) * (1 + mark_shift)

Funding times are the multiples of the funding interval from 00:00 UTC, in event time. A game day
moves the derived market through the levers `premium`, `funding_rate` (an override) and
`mark_shift` (the mark alone, for a mark/last divergence); nothing else changes them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MarkPrice", "MarkPriceConfig", "MarkPriceModel"]

BASIS_CLAMP = 0.0005
"""Binance: the interest-minus-premium term is clamped to ±0.05%."""


@dataclass(frozen=True, kw_only=True)
class MarkPriceConfig:
    premium: float = 0.0
    """(mid - index) / index: how far the contract trades from an index the recording lacks."""
    interest_rate: float = 0.0001
    """Per funding interval (Binance: 0.01% per 8 h)."""
    funding_cap: float = 0.0075
    """The funding rate is clamped to ±this (per interval)."""
    funding_interval_ms: int = 8 * 3_600_000
    funding_rate: float | None = None
    """When set, the funding rate is this, not the formula's (a funding spike)."""
    mark_shift: float = 0.0
    """The mark moves by this fraction after the formula (mark/last divergence)."""


@dataclass(frozen=True, kw_only=True)
class MarkPrice:
    symbol: str
    event_ms: int
    mark: float
    index: float
    funding_rate: float
    next_funding_ms: int
    interest_rate: float


def _median(a: float, b: float, c: float) -> float:
    return max(min(a, b), min(max(a, b), c))


class MarkPriceModel:
    """Per symbol: the latest quote and trade price; asked for the mark at an event time."""

    def __init__(self, config: MarkPriceConfig | None = None) -> None:
        self.config = config or MarkPriceConfig()
        self._quotes: dict[str, tuple[float, float]] = {}
        self._last: dict[str, float] = {}

    def reconfigure(self, config: MarkPriceConfig) -> None:
        self.config = config

    def on_quote(self, symbol: str, bid: float, ask: float) -> None:
        if bid > 0 and ask > 0:
            self._quotes[symbol] = (bid, ask)

    def on_trade(self, symbol: str, price: float) -> None:
        if price > 0:
            self._last[symbol] = price

    def next_funding_ms(self, event_ms: int) -> int:
        interval = self.config.funding_interval_ms
        return (event_ms // interval + 1) * interval

    def funding_times(self, after_ms: int, until_ms: int) -> list[int]:
        """Funding times t with after_ms < t <= until_ms."""
        interval = self.config.funding_interval_ms
        first = (after_ms // interval + 1) * interval
        return list(range(first, until_ms + 1, interval))

    def funding_rate(self) -> float:
        config = self.config
        if config.funding_rate is not None:
            return config.funding_rate
        premium = config.premium
        rate = premium + min(max(config.interest_rate - premium, -BASIS_CLAMP), BASIS_CLAMP)
        return min(max(rate, -config.funding_cap), config.funding_cap)

    def mark(self, symbol: str, event_ms: int) -> MarkPrice | None:
        """The mark at `event_ms`, or None before the symbol's first quote."""
        quote = self._quotes.get(symbol)
        if quote is None:
            return None
        config = self.config
        mid = (quote[0] + quote[1]) / 2
        index = mid / (1 + config.premium)
        rate = self.funding_rate()
        next_funding = self.next_funding_ms(event_ms)
        to_funding = (next_funding - event_ms) / config.funding_interval_ms
        price1 = index * (1 + rate * to_funding)
        mark = _median(price1, mid, self._last.get(symbol, mid)) * (1 + config.mark_shift)
        return MarkPrice(
            symbol=symbol,
            event_ms=event_ms,
            mark=mark,
            index=index,
            funding_rate=rate,
            next_funding_ms=next_funding,
            interest_rate=config.interest_rate,
        )
