"""Binance's rate limits, as the venue enforces them. Pure: times are passed in.

- REQUEST_WEIGHT per IP over a rolling minute; ORDERS per account over 10 s and over a day.
- Over a limit: HTTP 429 with `Retry-After` (seconds) and code -1003 (weight) or -1015 (orders).
- A client that keeps sending while it was told to wait (`strikes` requests inside a
  Retry-After window) is banned: HTTP 418 with `Retry-After` and -1003 "IP banned until ...".
  Bans escalate for repeat offenders (base, doubled each time, capped): Binance documents 2
  minutes to 3 days.
Every response reports the weight used (`X-MBX-USED-WEIGHT-1M`) and, for orders, the counts
(`X-MBX-ORDER-COUNT-10S`, `X-MBX-ORDER-COUNT-1D`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    weight_per_window: int = 6000
    weight_window_s: float = 60.0
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    strikes_before_ban: int = 3
    ban_base_s: float = 120.0
    ban_max_s: float = 3 * 86_400.0


@dataclass(slots=True)
class Verdict:
    status: int
    """200 (go on), 429 (too many), 418 (banned)."""
    code: int = 0
    msg: str = ""
    retry_after_s: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Client:
    weights: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0
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
        self._orders_10s: dict[str, deque[float]] = {}
        self._orders_day: dict[str, deque[float]] = {}

    def _client(self, ip: str, now: float) -> _Client:
        client = self._ips.setdefault(ip, _Client())
        horizon = now - self.limits.weight_window_s
        while client.weights and client.weights[0][0] <= horizon:
            client.used -= client.weights.popleft()[1]
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
        if client.used + weight > limits.weight_per_window:
            client.wait_until = (
                client.weights[0][0] + limits.weight_window_s
                if client.weights
                else now + limits.weight_window_s
            )
            return self._too_much(client, now)
        client.weights.append((now, weight))
        client.used += weight
        client.strikes = 0
        return Verdict(200, headers={"X-MBX-USED-WEIGHT-1M": str(client.used)})

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
        ten = self._window(self._orders_10s, account, now, 10.0)
        day = self._window(self._orders_day, account, now, 86_400.0)
        if len(ten) >= self.limits.orders_per_10s:
            return Verdict(
                429,
                -1015,
                f"Too many new orders; current limit is "
                f"{self.limits.orders_per_10s} orders per 10 SECOND.",
                retry_after_s=max(1, int(ten[0] + 10.0 - now + 0.999)),
                headers=_order_headers(ten, day),
            )
        if len(day) >= self.limits.orders_per_day:
            return Verdict(
                429,
                -1015,
                f"Too many new orders; current limit is "
                f"{self.limits.orders_per_day} orders per 1 DAY.",
                retry_after_s=max(1, int(day[0] + 86_400.0 - now + 0.999)),
                headers=_order_headers(ten, day),
            )
        ten.append(now)
        day.append(now)
        return Verdict(200, headers=_order_headers(ten, day))

    @staticmethod
    def _window(
        store: dict[str, deque[float]], key: str, now: float, seconds: float
    ) -> deque[float]:
        times = store.setdefault(key, deque())
        while times and times[0] <= now - seconds:
            times.popleft()
        return times

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
            headers={"X-MBX-USED-WEIGHT-1M": str(client.used)},
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
            headers={"X-MBX-USED-WEIGHT-1M": str(client.used)},
        )


def _order_headers(ten: deque[float], day: deque[float]) -> dict[str, str]:
    return {"X-MBX-ORDER-COUNT-10S": str(len(ten)), "X-MBX-ORDER-COUNT-1D": str(len(day))}
