"""Can the venue's push channel (the user data stream) be trusted right now?

A quiet user data stream is normal: nothing happens to our orders. Silence only means trouble
when we did something the venue must report (sent or cancelled an order) and no event followed
within `stale_after_ns`. So the channel is stale when it is disconnected, or when an expectation
is older than that with no event since. While stale, the execution gateway polls REST at its
fast interval; while healthy, polling is only a slow safety net.
"""

from __future__ import annotations


class PushHealth:
    def __init__(self, *, stale_after_ns: int) -> None:
        self.stale_after_ns = stale_after_ns
        self.connected = False
        self.last_event_ns = 0
        self._expected_since_ns: int | None = None
        self.events = 0

    def on_connected(self, now_ns: int) -> None:
        self.connected = True
        self.last_event_ns = max(self.last_event_ns, now_ns)

    def on_disconnected(self) -> None:
        self.connected = False

    def on_event(self, now_ns: int) -> None:
        self.events += 1
        self.last_event_ns = now_ns
        self._expected_since_ns = None

    def expect_event(self, now_ns: int) -> None:
        """We acted; the venue owes us an event (the earliest unmet expectation counts)."""
        if self._expected_since_ns is None:
            self._expected_since_ns = now_ns

    def stale(self, now_ns: int) -> bool:
        if not self.connected:
            return True
        since = self._expected_since_ns
        return since is not None and now_ns - since > self.stale_after_ns

    def state(self, now_ns: int) -> dict[str, object]:
        return {
            "connected": self.connected,
            "stale": self.stale(now_ns),
            "events": self.events,
            "last_event_age_ms": (
                round((now_ns - self.last_event_ns) / 1e6) if self.last_event_ns else None
            ),
        }
