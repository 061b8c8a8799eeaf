"""The compiled lane's state: the one object `replay.lane._speedups.run` reads and writes.

The lane runs on one `LaneState`, which it owns. Before each run the owners of the state it
touches hand their part over through `LaneShare.share_with_lane`, and the server sets the clock
fields; nothing else runs while the lane does (the event loop is blocked for at most `budget`
records), so what was handed over stays valid for the run. The C code reads the fields once per
run, by these names (`STATE_FIELDS` in `_speedups.c`): rename one and rename it there.

Containers handed over are the owners' own, updated in place by the lane (a quote stored, a
book's levels applied, a diff's update id recorded, a trade added to the 24h statistics, a client
queue appended to): that is the point of the lane, and each owner says which of its containers it
shares in its `share_with_lane`. The storage layout of a book side is a contract of its own,
stated in `replay.book`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from replay.book import OrderBook

FastBook = tuple[OrderBook, list[float], dict[float, float], list[float], dict[float, float]]
"""A book and its sides' storage (bid prices, bid quantities, ask prices, ask quantities): what
the compiled lane applies diffs to in place (the contract is in `replay.book`)."""

LaneClient = tuple[set[str], bool, Callable[[bytes], None], deque[bytes], int, int]
"""One feed client as the lane serves it: its subscriptions, combined mode, its queue's append,
the queue (for its length), the length that counts as crowded (half) and its limit."""


class RollingStats(Protocol):
    """A symbol's 24h statistics as the lane feeds them trades (`replay.derived`)."""

    next_push_ms: int
    """Event time of the next ticker push: a trade at or after it is the Python path's."""

    def add(self, time_ms: int, price: float, qty: float, trade_id: int) -> None: ...


class LaneState:
    """Every field the compiled run reads or writes besides the block of records."""

    __slots__ = (
        "books",
        "busy",
        "clients",
        "last_ms",
        "last_u",
        "on_crossed",
        "pacing",
        "quotes",
        "rebase",
        "recvs",
        "rolling",
        "subscribed",
        "symbols",
        "time_map",
    )

    def __init__(self, *, rebase: bool) -> None:
        # the feed's (FeedServer.share_with_lane)
        self.subscribed: dict[str, int] = {}
        """Subscribers per stream; a stream nobody wants has no key."""
        self.clients: list[LaneClient] = []
        """The clients that may be sent to (not overflowed)."""
        # the derived streams' (DerivedStreams.share_with_lane)
        self.quotes: dict[str, bytes] = {}
        """Symbol -> its latest bookTicker data (the lane stores each quote)."""
        self.rolling: Mapping[str, RollingStats] = {}
        """Symbol -> its 24h statistics (the lane adds each trade); a dict, read only."""
        # the market's (ReplayMarket.share_with_lane)
        self.books: dict[str, FastBook] = {}
        """Books the lane may apply plain diffs to; it drops the ones it leaves to Python."""
        self.last_u: dict[str, int] = {}
        """Symbol -> the final update id of its latest diff (the lane records each)."""
        self.on_crossed: Callable[[str, int], None] = _unset
        """Told (symbol, update id) when a diff the lane applied crossed the book."""
        # shared by the matching engine and the derived streams
        self.busy: set[str] = set()
        """Trade symbols the Python path must see: a resting order, a wanted aggTrade stream."""
        # the server's clock (ReplayServer, through FastLane.run)
        self.rebase = rebase
        """Rewrite event times to the wall clock (ReplayServerConfig.rebase)."""
        self.time_map: tuple[int, int, float] | None = None
        """EventTimeMap's (anchor event ms, anchor wall ms, speed or 0.0 at max speed)."""
        self.last_ms = 0
        """The latest wall time written into a message (times never go backwards)."""
        self.pacing: tuple[int, int, float, int] | None = None
        """When paced, Pacer.schedule() and now (monotonic ns): only due records are done."""
        self.recvs: list[int] | None = None
        """When paced, the receive time of each record done (its pacing error is recorded)."""
        # the lane's own
        self.symbols: dict[str, str] = {}
        """Stream name -> symbol, a cache the lane fills."""


def _unset(symbol: str, update_id: int) -> None:
    raise RuntimeError("the market has not shared its books with the lane")


class LaneShare(Protocol):
    """An owner of state the lane touches: it hands that state over before each run."""

    def share_with_lane(self, state: LaneState) -> None: ...
