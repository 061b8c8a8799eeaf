"""Redundant feeds: which one is active, when to switch, and which events to publish. Pure.

Every feed of a venue is connected at once. Each event (a trade, a quote, a depth update) is
published by whichever feed delivers it first. Ids are remembered, not compared with a
high-water mark, so two interleaving feeds never make a gap. The arbiter also measures each
feed's lag, that is how long after the first arrival it delivered the same event, smoothed. It
keeps one feed active (the book is published from it):
  - switch away when the active feed is unhealthy (disconnected or stale) and another is healthy;
  - switch away when it lags the best healthy feed by more than `lag_threshold_ms` for
    `hysteresis_ms` (so one slow message does not cause flapping);
  - fail back to the preferred feed (the first configured) once it has been healthy and not
    lagging for `failback_ms`.
Every switch says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.dedupe import RecentIds


@dataclass(frozen=True)
class Switch:
    previous: str
    active: str
    reason: str


@dataclass
class _FeedState:
    healthy: bool = False
    lag_ms: float = 0.0
    samples: int = 0
    lagging_since_ns: int | None = None
    good_since_ns: int | None = None


@dataclass
class FeedArbiter:
    feeds: list[str]
    lag_threshold_ms: float = 50.0
    hysteresis_ms: float = 250.0
    failback_ms: float = 2_000.0
    smoothing: float = 0.2
    active: str = ""
    switches: int = 0
    _state: dict[str, _FeedState] = field(default_factory=dict)
    _first_seen: dict[object, int] = field(default_factory=dict)
    _published: RecentIds = field(default_factory=lambda: RecentIds(100_000))

    def __post_init__(self) -> None:
        if not self.feeds:
            raise ValueError("an arbiter needs at least one feed")
        self.active = self.active or self.feeds[0]
        self._state = {feed: _FeedState() for feed in self.feeds}

    @property
    def preferred(self) -> str:
        return self.feeds[0]

    def lag_ms(self, feed: str) -> float:
        return self._state[feed].lag_ms

    def arrived(self, feed: str, key: object, recv_ns: int) -> bool:
        """An event arrived on a feed; True when it is new (publish it), False for a copy."""
        if len(self.feeds) == 1:
            return True  # one feed: no copies to drop, no lag to measure
        state = self._state[feed]
        first = self._first_seen.get(key)
        if first is None:
            self._first_seen[key] = recv_ns
            if len(self._first_seen) > 100_000:
                del self._first_seen[next(iter(self._first_seen))]
            sample = 0.0
        else:
            sample = max(0.0, (recv_ns - first) / 1e6)
        state.lag_ms += self.smoothing * (sample - state.lag_ms) if state.samples else sample
        state.samples += 1
        return self._published.add(key)

    def set_health(self, feed: str, healthy: bool) -> None:
        state = self._state[feed]
        if healthy != state.healthy:
            state.healthy = healthy
            state.good_since_ns = None
            state.lagging_since_ns = None

    def decide(self, now_ns: int) -> Switch | None:
        """Called periodically (every few tens of ms): the switch to make, if any."""
        healthy = [f for f in self.feeds if self._state[f].healthy]
        if not healthy:
            return None
        active = self._state[self.active]
        best = min(healthy, key=lambda f: (self._state[f].lag_ms, self.feeds.index(f)))
        if not active.healthy:
            return self._switch(best, f"{self.active} unhealthy (disconnected or stale)")
        behind = active.lag_ms - self._state[best].lag_ms
        if best != self.active and behind > self.lag_threshold_ms:
            active.lagging_since_ns = active.lagging_since_ns or now_ns
            if (now_ns - active.lagging_since_ns) / 1e6 >= self.hysteresis_ms:
                return self._switch(best, f"{self.active} lags {best} by {behind:.0f} ms")
        else:
            active.lagging_since_ns = None
        preferred = self._state[self.preferred]
        if (
            self.active != self.preferred
            and preferred.healthy
            and (preferred.lag_ms <= active.lag_ms + self.lag_threshold_ms / 2)
        ):
            preferred.good_since_ns = preferred.good_since_ns or now_ns
            if (now_ns - preferred.good_since_ns) / 1e6 >= self.failback_ms:
                return self._switch(
                    self.preferred,
                    f"fail-back to {self.preferred}: healthy, lag {preferred.lag_ms:.0f} ms",
                )
        else:
            preferred.good_since_ns = None
        return None

    def _switch(self, to: str, reason: str) -> Switch:
        previous, self.active = self.active, to
        self.switches += 1
        for state in self._state.values():
            state.lagging_since_ns = None
            state.good_since_ns = None
        return Switch(previous, to, reason)
