"""The offline recording tools: inspect, slice, merge, convert, and their commands."""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from engine.core.book import DepthDiff as EngineDiff
from engine.core.book import DepthSync
from engine.marketdata.binance import Reply, parse_combined, parse_snapshot
from replay.binance import DepthSnapshot
from replay.cli import app
from replay.depth_sync import DepthDiff
from replay.recording import Record, RecordingWriter, read_records
from replay.stream_messages import classify
from replay.synth import SynthSpec, write_recording
from replay.tools.convert import UnsupportedFormat, convert_records
from replay.tools.inspect import Inspector
from replay.tools.merge import merge_records
from replay.tools.slice import TimeSpecError, parse_time, slice_records

pytestmark = pytest.mark.unit

START_NS = SynthSpec().start_ns


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tools") / "btc-40s.gz"
    write_recording(SynthSpec(duration_s=40, seed=11), path)
    return path


def write(path: Path, records: Iterable[Record]) -> Path:
    path.unlink(missing_ok=True)
    with RecordingWriter(path) as writer:
        for record in records:
            if record.is_disconnect:
                writer.write_disconnect()
            else:
                writer.write(record.recv_ns, record.payload)
    return path


def inspect(*paths: Path) -> dict:
    inspector = Inspector()
    for path in paths:
        inspector.add(read_records(path), str(path))
    return inspector.report()


def follow(records: Iterable[Record]) -> DepthSync:
    """A single-symbol client, as the engine's feed is one: the engine's own parser and
    DepthSync over every snapshot and diff, in file order (a judge of the replay's tools that
    shares none of their code)."""
    sync = DepthSync()
    for record in records:
        if record.is_disconnect:
            sync.reset()
            continue
        kind = classify(record.payload).kind
        if kind == "snapshot":
            sync.on_snapshot(*parse_snapshot(record.payload))
        elif kind == "depth":
            parsed = parse_combined(record.payload)
            assert not isinstance(parsed, Reply)
            _, _, diff = parsed
            assert isinstance(diff, EngineDiff)
            sync.on_diff(diff)
    return sync


def kind(record: Record) -> str:
    return "disconnect" if record.is_disconnect else classify(record.payload).kind


# inspect


def test_inspect_reports_the_shared_recordings_known_facts(shared_recording: Path) -> None:
    report = inspect(shared_recording)
    assert report["streams"] == {
        "btcusdt@trade": 9757,
        "btcusdt@depth@100ms": 3451,
        "btcusdt@bookTicker": 28040,
    }
    assert report["snapshots"] == 1
    assert report["disconnects"] == 0
    assert report["depth"]["btcusdt@depth@100ms"]["gaps"] == 0
    assert report["depth"]["btcusdt@depth@100ms"]["before_snapshot"] > 0
    assert report["trades"]["btcusdt@trade"]["gaps"] == 0
    for stream in ("btcusdt@trade", "btcusdt@depth@100ms"):
        assert 1200 <= report["clock_offset_ms"][stream]["median"] <= 1400
    assert "btcusdt@bookTicker" not in report["clock_offset_ms"]
    assert 340 < report["time"]["duration_s"] < 350
    rate = report["rate_per_s"]
    assert 0 < rate["p50"] <= rate["p90"] <= rate["p99"] <= rate["max"]


