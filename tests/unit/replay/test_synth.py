from __future__ import annotations

import itertools
import json
import re
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.core.book import DepthDiff, DepthSync, SyncAction, parse_levels
from engine.marketdata.binance import parse_combined, parse_snapshot
from replay.recording import read_records
from replay.synth import REGIMES, SynthSpec, generate, write_recording

NUM = r'"\d+\.\d{8}"'
LEVELS = rf"\[(\[{NUM},{NUM}\](,\[{NUM},{NUM}\])*)?\]"
SHAPES = {
    "trade": re.compile(
        rf'\{{"stream":"[a-z]+@trade","data":\{{"e":"trade","E":\d+,"s":"[A-Z]+","t":\d+,'
        rf'"p":{NUM},"q":{NUM},"T":\d+,"m":(true|false),"M":true\}}\}}'
    ),
    "bookTicker": re.compile(
        rf'\{{"stream":"[a-z]+@bookTicker","data":\{{"u":\d+,"s":"[A-Z]+","b":{NUM},"B":{NUM},'
        rf'"a":{NUM},"A":{NUM}\}}\}}'
    ),
    "depth": re.compile(
        rf'\{{"stream":"[a-z]+@depth@100ms","data":\{{"e":"depthUpdate","E":\d+,"s":"[A-Z]+",'
        rf'"U":\d+,"u":\d+,"b":{LEVELS},"a":{LEVELS}\}}\}}'
    ),
    "snapshot": re.compile(rf'\{{"lastUpdateId":\d+,"bids":{LEVELS},"asks":{LEVELS}\}}'),
}


@dataclass
class SymbolStream:
    """One symbol's messages in output order, parsed."""

    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)


def kind_of(payload: bytes) -> str:
    if payload.startswith(b'{"lastUpdateId"'):
        return "snapshot"
    stream = json.loads(payload)["stream"]
    return "depth" if "@depth" in stream else stream.split("@")[1]


_RECORDS: dict[str, tuple[tuple[int, bytes], ...]] = {}


def records(spec: SynthSpec) -> tuple[tuple[int, bytes], ...]:
    key = repr(spec)
    if key not in _RECORDS:
        _RECORDS[key] = tuple(generate(spec))
    return _RECORDS[key]


def split(spec: SynthSpec) -> dict[str, SymbolStream]:
    """Per-symbol streams; a snapshot is assigned by the diff span that holds its lastUpdateId."""
    streams = {symbol: SymbolStream() for symbol in spec.symbols}
    spans: dict[str, list[int]] = {}
    pending: list[dict[str, Any]] = []
    for recv, payload in records(spec):
        message = json.loads(payload)
        if "lastUpdateId" in message:
            pending.append(message)
            continue
        data = message["data"]
        kind = "depth" if "@depth" in message["stream"] else message["stream"].split("@")[1]
        streams[data["s"]].events.append((kind, recv, data))
        if kind == "depth":
            spans.setdefault(data["s"], [data["U"], data["u"]])[1] = data["u"]
    for snap in pending:
        owner = [s for s, (lo, hi) in spans.items() if lo - 1 <= snap["lastUpdateId"] <= hi]
        assert len(owner) == 1, "a snapshot must belong to exactly one symbol's id range"
        streams[owner[0]].snapshots.append(snap)
    return streams


def diff_of(data: dict[str, Any]) -> DepthDiff:
    return DepthDiff(data["U"], data["u"], parse_levels(data["b"]), parse_levels(data["a"]))


def top_of(data: dict[str, Any]) -> tuple[float, float, float, float]:
    return float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"])


