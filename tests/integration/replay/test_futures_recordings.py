"""USD-M and COIN-M futures recordings as Binance sends them (../shared/data): their diff depth
chains by `pu` (the previous event's final update id), not by U = last u + 1. `replay inspect`
finds no gap in the real recordings and finds the one a deleted event makes; the book kept in
step by Binance's futures procedure syncs on the recorded snapshot and stays usable, the same
book as a straightforward offline rebuild of the recording."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from replay.depth_sync import DiffDepthSync, DiffOutcome, SnapshotOutcome
from replay.recording import read_records
from replay.stream_messages import classify
from replay.tools.inspect import Inspector

pytestmark = pytest.mark.integration

RECORDINGS = {
    "usdm": ("binance-usdm/ethusdt_20240808.gz", "ethusdt@depth@0ms"),
    "coinm": ("binance-coinm/ethusd_perp_20240808.gz", "ethusd_perp@depth@0ms"),
}


def inspect(path: Path) -> dict[str, Any]:
    inspector = Inspector()
    inspector.add(read_records(path), str(path))
    return inspector.report()


@pytest.mark.parametrize("market", sorted(RECORDINGS))
def test_inspect_finds_no_gap_in_the_real_futures_recordings(
    shared_data: Path, market: str
) -> None:
    name, stream = RECORDINGS[market]
    report = inspect(shared_data / name)
    depth = report["depth"][stream]
    assert depth["diffs"] > 1000
    assert depth["gaps"] == 0, depth["gap_list"][:3]
    assert report["snapshots"] == 1


@pytest.mark.parametrize("market", sorted(RECORDINGS))
def test_a_deleted_futures_depth_event_is_one_gap_with_its_ids(
    shared_data: Path, tmp_path: Path, market: str
) -> None:
    name, stream = RECORDINGS[market]
    with gzip.open(shared_data / name) as recording:
        lines = recording.read().splitlines(keepends=True)
    depth_lines = [i for i, line in enumerate(lines) if f'"{stream}"'.encode() in line]
    dropped = depth_lines[len(depth_lines) // 2]
    broken = tmp_path / "broken.gz"
    with gzip.open(broken, "wb") as out:
        out.writelines(line for i, line in enumerate(lines) if i != dropped)
    depth = inspect(broken)["depth"][stream]
    assert depth["gaps"] == 1
    (gap,) = depth["gap_list"]
    missing = classify(lines[dropped].split(b" ", 1)[1]).event
    after = classify(lines[depth_lines[depth_lines.index(dropped) + 1]].split(b" ", 1)[1]).event
    assert gap["previous_u"] == missing.previous_final_update_id
    assert gap["previous_final_update_id"] == missing.final_update_id
    assert gap["final_update_id"] == after.final_update_id


@pytest.mark.parametrize("market", sorted(RECORDINGS))
def test_the_futures_book_syncs_on_the_recorded_snapshot_and_never_gaps(
    shared_data: Path, market: str
) -> None:
    """Binance's futures procedure on the recording: buffered diffs, the snapshot, then every
    diff; the book ends uncrossed, usable, at the last event's id, with no gap."""
    name, stream = RECORDINGS[market]
    sync = DiffDepthSync()
    outcomes: list[object] = []
    last_u = 0
    for record in read_records(shared_data / name):
        message = classify(record.payload)
        if message.kind == "snapshot":
            snapshot = message.event
            outcomes.append(
                sync.on_snapshot(
                    snapshot.lastUpdateId,
                    [(float(p), float(q)) for p, q in snapshot.bids],
                    [(float(p), float(q)) for p, q in snapshot.asks],
                )
            )
        elif message.kind == "depth" and message.stream == stream:
            outcomes.append(sync.on_diff(message.event))
            last_u = message.event.final_update_id
    assert SnapshotOutcome.SYNCED in outcomes
    assert DiffOutcome.GAP not in outcomes and sync.gaps == 0
    assert sync.synced and sync.book.update_id == last_u
    assert sync.book.best_bid() < sync.book.best_ask()
