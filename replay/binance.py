"""Binance spot market data as the replay reads it: stream events, the REST depth snapshot, and
the combined-stream envelope.

The replay's own reading of Binance's documented payloads (spot WebSocket streams and
`GET /api/v3/depth`), not the engine's: the oracle must not share the parser it judges. Field
names are Binance's, so each struct reads like the payload it decodes; fields the replay does not
use (`e`, `M`, ...) are ignored, and a missing field it needs makes the message malformed.
"""

from __future__ import annotations

import msgspec

from replay.book import Level

__all__ = [
    "BookTickerEvent",
    "DepthSnapshot",
    "DepthUpdateEvent",
    "MalformedMessage",
    "TradeEvent",
    "parse_snapshot",
    "split_combined",
    "to_levels",
]

RawLevels = list[tuple[str, str]]
"""`[["price", "quantity"], ...]`: decimals as strings, exactly two per level."""


class TradeEvent(msgspec.Struct):
    """`<symbol>@trade`: one trade."""

    E: int
    """event time, ms"""
    s: str
    """symbol"""
    t: int
    """trade id (consecutive per symbol)"""
    p: str
    """price"""
    q: str
    """quantity"""
    T: int
    """trade time, ms"""
    m: bool
    """whether the buyer was the maker (the taker sold)"""
    X: str = ""
    """futures only: MARKET, LIQUIDATION, INSURANCE_FUND, ADL ... (spot trades have none)"""


class BookTickerEvent(msgspec.Struct):
    """`<symbol>@bookTicker`: the best bid and ask after an order book change (no event time)."""

    u: int
    """order book update id"""
    s: str
    b: str
    """best bid price"""
    B: str
    """best bid quantity"""
    a: str
    """best ask price"""
    A: str
    """best ask quantity"""


class DepthUpdateEvent(msgspec.Struct):
    """`<symbol>@depth` / `@depth@100ms` (spot), `@depth@0ms|100ms|250ms|500ms` (USD-M and COIN-M
    futures): the levels that changed between two update ids."""

    E: int
    s: str
    U: int
    """first update id in the event"""
    u: int
    """final update id in the event"""
    b: RawLevels
    """bids to set (quantity 0: remove the level)"""
    a: RawLevels
    """asks to set"""
    pu: int | None = None
    """futures only: the previous event's final update id (continuity is pu == last u; the
    futures' U does not follow the last u)"""


class DepthSnapshot(msgspec.Struct):
    """The body of `GET /api/v3/depth`: the book as of `lastUpdateId`. It names no symbol."""

    lastUpdateId: int
    bids: RawLevels
    asks: RawLevels


class MalformedMessage(ValueError):
    """A message that is not what Binance documents; `kind` says which part was wrong."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def to_levels(raw: RawLevels) -> list[Level]:
    """Levels as floats. Raises ValueError for a decimal `float()` cannot read."""
    return [(float(price), float(qty)) for price, qty in raw]


_snapshot = msgspec.json.Decoder(DepthSnapshot)


def parse_snapshot(body: bytes) -> tuple[int, list[Level], list[Level]]:
    """A depth snapshot body as (lastUpdateId, bids, asks). Raises MalformedMessage."""
    try:
        snapshot = _snapshot.decode(body)
        return snapshot.lastUpdateId, to_levels(snapshot.bids), to_levels(snapshot.asks)
    except (msgspec.MsgspecError, ValueError) as exc:
        raise MalformedMessage("snapshot", str(exc)) from None


_COMBINED_HEAD = b'{"stream":"'
_COMBINED_DATA = b'","data":'


def split_combined(payload: bytes) -> tuple[str, bytes] | None:
    """(stream name, inner data) of a combined-stream message laid out exactly as Binance sends
    it (`{"stream":"<name>","data":<event>}`, no whitespace), found without decoding the JSON;
    None for any other layout, which the caller decodes in full."""
    if not payload.startswith(_COMBINED_HEAD) or payload[-1:] != b"}":
        return None
    name, separator, data = payload[len(_COMBINED_HEAD) :].partition(_COMBINED_DATA)
    if not separator:
        return None
    return name.decode(), data[:-1]
