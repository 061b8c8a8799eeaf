"""`replay inspect`: what a recording holds and whether it can be trusted, in one streaming pass.

Several files are read in the order given, as one continuous recording (as `replay serve` plays
them). Memory stays flat in file length: rates and clock offsets are kept as histograms (1 ms
bins for offsets), and at most `MAX_LISTED` gaps per stream are listed (all are counted).

Definitions:
- a depth gap is a diff that does not continue the previous one on the same stream: spot, U !=
  previous u + 1; futures (USD-M, COIN-M: the diff carries `pu`), pu != previous u (a
  reconnect's jump counts too, flagged `after_disconnect`, since those updates are missing from
  the file);
  `before_snapshot` counts diffs received on a connection before that connection's first
  snapshot for the stream (a consumer can only buffer them), separately from gaps;
- a trade gap is a trade whose id != previous id + 1 on the same stream;
- clock offset is exchange time minus receive time (`E` - recv), positive when the exchange
  clock is ahead; bookTicker carries no `E` on spot and has no entry;
- message rate counts every record but disconnect markers in 1 s receive-time buckets from the
  first to the last, empty seconds included; percentiles are nearest-rank.

`--json` prints `report()`: a stable object whose keys are
    schema            1, bumped if a key changes meaning
    files             [path, ...]
    records           lines that are not disconnect markers
    messages          stream messages (records minus snapshots and unrouted objects)
    snapshots         REST depth snapshots
    disconnects       disconnect markers (empty lines)
    unrouted          JSON objects with no stream (subscription replies)
    streams           {stream: message count}
    time              {first_recv_ns, last_recv_ns, first_recv_utc, last_recv_utc, duration_s}
                      (values null for an empty recording)
    rate_per_s        {buckets, p50, p90, p99, max}
    depth             {stream: {diffs, gaps, before_snapshot, gap_list, gap_list_truncated}}
                      gap_list: [{recv_ns, previous_u, first_update_id, final_update_id,
                                  previous_final_update_id (futures' pu, else null),
                                  after_disconnect}]
    trades            {stream: {trades, gaps, missing_ids, gap_list, gap_list_truncated}}
                      gap_list: [{recv_ns, previous_id, trade_id, after_disconnect}]
    clock_offset_ms   {stream: {samples, median, p5, p95}}
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from replay.binance import DepthSnapshot, TradeEvent
from replay.depth_sync import DepthDiff
from replay.recording import Record
from replay.stream_messages import first_event_ms
from replay.tools import SnapshotRouter, decode

SCHEMA = 1
MAX_LISTED = 100
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


@dataclass
class _DepthStats:
    diffs: int = 0
    gaps: int = 0
    before_snapshot: int = 0
    last_u: int | None = None
    synced: bool = False
    gap_list: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _TradeStats:
    trades: int = 0
    gaps: int = 0
    missing_ids: int = 0
    last_id: int | None = None
    gap_list: list[dict[str, Any]] = field(default_factory=list)


def percentile(histogram: Counter[int], p: float) -> int | None:
    """Nearest-rank percentile of the values a histogram counts; None when it is empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: rank <= total")