def replay_sync(spec: SynthSpec, symbol: str) -> tuple[DepthSync, int, int]:
    """Rebuild `symbol`'s book from its diffs and snapshot in receive order, the way a client would.

    After every applied diff the book's best levels must equal the latest bookTicker (the last
    top-of-book change at or before the diff's final id). Returns the sync, how many diffs were
    compared, and how many of those had exactly the bookTicker's update id.
    """
    sync = DepthSync()
    wanted = False
    compared = exact = 0
    ticker: dict[str, Any] | None = None
    snapshots = 0
    own = {snap["lastUpdateId"] for snap in split(spec)[symbol].snapshots}
    for _, payload in records(spec):
        message = json.loads(payload)
        if "lastUpdateId" in message:
            if message["lastUpdateId"] not in own:
                continue
            assert wanted, "the snapshot must arrive after the book asked for one"
            snapshots += 1
            wanted = False
            bids, asks = parse_levels(message["bids"]), parse_levels(message["asks"])
            action = sync.on_snapshot(message["lastUpdateId"], bids, asks)
            assert action is SyncAction.APPLIED
            continue
        data = message["data"]
        if data["s"] != symbol:
            continue
        if "@bookTicker" in message["stream"]:
            ticker = data
        elif "@depth" in message["stream"]:
            action = sync.on_diff(diff_of(data))
            if action is SyncAction.FETCH_SNAPSHOT:
                wanted = True
            if action is SyncAction.APPLIED and ticker is not None:
                assert ticker["u"] <= sync.book.update_id
                assert top_of(ticker) == book_top(sync), f"book differs at {data['u']}"
                compared += 1
                exact += ticker["u"] == sync.book.update_id
    assert snapshots == 1
    return sync, compared, exact


def book_top(sync: DepthSync) -> tuple[float, float, float, float]:
    bid, ask = sync.book.best_bid(), sync.book.best_ask()
    assert bid is not None
    assert ask is not None
    return bid[0], bid[1], ask[0], ask[1]


CALM = SynthSpec(duration_s=60.0, seed=7)
TWO = SynthSpec(symbols=("BTCUSDT", "ETHUSDT"), duration_s=30.0, seed=3, regime="volatile")


@pytest.mark.unit
def test_regimes_are_the_documented_set() -> None:
    assert set(REGIMES) == {"calm", "trending", "volatile", "flash_crash", "quiet"}
    assert all(name == regime.name for name, regime in REGIMES.items())


@pytest.mark.unit
def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    spec = SynthSpec(duration_s=10.0, seed=11, symbols=("BTCUSDT", "ETHUSDT"))
    first = list(generate(spec))
    assert first == list(generate(spec))
    other = list(generate(SynthSpec(duration_s=10.0, seed=12, symbols=("BTCUSDT", "ETHUSDT"))))
    assert first != other


@pytest.mark.unit
def test_every_message_has_the_binance_shape() -> None:
    counts = {kind: 0 for kind in SHAPES}
    for _, payload in records(TWO):
        kind = kind_of(payload)
        assert SHAPES[kind].fullmatch(payload.decode()), payload[:200]
        counts[kind] += 1
    assert counts["snapshot"] == 2
    assert min(counts.values()) > 0


@pytest.mark.unit
def test_the_engine_parser_accepts_every_message() -> None:
    kinds: set[str] = set()
    for _, payload in records(TWO):
        if payload.startswith(b'{"lastUpdateId"'):
            last_id, bids, asks = parse_snapshot(payload)
            assert last_id > 0
            assert bids
            assert asks
            continue
        parsed = parse_combined(payload)
        assert isinstance(parsed, tuple)
        kinds.add(f"{parsed[1]}:{parsed[0]}")
    assert kinds == {f"{s}:{k}" for s in TWO.symbols for k in ("trade", "bookTicker", "depth")}


