"""USD-M and COIN-M futures recordings as Binance sends them (../shared/data): their diff depth
chains by `pu` (the previous event's final update id), not by U = last u + 1. `replay inspect`
finds no gap in the real recordings and finds the one a deleted event makes; the book kept in
step by Binance's futures procedure syncs on the recorded snapshot and stays usable, the same
book as a straightforward offline rebuild of the recording."""

from __future__ import annotations

import gzip
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from replay.depth_sync import DiffDepthSync, DiffOutcome, SnapshotOutcome
from replay.market_kind import MarketKind, detect_market_kind
from replay.recording import read_records
from replay.stream_messages import classify
from replay.synth import SynthSpec, write_recording
from replay.tools.convert import convert_records
from replay.tools.inspect import Inspector
from replay.tools.slice import slice_records

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


@pytest.mark.parametrize("market", sorted(RECORDINGS))
def test_a_futures_slice_is_replayable_from_its_first_line(shared_data: Path, market: str) -> None:
    """A slice cut mid-recording starts with a snapshot made at the cut: the next diff continues
    it by `pu`, so the book syncs on that first snapshot and never gaps (as ccxt accepts it)."""
    name, stream = RECORDINGS[market]
    records = list(read_records(shared_data / name))
    start_ns = records[len(records) // 2].recv_ns
    sliced = list(slice_records(records, start_ns=start_ns, end_ns=None, source=name))
    first = classify(sliced[0].payload)
    assert first.kind == "snapshot"
    sync = DiffDepthSync()
    snapshot = first.event
    outcome = sync.on_snapshot(
        snapshot.lastUpdateId,
        [(float(p), float(q)) for p, q in snapshot.bids],
        [(float(p), float(q)) for p, q in snapshot.asks],
    )
    assert outcome is SnapshotOutcome.SYNCED
    applied = 0
    for record in sliced[1:]:
        message = classify(record.payload)
        if message.kind == "depth" and message.stream == stream:
            assert sync.on_diff(message.event) is DiffOutcome.APPLIED
            applied += 1
    assert applied > 500 and sync.gaps == 0
    inspector = Inspector()
    inspector.add(sliced, "slice")
    assert inspector.report()["depth"][stream]["gaps"] == 0


def test_convert_keeps_the_futures_fields(shared_data: Path, tmp_path: Path) -> None:
    """Parquet tables of a futures recording keep `pu` and the trade type `X`."""
    name, _ = RECORDINGS["usdm"]
    records = list(islice(read_records(shared_data / name), 3000))
    convert_records(iter(records), tmp_path / "pq", source=name)
    updates = pq.read_table(tmp_path / "pq" / "book_updates.parquet").to_pylist()
    trades = pq.read_table(tmp_path / "pq" / "trades.parquet").to_pylist()
    assert updates and all(row["previous_final_update_id"] is not None for row in updates)
    first_diff = next(classify(r.payload).event for r in records if b"@depth@0ms" in r.payload[:40])
    assert updates[0]["previous_final_update_id"] == first_diff.previous_final_update_id
    assert trades and {row["trade_type"] for row in trades} == {"MARKET"}


@pytest.mark.parametrize(
    ("symbol", "coinm", "kind"),
    [("ETHUSDT", False, MarketKind.USDM), ("ETHUSD_PERP", True, MarketKind.COINM)],
    ids=["usdm", "coinm"],
)
def test_a_synthetic_futures_recording_is_a_futures_recording(
    tmp_path: Path, symbol: str, coinm: bool, kind: MarketKind
) -> None:
    """`replay synth --futures [--coinm]`: diffs chained by pu with no gap, a futures snapshot,
    trades with X; the replay takes it for USD-M or COIN-M (pair named, whole contracts) and
    its book syncs."""
    path = tmp_path / "synth-futures.gz"
    spec = SynthSpec(symbols=(symbol,), duration_s=60, seed=3, futures=True, coinm=coinm)
    write_recording(spec, path)
    assert detect_market_kind([path]) is kind
    depth = inspect(path)["depth"][f"{symbol.lower()}@depth@100ms"]
    assert depth["diffs"] > 300 and depth["gaps"] == 0
    sync = DiffDepthSync()
    for record in read_records(path):
        message = classify(record.payload)
        if message.kind == "snapshot":
            assert b'"E":' in record.payload[:120] and b'"T":' in record.payload[:120]
            snapshot = message.event
            sync.on_snapshot(
                snapshot.lastUpdateId,
                [(float(p), float(q)) for p, q in snapshot.bids],
                [(float(p), float(q)) for p, q in snapshot.asks],
            )
        elif message.kind == "depth":
            assert message.event.previous_final_update_id is not None
            assert (b'"ps":"ETHUSD"' in record.payload) is coinm
            if coinm:
                levels = message.event.bids + message.event.asks
                assert all(float(q).is_integer() for _, q in levels)
            sync.on_diff(message.event)
        elif message.kind == "trade":
            assert message.event.X == "MARKET"
            assert float(message.event.q).is_integer() or not coinm
    assert sync.synced and sync.gaps == 0
