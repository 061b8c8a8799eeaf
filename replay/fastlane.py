"""The replay's compiled hot path: runs of records handed to `replay._speedups.run`.

At max speed, one record costs the Python path 7 to 40 us on the CI machine kind (parse, book,
24h statistics, rebase, fan-out); 150k messages/s to one client leaves under 7 us for all of it.
The C lane does what `ReplayServer._process` does for the common records (trades, bookTicker,
depth diffs that continue a synced book) and stops at the first record it is not sure about;
the Python path handles that one, then the lane goes on. Both are held to identical output by
tests/unit/test_fast_lane.py.

The lane runs without feed faults, with the replay resumed and not seeking (the server checks):
at max speed for every record, and when paced for the records already due (a burst of trades
received together is sent together, at C speed, instead of each waiting for the one before).
The state it may touch is collected here before each run, because nothing else runs while it
does (the event loop is blocked for at most `budget` records).

Without the compiled module (a checkout where `pip install -e .` did not build it) the replay
runs the Python path only, and says so once at startup.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import TYPE_CHECKING

from replay.recording import RecordCursor

if TYPE_CHECKING:
    from replay.server import ReplayServer

speedups: ModuleType | None
try:
    from replay import _speedups as speedups
except ImportError:  # pragma: no cover - the build step installs it (scripts/bootstrap.sh)
    speedups = None

AVAILABLE = speedups is not None


class FastLane:
    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self._symbols: dict[str, str] = {}
        """Stream name -> symbol, filled by the lane."""
        self.records = 0
        """Records the lane processed (the rest went through the Python path)."""

    def run(
        self, cursor: RecordCursor, budget: int, *, now_ns: int | None = None
    ) -> tuple[int, bool]:
        """Process up to `budget` records from the cursor's current block; when paced
        (`now_ns` given), only those due by `now_ns`, each one's pacing error recorded.

        Returns (records done, crowded): 0 records when the next one is the Python path's, is
        not due yet, or the block is used up; crowded when a client's queue reached half its
        limit.
        """
        assert speedups is not None
        server = self.server
        feed = server.feed
        matching = server.matching
        derived = server.derived
        wanted = feed.wanted
        time_map = server._time_map
        mapping = None
        last_ms = 0
        if time_map is not None:
            last_ms = time_map.last_ms
            mapping = (time_map.anchor_event_ms, time_map.anchor_wall_ms, time_map.speed or 0.0)
        pacing = None
        recvs: list[int] | None = None
        if now_ns is not None:
            schedule = server.pacer.schedule()
            if schedule is None:
                return 0, False  # the next record anchors the schedule: the Python path's
            pacing = (*schedule, now_ns)
            recvs = []
        busy = {symbol for symbol, orders in matching.open.items() if orders}
        busy.update(s for s in derived.rolling_by_symbol() if wanted(derived.agg_trade_stream(s)))
        clients = [
            (c.subscriptions, c.combined, c.queue.append, c.queue, c.half_queue, c.max_queue)
            for c in feed.clients.values()
            if not c.overflowed
        ]
        if not _fits(last_ms) or (pacing is not None and not all(map(_fits, pacing[:2]))):
            return 0, False  # times no recording has (the Python path copes with any int)
        pos, records, last_recv, last_ms, stop, error = speedups.run(
            cursor.block,
            cursor.pos,
            budget,
            feed.subscribed_counts(),
            clients,
            derived.quotes(),
            server.market.fast_books(),
            server.market.last_update_ids(),
            derived.rolling_by_symbol(),
            busy,
            server.config.rebase,
            mapping,
            last_ms,
            server.market.on_crossed,
            self._symbols,
            pacing,
            recvs,
        )
        if records:
            cursor.advance(pos, records, last_recv)
            server.records += records
            server.messages += records
            if recvs is None:
                server.pacer.position_recv_ns = last_recv  # as the max-speed path sets it
            else:
                sent = time.monotonic_ns()  # after the whole run: never flatters the error
                for recv_ns in recvs:
                    server.pacing.record(sent - server.pacer.due_ns(recv_ns, sent))
            if time_map is not None and last_ms > time_map.last_ms:
                time_map.last_ms = last_ms
                server._last_mapped_ms = last_ms
            for client in feed.clients.values():
                if client.queue:
                    client.has_items.set()
            self.records += records
        if error is not None:
            raise error  # after the records done before it are accounted for
        return records, stop == speedups.STOP_CROWDED


def _fits(value: int) -> bool:
    return -(2**63) <= value < 2**63
