"""The replayed market: books rebuilt from the recording, as the simulated exchange sees it.

The depth endpoint and the matching engine read these books; they are maintained from the diff
stream being served (recorded snapshot plus diffs, resynchronised at each recorded reconnect), so
a snapshot served at any moment is consistent with the diffs a client receives.
"""

from __future__ import annotations

import asyncio

from plumbing.waits import wait_set
from replay.binance import DepthSnapshot, TradeEvent, to_levels
from replay.book import OrderBook
from replay.depth_sync import (
    CrossedBookError,
    DepthDiff,
    DiffDepthSync,
    DiffOutcome,
    SnapshotOutcome,
)
from replay.exchange.matching import MatchingEngine
from replay.lane.state import FastBook, LaneState


class ReplayMarket:
    def __init__(self, symbols: list[str], matching: MatchingEngine | None = None) -> None:
        self.symbols = [s.upper() for s in symbols]
        self.matching = matching
        self.syncs: dict[str, DiffDepthSync] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._last_u: dict[str, int] = {}
        self._unclaimed: list[DepthSnapshot] = []
        """Snapshots no symbol could be told for yet (a slice starts with them)."""
        self.crossed = 0
        for symbol in self.symbols:
            self._add(symbol)

    def _add(self, symbol: str) -> None:
        self.syncs[symbol] = DiffDepthSync()
        self._ready[symbol] = asyncio.Event()
        if self.matching is not None and symbol in self.matching.rules:
            self.matching.attach_book(symbol, self.syncs[symbol].book)

    def book(self, symbol: str) -> OrderBook | None:
        sync = self.syncs.get(symbol)
        return sync.book if sync is not None and sync.synced else None

    def unsynced(self) -> list[str]:
        """Symbols whose book is not known yet (no snapshot since the start or a disconnect)."""
        return [symbol for symbol, sync in self.syncs.items() if not sync.synced]

    async def wait_book(self, symbol: str, timeout_s: float) -> OrderBook | None:
        if symbol not in self.syncs:
            return None
        if not self.syncs[symbol].synced and not await wait_set(self._ready[symbol], timeout_s):
            return None
        return self.book(symbol)

    def on_disconnect(self) -> None:
        """The recording connection dropped: books are unknown until the next snapshot."""
        for symbol, sync in self.syncs.items():
            sync.reset()
            self._ready[symbol].clear()

    def on_diff(self, symbol: str, diff: DepthDiff) -> None:
        if symbol not in self.syncs:
            self._add(symbol)
        self._last_u[symbol] = diff.final_update_id
        sync = self.syncs[symbol]
        if not sync.synced and self._unclaimed:
            self._claim(symbol, diff)
        try:
            action = sync.on_diff(diff)
        except CrossedBookError:
            self.crossed += 1
            self._ready[symbol].clear()
            return
        if action is DiffOutcome.APPLIED:
            if self.matching is not None and self.matching.has_book_interest(symbol):
                self.matching.on_book_levels(symbol, diff.bids, diff.asks)
        elif not sync.synced:
            self._ready[symbol].clear()

    def share_with_lane(self, state: LaneState) -> None:
        """The compiled lane applies plain diffs to the books it is handed (`_fast_books`),
        records each diff's final update id, and reports a book it crossed (`on_crossed`)."""
        state.books = self._fast_books()
        state.last_u = self._last_u
        state.on_crossed = self.on_crossed

    def last_update_ids(self) -> dict[str, int]:
        """Each symbol's latest diff's final update id (the fast lane updates it in place)."""
        return self._last_u

    def on_crossed(self, symbol: str, update_id: int) -> None:
        """A diff applied by the fast lane crossed the book (on_diff's CrossedBookError case)."""
        self.syncs[symbol].mark_crossed(update_id)
        self.crossed += 1
        self._ready[symbol].clear()

    def _fast_books(self) -> dict[str, FastBook]:
        """Books the fast lane may apply plain diffs to: synced, and no venue interest in their
        changes (a resting order or liquidity to give back makes every diff the Python path's)."""
        books = {}
        matching = self.matching
        for symbol, sync in self.syncs.items():
            if not sync.synced or (matching is not None and matching.has_book_interest(symbol)):
                continue
            book = sync.book
            books[symbol] = (book, book.bids.prices, book.bids.qty, book.asks.prices, book.asks.qty)
        return books

    def _claim(self, symbol: str, diff: DepthDiff) -> None:
        """The first diff of a symbol claims an unclaimed snapshot that it continues."""
        for snapshot in self._unclaimed:
            if diff.first_update_id <= snapshot.lastUpdateId + 1 <= diff.final_update_id + 1:
                self._unclaimed.remove(snapshot)
                self._apply_snapshot(symbol, snapshot)
                return

    def on_snapshot(self, snapshot: DepthSnapshot) -> str | None:
        symbol = self._snapshot_symbol(snapshot.lastUpdateId)
        if symbol is None:
            self._unclaimed.append(snapshot)
            del self._unclaimed[:-16]
            return None
        self._apply_snapshot(symbol, snapshot)
        return symbol

    def _apply_snapshot(self, symbol: str, snapshot: DepthSnapshot) -> None:
        sync = self.syncs[symbol]
        bids, asks = to_levels(snapshot.bids), to_levels(snapshot.asks)
        try:
            outcome = sync.on_snapshot(snapshot.lastUpdateId, bids, asks)
        except CrossedBookError:
            self.crossed += 1
            return
        if outcome is SnapshotOutcome.SYNCED:
            self._ready[symbol].set()
            if self.matching is not None:
                self.matching.on_book_reset(symbol)

    def _snapshot_symbol(self, last_update_id: int) -> str | None:
        """A recorded snapshot names no symbol: it belongs to the one whose ids it continues.

        With one symbol that is obvious; otherwise the symbol whose last diff id is nearest, if
        any diff was seen; else the snapshot waits to be claimed by the first diff continuing it.
        """
        if len(self.syncs) == 1:
            return next(iter(self.syncs))
        candidates = [(abs(last_update_id - u), s) for s, u in self._last_u.items()]
        return min(candidates)[1] if candidates else None

    def on_trade(self, trade: TradeEvent) -> None:
        matching = self.matching
        if matching is not None and matching.open.get(trade.s):
            matching.on_trade(trade.s, float(trade.p), float(trade.q), trade.m)
