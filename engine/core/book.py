"""Price-level order book and Binance diff-depth synchronisation.

Synchronisation follows Binance's documented procedure for spot diff depth:
  1. buffer every diff from the moment the stream is subscribed;
  2. fetch a REST snapshot; if its lastUpdateId is older than the first buffered diff's U,
     fetch another;
  3. drop buffered diffs with u <= lastUpdateId; the first kept diff must have
     U <= lastUpdateId + 1 <= u;
  4. apply the kept diffs, then every new one; a diff whose U is above the last applied u + 1 is
     a gap: discard the book and start again from step 2.

USD-M and COIN-M futures diffs carry `pu`, the previous event's final update id, and their `U`
does not follow the last `u` + 1. Their procedure: drop diffs with u < lastUpdateId; the first
kept diff spans the snapshot (U <= lastUpdateId <= u) or continues it (pu == lastUpdateId); each
later diff's pu must equal the last applied u, else it is a gap.

`DepthSync` is pure: its methods return what the caller must do (fetch a snapshot, nothing).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence
from enum import StrEnum

import msgspec

from engine.core.errors import BookGapError, CrossedBookError

Level = tuple[float, float]


class BookSide:
    """One side of a book: price -> quantity, with prices kept sorted ascending."""

    __slots__ = ("_prices", "_qty", "descending")

    def __init__(self, *, descending: bool) -> None:
        self.descending = descending
        self._prices: list[float] = []
        self._qty: dict[float, float] = {}

    def set(self, price: float, qty: float) -> None:
        if qty <= 0:
            if price in self._qty:
                del self._qty[price]
                index = bisect.bisect_left(self._prices, price)
                del self._prices[index]
            return
        if price not in self._qty:
            bisect.insort(self._prices, price)
        self._qty[price] = qty

    def clear(self) -> None:
        self._prices.clear()
        self._qty.clear()

    def best(self) -> Level | None:
        if not self._prices:
            return None
        price = self._prices[-1] if self.descending else self._prices[0]
        return price, self._qty[price]

    def top(self, depth: int) -> list[Level]:
        prices = self._prices[-depth:][::-1] if self.descending else self._prices[:depth]
        return [(p, self._qty[p]) for p in prices]

    def levels(self) -> Iterable[Level]:
        prices = reversed(self._prices) if self.descending else iter(self._prices)
        return ((p, self._qty[p]) for p in prices)

    def qty_at(self, price: float) -> float:
        return self._qty.get(price, 0.0)

    def storage(self) -> tuple[list[float], dict[float, float]]:
        """The ascending price list and the price -> quantity map themselves, for a compiled
        reader that applies levels in place exactly as `set` does (replay's fast lane)."""
        return self._prices, self._qty

    def __len__(self) -> int:
        return len(self._prices)


class OrderBook:
    def __init__(self) -> None:
        self.bids = BookSide(descending=True)
        self.asks = BookSide(descending=False)
        self.update_id = 0

    def reset(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        self.bids.clear()
        self.asks.clear()
        for price, qty in bids:
            self.bids.set(price, qty)
        for price, qty in asks:
            self.asks.set(price, qty)
        self.update_id = update_id

    def apply(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        for price, qty in bids:
            self.bids.set(price, qty)
        for price, qty in asks:
            self.asks.set(price, qty)
        self.update_id = update_id

    def best_bid(self) -> Level | None:
        return self.bids.best()

    def best_ask(self) -> Level | None:
        return self.asks.best()

    def mid(self) -> float | None:
        bid, ask = self.bids.best(), self.asks.best()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2

    def is_crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def checksum(self, depth: int = 25) -> int:
        """A stable fingerprint of the top levels (for tests and cross-process comparison)."""
        import zlib

        parts = [f"{p:.8f}:{q:.8f}" for p, q in self.bids.top(depth)]
        parts += [f"{p:.8f}:{q:.8f}" for p, q in self.asks.top(depth)]
        return zlib.crc32("|".join(parts).encode())


def parse_levels(raw: Sequence[Sequence[str]]) -> list[Level]:
    return [(float(price), float(qty)) for price, qty, *_ in raw]


class DepthDiff(msgspec.Struct, frozen=True):
    first_update_id: int  # U
    final_update_id: int  # u
    bids: list[Level]
    asks: list[Level]
    exchange_ts_ms: int = 0
    previous_final_update_id: int | None = None  # pu: futures only


class SyncState(StrEnum):
    AWAITING_SNAPSHOT = "AWAITING_SNAPSHOT"
    SYNCED = "SYNCED"


class SyncAction(StrEnum):
    NONE = "NONE"
    APPLIED = "APPLIED"
    FETCH_SNAPSHOT = "FETCH_SNAPSHOT"
    """The caller must fetch a REST snapshot and call on_snapshot with it."""
    IGNORED = "IGNORED"


class DepthSync:
    """Keeps an OrderBook synchronised from a Binance diff-depth stream plus REST snapshots."""

    def __init__(self, *, max_buffer: int = 10_000) -> None:
        self.book = OrderBook()
        self.state = SyncState.AWAITING_SNAPSHOT
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self._snapshot_requested = False
        self.gaps = 0
        self.resyncs = 0
        self.last_gap: tuple[int, int] | None = None
        self._snapshot_id: int | None = None
        """Futures: the snapshot's id until the first diff after it is applied."""

    @property
    def synced(self) -> bool:
        return self.state is SyncState.SYNCED

    def reset(self) -> None:
        """Start again (after a reconnect): the buffered diffs belong to the old connection."""
        self.state = SyncState.AWAITING_SNAPSHOT
        self._buffer.clear()
        self._snapshot_requested = False

    def on_diff(self, diff: DepthDiff) -> SyncAction:
        if self.state is SyncState.AWAITING_SNAPSHOT:
            self._buffer.append(diff)
            if not self._snapshot_requested:
                self._snapshot_requested = True
                return SyncAction.FETCH_SNAPSHOT
            return SyncAction.NONE
        if diff.previous_final_update_id is not None:
            return self._on_futures_diff(diff)
        if diff.final_update_id <= self.book.update_id:
            return SyncAction.IGNORED
        if diff.first_update_id > self.book.update_id + 1:
            self._on_gap(self.book.update_id, diff)
            return SyncAction.FETCH_SNAPSHOT
        self._apply(diff)
        return SyncAction.APPLIED

    def _on_futures_diff(self, diff: DepthDiff) -> SyncAction:
        book_id = self.book.update_id
        if self._snapshot_id is not None:
            if diff.final_update_id < self._snapshot_id:
                return SyncAction.IGNORED
            continues = _continues_snapshot(diff, self._snapshot_id)
        else:
            if diff.final_update_id <= book_id:
                return SyncAction.IGNORED
            continues = diff.previous_final_update_id == book_id
        if not continues:
            self._on_gap(book_id, diff)
            return SyncAction.FETCH_SNAPSHOT
        self._snapshot_id = None
        self._apply(diff)
        return SyncAction.APPLIED

    def on_snapshot(
        self, last_update_id: int, bids: Iterable[Level], asks: Iterable[Level]
    ) -> SyncAction:
        """Returns APPLIED when synced, FETCH_SNAPSHOT when the snapshot is too old to use."""
        self._snapshot_requested = False
        if self.state is SyncState.SYNCED:
            return SyncAction.IGNORED
        futures = bool(self._buffer) and self._buffer[0].previous_final_update_id is not None
        while self._buffer and (
            self._buffer[0].final_update_id < last_update_id
            or (not futures and self._buffer[0].final_update_id == last_update_id)
        ):
            self._buffer.popleft()
        if self._buffer and (
            not _continues_snapshot(self._buffer[0], last_update_id)
            if futures
            else self._buffer[0].first_update_id > last_update_id + 1
        ):
            # The snapshot is older than everything we still hold: ask for a newer one.
            self._snapshot_requested = True
            return SyncAction.FETCH_SNAPSHOT
        self.book.reset(bids, asks, last_update_id)
        self._snapshot_id = last_update_id if futures else None
        self.state = SyncState.SYNCED
        pending = list(self._buffer)
        self._buffer.clear()
        for diff in pending:
            action = self.on_diff(diff)
            if action is SyncAction.FETCH_SNAPSHOT:
                # a gap inside the buffer: on_diff put us back to awaiting and re-buffered
                for rest in pending[pending.index(diff) + 1 :]:
                    self._buffer.append(rest)
                return SyncAction.FETCH_SNAPSHOT
        return SyncAction.APPLIED

    def _on_gap(self, last_applied: int, diff: DepthDiff) -> None:
        self.gaps += 1
        self.resyncs += 1
        self.last_gap = (last_applied, diff.first_update_id)
        self.state = SyncState.AWAITING_SNAPSHOT
        self._buffer.clear()
        self._buffer.append(diff)
        self._snapshot_requested = True

    def _apply(self, diff: DepthDiff) -> None:
        self.book.apply(diff.bids, diff.asks, diff.final_update_id)
        if self.book.is_crossed():
            raise self.crossed_after_apply(diff.final_update_id)

    def crossed_after_apply(self, update_id: int) -> CrossedBookError:
        """The diff just applied crossed the book: it is unusable until the next snapshot.
        Returns the error to raise (or count, for a caller that applied the diff itself)."""
        self.resyncs += 1
        self.state = SyncState.AWAITING_SNAPSHOT
        self._buffer.clear()
        self._snapshot_requested = False
        bid, ask = self.book.best_bid(), self.book.best_ask()
        return CrossedBookError(f"book crossed at update {update_id}: bid {bid} >= ask {ask}")


def _continues_snapshot(diff: DepthDiff, snapshot_id: int) -> bool:
    """Futures: the first diff after a snapshot spans it or is the very next event."""
    return diff.first_update_id <= snapshot_id or diff.previous_final_update_id == snapshot_id


def require_continuous(last_update_id: int, diff: DepthDiff) -> None:
    """Raise BookGapError when `diff` does not continue a book at `last_update_id`."""
    if diff.first_update_id > last_update_id + 1:
        raise BookGapError(
            f"update-id gap: have {last_update_id}, next diff starts at {diff.first_update_id}"
        )
