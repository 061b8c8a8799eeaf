"""The compiled max-speed lane (replay/lane/_speedups.c) is held to the Python path.

The same recording replayed at max speed both ways gives every client the same bytes in the same
order and leaves the same market behind: books, 24h statistics, latest quotes, counters, the
venue's orders and fills. Odd records (whitespace, escapes, repeated keys, numbers float() reads
differently, gaps, crossed books, disconnects) must come out the same too, whichever path took
them.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.feed_server import FeedClient, frame_batch, text_frame
from replay.lane import compiled
from replay.recording import RecordingError, read_records
from replay.server import ReplayServer, ReplayServerConfig, SimAccount
from replay.stream_messages import EventTimeMap
from replay.synth import SynthSpec, write_recording

pytestmark = pytest.mark.unit

STREAMS = ["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@depth@100ms", "btcusdt@ticker"]
KEY = "fast-lane-key"


@dataclass
class Outcome:
    combined: list[bytes]
    raw: list[bytes]
    state: dict[str, Any]
    lane_records: int


def replay(
    paths: list[Path],
    *,
    fast: bool,
    speed: float | None = None,
    rebase: bool = True,
    streams: list[str] = STREAMS,
    prepare: Any = None,
) -> Outcome:
    server = ReplayServer(
        ReplayServerConfig(
            recordings=paths,
            speed=speed,
            rebase=rebase,
            fast_lane=fast,
            symbols=["BTCUSDT"],
            accounts=[
                SimAccount(
                    api_key=KEY,
                    api_secret="s",
                    balances={"USDT": Decimal(1_000_000), "BTC": Decimal(10)},
                )
            ],
        )
    )
    assert (server.lane is not None) == fast
    combined = FeedClient(1, None, combined_mode=True, streams=streams, max_queue=10**9)  # type: ignore[arg-type]
    raw = FeedClient(2, None, combined_mode=False, streams=streams[:2], max_queue=10**9)  # type: ignore[arg-type]
    for client in (combined, raw):
        server.feed.clients[client.client_id] = client
        server.feed._count(client.subscriptions, +1)
    # a fixed anchor: both runs map event times the same way
    server._time_map = EventTimeMap(
        anchor_event_ms=1_700_000_000_000, anchor_wall_ms=1_800_000_000_000, speed=speed
    )
    if prepare is not None:
        prepare(server)
    asyncio.run(server._replay_pass())
    derived = server.derived
    state = {
        "records": server.records,
        "messages": server.messages,
        "malformed": server.malformed,
        "disconnects": server.disconnects,
        "crossed": server.market.crossed,
        "position": server.pacer.position_recv_ns,
        "paced": server.pacing.count,
        "last_mapped_ms": server._last_mapped_ms,
        "books": {
            symbol: (
                sync.synced,
                sync.crossings,
                sync.gaps,
                sync.book.update_id,
                list(sync.book.bids.levels()),
                list(sync.book.asks.levels()),
            )
            for symbol, sync in server.market.syncs.items()
        },
        "last_u": dict(server.market.last_update_ids()),
        "quotes": dict(derived.quotes()),
        "rolling": {
            symbol: (
                r.volume,
                r.quote_volume,
                r.count,
                r.last_qty,
                r.next_push_ms,
                [vars(b) for b in r.buckets],
                list(r.highs),
                list(r.lows),
            )
            for symbol, r in derived.rolling_by_symbol().items()
        },
        "orders": [
            (o.client_order_id, o.status, o.executed_qty, [(f.price, f.qty) for f in o.fills])
            for o in server.matching.orders.values()
        ],
    }
    lane_records = server.lane.records if server.lane is not None else 0
    return Outcome(list(combined.queue), list(raw.queue), state, lane_records)


def assert_same(paths: list[Path], **kwargs: Any) -> tuple[Outcome, Outcome]:
    python, compiled = replay(paths, fast=False, **kwargs), replay(paths, fast=True, **kwargs)
    assert compiled.state == python.state
    assert len(compiled.combined) == len(python.combined)
    for index, (got, want) in enumerate(zip(compiled.combined, python.combined, strict=True)):
        assert got == want, f"combined message {index} differs"
    assert compiled.raw == python.raw
    return python, compiled


def synthetic(tmp_path: Path, regime: str, duration_s: float = 90, seed: int = 3) -> Path:
    path = tmp_path / f"{regime}.gz"
    write_recording(SynthSpec(duration_s=duration_s, seed=seed, regime=regime), path)
    return path


def test_the_compiled_lane_is_built() -> None:
    """scripts/bootstrap.sh builds it (pip install -e .); without it max speed is 3-4x slower."""
    assert compiled.AVAILABLE


@pytest.mark.parametrize("regime", ["calm", "volatile", "flash_crash", "quiet"])
def test_every_regime_replays_identically_and_the_lane_takes_nearly_all(
    tmp_path: Path, regime: str
) -> None:
    python, compiled = assert_same([synthetic(tmp_path, regime)])
    assert len(python.combined) > 1000
    # the Python path keeps the snapshot, the first trade of each symbol and the ticker pushes
    assert compiled.lane_records > 0.95 * python.state["records"]


def test_without_rebasing_the_recorded_bytes_are_served(tmp_path: Path) -> None:
    python, compiled = assert_same([synthetic(tmp_path, "calm")], rebase=False)
    assert compiled.lane_records > 0.95 * python.state["records"]


def test_a_paced_replay_sends_the_same_bytes_and_bursts_go_through_the_lane(
    tmp_path: Path,
) -> None:
    """Paced, the lane takes the records already due (a burst received together); event times
    are mapped with the speed (round half to even, as Python's round())."""
    path = synthetic(tmp_path, "volatile", duration_s=30)
    python, compiled = assert_same([path], speed=300.0)
    assert python.state["paced"] == python.state["records"]
    assert compiled.lane_records > 0


def test_several_files_replay_as_one_day(tmp_path: Path) -> None:
    first = synthetic(tmp_path, "calm", duration_s=40, seed=1)
    second = tmp_path / "second.gz"
    write_recording(
        SynthSpec(duration_s=40, seed=2, regime="volatile", start_ns=1_704_067_300_000_000_000),
        second,
    )
    assert_same([first, second])


def test_the_shared_recording_replays_identically(shared_recording: Path) -> None:
    python, compiled = assert_same([shared_recording])
    assert compiled.lane_records > 0.9 * python.state["records"]


def test_resting_orders_see_the_same_trades_and_book_changes(tmp_path: Path) -> None:
    """With an order resting, trades and diffs of its symbol are the Python path's (matching)."""
    path = synthetic(tmp_path, "flash_crash", duration_s=120)

    def rest_orders(server: ReplayServer) -> None:
        # the market as the first second of the recording leaves it (read again by the pass)
        first = read_records(path)
        server.load_market(r for r in first if r.recv_ns < 1_704_067_201_000_000_000)
        book = server.market.book("BTCUSDT")
        assert book is not None
        best_bid = book.best_bid()
        assert best_bid is not None
        for i, below_pct in enumerate((0.5, 1.0, 2.0)):
            price = Decimal(f"{best_bid[0] * (1 - below_pct / 100):.2f}")
            server.matching.place(
                KEY,
                symbol="BTCUSDT",
                side="BUY",
                order_type="LIMIT",
                quantity=Decimal("0.01"),
                quote_order_qty=None,
                price=price,
                time_in_force="GTC",
                client_order_id=f"rest-{i}",
            )

    python, _ = assert_same([path], prepare=rest_orders)
    filled = [o for o in python.state["orders"] if o[3]]
    assert filled, "the crash should trade through at least one resting bid"


def test_an_aggtrade_subscriber_gets_the_same_derived_stream(tmp_path: Path) -> None:
    assert_same([synthetic(tmp_path, "calm")], streams=[*STREAMS, "btcusdt@aggTrade"])


def line(recv_ns: int, stream: str, data: str) -> bytes:
    return b"%d %s" % (recv_ns, f'{{"stream":"{stream}","data":{data}}}'.encode())


def trade(event_ms: int, trade_id: int, price: str = "60000.10000000", **over: Any) -> str:
    fields: dict[str, Any] = {
        "e": "trade",
        "E": event_ms,
        "s": "BTCUSDT",
        "t": trade_id,
        "p": price,
        "q": "0.01000000",
        "T": event_ms - 1,
        "m": True,
        "M": True,
    }
    fields.update(over)
    return json.dumps(fields, separators=(",", ":"))


def depth(
    first: int, last: int, event_ms: int, bids: list[list[str]], asks: list[list[str]]
) -> str:
    body = {"e": "depthUpdate", "E": event_ms, "s": "BTCUSDT", "U": first, "u": last}
    body.update({"b": bids, "a": asks})
    return json.dumps(body, separators=(",", ":"))


def odd_recording(path: Path) -> None:
    """Plain records around every kind of record the compiled lane must leave to Python."""
    t = 1_704_067_200_000
    ns = t * 1_000_000
    snapshot = {
        "lastUpdateId": 100,
        "bids": [["59999.00000000", "1.00000000"], ["59998.00000000", "2.00000000"]],
        "asks": [["60001.00000000", "1.00000000"], ["60002.00000000", "2.00000000"]],
    }
    lines = [
        b"%d %s" % (ns, json.dumps(snapshot, separators=(",", ":")).encode()),
        line(
            ns + 1, "btcusdt@depth@100ms", depth(101, 103, t + 1, [["59999.50000000", "1.5"]], [])
        ),
        line(ns + 2, "btcusdt@trade", trade(t + 2, 1)),  # first trade: the Python path
        line(ns + 3, "btcusdt@trade", trade(t + 3, 2)),
        line(
            ns + 4,
            "btcusdt@bookTicker",
            '{"u":104,"s":"BTCUSDT","b":"59999.5","B":"1.5","a":"60001.0","A":"1.0"}',
        ),
        # JSON the strict reader does not take: whitespace, escapes, repeated keys, floats, signs
        line(ns + 5, "btcusdt@trade", trade(t + 5, 3).replace(",", ", ")),
        line(ns + 6, "btcusdt@trade", trade(t + 6, 4, s="BTC\\u0055SDT")),
        line(ns + 7, "btcusdt@trade", trade(t + 7, 5)[:-1] + ',"p":"1.0"}'),
        line(ns + 8, "btcusdt@trade", trade(t + 8, 6, E=t + 8.5)),
        line(ns + 9, "btcusdt@trade", trade(t + 9, -7)),
        line(ns + 10, "btcusdt@trade", trade(t + 10, 8, x={"nested": 1})),
        # prices float() reads although the exact path does not, and ones it refuses
        line(ns + 11, "btcusdt@trade", trade(t + 11, 9, price="6.0001e4")),
        line(ns + 12, "btcusdt@trade", trade(t + 12, 10, price="60_000.5")),
        line(ns + 13, "btcusdt@trade", trade(t + 13, 11, price="abc")),
        line(ns + 14, "btcusdt@trade", trade(t + 14, 12, price="60000.123456789012345678")),
        line(ns + 15, "btcusdt@trade", trade(t + 15, 13, q=7)),
        line(ns + 16, "btcusdt@trade", '{"e":"trade","E":1}'),
        line(ns + 17, "btcusdt@trade", "not json"),
        # depth: ignored (old), plain, a level of three, a gap, then a crossing one
        line(ns + 18, "btcusdt@depth@100ms", depth(90, 103, t + 18, [["1.0", "1.0"]], [])),
        line(ns + 19, "btcusdt@depth@100ms", depth(104, 106, t + 19, [], [["60000.5", "0.3"]])),
        line(
            ns + 20,
            "btcusdt@depth@100ms",
            depth(107, 107, t + 20, [["59999.2", "1", "x"]], []),
        ),
        line(ns + 21, "btcusdt@depth@100ms", depth(107, 108, t + 21, [["59999.0", "0"]], [])),
        line(ns + 22, "btcusdt@depth@100ms", depth(109, 110, t + 22, [["60000.7", "2.0"]], [])),
        line(ns + 22, "btcusdt@depth@100ms", depth(111, 112, t + 22, [], [["60004.0", "1"]])),
        line(ns + 22, "btcusdt@depth@100ms", depth(120, 121, t + 22, [], [])),
        b"",  # a disconnect of the recording connection
        b"%d %s"
        % (ns + 23, json.dumps({**snapshot, "lastUpdateId": 200}, separators=(",", ":")).encode()),
        line(ns + 24, "btcusdt@depth@100ms", depth(201, 202, t + 24, [["60003.0", "1.0"]], [])),
        line(ns + 25, "btcusdt@trade", trade(t + 25, 14)),
        line(ns + 26, "btcusdt@aggTrade", trade(t + 26, 15, e="aggTrade")),
        line(ns + 27, "ethusdt@trade", trade(t + 27, 16, s="ETHUSDT")),
        line(ns + 28, "btcusdt@trade", trade(t + 28, 17)) + b"\r",
        line(ns + 29, "btcusdt@bookTicker", "[]"),
        b"%d %s"
        % (ns + 30, '{"stream":"btcusdt@trade","data":{"e":"trade","s":"\xc3\xa9"}}'.encode()),
        line(ns + 31, "btcusdt@trade", trade(t + 31, 18)),
        # integers past 64 bits that msgspec reads and the lane does not: the Python path takes
        # them and leaves them in shared state (the next push time, the book's update id)
        line(ns + 32, "btcusdt@trade", trade(t + 32, 19, E=10**20)),
        line(ns + 33, "btcusdt@trade", trade(t + 33, 20)),
        line(ns + 34, "btcusdt@depth@100ms", depth(203, 10**19, t + 34, [], [])),
        line(ns + 35, "btcusdt@depth@100ms", depth(10**19 + 1, 10**19 + 1, t + 35, [], [])),
        line(ns + 36, "btcusdt@trade", trade(t + 36, 21)),
    ]
    with gzip.open(path, "wb") as out:
        out.write(b"\n".join(lines) + b"\n")


def test_odd_records_come_out_as_the_python_path_makes_them(tmp_path: Path) -> None:
    path = tmp_path / "odd.gz"
    odd_recording(path)
    python, compiled = assert_same([path])
    assert python.state["malformed"] >= 5
    assert python.state["crossed"] == 2
    assert python.state["disconnects"] == 1
    assert 0 < compiled.lane_records < python.state["records"]


def test_paced_receive_times_past_64_bits_stay_with_the_python_path(tmp_path: Path) -> None:
    path = tmp_path / "far.gz"
    quotes = [
        line(10**19 + i, "btcusdt@bookTicker", f'{{"u":{i},"s":"BTCUSDT"}}') for i in range(3)
    ]
    with gzip.open(path, "wb") as out:
        out.write(b"\n".join(quotes) + b"\n")
    python, compiled = assert_same([path], speed=1000.0)
    assert python.state["records"] == 3
    assert compiled.lane_records == 0


def test_the_replay_position_is_the_furthest_receive_time_when_paced(tmp_path: Path) -> None:
    """A record received earlier than the one before it does not move the position back."""
    ns = 1_704_067_200_000 * 1_000_000
    path = tmp_path / "back.gz"
    records = [
        line(ns, "btcusdt@bookTicker", '{"u":1,"s":"BTCUSDT"}'),
        line(ns + 300, "btcusdt@aggTrade", '{"u":2}'),  # a stream the lane leaves to Python
        line(ns + 200, "btcusdt@bookTicker", '{"u":3,"s":"BTCUSDT"}'),
    ]
    with gzip.open(path, "wb") as out:
        out.write(b"\n".join(records) + b"\n")
    python, compiled = assert_same([path], speed=1000.0)
    assert python.state["position"] == ns + 300
    assert compiled.lane_records > 0


def test_a_bad_line_is_reported_at_the_same_line_either_way(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    good = [line(1_000 + i, "btcusdt@bookTicker", '{"u":1,"s":"BTCUSDT"}') for i in range(300)]
    with gzip.open(path, "wb") as out:
        out.write(b"\n".join([*good, b"12x34 {}", *good]) + b"\n")
    for fast in (False, True):
        with pytest.raises(RecordingError, match=r"bad\.gz:301: receive time is not an integer"):
            replay([path], fast=fast)


def test_a_file_cut_short_ends_with_a_disconnect_either_way(tmp_path: Path) -> None:
    full = synthetic(tmp_path, "calm", duration_s=30)
    cut = tmp_path / "cut.gz"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    python, _ = assert_same([cut])
    assert python.state["disconnects"] == 1


@pytest.mark.parametrize("sizes", [[0], [1, 125, 126], [65535, 65536, 70000], [10] * 300])
def test_frame_batch_writes_what_text_frame_writes(sizes: list[int]) -> None:
    from collections import deque

    payloads = [bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]
    queue = deque(payloads)
    assert frame_batch(queue.popleft, len(payloads)) == b"".join(map(text_frame, payloads))
    assert not queue


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789.", min_size=1, max_size=30)
    | st.from_regex(r"\A[0-9]{1,15}\.[0-9]{1,8}\Z")
    | st.floats(allow_nan=False, allow_infinity=False, min_value=0).map(repr)
)
def test_prices_read_as_float_reads_them(text: str) -> None:
    """The lane reads Binance's decimals itself; its value must be float()'s to the last bit."""
    assert compiled.speedups is not None
    got = compiled.speedups.read_decimal(text.encode())
    try:
        want: float | None = float(text)
    except ValueError:
        want = None
    if want is None:
        assert got is None
    else:
        assert got is None or got == want, (text, got, want)
        if all(c in "0123456789." for c in text) and sum(c.isdigit() for c in text) <= 15:
            assert got == want  # the exact path takes every plain decimal of up to 15 digits
