"""The replay's own book and diff-depth sync (replay.book, replay.depth_sync), case by case.

The differential property test (test_book_sync_differential.py) holds it to the engine's; these
pin the documented rules on their own, and the storage contract the compiled lane relies on.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from replay.book import Level, OrderBook
from replay.depth_sync import (
    CrossedBookError,
    DepthDiff,
    DiffDepthSync,
    DiffOutcome,
    SnapshotOutcome,
)

pytestmark = pytest.mark.unit

BIDS = [(99.0, 1.0), (98.0, 2.0)]
ASKS = [(101.0, 1.0), (102.0, 2.0)]


def diff(
    first: int, final: int, bids: Iterable[Level] = (), asks: Iterable[Level] = ()
) -> DepthDiff:
    return DepthDiff(first, final, list(bids), list(asks))


def test_buffered_diffs_at_or_below_the_snapshot_are_dropped_and_the_rest_applied() -> None:
    sync = DiffDepthSync()
    assert sync.on_diff(diff(8, 10, bids=[(97.0, 9.0)])) is DiffOutcome.WAITING
    assert sync.on_diff(diff(11, 12, bids=[(99.0, 5.0)])) is DiffOutcome.WAITING
    assert sync.on_diff(diff(13, 15, asks=[(101.0, 0.0)])) is DiffOutcome.WAITING
    assert sync.on_snapshot(11, BIDS, ASKS) is SnapshotOutcome.SYNCED
    assert sync.synced
    assert sync.book.update_id == 15
    assert list(sync.book.bids.levels()) == [(99.0, 5.0), (98.0, 2.0)]  # 97 was before it
    assert list(sync.book.asks.levels()) == [(102.0, 2.0)]


def test_a_snapshot_older_than_the_first_kept_diff_is_too_old() -> None:
    sync = DiffDepthSync()
    sync.on_diff(diff(20, 22))
    assert sync.on_snapshot(18, BIDS, ASKS) is SnapshotOutcome.TOO_OLD  # 19 is missing
    assert not sync.synced
    assert sync.on_snapshot(19, BIDS, ASKS) is SnapshotOutcome.SYNCED  # U <= 19 + 1 <= u
    assert sync.book.update_id == 22


def test_a_gap_makes_the_book_unusable_until_a_snapshot_it_continues_from() -> None:
    sync = DiffDepthSync()
    sync.on_snapshot(10, BIDS, ASKS)
    assert sync.on_diff(diff(11, 12)) is DiffOutcome.APPLIED
    assert sync.on_diff(diff(10, 12)) is DiffOutcome.STALE
    assert sync.on_diff(diff(14, 15, bids=[(100.0, 1.0)])) is DiffOutcome.GAP
    assert not sync.synced
    assert sync.gaps == 1
    assert sync.on_diff(diff(16, 16)) is DiffOutcome.WAITING
    assert sync.on_snapshot(14, BIDS, ASKS) is SnapshotOutcome.SYNCED
    assert sync.book.update_id == 16
    assert sync.book.best_bid() == (100.0, 1.0)


def test_a_gap_among_the_buffered_diffs_keeps_the_book_waiting() -> None:
    sync = DiffDepthSync()
    sync.on_diff(diff(11, 12))
    sync.on_diff(diff(15, 16))
    assert sync.on_snapshot(10, BIDS, ASKS) is SnapshotOutcome.GAP
    assert not sync.synced
    assert sync.on_snapshot(14, BIDS, ASKS) is SnapshotOutcome.SYNCED  # the gap's diff waited
    assert sync.book.update_id == 16


def test_a_crossing_diff_makes_the_book_unusable_until_the_next_snapshot() -> None:
    sync = DiffDepthSync()
    sync.on_snapshot(10, BIDS, ASKS)
    with pytest.raises(CrossedBookError, match="crossed at update 11"):
        sync.on_diff(diff(11, 11, bids=[(101.5, 1.0)]))
    assert not sync.synced
    assert sync.crossings == 1
    assert sync.on_diff(diff(12, 12)) is DiffOutcome.WAITING
    assert sync.on_snapshot(12, BIDS, ASKS) is SnapshotOutcome.SYNCED
    assert not sync.book.is_crossed()


def test_a_crossing_in_the_buffered_diffs_drops_the_ones_after_it() -> None:
    sync = DiffDepthSync()
    sync.on_diff(diff(11, 11, asks=[(98.5, 1.0)]))  # crosses the snapshot's 99 bid
    sync.on_diff(diff(12, 14, bids=[(90.0, 1.0)]))
    with pytest.raises(CrossedBookError):
        sync.on_snapshot(10, BIDS, ASKS)
    assert not sync.synced
    # the diff after the crossing one went with it: a snapshot it would have bridged is alone
    assert sync.on_snapshot(11, BIDS, ASKS) is SnapshotOutcome.SYNCED
    assert sync.book.update_id == 11
    assert sync.book.bids.qty_at(90.0) == 0.0


def test_a_snapshot_while_in_step_changes_nothing() -> None:
    sync = DiffDepthSync()
    sync.on_snapshot(10, BIDS, ASKS)
    assert sync.on_snapshot(50, [(1.0, 1.0)], [(2.0, 1.0)]) is SnapshotOutcome.NOT_NEEDED
    assert sync.book.update_id == 10
    assert sync.book.best_bid() == (99.0, 1.0)


def test_a_disconnect_forgets_the_buffered_diffs() -> None:
    sync = DiffDepthSync()
    sync.on_snapshot(10, BIDS, ASKS)
    sync.on_diff(diff(11, 12))
    sync.reset()
    assert not sync.synced
    sync.on_diff(diff(30, 31))
    sync.reset()
    assert sync.on_snapshot(20, BIDS, ASKS) is SnapshotOutcome.SYNCED  # 30..31 was forgotten


def test_book_storage_is_the_list_and_dict_the_compiled_lane_edits_in_place() -> None:
    book = OrderBook()
    bid_prices, bid_qty = book.bids.prices, book.bids.qty
    ask_prices, ask_qty = book.asks.prices, book.asks.qty
    book.load_snapshot([(99.0, 1.0), (97.0, 2.0)], [(101.0, 1.0), (100.5, 0.0)], 5)
    book.apply_levels([(98.0, 3.0), (99.0, 0.0)], [(103.0, 1.0)], 6)
    book.load_snapshot([(96.0, 1.0), (98.0, 2.0)], [(104.0, 1.0), (103.0, 4.0)], 9)
    assert book.bids.prices is bid_prices and book.bids.qty is bid_qty
    assert book.asks.prices is ask_prices and book.asks.qty is ask_qty
    assert bid_prices == [96.0, 98.0] and bid_qty == {96.0: 1.0, 98.0: 2.0}
    assert ask_prices == [103.0, 104.0] and ask_qty == {103.0: 4.0, 104.0: 1.0}
    assert all(type(p) is float for p in bid_prices + ask_prices)
    assert book.update_id == 9
    assert book.bids.top(1) == [(98.0, 2.0)] and book.asks.top(5) == [(103.0, 4.0), (104.0, 1.0)]
    assert book.bids.top(0) == []
