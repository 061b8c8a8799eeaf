"""Which Binance market a recording is: spot, USD-M futures (linear, `/fapi`, fstream) or COIN-M
futures (inverse, `/dapi`, dstream).

The three speak the same WebSocket protocol with different payloads and REST paths; everything
that differs between them is looked up here, once, from the kind. A recording says what it is:
a futures depth diff carries `pu`, a futures trade `X`, a futures snapshot `E` and `T`, and a
COIN-M symbol has an underscore (`ETHUSD_PERP`, `BTCUSD_250926`) or its snapshot names a `pair`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from itertools import islice
from pathlib import Path

from replay.recording import read_many

__all__ = ["MarketKind", "detect_market_kind", "parse_market_kind"]


class MarketKind(StrEnum):
    SPOT = "spot"
    USDM = "usdm"
    COINM = "coinm"

    @property
    def is_futures(self) -> bool:
        return self is not MarketKind.SPOT

    @property
    def rest_prefix(self) -> str:
        """Where the public and trading endpoints live: `/api/v3/depth`, `/fapi/v1/depth` ..."""
        return {"spot": "/api/v3", "usdm": "/fapi/v1", "coinm": "/dapi/v1"}[self.value]

    @property
    def depth_limits(self) -> tuple[int, ...]:
        """The `limit` values the depth endpoint accepts (another is rounded up to the next)."""
        if self is MarketKind.SPOT:
            return (5, 10, 20, 50, 100, 500, 1000, 5000)
        return (5, 10, 20, 50, 100, 500, 1000)

    @property
    def default_depth_limit(self) -> int:
        return 100 if self is MarketKind.SPOT else 500

    def depth_weight(self, limit: int) -> int:
        """Binance's request weight of `GET <prefix>/depth` for a limit."""
        if self is MarketKind.SPOT:
            return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def parse_market_kind(raw: str) -> MarketKind:
    """A kind named on a command line or in a config; raises ValueError naming the choices."""
    try:
        return MarketKind(raw.lower())
    except ValueError:
        choices = ", ".join(k.value for k in MarketKind)
        raise ValueError(f"market must be one of {choices}, got {raw!r}") from None


def kind_of_payload(payload: bytes) -> MarketKind | None:
    """What one recorded message tells of its market, or None when it could be any."""
    if payload.startswith(b'{"lastUpdateId"'):
        if b'"pair":' in payload[:200]:
            return MarketKind.COINM
        if b'"T":' in payload[:120]:
            return MarketKind.USDM
        return MarketKind.SPOT
    if not payload.startswith(b'{"stream":"'):
        return None
    symbol = payload[11 : payload.find(b"@")]
    futures = b'"pu":' in payload or b'"X":"' in payload or b'"ps":"' in payload
    if b"_" in symbol:
        return MarketKind.COINM
    if futures:
        return MarketKind.USDM
    if b"@depth" in payload[:80] or b"@trade" in payload[:80]:
        return MarketKind.SPOT  # a spot diff has no pu, a spot trade no X
    return None


def detect_market_kind(paths: Iterable[Path], *, records: int = 5000) -> MarketKind:
    """The market of the recordings, from their first records; spot when nothing says more."""
    seen: set[MarketKind] = set()
    for record in islice(read_many(paths), records):
        kind = kind_of_payload(record.payload)
        if kind is not None:
            seen.add(kind)
    if MarketKind.COINM in seen:
        return MarketKind.COINM
    if MarketKind.USDM in seen:
        return MarketKind.USDM
    return MarketKind.SPOT
