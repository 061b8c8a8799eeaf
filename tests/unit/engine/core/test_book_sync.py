"""Binance diff-depth synchronisation, on hand-made cases and on the real shared recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core.book import DepthDiff, DepthSync, OrderBook, SyncAction
from engine.core.errors import CrossedBookError
from replay.recording import read_records

pytestmark = pytest.mark.unit


def diff(
    first: int,
    last: int,
    bids: list[tuple[float, float]] = (),  # type: ignore[assignment]
    asks: list[tuple[float, float]] = (),
) -> DepthDiff:  # type: ignore[assignment]
    return DepthDiff(first, last, list(bids), list(asks))


def test_first_diff_asks_for_a_snapshot_once_and_is_buffered() -> None:
    sync = DepthSync()
    assert sync.on_diff(diff(10, 12, bids=[(99.0, 1.0)])) is SyncAction.FETCH_SNAPSHOT
    assert sync.on_diff(diff(13, 14)) is SyncAction.NONE
    assert not sync.synced


def test_buffered_diff_spanning_the_snapshot_is_applied() -> None:
    sync = DepthSync()
    sync.on_diff(diff(10, 12, asks=[(101.0, 5.0)]))
    sync.on_diff(diff(13, 15, bids=[(100.0, 0.0)]))
    action = sync.on_snapshot(11, bids=[(100.0, 2.0), (99.0, 1.0)], asks=[(101.0, 3.0)])
    assert action is SyncAction.APPLIED
    assert sync.book.update_id == 15
    assert sync.book.asks.qty_at(101.0) == 5.0  # from the diff that spans lastUpdateId 11
    assert sync.book.best_bid() == (99.0, 1.0)  # 100.0 removed by the next diff


def test_snapshot_older_than_the_buffer_asks_for_another() -> None:
    sync = DepthSync()
    sync.on_diff(diff(50, 55))
    assert sync.on_snapshot(40, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)]) is SyncAction.FETCH_SNAPSHOT
    assert not sync.synced


def test_gap_after_sync_forces_a_resync_and_is_counted() -> None:
    sync = DepthSync()
    sync.on_diff(diff(1, 2))
    sync.on_snapshot(1, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)])
    assert sync.on_diff(diff(3, 4)) is SyncAction.APPLIED
    assert sync.on_diff(diff(6, 7)) is SyncAction.FETCH_SNAPSHOT
    assert sync.gaps == 1
    assert not sync.synced
    assert sync.last_gap == (4, 6)


def test_old_diffs_after_sync_are_ignored() -> None:
    sync = DepthSync()
    sync.on_diff(diff(1, 5))
    sync.on_snapshot(5, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)])
    assert sync.on_diff(diff(3, 5)) is SyncAction.IGNORED


def test_crossed_book_raises_and_drops_sync() -> None:
    sync = DepthSync()
    sync.on_diff(diff(1, 1))
    sync.on_snapshot(1, bids=[(100.0, 1.0)], asks=[(101.0, 1.0)])
    with pytest.raises(CrossedBookError):
        sync.on_diff(diff(2, 2, bids=[(102.0, 1.0)]))
    assert not sync.synced


def _shared_events(path: Path) -> list[tuple[str, object]]:
    events: list[tuple[str, object]] = []
    for record in read_records(path):
        if not record.payload:
            continue
        message = json.loads(record.payload)
        if "lastUpdateId" in message:
            events.append(("snapshot", message))
        elif message["stream"].endswith("@depth@100ms"):
            d = message["data"]
            events.append(
                (
                    "depth",
                    DepthDiff(
                        d["U"],
                        d["u"],
                        [(float(p), float(q)) for p, q in d["b"]],
                        [(float(p), float(q)) for p, q in d["a"]],
                    ),
                )
            )
        elif message["stream"].endswith("@bookTicker"):
            events.append(("ticker", message["data"]))
    return events


def test_shared_recording_syncs_without_gaps_and_matches_book_ticker(
    shared_recording: Path,
) -> None:
    """After each applied diff, when the latest bookTicker carries the same update id, the
    book's top must equal it (a ticker precedes the diff window that contains its change)."""
    sync = DepthSync()
    ticker: dict[str, str] | None = None
    matched = 0
    for kind, event in _shared_events(shared_recording):
        if kind == "snapshot":
            assert (
                sync.on_snapshot(
                    event["lastUpdateId"],  # type: ignore[index]
                    [(float(p), float(q)) for p, q in event["bids"]],  # type: ignore[index]
                    [(float(p), float(q)) for p, q in event["asks"]],  # type: ignore[index]
                )
                is SyncAction.APPLIED
            )
        elif kind == "ticker":
            ticker = event  # type: ignore[assignment]
        elif kind == "depth":
            action = sync.on_diff(event)  # type: ignore[arg-type]
            if action is SyncAction.APPLIED and ticker and int(ticker["u"]) == sync.book.update_id:
                best_bid, best_ask = sync.book.best_bid(), sync.book.best_ask()
                assert best_bid is not None
                assert best_ask is not None
                assert (best_bid[0], best_ask[0]) == (float(ticker["b"]), float(ticker["a"]))
                matched += 1
    assert sync.synced
    assert sync.gaps == 0
    assert not sync.book.is_crossed()
    assert matched >= 20


def test_shared_recording_shows_why_diffs_must_be_buffered(shared_recording: Path) -> None:
    """Applying only the diffs received after the snapshot leaves a stale level forever."""
    events = _shared_events(shared_recording)
    position = next(i for i, (k, _) in enumerate(events) if k == "snapshot")
    snapshot = events[position][1]
    careless = OrderBook()
    careless.reset(
        [(float(p), float(q)) for p, q in snapshot["bids"]],  # type: ignore[index]
        [(float(p), float(q)) for p, q in snapshot["asks"]],  # type: ignore[index]
        snapshot["lastUpdateId"],
    )  # type: ignore[index]
    correct_sync = DepthSync()
    for i, (kind, event) in enumerate(events):
        if kind == "depth":
            correct_sync.on_diff(event)  # type: ignore[arg-type]
            if i > position:
                careless.apply(event.bids, event.asks, event.final_update_id)  # type: ignore[attr-defined]
        elif kind == "snapshot":
            correct_sync.on_snapshot(
                event["lastUpdateId"],  # type: ignore[index]
                [(float(p), float(q)) for p, q in event["bids"]],  # type: ignore[index]
                [(float(p), float(q)) for p, q in event["asks"]],  # type: ignore[index]
            )
    assert correct_sync.synced
    assert careless.update_id == correct_sync.book.update_id
    assert careless.checksum(1000) != correct_sync.book.checksum(1000)
    assert (
        careless.is_crossed()
        or careless.best_bid() != correct_sync.book.best_bid()
        or (
            len(careless.bids) + len(careless.asks)
            != len(correct_sync.book.bids) + len(correct_sync.book.asks)
        )
    )