def utc(ns: int) -> str:
    stamp = datetime.fromtimestamp(ns // _NS_PER_S, UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{ns % _NS_PER_S:09d}Z"


class Inspector:
    """Accumulates statistics over records; `report()` may be called at any time."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.records = self.snapshots = self.disconnects = self.unrouted = 0
        self.streams: Counter[str] = Counter()
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self._bucket: int | None = None
        self._bucket_count = 0
        self._rates: Counter[int] = Counter()
        self._offsets: dict[str, Counter[int]] = {}
        self.depth: dict[str, _DepthStats] = {}
        self.trades: dict[str, _TradeStats] = {}
        self._router = SnapshotRouter()
        self._after_disconnect: set[str] = set()

    def add(self, records: Iterable[Record], source: str) -> None:
        """Feed one file's records (one per line, as `read_records` yields them)."""
        self.files.append(source)
        for number, record in enumerate(records, start=1):
            if record.is_disconnect:
                self._disconnect()
                continue
            self._count(record.recv_ns)
            item = decode(record, source, number)
            if item.kind == "snapshot":
                self.snapshots += 1
                assert isinstance(item.event, DepthSnapshot)
                stream = self._router.on_snapshot(item.event)
                if stream is not None:
                    self.depth[stream].synced = True
                continue
            if not item.stream:
                self.unrouted += 1
                continue
            self.streams[item.stream] += 1
            event_ms: int | None
            if item.kind == "depth":
                assert isinstance(item.event, DepthDiff)
                self._diff(item.stream, item.event, record.recv_ns)
                event_ms = item.event.event_ms
            elif item.kind == "trade":
                assert isinstance(item.event, TradeEvent)
                self._trade(item.stream, item.event, record.recv_ns)
                event_ms = item.event.E
            elif item.kind == "bookTicker":
                event_ms = None
            else:
                event_ms = first_event_ms(item.data)
            if event_ms:
                offsets = self._offsets.setdefault(item.stream, Counter())
                offsets[round((event_ms * _NS_PER_MS - record.recv_ns) / _NS_PER_MS)] += 1

    def _disconnect(self) -> None:
        self.disconnects += 1
        self._router.on_disconnect()
        for stats in self.depth.values():
            stats.synced = False
        self._after_disconnect = set(self.depth) | set(self.trades)

    def _count(self, recv_ns: int) -> None:
        self.records += 1
        if self.first_ns is None or recv_ns < self.first_ns:
            self.first_ns = recv_ns
        if self.last_ns is None or recv_ns > self.last_ns:
            self.last_ns = recv_ns
        bucket = recv_ns // _NS_PER_S
        if self._bucket is None:
            self._bucket = bucket
        elif bucket > self._bucket:
            self._rates[self._bucket_count] += 1
            if bucket > self._bucket + 1:
                self._rates[0] += bucket - self._bucket - 1
            self._bucket, self._bucket_count = bucket, 0
        self._bucket_count += 1

    def _diff(self, stream: str, diff: DepthDiff, recv_ns: int) -> None:
        stats = self.depth.setdefault(stream, _DepthStats())
        if self._router.on_diff(stream, diff) is not None:
            stats.synced = True
        stats.diffs += 1
        if not stats.synced:
            stats.before_snapshot += 1
        after_disconnect = stream in self._after_disconnect
        self._after_disconnect.discard(stream)
        pu = diff.previous_final_update_id
        last_u = stats.last_u
        continues = last_u is None or (
            diff.first_update_id == last_u + 1 if pu is None else pu == last_u
        )
        if not continues:
            stats.gaps += 1
            if len(stats.gap_list) < MAX_LISTED:
                stats.gap_list.append(
                    {
                        "recv_ns": recv_ns,
                        "previous_u": stats.last_u,
                        "first_update_id": diff.first_update_id,
                        "final_update_id": diff.final_update_id,
                        "previous_final_update_id": pu,
                        "after_disconnect": after_disconnect,
                    }
                )
        stats.last_u = diff.final_update_id

    def _trade(self, stream: str, trade: TradeEvent, recv_ns: int) -> None:
        stats = self.trades.setdefault(stream, _TradeStats())
        stats.trades += 1
        after_disconnect = stream in self._after_disconnect
        self._after_disconnect.discard(stream)
        if stats.last_id is not None and trade.t != stats.last_id + 1:
            stats.gaps += 1
            stats.missing_ids += max(0, trade.t - stats.last_id - 1)
            if len(stats.gap_list) < MAX_LISTED:
                stats.gap_list.append(
                    {
                        "recv_ns": recv_ns,
                        "previous_id": stats.last_id,
                        "trade_id": trade.t,
                        "after_disconnect": after_disconnect,
                    }
                )
        stats.last_id = trade.t

    def _rate_histogram(self) -> Counter[int]:
        rates = Counter(self._rates)
        if self._bucket is not None:
            rates[self._bucket_count] += 1
        return rates

    def report(self) -> dict[str, Any]:
        rates = self._rate_histogram()
        first, last = self.first_ns, self.last_ns
        return {
            "schema": SCHEMA,
            "files": list(self.files),
            "records": self.records,
            "messages": sum(self.streams.values()),
            "snapshots": self.snapshots,
            "disconnects": self.disconnects,
            "unrouted": self.unrouted,
            "streams": dict(sorted(self.streams.items())),
            "time": {
                "first_recv_ns": first,
                "last_recv_ns": last,
                "first_recv_utc": utc(first) if first is not None else None,
                "last_recv_utc": utc(last) if last is not None else None,
                "duration_s": (last - first) / _NS_PER_S
                if first is not None and last is not None
                else None,
            },
            "rate_per_s": {
                "buckets": sum(rates.values()),
                "p50": percentile(rates, 50),
                "p90": percentile(rates, 90),
                "p99": percentile(rates, 99),
                "max": max(rates) if rates else None,
            },
            "depth": {
                stream: {
                    "diffs": s.diffs,
                    "gaps": s.gaps,
                    "before_snapshot": s.before_snapshot,
                    "gap_list": list(s.gap_list),
                    "gap_list_truncated": s.gaps > len(s.gap_list),
                }
                for stream, s in sorted(self.depth.items())
            },
            "trades": {
                stream: {
                    "trades": s.trades,
                    "gaps": s.gaps,
                    "missing_ids": s.missing_ids,
                    "gap_list": list(s.gap_list),
                    "gap_list_truncated": s.gaps > len(s.gap_list),
                }
                for stream, s in sorted(self.trades.items())
            },
            "clock_offset_ms": {
                stream: {
                    "samples": sum(hist.values()),
                    "median": percentile(hist, 50),
                    "p5": percentile(hist, 5),
                    "p95": percentile(hist, 95),
                }
                for stream, hist in sorted(self._offsets.items())
            },
        }


def render(report: dict[str, Any]) -> list[Any]:
    """Rich tables for a human reading `report()` (the JSON is the contract; this is a view)."""
    from rich.table import Table

    span = report["time"]
    summary = Table(title="recording", show_header=False)
    summary.add_column("key", style="bold")
    summary.add_column("value")
    rate = report["rate_per_s"]
    for key, value in (
        ("files", ", ".join(report["files"])),
        ("records", report["records"]),
        ("snapshots", report["snapshots"]),
        ("disconnects", report["disconnects"]),
        ("unrouted", report["unrouted"]),
        ("first receive", span["first_recv_utc"]),
        ("last receive", span["last_recv_utc"]),
        ("duration", f"{span['duration_s']:.3f} s" if span["duration_s"] is not None else None),
        ("msgs/s p50 p90 p99 max", f"{rate['p50']} {rate['p90']} {rate['p99']} {rate['max']}"),
    ):
        summary.add_row(key, "-" if value is None else str(value))

    streams = Table(title="streams")
    for column in ("stream", "messages", "offset median ms", "p5 ms", "p95 ms"):
        streams.add_column(column, justify="left" if column == "stream" else "right")
    for stream, count in report["streams"].items():
        offset = report["clock_offset_ms"].get(stream)
        cells = [offset[k] for k in ("median", "p5", "p95")] if offset else ["-"] * 3
        streams.add_row(stream, str(count), *(f"{c:+}" if c != "-" else c for c in cells))

    continuity = Table(title="continuity")
    for column in ("stream", "messages", "gaps", "before snapshot", "first gap"):
        continuity.add_column(
            column, justify="left" if column in ("stream", "first gap") else "right"
        )
    for stream, depth in report["depth"].items():
        first = depth["gap_list"][0] if depth["gap_list"] else None
        where = f"u {first['previous_u']} -> U {first['first_update_id']}" if first else "-"
        continuity.add_row(
            stream, str(depth["diffs"]), str(depth["gaps"]), str(depth["before_snapshot"]), where
        )
    for stream, trades in report["trades"].items():
        first = trades["gap_list"][0] if trades["gap_list"] else None
        where = f"t {first['previous_id']} -> {first['trade_id']}" if first else "-"
        continuity.add_row(stream, str(trades["trades"]), str(trades["gaps"]), "-", where)
    return [summary, streams, continuity]
