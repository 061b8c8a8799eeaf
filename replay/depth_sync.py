"""A book kept in step with a Binance diff-depth stream, the way Binance documents it.

Spot ("How to manage a local order book correctly", spot WebSocket streams): buffer the
stream's events; take a REST snapshot; discard buffered events whose final update id `u` is at
or below the snapshot's `lastUpdateId`; the first event left must then span the snapshot (`U <=
lastUpdateId + 1 <= u`), or the snapshot is too old; load the snapshot and apply the buffered
events, then every new one. An event whose `u` is at or below the book's id changes nothing; one
whose first update id `U` is above the book's id + 1 means updates were lost: the book is
unusable until a new snapshot.

USD-M and COIN-M futures (their events carry `pu`, the previous event's final update id): drop
buffered events whose `u` is below `lastUpdateId`; the first one applied must have `U <=
lastUpdateId <= u`; after it, each event's `pu` must equal the `u` before it, else updates were
lost. A futures event's `U` does not follow the last `u` + 1 (checked the spot way, nearly every
futures event is a gap).

One rule of ours on top: a diff that leaves the book crossed (best bid at or above best ask)
makes it unusable until the next snapshot too. Binance never sends one; a replay of a broken
recording, or an injected fault, can.

The replay does not fetch snapshots: they come from the recording (taken by the recorder at each
connect). So this class only reports what happened (`DiffOutcome`, `SnapshotOutcome`); nothing
here asks for a snapshot. The compiled lane applies the plain case itself (a diff continuing a
usable book, see `replay.book`) and reports a crossing through `mark_crossed`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

from replay.book import Level, OrderBook

__all__ = ["CrossedBookError", "DepthDiff", "DiffDepthSync", "DiffOutcome", "SnapshotOutcome"]

MAX_WAITING_DIFFS = 10_000
"""Diffs kept while the book waits for a snapshot; beyond it the oldest go (a snapshot that
arrives after that finds itself too old, and the next one is used)."""


class CrossedBookError(Exception):
    """A diff left the book crossed: the recording (or a fault) is broken at that update id.
    The book waits for the next snapshot; the caller counts the error and goes on."""


class DepthDiff(NamedTuple):
    """One `depthUpdate` event, its levels as floats."""

    first_update_id: int
    """`U`: the first update id in the event."""
    final_update_id: int
    """`u`: the final update id in the event."""
    bids: list[Level]
    asks: list[Level]
    event_ms: int = 0
    """`E`: the event time, ms since the epoch."""
    previous_final_update_id: int | None = None
    """`pu` (futures only): the previous event's final update id; None on spot."""


class DiffOutcome(Enum):
    APPLIED = "applied"
    """The diff continued the book and is now in it."""
    WAITING = "waiting"
    """The book waits for a snapshot: the diff is kept for it."""
    STALE = "stale"
    """The book already holds everything the diff says."""
    GAP = "gap"
    """Updates between the book and the diff are missing: the book waits for a snapshot."""


class SnapshotOutcome(Enum):
    SYNCED = "synced"
    """The book is the snapshot plus every waiting diff after it: usable."""
    TOO_OLD = "too_old"
    """The waiting diffs start after the snapshot: updates between them are unknown."""
    GAP = "gap"
    """The snapshot was loaded, but the waiting diffs after it have a gap: unusable again."""
    NOT_NEEDED = "not_needed"
    """The book is in step already: the snapshot is ignored."""