def test_inspect_finds_a_dropped_depth_diff_with_its_ids(synth: Path, tmp_path: Path) -> None:
    records = list(read_records(synth))
    assert inspect(synth)["depth"]["btcusdt@depth@100ms"]["gaps"] == 0
    depth_at = [i for i, r in enumerate(records) if kind(r) == "depth"]
    dropped_at = depth_at[len(depth_at) // 2]
    dropped = classify(records[dropped_at].payload).event
    assert isinstance(dropped, DepthDiff)
    broken = write(tmp_path / "gap.gz", records[:dropped_at] + records[dropped_at + 1 :])

    depth = inspect(broken)["depth"]["btcusdt@depth@100ms"]
    assert depth["gaps"] == 1
    gap = depth["gap_list"][0]
    assert gap["previous_u"] == dropped.first_update_id - 1
    assert gap["first_update_id"] == dropped.final_update_id + 1
    assert gap["after_disconnect"] is False


def test_inspect_counts_trade_gaps_offsets_and_diffs_before_the_snapshot(
    synth: Path, tmp_path: Path
) -> None:
    records = list(read_records(synth))
    trade_at = [i for i, r in enumerate(records) if kind(r) == "trade"]
    cut = trade_at[len(trade_at) // 2]
    report = inspect(write(tmp_path / "t.gz", records[:cut] + records[cut + 1 :]))
    trades = report["trades"]["btcusdt@trade"]
    assert (trades["gaps"], trades["missing_ids"]) == (1, 1)
    first_snapshot = next(i for i, r in enumerate(records) if kind(r) == "snapshot")
    early = sum(kind(r) == "depth" for r in records[:first_snapshot])
    assert report["depth"]["btcusdt@depth@100ms"]["before_snapshot"] == early > 0
    # synthetic receive time = exchange time + 1..6 ms: the exchange is behind
    offset = report["clock_offset_ms"]["btcusdt@trade"]
    assert -6 <= offset["p5"] <= offset["median"] <= offset["p95"] <= -1


def test_inspect_rate_counts_empty_seconds(tmp_path: Path) -> None:
    second = 1_000_000_000
    trade = (
        b'{"stream":"x@trade","data":{"e":"trade","E":1,"s":"X","t":%d,'
        b'"p":"1","q":"1","T":1,"m":true}}'
    )
    times = [START_NS, START_NS + 1, START_NS + 2, START_NS + 3 * second]
    path = write(tmp_path / "r.gz", [Record(t, trade % i) for i, t in enumerate(times)])
    rate = inspect(path)["rate_per_s"]
    assert rate == {"buckets": 4, "p50": 0, "p90": 3, "p99": 3, "max": 3}


# slice


def test_parse_time_accepts_iso_epochs_by_magnitude_and_relative() -> None:
    ns = 1_723_161_300_000_000_000
    assert parse_time("2024-08-08T23:55:00Z", file_start_ns=None) == ns
    assert parse_time("2024-08-08T23:55:00", file_start_ns=None) == ns
    assert parse_time("2024-08-09T01:55:00+02:00", file_start_ns=None) == ns
    assert parse_time("1723161300", file_start_ns=None) == ns
    assert parse_time("1723161300.5", file_start_ns=None) == ns + 500_000_000
    assert parse_time("1723161300000", file_start_ns=None) == ns
    assert parse_time(str(ns + 7), file_start_ns=None) == ns + 7
    assert parse_time("+30s", file_start_ns=ns) == ns + 30_000_000_000
    assert parse_time("+2m", file_start_ns=ns) == ns + 120_000_000_000
    assert parse_time("+250ms", file_start_ns=ns) == ns + 250_000_000
    for bad in ("yesterday", "+3 days", "-5s", ""):
        with pytest.raises(TimeSpecError):
            parse_time(bad, file_start_ns=ns)


def test_a_slice_starts_with_a_snapshot_and_ends_on_the_full_files_book(
    synth: Path, tmp_path: Path
) -> None:
    records = list(read_records(synth))
    start = START_NS + 15_000_000_123
    end = START_NS + 30_000_000_000
    sliced = list(slice_records(iter(records), start_ns=start, end_ns=end, source="synth"))
    out = write(tmp_path / "slice.gz", sliced)

    reread = list(read_records(out))
    assert kind(reread[0]) == "snapshot"
    assert reread[0].recv_ns == start
    kept = [r for r in records if start <= r.recv_ns < end]
    assert reread[1:] == kept
    first_diff = next(classify(r.payload).event for r in reread if kind(r) == "depth")
    assert isinstance(first_diff, DepthDiff)
    snapshot = classify(reread[0].payload).event
    assert isinstance(snapshot, DepthSnapshot)
    assert first_diff.first_update_id <= snapshot.lastUpdateId + 1 <= first_diff.final_update_id

    from_slice = follow(reread)
    assert from_slice.synced
    assert from_slice.gaps == 0
    assert from_slice.resyncs == 0
    last_u = from_slice.book.update_id
    upto = [r for r in records if r.recv_ns < end]
    from_full = follow(upto)
    assert from_full.book.update_id == last_u
    assert from_slice.book.checksum(1000) == from_full.book.checksum(1000)
    bids = [float(p) for p, _ in snapshot.bids]
    asks = [float(p) for p, _ in snapshot.asks]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert all(len(q.split(".")[1]) == 8 for _, q in snapshot.bids + snapshot.asks)


def test_a_slice_before_the_first_snapshot_makes_up_no_snapshot(synth: Path) -> None:
    records = list(read_records(synth))
    first_snapshot = next(i for i, r in enumerate(records) if kind(r) == "snapshot")
    start = records[first_snapshot - 1].recv_ns
    sliced = list(slice_records(iter(records), start_ns=start, end_ns=None, source="s"))
    assert sum(kind(r) == "snapshot" for r in sliced) == 1
    assert sliced == [r for r in records if r.recv_ns >= start]


# merge


def raw_lines(path: Path) -> bytes:
    with gzip.open(path, "rb") as file:
        return file.read()


def test_merging_rotations_rebuilds_the_original_byte_for_byte(synth: Path, tmp_path: Path) -> None:
    records = list(read_records(synth))
    third = len(records) // 3
    marker_at = third // 2
    with_marker = [
        *records[:marker_at],
        Record(records[marker_at - 1].recv_ns, b""),
        *records[marker_at:],
    ]
    original = write(tmp_path / "original.gz", with_marker)
    bounds = [0, third, 2 * third, len(with_marker)]
    parts = [
        write(tmp_path / f"part{i}.gz", with_marker[bounds[i] : bounds[i + 1]]) for i in range(3)
    ]
    merged = write(tmp_path / "merged.gz", merge_records([read_records(p) for p in parts]))
    assert raw_lines(merged) == raw_lines(original)
    assert raw_lines(merged).count(b"\n\n") == 1


def test_merge_writes_overlapping_duplicates_once(synth: Path, tmp_path: Path) -> None:
    records = list(read_records(synth))
    half = len(records) // 2
    a = write(tmp_path / "a.gz", records[: half + 100])
    b = write(tmp_path / "b.gz", records[half - 100 :])
    merged = list(merge_records([read_records(a), read_records(b)]))
    assert merged == records


def test_merge_interleaves_two_symbols_by_receive_time(tmp_path: Path) -> None:
    btc, eth = tmp_path / "btc.gz", tmp_path / "eth.gz"
    write_recording(SynthSpec(symbols=("BTCUSDT",), duration_s=10, seed=1), btc)
    write_recording(SynthSpec(symbols=("ETHUSDT",), duration_s=10, seed=2), eth)
    merged = list(merge_records([read_records(btc), read_records(eth)]))
    assert len(merged) == len(list(read_records(btc))) + len(list(read_records(eth)))
    times = [r.recv_ns for r in merged]
    assert times == sorted(times)
    symbols = [b"ethusdt" in r.payload or b"ETH" in r.payload for r in merged[:200]]
    switches = sum(a != b for a, b in itertools.pairwise(symbols))
    assert switches > 20


def test_merge_is_stable_earlier_file_first(tmp_path: Path) -> None:
    a = write(tmp_path / "a.gz", [Record(5, b'{"a":1}'), Record(5, b'{"a":2}')])
    b = write(tmp_path / "b.gz", [Record(4, b'{"b":0}'), Record(5, b'{"b":1}')])
    merged = [r.payload for r in merge_records([read_records(a), read_records(b)])]
    assert merged == [b'{"b":0}', b'{"a":1}', b'{"a":2}', b'{"b":1}']


# convert


def test_convert_writes_three_typed_tables_with_every_message_and_level(
    synth: Path, tmp_path: Path
) -> None:
    records = list(read_records(synth))
    kinds = [kind(r) for r in records]
    levels = 0
    for record, k in zip(records, kinds, strict=True):
        if k == "depth":
            diff = classify(record.payload).event
            assert isinstance(diff, DepthDiff)
            levels += len(diff.bids) + len(diff.asks)
    rows = convert_records(iter(records), tmp_path / "pq", source="s", batch_rows=1000)
    expected = {
        "trades": kinds.count("trade"),
        "book_updates": levels,
        "quotes": kinds.count("bookTicker"),
    }
    assert rows == expected
    tables = {name: pq.read_table(tmp_path / "pq" / f"{name}.parquet") for name in expected}
    assert {name: t.num_rows for name, t in tables.items()} == expected
    assert tables["trades"].schema.types == [
        pa.int64(), pa.int64(), pa.int64(), pa.string(), pa.int64(),
        pa.float64(), pa.float64(), pa.bool_(), pa.string(),
    ]  # fmt: skip
    assert tables["trades"].schema.names == [
        "recv_ns", "event_ms", "trade_time_ms", "symbol", "trade_id", "price", "qty",
        "buyer_is_maker", "trade_type",
    ]  # fmt: skip
    assert tables["book_updates"].schema.names == [
        "recv_ns", "event_ms", "symbol", "first_update_id", "final_update_id",
        "previous_final_update_id", "side", "price", "qty",
    ]  # fmt: skip
    assert str(tables["book_updates"].schema.field("side").type) == "string"
    assert set(tables["book_updates"].column("side").to_pylist()) == {"bid", "ask"}
    assert tables["quotes"].schema.names == [
        "recv_ns", "symbol", "update_id", "bid_price", "bid_qty", "ask_price", "ask_qty",
    ]  # fmt: skip
    first_trade = next(r for r, k in zip(records, kinds, strict=True) if k == "trade")
    raw = json.loads(first_trade.payload)["data"]
    row = tables["trades"].slice(0, 1).to_pylist()[0]
    assert row == {
        "recv_ns": first_trade.recv_ns,
        "event_ms": raw["E"],
        "trade_time_ms": raw["T"],
        "symbol": "BTCUSDT",
        "trade_id": raw["t"],
        "price": float(raw["p"]),
        "qty": float(raw["q"]),
        "buyer_is_maker": raw["m"],
        "trade_type": None,
    }
    assert set(tables["book_updates"].column("previous_final_update_id").to_pylist()) == {None}
    assert pq.ParquetFile(tmp_path / "pq" / "book_updates.parquet").num_row_groups > 1


def test_convert_refuses_an_unknown_format(synth: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="csv"):
        convert_records(read_records(synth), tmp_path / "out", to="csv")


# commands


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_inspect_command_prints_tables_and_json(runner: CliRunner, synth: Path) -> None:
    human = runner.invoke(app, ["inspect", str(synth)])
    assert human.exit_code == 0, human.output
    assert "btcusdt@depth@100ms" in human.stdout
    assert "continuity" in human.stdout
    machine = runner.invoke(app, ["inspect", str(synth), "--json"])
    assert machine.exit_code == 0, machine.output
    report = json.loads(machine.stdout)
    assert report["schema"] == 1
    assert report["snapshots"] == 1
    assert set(report) >= {"streams", "time", "rate_per_s", "depth", "trades", "clock_offset_ms"}


def test_slice_merge_and_convert_commands(runner: CliRunner, synth: Path, tmp_path: Path) -> None:
    sliced = tmp_path / "slice.gz"
    result = runner.invoke(
        app, ["slice", str(synth), "--from", "+10s", "--to", "+20s", "--out", str(sliced)]
    )
    assert result.exit_code == 0, result.output
    records = list(read_records(sliced))
    assert kind(records[0]) == "snapshot"
    assert START_NS + 10 * 10**9 <= records[1].recv_ns < records[-1].recv_ns < START_NS + 20 * 10**9

    merged = tmp_path / "merged.gz"
    result = runner.invoke(app, ["merge", str(synth), str(sliced), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    assert len(list(read_records(merged))) == len(list(read_records(synth))) + 1

    result = runner.invoke(
        app, ["convert", str(synth), "--to", "parquet", "--out", str(tmp_path / "pq")]
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "pq").iterdir()} == {
        "trades.parquet", "book_updates.parquet", "quotes.parquet",
    }  # fmt: skip


def bad_recording(tmp_path: Path) -> Path:
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as file:
        file.write(b'1 {"stream":"x@trade","data":{"e":"trade"}}\n')
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "{missing}"], "no such file"),
        (["inspect", "{bad}"], "bad.gz:1"),
        (["convert", "{bad}", "--out", "{tmp}/pq"], "bad.gz:1"),
        (["slice", "{synth}", "--from", "noon", "--out", "{tmp}/s.gz"], "bad time 'noon'"),
        (["slice", "{synth}", "--from", "+5s", "--to", "+1s", "--out", "{tmp}/s.gz"], "after"),
        (["merge", "{synth}", "{missing}", "--out", "{tmp}/m.gz"], "no such file"),
        (["convert", "{synth}", "--to", "csv", "--out", "{tmp}/pq"], "supported: parquet"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    runner: CliRunner, synth: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    values = {
        "missing": str(tmp_path / "missing.gz"),
        "bad": str(bad_recording(tmp_path)),
        "synth": str(synth),
        "tmp": str(tmp_path),
    }
    result = runner.invoke(app, [arg.format(**values) for arg in argv])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("replay: ")
    assert message in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "s.gz").exists()
    assert not (tmp_path / "pq" / "trades.parquet").exists()