@pytest.mark.parametrize(
    "spec",
    [
        CALM,
        SynthSpec(duration_s=30.0, seed=5, regime="volatile"),
        SynthSpec(duration_s=30.0, seed=2, regime="flash_crash"),
        SynthSpec(duration_s=20.0, seed=4, regime="calm", start_prices={"BTCUSDT": 100.0}),
        TWO,
    ],
    ids=["calm", "volatile", "flash_crash", "coarse_ticks", "two_symbols"],
)
@pytest.mark.unit
def test_depth_sync_rebuilds_the_book_and_agrees_with_book_ticker(spec: SynthSpec) -> None:
    for symbol in spec.symbols:
        sync, compared, exact = replay_sync(spec, symbol)
        assert sync.synced
        assert sync.gaps == 0
        assert sync.resyncs == 0
        assert not sync.book.is_crossed()
        assert compared > 5 * spec.duration_s
        assert exact > 0
        assert len(sync.book.bids) > spec.levels_per_side // 2
        assert len(sync.book.asks) > spec.levels_per_side // 2


@pytest.mark.unit
def test_depth_ids_are_continuous_and_windows_are_100ms() -> None:
    for stream in split(TWO).values():
        depths = [data for kind, _, data in stream.events if kind == "depth"]
        assert len(depths) > 100
        for before, after in itertools.pairwise(depths):
            assert after["U"] == before["u"] + 1
            assert after["u"] >= after["U"]
            assert after["E"] > before["E"]
            assert after["E"] % 100 == 0


@pytest.mark.unit
def test_trades_hit_the_best_price_with_consecutive_ids() -> None:
    for stream in split(TWO).values():
        ticker: dict[str, Any] | None = None
        trade_ids: list[int] = []
        last_ms = 0
        for kind, _, data in stream.events:
            if kind == "bookTicker":
                ticker = data
            elif kind == "trade":
                assert ticker is not None
                assert data["p"] == (ticker["b"] if data["m"] else ticker["a"])
                assert float(data["q"]) <= float(ticker["B"] if data["m"] else ticker["A"])
                assert data["T"] == data["E"] >= last_ms
                last_ms = data["T"]
                trade_ids.append(data["t"])
        assert len(trade_ids) > 100
        assert trade_ids == list(range(trade_ids[0], trade_ids[0] + len(trade_ids)))


@pytest.mark.unit
def test_receive_times_are_sorted_and_snapshot_is_taken_mid_window() -> None:
    recvs = [recv for recv, _ in records(TWO)]
    assert recvs == sorted(recvs)
    for stream in split(TWO).values():
        assert len(stream.snapshots) == 1
        snap = stream.snapshots[0]
        last = snap["lastUpdateId"]
        depths = [data for kind, _, data in stream.events if kind == "depth"]
        following = next(data for data in depths if data["u"] > last)
        assert following["U"] <= last < following["u"]
        assert depths.index(following) == 2
        bids = [float(price) for price, _ in snap["bids"]]
        asks = [float(price) for price, _ in snap["asks"]]
        assert bids == sorted(bids, reverse=True)
        assert asks == sorted(asks)
        assert bids[0] < asks[0]
        assert 0 < len(bids) <= 1000


@pytest.mark.unit
def test_snapshot_arrives_after_the_second_depth_message() -> None:
    seen_depth = 0
    for _, payload in records(CALM):
        kind = kind_of(payload)
        if kind == "depth":
            seen_depth += 1
        elif kind == "snapshot":
            assert seen_depth >= 2
            return
    pytest.fail("no snapshot")


@pytest.mark.unit
def test_quiet_regime_has_long_trade_silences_while_the_book_moves() -> None:
    spec = SynthSpec(duration_s=150.0, seed=9, regime="quiet")
    events = split(spec)["BTCUSDT"].events
    trade_ms = [data["T"] for kind, _, data in events if kind == "trade"]
    assert len(trade_ms) > 5
    gap_start, gap_end = max(itertools.pairwise(trade_ms), key=lambda pair: pair[1] - pair[0])
    assert gap_end - gap_start >= 30_000
    depths_in_gap = [d for k, _, d in events if k == "depth" and gap_start < d["E"] < gap_end]
    assert len(depths_in_gap) > 200


def mid(data: dict[str, Any]) -> float:
    return (float(data["b"]) + float(data["a"])) / 2


