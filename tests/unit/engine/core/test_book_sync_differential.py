"""The replay's book and diff-depth sync against the engine's, on the same random streams.

The two are written separately on purpose (the oracle must not share the engine's bugs), so
they can drift apart; this property test holds them to the same observable behaviour on any
sequence of snapshots, diffs and disconnects: diffs that continue the book, overlap it, repeat
old ids (stale), skip ids (gaps), cross the book, arrive before any snapshot or after a
disconnect; snapshots that are too old, in the future, or arrive while the book is in step. After
every step both must agree on whether the book is usable, whether the step applied, and, when
usable, on the update id and every level of both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.book import DepthDiff as EngineDiff
from engine.core.book import DepthSync, SyncAction
from engine.core.errors import CrossedBookError as EngineCrossed
from replay.depth_sync import CrossedBookError as ReplayCrossed
from replay.depth_sync import DepthDiff as ReplayDiff
from replay.depth_sync import DiffDepthSync, DiffOutcome, SnapshotOutcome

pytestmark = pytest.mark.unit

Level = tuple[float, float]

# A coarse price grid, so that diffs often touch the same levels and sometimes cross the book;
# zero quantities remove levels.
QUANTITIES = st.sampled_from([0.0, 0.0, 0.25, 1.0, 3.5])
ANY_PRICE = st.integers(1, 40).map(lambda tick: tick / 2)
LOW_PRICE = st.integers(1, 20).map(lambda tick: tick / 2)
HIGH_PRICE = st.integers(21, 40).map(lambda tick: tick / 2)


def levels(prices: st.SearchStrategy[float]) -> st.SearchStrategy[list[Level]]:
    return st.lists(st.tuples(prices, QUANTITIES), max_size=6)


@dataclass(frozen=True)
class Snapshot:
    last_update_id: int
    bids: list[Level]
    asks: list[Level]


@dataclass(frozen=True)
class Diff:
    first: int
    final: int
    bids: list[Level]
    asks: list[Level]


@dataclass(frozen=True)
class Disconnect:
    pass


Step = Snapshot | Diff | Disconnect


@st.composite
def streams(draw: st.DrawFn) -> list[Step]:
    """Steps around a moving id: most diffs continue or overlap it, some repeat old ids, some
    jump ahead; snapshots land a little behind or ahead of it. A snapshot is never crossed
    (Binance's never is), its bids all below its asks."""
    newest = draw(st.integers(0, 5))
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["diff"] * 8 + ["snapshot"] * 2 + ["disconnect"]))
        if kind == "diff":
            first = newest + draw(st.integers(-3, 4))
            final = first + draw(st.integers(0, 3))
            steps.append(Diff(first, final, draw(levels(ANY_PRICE)), draw(levels(ANY_PRICE))))
            newest = max(newest, final)
        elif kind == "snapshot":
            last = max(0, newest + draw(st.integers(-4, 2)))
            steps.append(Snapshot(last, draw(levels(LOW_PRICE)), draw(levels(HIGH_PRICE))))
        else:
            steps.append(Disconnect())
    return steps


@dataclass(frozen=True)
class Observed:
    """What a user of either implementation can see after a step."""

    crossed: bool
    took_effect: bool
    """a diff applied to the book, or a snapshot that made it usable"""
    synced: bool
    update_id: int | None
    bids: list[Level] | None
    asks: list[Level] | None


def engine_step(sync: DepthSync, step: Step) -> Observed:
    crossed = took_effect = False
    try:
        if isinstance(step, Snapshot):
            action = sync.on_snapshot(step.last_update_id, step.bids, step.asks)
            took_effect = action is SyncAction.APPLIED
        elif isinstance(step, Diff):
            diff = EngineDiff(step.first, step.final, list(step.bids), list(step.asks))
            took_effect = sync.on_diff(diff) is SyncAction.APPLIED
        else:
            sync.reset()
    except EngineCrossed:
        crossed = True
    book = sync.book
    if not sync.synced:
        return Observed(crossed, took_effect, False, None, None, None)
    return Observed(
        crossed,
        took_effect,
        True,
        book.update_id,
        list(book.bids.levels()),
        list(book.asks.levels()),
    )


def replay_step(sync: DiffDepthSync, step: Step) -> Observed:
    crossed = took_effect = False
    try:
        if isinstance(step, Snapshot):
            outcome = sync.on_snapshot(step.last_update_id, step.bids, step.asks)
            took_effect = outcome is SnapshotOutcome.SYNCED
        elif isinstance(step, Diff):
            diff = ReplayDiff(step.first, step.final, list(step.bids), list(step.asks))
            took_effect = sync.on_diff(diff) is DiffOutcome.APPLIED
        else:
            sync.reset()
    except ReplayCrossed:
        crossed = True
    book = sync.book
    if not sync.synced:
        return Observed(crossed, took_effect, False, None, None, None)
    return Observed(
        crossed,
        took_effect,
        True,
        book.update_id,
        list(book.bids.levels()),
        list(book.asks.levels()),
    )


@settings(max_examples=300, deadline=None)
@given(streams())
def test_replay_and_engine_books_agree_on_any_stream(steps: list[Step]) -> None:
    engine, replay = DepthSync(), DiffDepthSync()
    for number, step in enumerate(steps):
        expected = engine_step(engine, step)
        assert replay_step(replay, step) == expected, f"step {number}: {step}"
        if expected.synced:
            assert replay.book.best_bid() == engine.book.best_bid()
            assert replay.book.best_ask() == engine.book.best_ask()
            assert replay.book.mid() == engine.book.mid()
    assert replay.gaps == engine.gaps
    assert replay.gaps + replay.crossings == engine.resyncs


def test_the_streams_reach_every_case_the_property_claims() -> None:
    """The generator is worth something only if it produces what the docstring lists: gaps,
    crossings, stale diffs, resyncs after a disconnect. Count them over a fixed sample."""
    seen = {"gap": 0, "crossed": 0, "stale": 0, "too_old": 0, "synced_after_disconnect": 0}

    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    @given(streams())
    def tally(steps: list[Step]) -> None:
        sync = DiffDepthSync()
        disconnected = False
        for step in steps:
            try:
                if isinstance(step, Snapshot):
                    outcome = sync.on_snapshot(step.last_update_id, step.bids, step.asks)
                    seen["too_old"] += outcome is SnapshotOutcome.TOO_OLD
                    if outcome is SnapshotOutcome.SYNCED and disconnected:
                        seen["synced_after_disconnect"] += 1
                elif isinstance(step, Diff):
                    diff = ReplayDiff(step.first, step.final, step.bids, step.asks)
                    result = sync.on_diff(diff)
                    seen["gap"] += result is DiffOutcome.GAP
                    seen["stale"] += result is DiffOutcome.STALE
                else:
                    sync.reset()
                    disconnected = True
            except ReplayCrossed:
                seen["crossed"] += 1

    tally()
    assert all(count >= 10 for count in seen.values()), seen
