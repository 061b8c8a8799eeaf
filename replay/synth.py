"""Deterministic synthetic Binance spot market, written in the collector recording format.

Model, per symbol (symbols are independent and merged by receive time):
- a fair mid follows a log random walk with drift, stepped every 50 ms (plus an optional flash
  crash: a 2 s fall by `crash_depth_pct` with most bids withdrawn, then partial recovery);
- a real price-level book in integer ticks: bids stay at or below the fair mid's tick, asks
  above it, so it never crosses; resting orders arrive at exponential distances from the mid
  (a tight inner mix and a wide outer one), are cancelled or resized at random, and levels the
  mid moves through are pulled;
- trades are Poisson taker orders hitting the best bid or lifting the best ask, walking levels;
- every change gets the next update id; each 100 ms window yields one depthUpdate with the final
  quantity of every level changed in it, bookTicker follows every top-of-book change, and one
  REST snapshot is taken mid-window after the second depth message.
Receive time is exchange time plus a uniform latency, kept non-decreasing per symbol (one
connection delivers in order); the snapshot arrives after a longer REST latency. A symbol's update
ids live in their own band of 10**10, so in a multi-symbol recording a snapshot belongs to the
symbol whose diff span holds its lastUpdateId. Everything comes from `random.Random(seed)`.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from replay.recording import RecordingWriter


@dataclass(frozen=True, kw_only=True)
class Regime:
    name: str
    volatility_bps_per_sqrt_s: float
    drift_bps_per_s: float
    trade_rate_per_s: float
    mean_trade_qty: float
    quiet_trade_gaps: bool = False
    crash_at_s: float | None = None
    crash_depth_pct: float = 0.0


REGIMES: dict[str, Regime] = {
    regime.name: regime
    for regime in (
        Regime(name="calm", volatility_bps_per_sqrt_s=2.0, drift_bps_per_s=0.0,
               trade_rate_per_s=20.0, mean_trade_qty=0.05),
        Regime(name="trending", volatility_bps_per_sqrt_s=2.5, drift_bps_per_s=0.5,
               trade_rate_per_s=25.0, mean_trade_qty=0.05),
        Regime(name="volatile", volatility_bps_per_sqrt_s=10.0, drift_bps_per_s=0.0,
               trade_rate_per_s=60.0, mean_trade_qty=0.08),
        Regime(name="flash_crash", volatility_bps_per_sqrt_s=2.0, drift_bps_per_s=0.0,
               trade_rate_per_s=20.0, mean_trade_qty=0.05, crash_depth_pct=3.0),
        Regime(name="quiet", volatility_bps_per_sqrt_s=1.0, drift_bps_per_s=0.0,
               trade_rate_per_s=2.0, mean_trade_qty=0.05, quiet_trade_gaps=True),
    )
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class SynthSpec:
    symbols: tuple[str, ...] = ("BTCUSDT",)
    duration_s: float = 600.0
    seed: int = 1
    regime: str = "calm"
    start_ns: int = 1_704_067_200_000_000_000
    start_prices: dict[str, float] | None = None
    tick_size: float = 0.01
    levels_per_side: int = 200
    recv_latency_ms: tuple[float, float] = (1.0, 6.0)
    crash_at_s: float | None = None
    """When a crashing regime's crash begins (seconds from the start); default: the regime's own,
    else 40% of the duration."""
    futures: bool = False
    """USD-M perpetual payloads: diffs chained by `pu` with a transaction time `T`, trades with
    `X`, bookTicker with `E` and `T`, a snapshot with `E` and `T` (docs/futures.md)."""
    coinm: bool = False
    """With `futures`: COIN-M payloads instead (symbols such as ETHUSD_PERP): diffs and
    bookTicker name their pair (`ps`), the snapshot its `symbol` and `pair`, and quantities are
    whole contracts (of the symbol's contract size, Binance's: 10 USD for ETHUSD_PERP, 100 for
    BTCUSD_PERP) at the symbol's start price."""


