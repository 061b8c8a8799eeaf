"""Classifying recorded messages and rebasing their event times."""

from __future__ import annotations

import re
from typing import NamedTuple

import msgspec

from engine.core.book import DepthDiff, Level
from engine.marketdata.binance import RawBookTicker, RawDepth, RawSnapshot, RawTrade


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
    event: RawTrade | RawBookTicker | DepthDiff | RawSnapshot | None
    symbol: str


_probe = msgspec.json.Decoder(_Probe)
_envelope = msgspec.json.Decoder(_Envelope)
_trade = msgspec.json.Decoder(RawTrade)
_ticker = msgspec.json.Decoder(RawBookTicker)
_depth = msgspec.json.Decoder(RawDepth)
_snapshot = msgspec.json.Decoder(RawSnapshot)


def _levels(raw: list[tuple[str, str]]) -> list[Level]:
    return [(float(p), float(q)) for p, q in raw]


def classify(payload: bytes) -> Classified:
    """Parse a recorded line's message. Raises msgspec errors on malformed input."""
    if payload.startswith(b'{"lastUpdateId"'):
        snapshot = _snapshot.decode(payload)
        return Classified("snapshot", "", payload, snapshot, "")
    envelope = _envelope.decode(payload)
    stream, data = envelope.stream, bytes(envelope.data)
    symbol = stream.split("@", 1)[0].upper()
    if stream.endswith("@trade"):
        return Classified("trade", stream, data, _trade.decode(data), symbol)
    if stream.endswith("@bookTicker"):
        return Classified("bookTicker", stream, data, _ticker.decode(data), symbol)
    if "@depth" in stream:
        raw = _depth.decode(data)
        diff = DepthDiff(raw.U, raw.u, _levels(raw.b), _levels(raw.a), raw.E)
        return Classified("depth", stream, data, diff, symbol)
    return Classified("other", stream, data, None, symbol)


_TIME_FIELDS = re.compile(rb'"([ETOC])":(\d{13})')
"""Event time E, trade time T, and a 24h ticker's window O..C: every millisecond timestamp."""


class EventTimeMap:
    """Maps recorded event times onto the replay's clock.

    Paced: E' = anchor_wall + (E - anchor_event) / speed, so event times track the moment each
    message is sent. Max speed: E' = E + (anchor_wall - anchor_event), a constant shift.
    """

    def __init__(self, *, anchor_event_ms: int, anchor_wall_ms: int, speed: float | None) -> None:
        self.anchor_event_ms = anchor_event_ms
        self.anchor_wall_ms = anchor_wall_ms
        self.speed = speed

    def __call__(self, event_ms: int) -> int:
        delta = event_ms - self.anchor_event_ms
        if self.speed is None:
            return self.anchor_wall_ms + delta
        return self.anchor_wall_ms + round(delta / self.speed)


def rebase(data: bytes, mapping: EventTimeMap) -> bytes:
    """Rewrite every timestamp (`E`, `T`, `O`, `C`), leaving every other byte as is."""
    return _TIME_FIELDS.sub(lambda m: b'"%s":%d' % (m.group(1), mapping(int(m.group(2)))), data)


def combined(stream: str, data: bytes) -> bytes:
    return b'{"stream":"%s","data":%s}' % (stream.encode(), data)


_EVENT_TIME = re.compile(rb'"[ET]":(\d{13})')


def first_event_ms(data: bytes) -> int | None:
    match = _EVENT_TIME.search(data)
    return int(match.group(1)) if match else None
