"""When each recorded message is due, at 1x, Nx or max speed, with pause and speed changes.

Pure: the caller supplies monotonic time. Due time = anchor_wall + (recv - anchor_recv) / speed;
changing speed or resuming re-anchors at the current position so the replay never jumps.
"""

from __future__ import annotations

import math


def _check_speed(speed: float | None) -> None:
    if speed is not None and not 0 < speed < math.inf:  # NaN fails this too
        raise ValueError("speed must be positive and finite (or None for max)")


class Pacer:
    def __init__(self, speed: float | None) -> None:
        _check_speed(speed)
        self.speed = speed
        self.paused = False
        self._anchor_recv: int | None = None
        self._anchor_wall = 0
        self.position_recv_ns = 0

    @property
    def is_max(self) -> bool:
        return self.speed is None

    def due_ns(self, recv_ns: int, now_ns: int) -> int:
        """Monotonic time at which a record received at recv_ns should be sent."""
        if self._anchor_recv is None:
            self._anchor_recv, self._anchor_wall = recv_ns, now_ns
            self.position_recv_ns = recv_ns
        self.position_recv_ns = max(self.position_recv_ns, recv_ns)
        if self.speed is None:
            return now_ns
        return self._anchor_wall + int((recv_ns - self._anchor_recv) / self.speed)

    def schedule(self) -> tuple[int, int, float] | None:
        """(anchor receive time, anchor monotonic time, speed) while paced and anchored: what
        due_ns computes with, for a reader that decides many records at once."""
        if self.speed is None or self._anchor_recv is None:
            return None
        return self._anchor_recv, self._anchor_wall, self.speed

    def set_speed(self, speed: float | None, now_ns: int) -> None:
        _check_speed(speed)
        self._reanchor(now_ns)
        self.speed = speed

    def pause(self, now_ns: int) -> None:
        self.paused = True

    def resume(self, now_ns: int) -> None:
        self.paused = False
        self._reanchor(now_ns)

    def restart(self, position_recv_ns: int) -> None:
        """After a seek: the next record anchors the schedule again."""
        self._anchor_recv = None
        self.position_recv_ns = position_recv_ns

    def _reanchor(self, now_ns: int) -> None:
        if self._anchor_recv is not None:
            self._anchor_recv = self.position_recv_ns
            self._anchor_wall = now_ns


class PacingStats:
    """Send-time error (actual minus scheduled), kept in a bounded ring for percentiles."""

    def __init__(self, capacity: int = 200_000) -> None:
        from array import array

        self._errors = array("q", [0]) * capacity
        self._capacity = capacity
        self.count = 0

    def record(self, error_ns: int) -> None:
        self._errors[self.count % self._capacity] = error_ns
        self.count += 1

    def percentiles(self) -> dict[str, float]:
        n = min(self.count, self._capacity)
        if n == 0:
            return {}
        ordered = sorted(self._errors[:n])

        def pick(q: float) -> float:
            return ordered[min(n - 1, int(q * n))] / 1e6

        return {
            "count": self.count,
            "p50_ms": pick(0.50),
            "p99_ms": pick(0.99),
            "max_ms": ordered[-1] / 1e6,
        }