_DEFAULT_PRICES = {
    "BTCUSDT": 60000.0,
    "ETHUSDT": 3000.0,
    "BTCUSD_PERP": 60000.0,
    "ETHUSD_PERP": 3000.0,
}
_UNIT = 100_000_000
_LOT = 1_000
_MS = 1_000_000
_WINDOW_NS = 100 * _MS
_STEP_NS = 50 * _MS
_STEP_S = _STEP_NS / 1e9
_NEVER = 1 << 80
_CHURN_PER_S = 40.0
_INNER_BPS = 0.2
_OUTER_BPS = 10.0
_REQUOTE_P = 0.8
_REFILL = 0.25
_LEVEL_TO_TRADE_QTY = 3.0
_SNAPSHOT_LEVELS = 1000
_REST_LATENCY_MS = (15.0, 60.0)
_CRASH_FALL_S = 2.0
_CRASH_BURST_NS = 2_500 * _MS
_CRASH_BURST_RATE = 10.0
_CRASH_WITHDRAW = 0.7
_CRASH_KEEP = 0.6
_CRASH_TAU_S = 10.0
_QUIET_ACTIVE_S = (5.0, 20.0)
_QUIET_SILENT_S = (30.0, 60.0)


def _fmt(units: int) -> str:
    return f"{units // _UNIT}.{units % _UNIT:08d}"


class _Side:
    __slots__ = ("changed", "qty", "ticks")

    def __init__(self) -> None:
        self.ticks: list[int] = []
        self.qty: dict[int, int] = {}
        self.changed: set[int] = set()


