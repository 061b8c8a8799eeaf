"""The replayed market's order book: the quantity at each price, per side.

The oracle owns this book (it never borrows the engine's): the depth endpoint serves it, the
matching engine walks it, and a bug in the engine's book must show up as a disagreement with it.

Storage contract with the compiled lane (`replay/lane/_speedups.c`, handed the storage by
`ReplayMarket.share_with_lane` in `LaneState.books`). The lane applies depth diffs to the book
itself, without calling any method here, so the storage layout is part of the replay's interface
to its C code:

- each side (`PriceLevels`) is exactly two objects, `prices`: a `list` of every price as a Python
  `float`, ascending whichever the side, and `qty`: a `dict` from each of those prices to its
  quantity (a float); the two always hold the same prices;
- setting a level means what `PriceLevels.set` does: a quantity <= 0 removes the price from both
  (if present), any other quantity stores it and inserts a new price at its sorted place
  (after equal ones, as `bisect.insort` does);
- the list and the dict are created with the side and never replaced: a snapshot clears and
  refills them in place, because the lane holds references to them for a whole run;
- `OrderBook.update_id` is a plain int attribute: the lane reads it to decide whether a diff
  continues the book, and writes the diff's final update id to it after applying the levels.

Change any of this and change `_speedups.c` with it; tests/unit/replay/lane/test_fast_lane.py
requires the lane and the Python path to leave identical books.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from itertools import islice

__all__ = ["Level", "OrderBook", "PriceLevels"]

Level = tuple[float, float]
"""(price, quantity)"""


class PriceLevels:
    """One side of the book. Best first means highest price first for bids, lowest for asks."""

    __slots__ = ("highest_first", "prices", "qty")

    def __init__(self, *, highest_first: bool) -> None:
        self.highest_first = highest_first
        self.prices: list[float] = []
        self.qty: dict[float, float] = {}

    def set(self, price: float, qty: float) -> None:
        """Binance's rule for a level in a snapshot or a diff: the quantity given replaces the
        one held, and a zero quantity removes the level."""
        if qty <= 0:
            if price in self.qty:
                del self.qty[price]
                del self.prices[bisect_left(self.prices, price)]
            return
        if price not in self.qty:
            insort(self.prices, price)
        self.qty[price] = qty

    def replace_all(self, levels: Iterable[Level]) -> None:
        """Hold exactly `levels` (a snapshot's side), keeping the same list and dict objects."""
        self.prices.clear()
        self.qty.clear()
        for price, qty in levels:
            self.set(price, qty)

    def _best_first(self) -> Iterator[float]:
        return reversed(self.prices) if self.highest_first else iter(self.prices)

    def levels(self) -> Iterator[Level]:
        """Every level, best first (lazily: a book walk usually stops after a few)."""
        qty = self.qty
        return ((price, qty[price]) for price in self._best_first())

    def top(self, depth: int) -> list[Level]:
        """The best `depth` levels, best first."""
        return list(islice(self.levels(), max(depth, 0)))

    def best(self) -> Level | None:
        if not self.prices:
            return None
        price = self.prices[-1] if self.highest_first else self.prices[0]
        return price, self.qty[price]

    def qty_at(self, price: float) -> float:
        return self.qty.get(price, 0.0)

    def __len__(self) -> int:
        return len(self.prices)


class OrderBook:
    """Bids, asks, and the update id of the last change applied (a snapshot's lastUpdateId or a
    diff's final update id `u`)."""

    def __init__(self) -> None:
        self.bids = PriceLevels(highest_first=True)
        self.asks = PriceLevels(highest_first=False)
        self.update_id = 0

    def load_snapshot(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        """Become exactly the snapshot: every level held before is gone."""
        self.bids.replace_all(bids)
        self.asks.replace_all(asks)
        self.update_id = update_id

    def apply_levels(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        """Apply a diff's levels, in the order given, then take its final update id."""
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
        """The best bid at or above the best ask: no real book looks like this."""
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid[0] >= ask[0]