class DiffDepthSync:
    """One symbol's book and where it stands against the diff stream."""

    def __init__(self, *, max_waiting: int = MAX_WAITING_DIFFS) -> None:
        self.book = OrderBook()
        self.synced = False
        """Whether the book is the venue's book as of `book.update_id` (else it is unusable)."""
        self.gaps = 0
        self.crossings = 0
        self._waiting: deque[DepthDiff] = deque(maxlen=max_waiting)
        self._snapshot_id: int | None = None
        """The snapshot's lastUpdateId while no futures event has followed it yet (the first
        one spans it; each later one continues by `pu`)."""

    def reset(self) -> None:
        """The connection the diffs came over is gone: the book is unknown until a snapshot
        taken on the next connection, and diffs of the old one are useless."""
        self.synced = False
        self._waiting.clear()
        self._snapshot_id = None

    def on_diff(self, diff: DepthDiff) -> DiffOutcome:
        """Raises CrossedBookError (the book then waits for a snapshot) when the diff applied
        leaves the book crossed."""
        if not self.synced:
            self._waiting.append(diff)
            return DiffOutcome.WAITING
        return self._follow(diff)

    def on_snapshot(
        self, last_update_id: int, bids: Iterable[Level], asks: Iterable[Level]
    ) -> SnapshotOutcome:
        """Raises CrossedBookError when a waiting diff applied after the snapshot crosses the
        book (the diffs after that one are dropped: the book waits for the next snapshot)."""
        if self.synced:
            return SnapshotOutcome.NOT_NEEDED
        waiting = self._waiting
        futures = bool(waiting) and waiting[0].previous_final_update_id is not None
        # futures keep the event ending at lastUpdateId (it spans the snapshot: U <= id <= u)
        while waiting and (
            waiting[0].final_update_id < last_update_id
            or (not futures and waiting[0].final_update_id == last_update_id)
        ):
            waiting.popleft()
        if waiting and not self._continues_snapshot(waiting[0], last_update_id, futures=futures):
            return SnapshotOutcome.TOO_OLD
        self.book.load_snapshot(bids, asks, last_update_id)
        self._snapshot_id = last_update_id
        self.synced = True
        while waiting:
            if self._follow(waiting.popleft()) is DiffOutcome.GAP:
                return SnapshotOutcome.GAP
        return SnapshotOutcome.SYNCED

    @staticmethod
    def _continues_snapshot(diff: DepthDiff, snapshot_id: int, *, futures: bool) -> bool:
        """Whether the first diff kept after a snapshot continues it. Spot: U <= id + 1. Futures:
        U <= id (it spans the snapshot), or pu == id (it is the very next event: a snapshot made
        at an event's end, as `replay slice` makes them; ccxt accepts it too)."""
        if not futures:
            return diff.first_update_id <= snapshot_id + 1
        return diff.first_update_id <= snapshot_id or diff.previous_final_update_id == snapshot_id

    def mark_crossed(self, update_id: int) -> CrossedBookError:
        """The diff ending at `update_id`, just applied, crossed the book: it waits for the next
        snapshot. Returns the error for the caller to raise or count (the compiled lane applies
        diffs itself and reports crossings here)."""
        self.crossings += 1
        self.synced = False
        self._waiting.clear()
        return CrossedBookError(
            f"book crossed at update {update_id}:"
            f" best bid {self.book.best_bid()} >= best ask {self.book.best_ask()}"
        )

    def _follow(self, diff: DepthDiff) -> DiffOutcome:
        """Binance's update procedure, for a book in step."""
        if diff.previous_final_update_id is not None:
            return self._follow_futures(diff)
        if diff.final_update_id <= self.book.update_id:
            return DiffOutcome.STALE
        if diff.first_update_id > self.book.update_id + 1:
            self.gaps += 1
            self.synced = False
            # the rest of the waiting diffs (if any) stay behind this one, in order
            self._waiting.appendleft(diff)
            return DiffOutcome.GAP
        return self._apply(diff)

    def _follow_futures(self, diff: DepthDiff) -> DiffOutcome:
        """The futures rule: the first event after the snapshot spans it, each later one
        continues the last by `pu`."""
        book_id = self.book.update_id
        if self._snapshot_id is not None:
            if diff.final_update_id < self._snapshot_id:
                return DiffOutcome.STALE
            continues = self._continues_snapshot(diff, self._snapshot_id, futures=True)
        else:
            if diff.final_update_id <= book_id:
                return DiffOutcome.STALE
            continues = diff.previous_final_update_id == book_id
        if not continues:
            self.gaps += 1
            self.synced = False
            self._waiting.appendleft(diff)
            return DiffOutcome.GAP
        self._snapshot_id = None
        return self._apply(diff)

    def _apply(self, diff: DepthDiff) -> DiffOutcome:
        self.book.apply_levels(diff.bids, diff.asks, diff.final_update_id)
        if self.book.is_crossed():
            raise self.mark_crossed(diff.final_update_id)
        return DiffOutcome.APPLIED