class _Market:
    """One symbol's book and streams; `run()` yields its messages in receive-time order."""

    def __init__(
        self, spec: SynthSpec, regime: Regime, symbol: str, index: int, rng: random.Random
    ) -> None:
        self.rng = rng
        self.symbol, self.name = symbol, symbol.lower()
        self.tick_units = round(spec.tick_size * _UNIT)
        prices = spec.start_prices or {}
        price = prices.get(symbol, _DEFAULT_PRICES.get(symbol, 100.0))
        self.start_ticks = price / spec.tick_size
        ticks_per_bps = self.start_ticks * 1e-4
        self.inner = max(ticks_per_bps * _INNER_BPS, 0.5)
        self.outer = max(ticks_per_bps * _OUTER_BPS, spec.levels_per_side / 2)
        self.max_dist = int(8 * self.outer) + 1
        self.target = spec.levels_per_side
        # USD-M: quantities in the contract's step (0.001 ETH), as the exchange's trades are
        self.lot = _usdm_step_units(symbol) if spec.futures and not spec.coinm else _LOT
        self.level_lots = max(1.0, regime.mean_trade_qty * _LEVEL_TO_TRADE_QTY * _UNIT / self.lot)
        self.trade_lots = max(1.0, regime.mean_trade_qty * _UNIT / self.lot)
        self.trade_rate = regime.trade_rate_per_s
        self.vol = regime.volatility_bps_per_sqrt_s * 1e-4 * math.sqrt(_STEP_S)
        self.drift = regime.drift_bps_per_s * 1e-4 * _STEP_S
        self.lat_lo, self.lat_hi = (ms * _MS for ms in spec.recv_latency_ms)
        self.start_ns = spec.start_ns
        self.end_ns = spec.start_ns + int(spec.duration_s * 1e9)
        self.crash_ns: int | None = None
        self.crash_log, self.withdrawn = 0.0, False
        if regime.crash_depth_pct > 0:
            at_s = next(
                (x for x in (spec.crash_at_s, regime.crash_at_s) if x is not None),
                0.4 * spec.duration_s,
            )
            self.crash_ns = spec.start_ns + int(at_s * 1e9)
            self.crash_log = math.log(1.0 - regime.crash_depth_pct / 100.0)
        self.quiet = regime.quiet_trade_gaps
        self.active_end = spec.start_ns + int(rng.uniform(*_QUIET_ACTIVE_S) * 1e9)
        self.silent_end = self.active_end + int(rng.uniform(*_QUIET_SILENT_S) * 1e9)

        self.bids, self.asks = _Side(), _Side()
        self.log_mid, self.z = 0.0, 0.0
        self.m, self.last_id = math.floor(self.start_ticks), 0
        for bid in (True, False):
            side = self.bids if bid else self.asks
            for _ in range(20 * self.target):
                if len(side.ticks) >= self.target:
                    break
                self._place(bid, inner=rng.random() < 0.1)
        self.bids.changed.clear()
        self.asks.changed.clear()
        self.last_id = (index + 1) * 10**10 + rng.randrange(10**9)
        self.window_first = self.last_id + 1
        self.trade_id = rng.randrange(10**8, 4 * 10**9)
        self.top: tuple[int, int, int, int] | None = None
        self.futures = spec.futures
        self.coinm = spec.futures and spec.coinm
        self.pair = f',"ps":"{symbol.split("_")[0]}"' if self.coinm else ""
        self.contracts_per_unit = price / _contract_usd(symbol) / _UNIT if self.coinm else 0.0
        self.previous_u = self.last_id
        self.out: list[tuple[int, bytes]] = []
        self.last_recv = self.depth_count = 0
        self.snap_wanted = self.snap_done = False
        self.snapshot: tuple[int, bytes] | None = None
        self.window_end = spec.start_ns + _WINDOW_NS
        self.next_step = spec.start_ns
        self.next_churn = spec.start_ns + int(rng.expovariate(_CHURN_PER_S) * 1e9)
        self.next_trade = self._next_trade_time(spec.start_ns)

    def run(self) -> Iterator[tuple[int, bytes]]:
        rng = self.rng
        while True:
            t = min(self.next_step, self.next_trade, self.next_churn)
            while self.window_end <= t and self.window_end <= self.end_ns:
                self._close_window()
            if t >= self.end_ns:
                break
            snap = None
            if self.snap_wanted and self.last_id >= self.window_first:
                snap = self._capture()
            if t == self.next_step:
                self._step(t)
            elif t == self.next_trade:
                self._trade(t)
            else:
                self._churn()
                self.next_churn = t + 1 + int(rng.expovariate(_CHURN_PER_S) * 1e9)
            if snap is not None and self.last_id > snap[0]:
                self._finish_snapshot(snap, t)
            self._flush_ticker(t)
            if self.out:
                yield from self._drain()
        if self.last_id >= self.window_first:
            self._close_window()
        if not self.snap_done:
            self._finish_snapshot(self._capture(), self.end_ns)
        yield from self._drain()
        if self.snapshot is not None:
            yield self.snapshot

    def _drain(self) -> Iterator[tuple[int, bytes]]:
        if self.snapshot is None:
            yield from self.out
        else:
            for item in self.out:
                if self.snapshot is not None and self.snapshot[0] <= item[0]:
                    yield self.snapshot
                    self.snapshot = None
                yield item
        self.out.clear()

    def _emit(self, exch_ns: int, payload: str) -> None:
        recv = exch_ns + int(self.rng.uniform(self.lat_lo, self.lat_hi))
        if recv < self.last_recv:
            recv = self.last_recv
        self.last_recv = recv
        self.out.append((recv, payload.encode()))

    def _price(self, tick: int) -> str:
        return _fmt(tick * self.tick_units)

    def _set(self, side: _Side, tick: int, qty: int) -> None:
        if qty > 0:
            if tick not in side.qty:
                insort(side.ticks, tick)
            side.qty[tick] = qty
        else:
            del side.qty[tick]
            side.ticks.pop(bisect_left(side.ticks, tick))
        side.changed.add(tick)
        self.last_id += 1

    def _place(self, bid: bool, *, inner: bool) -> None:
        rng = self.rng
        distance = int(rng.expovariate(1.0 / (self.inner if inner else self.outer)))
        distance = min(distance, self.max_dist)
        tick = self.m - distance if bid else self.m + 1 + distance
        if tick <= 0:
            return
        side = self.bids if bid else self.asks
        lots = 1 + int(rng.expovariate(1.0 / self.level_lots))
        self._set(side, tick, side.qty.get(tick, 0) + lots * self.lot)

    def _churn(self) -> None:
        rng = self.rng
        bid = rng.random() < 0.5
        side = self.bids if bid else self.asks
        n = len(side.ticks)
        p_add = min(0.9, max(0.1, 0.5 + 2.0 * (self.target - n) / self.target))
        r = rng.random()
        if r < p_add or n < 2:
            self._place(bid, inner=rng.random() < 0.5)
            return
        tick = side.ticks[rng.randrange(n)]
        if r < p_add + (1.0 - p_add) * 0.6:
            self._set(side, tick, 0)
        else:
            lots = side.qty[tick] // self.lot
            self._set(side, tick, max(1, int(lots * rng.uniform(0.3, 1.8))) * self.lot)

    def _crash_offset(self, t: int) -> float:
        if self.crash_ns is None or t < self.crash_ns:
            return 0.0
        since = (t - self.crash_ns) / 1e9
        if since < _CRASH_FALL_S:
            return self.crash_log * since / _CRASH_FALL_S
        recovery = math.exp(-(since - _CRASH_FALL_S) / _CRASH_TAU_S)
        return self.crash_log * (_CRASH_KEEP + (1.0 - _CRASH_KEEP) * recovery)

    def _in_burst(self, t: int) -> bool:
        return self.crash_ns is not None and 0 <= t - self.crash_ns < _CRASH_BURST_NS

    def _step(self, t: int) -> None:
        rng = self.rng
        self.z = rng.gauss(0.0, 1.0)
        self.log_mid += self.drift + self.vol * self.z
        mid = self.start_ticks * math.exp(self.log_mid + self._crash_offset(t))
        self.m = m = max(1, math.floor(mid))
        bids, asks = self.bids, self.asks
        if self.crash_ns is not None and not self.withdrawn and t >= self.crash_ns:
            self.withdrawn = True
            for tick in rng.sample(bids.ticks, int(len(bids.ticks) * _CRASH_WITHDRAW)):
                self._set(bids, tick, 0)
        while bids.ticks and bids.ticks[-1] > m:
            self._set(bids, bids.ticks[-1], 0)
        while asks.ticks and asks.ticks[0] <= m:
            self._set(asks, asks.ticks[0], 0)
        while bids.ticks and bids.ticks[0] < m - self.max_dist:
            self._set(bids, bids.ticks[0], 0)
        while asks.ticks and asks.ticks[-1] > m + 1 + self.max_dist:
            self._set(asks, asks.ticks[-1], 0)
        falling = self.crash_ns is not None and 0 <= t - self.crash_ns < _CRASH_FALL_S * 1e9
        for bid, side in ((True, bids), (False, asks)):
            if not side.ticks or rng.random() < _REQUOTE_P:
                self._place(bid, inner=True)
            if not (bid and falling):
                for _ in range(math.ceil((self.target - len(side.ticks)) * _REFILL)):
                    self._place(bid, inner=rng.random() < 0.5)
        self.next_step += _STEP_NS

    def _trade(self, t: int) -> None:
        rng = self.rng
        burst = self._in_burst(t)
        buy = rng.random() < (0.1 if burst else 0.5 + 0.15 * math.tanh(self.z))
        mean_lots = self.trade_lots * (3.0 if burst else 1.0)
        qty = max(1, int(rng.expovariate(1.0 / mean_lots) + 0.5)) * self.lot
        side = self.asks if buy else self.bids
        ms = t // _MS
        maker = "false" if buy else "true"
        while qty > 0 and side.ticks:
            tick = side.ticks[0] if buy else side.ticks[-1]
            level = side.qty[tick]
            fill = min(qty, level)
            if fill == level and len(side.ticks) == 1:
                fill -= self.lot
                if fill <= 0:
                    break
            self._flush_ticker(t)
            tail = '"X":"MARKET"' if self.futures else '"M":true'
            self._emit(
                t,
                f'{{"stream":"{self.name}@trade","data":{{"e":"trade","E":{ms},'
                f'"s":"{self.symbol}","t":{self.trade_id},"p":"{self._price(tick)}",'
                f'"q":"{self._qty(fill)}","T":{ms},"m":{maker},{tail}}}}}',
            )
            self.trade_id += 1
            self._set(side, tick, level - fill)
            qty -= fill
        self.next_trade = self._next_trade_time(t)

    def _next_trade_time(self, t: int) -> int:
        rng = self.rng
        rate = self.trade_rate * (_CRASH_BURST_RATE if self._in_burst(t) else 1.0)
        if rate <= 0:
            return _NEVER
        nxt = t + 1 + int(rng.expovariate(rate) * 1e9)
        if self.crash_ns is not None and t < self.crash_ns <= nxt:
            nxt = self.crash_ns + int(rng.expovariate(rate * _CRASH_BURST_RATE) * 1e9)
        while self.quiet and nxt >= self.active_end:
            if nxt < self.silent_end:
                nxt = self.silent_end + int(rng.expovariate(rate) * 1e9)
            self.active_end = self.silent_end + int(rng.uniform(*_QUIET_ACTIVE_S) * 1e9)
            self.silent_end = self.active_end + int(rng.uniform(*_QUIET_SILENT_S) * 1e9)
        return nxt

    def _flush_ticker(self, t: int) -> None:
        bids, asks = self.bids.ticks, self.asks.ticks
        if not bids or not asks:
            return
        best_bid, best_ask = bids[-1], asks[0]
        top = (best_bid, self.bids.qty[best_bid], best_ask, self.asks.qty[best_ask])
        if top == self.top:
            return
        self.top = top
        times = f',"T":{t // _MS},"E":{t // _MS}' if self.futures else ""
        self._emit(
            t,
            f'{{"stream":"{self.name}@bookTicker","data":{{"u":{self.last_id},'
            f'"s":"{self.symbol}"{self.pair},"b":"{self._price(best_bid)}",'
            f'"B":"{self._qty(top[1])}","a":"{self._price(best_ask)}",'
            f'"A":"{self._qty(top[3])}"{times}}}}}',
        )

    def _levels(self, side: _Side, ticks: list[int]) -> str:
        qty = side.qty
        return ",".join(f'["{self._price(t)}","{self._qty(qty.get(t, 0))}"]' for t in ticks)

    def _qty(self, units: int) -> str:
        """A quantity as the market writes it: base units, or (COIN-M) whole contracts, at
        least one for a level or trade that is there."""
        if not self.coinm:
            return _fmt(units)
        return str(max(1, round(units * self.contracts_per_unit)) if units > 0 else 0)

    def _close_window(self) -> None:
        if self.last_id >= self.window_first:
            bids = self._levels(self.bids, sorted(self.bids.changed, reverse=True))
            asks = self._levels(self.asks, sorted(self.asks.changed))
            ms = self.window_end // _MS
            chain = f',"T":{ms},"pu":{self.previous_u}' if self.futures else ""
            self._emit(
                self.window_end,
                f'{{"stream":"{self.name}@depth@100ms","data":{{"e":"depthUpdate",'
                f'"E":{ms},"s":"{self.symbol}"{self.pair},"U":{self.window_first},'
                f'"u":{self.last_id}{chain},"b":[{bids}],"a":[{asks}]}}}}',
            )
            self.previous_u = self.last_id
            self.bids.changed.clear()
            self.asks.changed.clear()
            self.window_first = self.last_id + 1
            self.depth_count += 1
            if self.depth_count == 2 and not self.snap_done:
                self.snap_wanted = True
        self.window_end += _WINDOW_NS

    def _capture(self) -> tuple[int, str]:
        bids = self._levels(self.bids, self.bids.ticks[-_SNAPSHOT_LEVELS:][::-1])
        asks = self._levels(self.asks, self.asks.ticks[:_SNAPSHOT_LEVELS])
        return self.last_id, f'{{"lastUpdateId":{self.last_id},"bids":[{bids}],"asks":[{asks}]}}'

    def _finish_snapshot(self, snap: tuple[int, str], t: int) -> None:
        latency = int(self.rng.uniform(*_REST_LATENCY_MS) * _MS)
        body = snap[1]
        if self.futures:  # GET /fapi/v1/depth: the message and transaction times follow the id
            head = f'{{"lastUpdateId":{snap[0]},'
            names = (
                f'"symbol":"{self.symbol}","pair":"{self.symbol.split("_")[0]}",'
                if self.coinm
                else ""
            )
            body = f'{head}{names}"E":{t // _MS},"T":{t // _MS},{body[len(head) :]}'
        self.snapshot = (max(t + latency, self.last_recv + 1), body.encode())
        self.snap_wanted, self.snap_done = False, True


