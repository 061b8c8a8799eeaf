"""Futures diff-depth rates the recording lacks, conflated from the one it holds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from replay.depth_conflate import DepthConflator, depth_rate_ms
from replay.depth_sync import DepthDiff

pytestmark = pytest.mark.unit


Levels = Sequence[tuple[float, float]]


def diff(
    first: int, last: int, pu: int, event_ms: int, bids: Levels = (), asks: Levels = ()
) -> DepthDiff:
    return DepthDiff(first, last, list(bids), list(asks), event_ms, pu)


def feed(
    conflator: DepthConflator, d: DepthDiff, wanted: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    out = conflator.on_diff(
        "ETHUSD_PERP",
        "ethusd_perp@depth@0ms",
        d,
        details=lambda: (d.event_ms - 3, "ETHUSD"),
        wanted=wanted.__contains__,
    )
    return [(name, json.loads(data)) for name, data in out]


def test_stream_names_give_their_rates() -> None:
    assert depth_rate_ms("ethusdt@depth@0ms") == 0
    assert depth_rate_ms("ethusdt@depth@100ms") == 100
    assert depth_rate_ms("ethusdt@depth") == 250
    assert depth_rate_ms("ethusdt@depth20@100ms") is None
    assert depth_rate_ms("ethusdt@trade") is None


def test_the_diffs_of_a_window_merge_into_one_event_that_continues_the_chain() -> None:
    conflator = DepthConflator()
    wanted = {"ethusd_perp@depth@100ms"}
    assert feed(conflator, diff(10, 12, 9, 1_000, bids=[(100.0, 5.0)]), wanted) == []
    assert feed(conflator, diff(13, 15, 12, 1_040, bids=[(100.0, 0.0), (99.5, 2.0)]), wanted) == []
    assert feed(conflator, diff(16, 16, 15, 1_099, asks=[(101.0, 7.0)]), wanted) == []
    ((name, event),) = feed(conflator, diff(17, 20, 16, 1_130, asks=[(101.0, 1.0)]), wanted)
    assert name == "ethusd_perp@depth@100ms"
    assert (event["U"], event["u"], event["pu"], event["E"], event["T"]) == (
        10,
        16,
        9,
        1_099,
        1_096,
    )
    assert event["b"] == [["100", "0"], ["99.5", "2"]]  # the level's last quantity: removed
    assert event["a"] == [["101", "7"]]
    assert event["ps"] == "ETHUSD" and event["derived"] is True
    ((_, second),) = feed(conflator, diff(21, 21, 20, 1_250), wanted)
    assert second["pu"] == event["u"] and second["U"] == 17  # pu == the previous event's u


def test_nothing_is_built_for_a_stream_nobody_wants_or_the_recording_holds() -> None:
    conflator = DepthConflator()
    assert feed(conflator, diff(1, 2, 0, 0), set()) == []
    assert feed(conflator, diff(3, 4, 2, 500), set()) == []
    recorded = conflator.on_diff(
        "ETHUSD_PERP",
        "ethusd_perp@depth@500ms",
        diff(3, 4, 2, 500),
        details=lambda: (0, None),
        wanted=lambda _: True,
    )
    assert recorded == []  # slower than the source: served as recorded
    wanted = {"ethusd_perp@depth@500ms", "ethusd_perp@depth"}
    feed(conflator, diff(5, 6, 4, 600), wanted)
    out = feed(conflator, diff(7, 8, 6, 1_100), wanted)
    assert [name for name, _ in out] == ["ethusd_perp@depth"]  # @depth@500ms is recorded


def test_a_break_in_the_recorded_chain_shows_in_the_conflated_stream_and_a_cut_drops_windows() -> (
    None
):
    conflator = DepthConflator()
    wanted = {"ethusd_perp@depth@100ms"}
    feed(conflator, diff(10, 12, 9, 1_000), wanted)
    ((_, before_gap),) = feed(conflator, diff(20, 22, 18, 1_030), wanted)  # pu 18 != u 12
    assert (before_gap["U"], before_gap["u"]) == (10, 12)  # pushed alone: the gap is visible
    ((_, after_gap),) = feed(conflator, diff(23, 24, 22, 1_150), wanted)
    assert (after_gap["U"], after_gap["pu"]) == (20, 18)  # a client sees pu != its last u
    conflator.reset()
    assert feed(conflator, diff(30, 31, 29, 1_300), wanted) == []  # nothing stale is pushed
