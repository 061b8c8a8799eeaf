"""The replay's compiled hot path: runs of records handed to `replay.lane._speedups.run`.

The C lane does what `ReplayServer._process` does for the common records (trades, bookTicker,
depth diffs that continue a synced book) and stops at the first record it is not sure about;
the Python path handles that one, then the lane goes on. Both are held to identical output by
tests/unit/replay/lane/test_fast_lane.py.

The lane runs without feed faults, with the replay resumed and not seeking (the server checks):
at max speed for every record, and when paced for the records already due (a burst of trades
received together is sent together, at C speed, instead of each waiting for the one before).

`FastLane.run` fills the lane's `LaneState`: the server's clock from its arguments, the rest
from the owners it was built with, each through `share_with_lane` (the feed first: the derived
streams read its subscriptions). It advances the cursor past the records done, wakes the feed's
writers, and returns what the run did as a `LaneRun`; the server accounts for it.

Without the compiled module (`replay.lane.compiled`) the replay runs the Python path only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from replay.lane.compiled import speedups
from replay.lane.state import LaneShare, LaneState
from replay.recording import RecordCursor


class LaneFeed(LaneShare, Protocol):
    """The feed: shares its subscriptions and clients, and is told when the lane queued."""

    def lane_delivered(self) -> None:
        """The lane appended to client queues: wake the writers of those holding frames."""


@dataclass(frozen=True, slots=True)
class LaneRun:
    """What one run did."""

    records: int
    """Records done (0: the next one is the Python path's, is not due yet, or the block ended)."""
    last_recv_ns: int
    """Receive time of the last record done (-1 when none)."""
    last_ms: int
    """The latest wall time written into a message (the caller keeps it for the next run)."""
    recvs: list[int] | None
    """When paced, the receive time of each record done."""
    crowded: bool
    """A client's queue reached half its limit."""
    error: BaseException | None
    """Raised by Python code the lane called; the records before it are done and counted here,
    so the caller accounts for them, then raises it."""


NOTHING = LaneRun(records=0, last_recv_ns=-1, last_ms=0, recvs=None, crowded=False, error=None)


class FastLane:
    def __init__(
        self,
        *,
        rebase: bool,
        feed: LaneFeed,
        market: LaneShare,
        derived: LaneShare,
        matching: LaneShare,
    ) -> None:
        self.state = LaneState(rebase=rebase)
        self._feed = feed
        self._owners = (feed, matching, derived, market)
        """In the order they share: the derived streams read the feed's subscriptions."""
        self.records = 0
        """Records the lane processed (the rest went through the Python path)."""

    def run(
        self,
        cursor: RecordCursor,
        budget: int,
        *,
        time_map: tuple[int, int, float] | None,
        last_ms: int,
        pacing: tuple[int, int, float, int] | None,
    ) -> LaneRun:
        """Process up to `budget` records from the cursor's current block; when paced (`pacing`
        is the pacer's schedule and now), only those due by then.

        `time_map` is the server's EventTimeMap (anchors and speed, 0.0 at max speed) when it
        has one, `last_ms` the latest wall time it wrote into a message.
        """
        assert speedups is not None
        if not _fits(last_ms) or (pacing is not None and not all(map(_fits, pacing[:2]))):
            return NOTHING  # times no recording has (the Python path copes with any int)
        state = self.state
        state.time_map = time_map
        state.last_ms = last_ms
        state.pacing = pacing
        state.recvs = None if pacing is None else []
        state.busy = set()
        for owner in self._owners:
            owner.share_with_lane(state)
        pos, records, last_recv, last_ms, stop, error = speedups.run(
            state, cursor.block, cursor.pos, budget
        )
        if records:
            cursor.advance(pos, records, last_recv)
            self._feed.lane_delivered()
            self.records += records
        state.clients = []  # a paused replay must not hold a closed client's queue
        state.books = {}
        return LaneRun(
            records=records,
            last_recv_ns=last_recv,
            last_ms=last_ms,
            recvs=state.recvs,
            crowded=stop == speedups.STOP_CROWDED,
            error=error,
        )


def _fits(value: int) -> bool:
    return -(2**63) <= value < 2**63