def _usdm_step_units(symbol: str) -> int:
    from replay.exchange.futures_symbols import futures_entry
    from replay.market_kind import MarketKind

    lot = next(
        f
        for f in futures_entry(symbol, MarketKind.USDM)["filters"]
        if f["filterType"] == "LOT_SIZE"
    )
    return max(1, round(float(lot["stepSize"]) * _UNIT))


def _contract_usd(symbol: str) -> float:
    from replay.exchange.futures_symbols import futures_entry
    from replay.market_kind import MarketKind

    return float(futures_entry(symbol, MarketKind.COINM)["contractSize"])


def _validate(spec: SynthSpec) -> Regime:
    if spec.regime not in REGIMES:
        raise ValueError(f"unknown regime {spec.regime!r}; known: {', '.join(REGIMES)}")
    if not spec.symbols or len(set(spec.symbols)) != len(spec.symbols):
        raise ValueError("symbols must be non-empty and distinct")
    if spec.duration_s <= 0 or spec.levels_per_side < 1:
        raise ValueError("duration_s must be positive and levels_per_side at least 1")
    if round(spec.tick_size * _UNIT) < 1:
        raise ValueError("tick_size must be at least 1e-8")
    low, high = spec.recv_latency_ms
    if not 0 <= low <= high:
        raise ValueError("recv_latency_ms must satisfy 0 <= low <= high")
    if spec.coinm and not all("_" in s for s in spec.symbols):
        raise ValueError("COIN-M symbols name their pair and delivery: ETHUSD_PERP, BTCUSD_PERP")
    if spec.crash_at_s is not None and not 0 <= spec.crash_at_s < spec.duration_s:
        raise ValueError("crash_at_s must be within the duration")
    return REGIMES[spec.regime]


def generate(spec: SynthSpec) -> Iterator[tuple[int, bytes]]:
    """Yield `(recv_ns, payload)` records in receive-time order, deterministically from the spec."""
    regime = _validate(spec)
    master = random.Random(spec.seed)
    streams = [
        _Market(spec, regime, symbol, index, random.Random(master.getrandbits(64))).run()
        for index, symbol in enumerate(spec.symbols)
    ]
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from heapq.merge(*streams, key=itemgetter(0))


def write_recording(spec: SynthSpec, path: str | Path) -> int:
    """Write `generate(spec)` to a gzip recording at `path` (replacing it); returns the count."""
    Path(path).unlink(missing_ok=True)
    with RecordingWriter(path) as writer:
        for recv_ns, payload in generate(spec):
            writer.write(recv_ns, payload)
        return writer.records
