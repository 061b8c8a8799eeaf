"""Binance public streams, spot and USD-M / COIN-M futures: stream names and message parsing
(combined-stream format). Futures diffs carry `pu` (engine.core.book follows it); futures
snapshots add `E`, `T` (and `symbol`, `pair` on COIN-M), which are not needed here."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec

from engine.core.book import DepthDiff, Level

KINDS = ("trade", "bookTicker", "depth")
SNAPSHOT_PATHS = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth", "coinm": "/dapi/v1/depth"}


def stream_names(
    symbol: str, depth_stream: str = "@depth@100ms", *, futures: bool = False
) -> dict[str, str]:
    lower = symbol.lower()
    names = {
        "trade": f"{lower}@trade",
        "bookTicker": f"{lower}@bookTicker",
        "depth": f"{lower}{depth_stream}",
    }
    if futures:
        names["markPrice"] = f"{lower}@markPrice@1s"
    return names


def combined_url(
    base: str, symbols: list[str], depth_stream: str = "@depth@100ms", *, futures: bool = False
) -> str:
    streams = "/".join(
        name for s in symbols for name in stream_names(s, depth_stream, futures=futures).values()
    )
    return f"{base.rstrip('/')}/stream?streams={quote(streams, safe='@/')}"


class MalformedMessage(ValueError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class _Envelope(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    id: Any = None
    result: Any = None
    error: Any = None


class RawTrade(msgspec.Struct):
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class RawBookTicker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class RawDepth(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    pu: int | None = None


class RawMarkPrice(msgspec.Struct):
    E: int
    s: str
    p: str
    """mark price"""
    i: str = "0"
    """index price"""
    r: str = "0"
    """funding rate"""
    T: int = 0
    """next funding time, ms"""


class RawSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class Reply(msgspec.Struct):
    """A reply to a SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS request, or an error."""

    id: Any
    result: Any
    error: Any


_envelope = msgspec.json.Decoder(_Envelope)
_PREFIX = b'{"stream":"'
_DATA = b'","data":'


def split_envelope(payload: bytes) -> tuple[str, bytes] | None:
    """Stream name and inner data of a combined-stream message in the exact layout Binance
    sends, found without a JSON decode; None for anything else (decode it fully)."""
    if payload.startswith(_PREFIX) and payload.endswith(b"}"):
        end = payload.find(_DATA, len(_PREFIX))
        if end > 0:
            return payload[len(_PREFIX) : end].decode(), payload[end + len(_DATA) : -1]
    return None


_trade = msgspec.json.Decoder(RawTrade)
_ticker = msgspec.json.Decoder(RawBookTicker)
_depth = msgspec.json.Decoder(RawDepth)
_snapshot = msgspec.json.Decoder(RawSnapshot)
_mark = msgspec.json.Decoder(RawMarkPrice)


def _levels(raw: list[tuple[str, str]]) -> list[Level]:
    return [(float(p), float(q)) for p, q in raw]


Event = RawTrade | RawBookTicker | DepthDiff | RawMarkPrice


def parse_combined(payload: bytes | str) -> tuple[str, str, Event] | Reply:
    """Returns (kind, symbol, event) for a data message, or a Reply. Raises MalformedMessage."""
    split = split_envelope(payload) if isinstance(payload, bytes) else None
    if split is not None:
        name, data = split
    else:
        try:
            envelope = _envelope.decode(payload)
        except msgspec.DecodeError as exc:
            raise MalformedMessage("json", str(exc)) from None
        except msgspec.ValidationError as exc:
            raise MalformedMessage("envelope", str(exc)) from None
        if not envelope.stream:
            if envelope.id is not None or envelope.error is not None:
                return Reply(envelope.id, envelope.result, envelope.error)
            raise MalformedMessage("envelope", "no stream name")
        name, data = envelope.stream, bytes(envelope.data)
    try:
        if name.endswith("@trade"):
            trade = _trade.decode(data)
            return "trade", trade.s, trade
        if name.endswith("@bookTicker"):
            ticker = _ticker.decode(data)
            return "bookTicker", ticker.s, ticker
        if "@markPrice" in name:
            mark = _mark.decode(data)
            float(mark.p), float(mark.r)
            return "markPrice", mark.s, mark
        if "@depth" in name:
            depth = _depth.decode(data)
            diff = DepthDiff(
                depth.U, depth.u, _levels(depth.b), _levels(depth.a), depth.E, depth.pu
            )
            return "depth", depth.s, diff
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise MalformedMessage(name.split("@", 1)[-1], str(exc)) from None
    except ValueError as exc:
        raise MalformedMessage(name.split("@", 1)[-1], f"bad number: {exc}") from None
    raise MalformedMessage("unexpected_stream", name)


def parse_snapshot(body: bytes) -> tuple[int, list[Level], list[Level]]:
    try:
        snap = _snapshot.decode(body)
        return snap.lastUpdateId, _levels(snap.bids), _levels(snap.asks)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        raise MalformedMessage("snapshot", str(exc)) from None
