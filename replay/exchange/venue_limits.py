"""Binance's rate limits, as the venue enforces them. Pure: times are passed in.

- REQUEST_WEIGHT per IP over a rolling minute; ORDERS per account over 10 s and over a day.
- Over a limit: HTTP 429 with `Retry-After` (seconds) and code -1003 (weight) or -1015 (orders).
- A client that keeps sending while it was told to wait (`strikes` requests inside a
  Retry-After window) is banned: HTTP 418 with `Retry-After` and -1003 "IP banned until ...".
  Bans escalate for repeat offenders (base, doubled each time, capped): Binance documents 2
  minutes to 3 days.
Every response reports the weight used (`X-MBX-USED-WEIGHT-1M`) and, for orders, the counts
(`X-MBX-ORDER-COUNT-10S`, `X-MBX-ORDER-COUNT-1D`).

Windows roll in buckets (10 ms for the weight and 10 s windows, 1 s for the day), so that what
a window holds is bounded by its length, not by the traffic: a load test that lifts the limits
for a day of 3,000 orders/s would otherwise keep 259 million timestamps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import msgspec


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    weight_per_window: int = 6000
    weight_window_s: float = 60.0
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    strikes_before_ban: int = 3
    ban_base_s: float = 120.0
    ban_max_s: float = 3 * 86_400.0


class Verdict(msgspec.Struct):
    """One per request: a struct, whose constructor is C, not a dataclass's Python __init__."""

    status: int
    """200 (go on), 429 (too many), 418 (banned)."""
    code: int = 0
    msg: str = ""
    retry_after_s: int = 0
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class RollingCount:
    """A sum over the last `window_s` seconds, kept in buckets of `bucket_s`: a bucket leaves
    the window once its start is `window_s` old (the window is exact to one bucket)."""

    __slots__ = ("_bucket_s", "_buckets", "_window_s", "total")

    def __init__(self, window_s: float, bucket_s: float) -> None:
        self._window_s = window_s
        self._bucket_s = bucket_s
        self._buckets: deque[list[float]] = deque()  # [bucket start, amount]
        self.total = 0

    def prune(self, now: float) -> None:
        horizon = now - self._window_s
        buckets = self._buckets
        while buckets and buckets[0][0] <= horizon:
            self.total -= int(buckets.popleft()[1])

    def add(self, now: float, amount: int = 1) -> None:
        start = now - now % self._bucket_s
        buckets = self._buckets
        if buckets and buckets[-1][0] == start:
            buckets[-1][1] += amount
        else:
            buckets.append([start, amount])
        self.total += amount

    def oldest(self) -> float | None:
        """When the oldest amount still counted arrived (its bucket's start)."""
        return self._buckets[0][0] if self._buckets else None

    def buckets(self) -> int:
        return len(self._buckets)


@dataclass
class _Client:
    weights: RollingCount
    wait_until: float = 0.0
    strikes: int = 0
    banned_until: float = 0.0
    bans: int = 0
    too_many: int = 0
    """429s served (ground truth for tests and game days)."""
    banned_responses: int = 0
    """418s served."""


class RateLimiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._ips: dict[str, _Client] = {}
        self._orders_10s: dict[str, RollingCount] = {}
        self._orders_day: dict[str, RollingCount] = {}

    def _client(self, ip: str, now: float) -> _Client:
        client = self._ips.get(ip)
        if client is None:
            client = self._ips[ip] = _Client(RollingCount(self.limits.weight_window_s, 0.01))
        client.weights.prune(now)
        return client

    def check(self, ip: str, weight: int, now: float) -> Verdict:
        """Count a request of `weight`; says whether it may be served."""
        client = self._client(ip, now)
        limits = self.limits
        if now < client.banned_until:
            return self._banned(client, now)
        if now < client.wait_until:
            client.strikes += 1
            if client.strikes >= limits.strikes_before_ban:
                client.bans += 1
                duration = min(limits.ban_max_s, limits.ban_base_s * 2 ** (client.bans - 1))
                client.banned_until = now + duration
                client.strikes = 0
                return self._banned(client, now)
            return self._too_much(client, now)
        if client.weights.total + weight > limits.weight_per_window:
            oldest = client.weights.oldest()
            client.wait_until = (oldest if oldest is not None else now) + limits.weight_window_s
            return self._too_much(client, now)
        client.weights.add(now, weight)
        client.strikes = 0
        return Verdict(200, headers={"X-MBX-USED-WEIGHT-1M": str(client.weights.total)})

    def throttle(self, ip: str, retry_after_s: float, now: float) -> Verdict:
        """A 429 imposed from outside the weight count (a 429-storm venue fault): the IP is told
        to wait; a request inside an existing wait is a strike, as in check()."""
        client = self._client(ip, now)
        if now < client.banned_until or now < client.wait_until:
            return self.check(ip, 0, now)
        client.wait_until = now + retry_after_s
        return self._too_much(client, now)

    def check_order(self, account: str, now: float) -> Verdict:
        """Count a new order of an account (after the request weight was accepted)."""
        ten = self._window(self._orders_10s, account, now, 10.0, 0.01)
        day = self._window(self._orders_day, account, now, 86_400.0, 1.0)
        if ten.total >= self.limits.orders_per_10s:
            return Verdict(
                429,
                -1015,
                f"Too many new orders; current limit is "
                f"{self.limits.orders_per_10s} orders per 10 SECOND.",
                retry_after_s=_retry_after(ten, 10.0, now),
                headers=_order_headers(ten, day),
            )
        if day.total >= self.limits.orders_per_day:
            return Verdict(
                429,
                -1015,
                f"Too many new orders; current limit is "
                f"{self.limits.orders_per_day} orders per 1 DAY.",
                retry_after_s=_retry_after(day, 86_400.0, now),
                headers=_order_headers(ten, day),
            )
        ten.add(now)
        day.add(now)
        return Verdict(200, headers=_order_headers(ten, day))

    @staticmethod
    def _window(
        store: dict[str, RollingCount], key: str, now: float, seconds: float, bucket_s: float
    ) -> RollingCount:
        window = store.get(key)
        if window is None:
            window = store[key] = RollingCount(seconds, bucket_s)
        window.prune(now)
        return window

    def stats(self) -> dict[str, dict[str, int | float]]:
        """Per IP: 429s and 418s served, bans, and whether a ban is running."""
        return {
            ip: {
                "too_many_429": c.too_many,
                "banned_418": c.banned_responses,
                "bans": c.bans,
                "banned_until": c.banned_until,
            }
            for ip, c in self._ips.items()
        }

    def _too_much(self, client: _Client, now: float) -> Verdict:
        client.too_many += 1
        retry = max(1, int(client.wait_until - now + 0.999))
        return Verdict(
            429,
            -1003,
            f"Too much request weight used; current limit is {self.limits.weight_per_window}"
            f" request weight per {int(self.limits.weight_window_s)} SECOND. Please use WebSocket"
            " Streams for live updates to avoid polling the API.",
            retry_after_s=retry,
            headers={"X-MBX-USED-WEIGHT-1M": str(client.weights.total)},
        )

    def _banned(self, client: _Client, now: float) -> Verdict:
        client.banned_responses += 1
        until_ms = int(client.banned_until * 1000)
        return Verdict(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until_ms}. Please use WebSocket"
            " Streams for live updates to avoid bans.",
            retry_after_s=max(1, int(client.banned_until - now + 0.999)),
            headers={"X-MBX-USED-WEIGHT-1M": str(client.weights.total)},
        )


def _order_headers(ten: RollingCount, day: RollingCount) -> dict[str, str]:
    return {"X-MBX-ORDER-COUNT-10S": str(ten.total), "X-MBX-ORDER-COUNT-1D": str(day.total)}


def _retry_after(window: RollingCount, window_s: float, now: float) -> int:
    """Whole seconds until the oldest counted amount leaves the window (at least 1)."""
    oldest = window.oldest()
    return max(1, int((now if oldest is None else oldest) + window_s - now + 0.999))
