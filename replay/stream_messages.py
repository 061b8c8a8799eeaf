"""Classifying recorded messages and rebasing their event times."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import msgspec

from replay.binance import (
    BookTickerEvent,
    DepthSnapshot,
    DepthUpdateEvent,
    TradeEvent,
    split_combined,
    to_levels,
)
from replay.depth_sync import DepthDiff


class _Envelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _Probe(msgspec.Struct):
    stream: str = ""
    lastUpdateId: int = -1


class Classified(NamedTuple):
    kind: str
    """trade | bookTicker | depth | snapshot | other"""
    stream: str
    data: bytes
    """The inner `data` object as recorded (what a raw /ws client receives)."""
    event: TradeEvent | BookTickerEvent | DepthDiff | DepthSnapshot | None
    symbol: str


_probe = msgspec.json.Decoder(_Probe)
_envelope = msgspec.json.Decoder(_Envelope)
_trade = msgspec.json.Decoder(TradeEvent)
_ticker = msgspec.json.Decoder(BookTickerEvent)
_depth = msgspec.json.Decoder(DepthUpdateEvent)
_snapshot = msgspec.json.Decoder(DepthSnapshot)


def _split(payload: bytes) -> tuple[str, bytes]:
    """The fast split (Binance's exact layout), else a full decode."""
    split = split_combined(payload)
    if split is not None:
        return split
    envelope = _envelope.decode(payload)
    return envelope.stream, bytes(envelope.data)


@functools.lru_cache(maxsize=4096)
def _symbol_of(stream: str) -> str:
    return stream.split("@", 1)[0].upper()


def classify(payload: bytes, *, lazy_quotes: bool = False) -> Classified:
    """Parse a recorded line's message. Raises msgspec errors on malformed input.

    With lazy_quotes, bookTicker data is not decoded (event None): nothing needs it but the
    derived ticker streams, which decode the latest one when they push.
    """
    if payload.startswith(b'{"lastUpdateId"'):
        snapshot = _snapshot.decode(payload)
        return Classified("snapshot", "", payload, snapshot, "")
    stream, data = _split(payload)
    symbol = _symbol_of(stream)
    if stream.endswith("@trade"):
        return Classified("trade", stream, data, _trade.decode(data), symbol)
    if stream.endswith("@bookTicker"):
        event = None if lazy_quotes else _ticker.decode(data)
        return Classified("bookTicker", stream, data, event, symbol)
    if "@depth" in stream:
        raw = _depth.decode(data)
        diff = DepthDiff(raw.U, raw.u, to_levels(raw.b), to_levels(raw.a), raw.E, raw.pu)
        return Classified("depth", stream, data, diff, symbol)
    return Classified("other", stream, data, None, symbol)


class EventTimeMap:
    """Maps recorded event times onto the replay's clock.

    Paced: E' = anchor_wall + (E - anchor_event) / speed, so event times track the moment each
    message is sent. Max speed: E' = E + (anchor_wall - anchor_event), a constant shift.
    """

    def __init__(self, *, anchor_event_ms: int, anchor_wall_ms: int, speed: float | None) -> None:
        self.anchor_event_ms = anchor_event_ms
        self.anchor_wall_ms = anchor_wall_ms
        self.speed = speed
        self.last_ms = anchor_wall_ms
        """The latest time this map produced (a new map starts from it, never before it)."""

    def __call__(self, event_ms: int) -> int:
        mapped = self.peek(event_ms)
        self.last_ms = max(self.last_ms, mapped)
        return mapped

    def peek(self, event_ms: int) -> int:
        """The mapping alone, for a time that is not one of the replay's (a future funding
        time): `last_ms` stays the latest time served."""
        delta = event_ms - self.anchor_event_ms
        if self.speed is None:
            return self.anchor_wall_ms + delta
        return self.anchor_wall_ms + round(delta / self.speed)


_TIME_KEYS = (b'"E":', b'"T":', b'"O":', b'"C":')
TIME_KEYS_BY_KIND: dict[str, tuple[bytes, ...]] = {
    "trade": (b'"E":', b'"T":'),
    "depth": (b'"E":',),
    "bookTicker": (),
    "aggTrade": (b'"E":', b'"T":'),
    "ticker": _TIME_KEYS,
}
FUTURES_TIME_KEYS_BY_KIND: dict[str, tuple[bytes, ...]] = {
    **TIME_KEYS_BY_KIND,
    "depth": (b'"E":', b'"T":'),
    "bookTicker": (b'"E":', b'"T":'),
}
"""Futures depth and bookTicker carry a transaction time `T` beside `E` (spot's bookTicker has
no time at all)."""


def rebase(data: bytes, mapping: EventTimeMap, keys: tuple[bytes, ...] = _TIME_KEYS) -> bytes:
    """Rewrite every timestamp (`E`, `T`, `O`, `C`), leaving every other byte as is.

    Plain `bytes.find` per key: a regex with a Python callback per match cost more than
    everything else a replayed message needs."""
    for key in keys:
        start = data.find(key)
        while start >= 0:
            digits = start + 4
            end = digits + 13
            if data[digits:end].isdigit() and not data[end : end + 1].isdigit():
                data = b"%s%d%s" % (data[:digits], mapping(int(data[digits:end])), data[end:])
            start = data.find(key, end)
    return data


def combined(stream: str, data: bytes) -> bytes:
    return b'{"stream":"%s","data":%s}' % (stream.encode(), data)


_EVENT_TIME = re.compile(rb'"[ET]":(\d{13})')


def first_event_ms(data: bytes) -> int | None:
    match = _EVENT_TIME.search(data)
    return int(match.group(1)) if match else None


def decode_quote(data: bytes) -> BookTickerEvent:
    return _ticker.decode(data)


class _FuturesQuote(BookTickerEvent):
    E: int = 0
    """futures only: event time, ms"""


_futures_ticker = msgspec.json.Decoder(_FuturesQuote)


def decode_quote_with_time(data: bytes) -> tuple[BookTickerEvent, int]:
    """A futures bookTicker and its event time (`E`; 0 when absent)."""
    quote = _futures_ticker.decode(data)
    return quote, quote.E
