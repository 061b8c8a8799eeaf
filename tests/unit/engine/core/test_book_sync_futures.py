"""Futures diff depth (USD-M, COIN-M): continuity by `pu`, the first diff after a snapshot spans
it or continues it, a broken `pu` chain is a gap that asks for a new snapshot."""

from __future__ import annotations

from engine.core.book import DepthDiff, DepthSync, SyncAction


def diff(first: int, final: int, previous: int, bid: float = 100.0) -> DepthDiff:
    return DepthDiff(first, final, [(bid, 1.0)], [(bid + 5, 1.0)], 0, previous)


def test_buffered_diffs_before_the_snapshot_are_kept_from_the_one_spanning_it() -> None:
    sync = DepthSync()
    assert sync.on_diff(diff(90, 95, 80)) is SyncAction.FETCH_SNAPSHOT
    assert sync.on_diff(diff(96, 120, 95)) is SyncAction.NONE  # spans the snapshot at 110
    assert sync.on_diff(diff(130, 140, 120, bid=101.0)) is SyncAction.NONE
    assert sync.on_snapshot(110, [(99.0, 2.0)], [(102.0, 2.0)]) is SyncAction.APPLIED
    assert sync.synced and sync.book.update_id == 140
    assert sync.book.best_bid() == (101.0, 1.0)
    # the next event continues by pu even though its U is far from the last u + 1
    assert sync.on_diff(diff(200, 210, 140)) is SyncAction.APPLIED
    assert sync.gaps == 0


def test_a_broken_pu_chain_is_a_gap() -> None:
    sync = DepthSync()
    sync.on_diff(diff(1, 10, 0))
    sync.on_snapshot(5, [(99.0, 1.0)], [(102.0, 1.0)])
    assert sync.book.update_id == 10
    assert sync.on_diff(diff(20, 30, 15)) is SyncAction.FETCH_SNAPSHOT
    assert sync.gaps == 1 and not sync.synced


def test_a_snapshot_at_an_events_end_is_continued_by_pu() -> None:
    sync = DepthSync()
    sync.on_diff(diff(120, 130, 110))
    assert sync.on_snapshot(110, [(99.0, 1.0)], [(102.0, 1.0)]) is SyncAction.APPLIED
    assert sync.book.update_id == 130


def test_a_snapshot_older_than_every_buffered_diff_asks_for_another() -> None:
    sync = DepthSync()
    sync.on_diff(diff(120, 130, 115))
    assert sync.on_snapshot(100, [], []) is SyncAction.FETCH_SNAPSHOT
    assert not sync.synced
