"""`replay slice`: the records of a recording with from <= receive time < to.

Decision: a slice must be replayable from its first line. A diff stream cut in the middle cannot
be synchronised until the next recorded snapshot, which may be minutes (or a reconnect) away. So
the depth streams are followed with `DiffDepthSync` over the skipped prefix, and for every stream
whose book is synchronised at the cut, a REST snapshot record is written first, before any kept
record, stamped with the `from` time: `lastUpdateId` is the last applied `u`, levels are
formatted as Binance does (8 decimals; bids descending, asks ascending) and hold the whole book.
The next kept diff of that stream then continues it exactly (U = lastUpdateId + 1, or spans it).
The recorded snapshots inside the slice are kept too: the file stays what was received, plus
those records.
A stream not synchronised at the cut (before its first snapshot, after a gap, disconnect or
crossed book) gets no made-up snapshot; it resynchronises from a later recorded one.

The cut point is the first record, in file order, received at or after `from`; records before it
form the prefix. After it, records outside [from, to) are dropped, so an out-of-order line is
filtered, never moved. A multi-symbol slice starts with several snapshots: they name no symbol,
and consumers that attribute a snapshot by the nearest update id need the stream's diffs to
place it (`replay.tools.SnapshotRouter` holds it until they come).

Times (`parse_time`): ISO-8601 (UTC when no offset is given), an epoch whose unit follows from its
magnitude (s below 1e11, ms below 1e14, us below 1e17, else ns), or `+<n><unit>` relative to the
first record of the file, unit one of ns, us, ms, s, m, h.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from replay.binance import DepthSnapshot, to_levels
from replay.book import OrderBook
from replay.depth_sync import CrossedBookError, DepthDiff, DiffDepthSync
from replay.recording import Record
from replay.tools import SnapshotRouter, decode

_RELATIVE = re.compile(r"^\+(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$")
_EPOCH = re.compile(r"^\d+(?:\.\d+)?$")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_EPOCH_UNITS = ((Decimal("1e11"), "s"), (Decimal("1e14"), "ms"), (Decimal("1e17"), "us"))
_EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)


class TimeSpecError(ValueError):
    """A --from/--to value is not a time this tool understands."""


def parse_time(text: str, *, file_start_ns: int | None) -> int:
    """A time as ns since the epoch. `file_start_ns` anchors `+30s`; None means unknown."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        if file_start_ns is None:
            raise TimeSpecError(f"{text!r} is relative, but the recording has no records")
        return file_start_ns + int(Decimal(relative.group(1)) * _UNIT_NS[relative.group(2)])
    if _EPOCH.match(text):
        value = Decimal(text)
        unit = next((u for limit, u in _EPOCH_UNITS if value < limit), "ns")
        return int(value * _UNIT_NS[unit])
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise TimeSpecError(
            f"bad time {text!r}: use ISO-8601, an epoch in s/ms/us/ns, or +30s relative"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (stamp - _EPOCH_START) // timedelta(microseconds=1) * 1_000


def snapshot_payload(book: OrderBook) -> bytes:
    """A REST depth snapshot body for the book as it stands, formatted like Binance's."""
    bids = ",".join(f'["{p:.8f}","{q:.8f}"]' for p, q in book.bids.levels())
    asks = ",".join(f'["{p:.8f}","{q:.8f}"]' for p, q in book.asks.levels())
    return f'{{"lastUpdateId":{book.update_id},"bids":[{bids}],"asks":[{asks}]}}'.encode()


class BookFollower:
    """Keeps one `DiffDepthSync` per depth stream over a recording, as a replaying client would."""

    def __init__(self) -> None:
        self.syncs: dict[str, DiffDepthSync] = {}
        self._router = SnapshotRouter()

    def feed(self, record: Record, source: str, line: int) -> None:
        if record.is_disconnect:
            self._router.on_disconnect()
            for sync in self.syncs.values():
                sync.reset()
            return
        item = decode(record, source, line)
        if item.kind == "snapshot":
            assert isinstance(item.event, DepthSnapshot)
            stream = self._router.on_snapshot(item.event)
            if stream is not None:
                self._snapshot(self.syncs[stream], item.event)
        elif item.kind == "depth":
            assert isinstance(item.event, DepthDiff)
            sync = self.syncs.setdefault(item.stream, DiffDepthSync())
            claimed = self._router.on_diff(item.stream, item.event)
            if claimed is not None:
                self._snapshot(sync, claimed)
            with suppress(CrossedBookError):
                sync.on_diff(item.event)

    @staticmethod
    def _snapshot(sync: DiffDepthSync, snapshot: DepthSnapshot) -> None:
        with suppress(CrossedBookError):
            sync.on_snapshot(
                snapshot.lastUpdateId, to_levels(snapshot.bids), to_levels(snapshot.asks)
            )

    def snapshots(self, recv_ns: int) -> Iterator[Record]:
        """A snapshot record for every synchronised book, in stream-name order."""
        for _, sync in sorted(self.syncs.items()):
            if sync.synced:
                yield Record(recv_ns, snapshot_payload(sync.book))


def slice_records(
    records: Iterable[Record], *, start_ns: int | None, end_ns: int | None, source: str
) -> Iterator[Record]:
    """The kept records, preceded by snapshots of the books synchronised at the cut.

    `None` bounds mean the file's start or end; `source` names the file in errors.
    """
    follower = BookFollower()
    cut = start_ns is None
    for number, record in enumerate(records, start=1):
        recv = record.recv_ns
        if not cut:
            assert start_ns is not None
            if recv < start_ns:
                follower.feed(record, source, number)
                continue
            cut = True
            yield from follower.snapshots(start_ns)
        if (start_ns is None or recv >= start_ns) and (end_ns is None or recv < end_ns):
            yield record