@pytest.mark.unit
def test_flash_crash_drops_the_mid_then_partly_recovers() -> None:
    spec = SynthSpec(duration_s=100.0, seed=2, regime="flash_crash")
    crash_ns = spec.start_ns + 40 * 10**9
    tickers = [
        (recv, data) for kind, recv, data in split(spec)["BTCUSDT"].events if kind == "bookTicker"
    ]
    before = [mid(d) for recv, d in tickers if crash_ns - 2 * 10**9 <= recv < crash_ns]
    during = [mid(d) for recv, d in tickers if crash_ns <= recv < crash_ns + 6 * 10**9]
    after = [mid(d) for recv, d in tickers if recv >= crash_ns + 50 * 10**9]
    low = min(during)
    assert low <= before[-1] * 0.98
    assert after[-1] > low
    events = split(spec)["BTCUSDT"].events
    window = range(crash_ns // 10**6, crash_ns // 10**6 + 2500)
    burst = [d for k, _, d in events if k == "trade" and d["T"] in window]
    calm = [
        d
        for k, _, d in events
        if k == "trade" and d["T"] in range(window.start - 10**4, window.start - 7500)
    ]
    assert len(burst) > 3 * len(calm)
    sold = sum(float(d["q"]) for d in burst if d["m"])
    assert sold > 0.7 * sum(float(d["q"]) for d in burst)


@pytest.mark.unit
def test_trending_regime_drifts_up() -> None:
    spec = SynthSpec(duration_s=300.0, seed=1, regime="trending")
    tickers = [d for k, _, d in split(spec)["BTCUSDT"].events if k == "bookTicker"]
    assert mid(tickers[-1]) > mid(tickers[0]) * 1.005


@pytest.mark.unit
def test_write_recording_round_trips(tmp_path: Any) -> None:
    path = tmp_path / "synth.gz"
    spec = SynthSpec(duration_s=5.0, seed=3)
    count = write_recording(spec, path)
    assert count == len(records(spec))
    assert [tuple(r) for r in read_records(path)] == list(records(spec))
    assert write_recording(spec, path) == count
    assert sum(1 for _ in read_records(path)) == count


@pytest.mark.unit
def test_generation_streams_in_bounded_memory() -> None:
    stream = generate(SynthSpec(duration_s=100_000.0, seed=5, regime="volatile"))
    tracemalloc.start()
    try:
        for _ in itertools.islice(stream, 5_000):
            pass
        early, _ = tracemalloc.get_traced_memory()
        for _ in itertools.islice(stream, 25_000):
            pass
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert late - early < 512 * 1024


@pytest.mark.unit
def test_rejects_an_unknown_regime() -> None:
    with pytest.raises(ValueError, match="unknown regime"):
        next(generate(SynthSpec(regime="sideways")))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("linear", "inverse", "contracts_per_base"),
    [("ETHUSDT", "ETHUSD_PERP", 3000 / 10), ("BTCUSDT", "BTCUSD_PERP", 60000 / 100)],
)
def test_coin_m_quantities_are_whole_contracts_of_the_symbols_own_size(
    linear: str, inverse: str, contracts_per_base: float
) -> None:
    def first_bid_qty(symbol: str, coinm: bool) -> tuple[str, dict[str, Any]]:
        spec = SynthSpec(symbols=(symbol,), duration_s=5, futures=True, coinm=coinm, seed=4)
        for _, payload in generate(spec):
            message = json.loads(payload)
            if message.get("stream", "").endswith("@bookTicker"):
                return message["data"]["B"], message["data"]
        raise AssertionError("no bookTicker")

    base, _ = first_bid_qty(linear, coinm=False)
    contracts, data = first_bid_qty(inverse, coinm=True)  # the same market, the same seed
    assert data["ps"] == inverse.split("_")[0]
    assert contracts == str(max(1, round(float(base) * contracts_per_base)))
    with pytest.raises(ValueError, match="COIN-M symbols"):
        next(generate(SynthSpec(symbols=("ETHUSDT",), futures=True, coinm=True)))
