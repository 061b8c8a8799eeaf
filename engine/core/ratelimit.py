"""Request-weight and order-rate governance for one venue, as Binance spot enforces its limits.
Pure: no I/O, no asyncio; every time is a `now_ns` argument (a monotonic clock in production).

Binance's rules (spot REST, per the API documentation's "LIMITS" section):

- REQUEST_WEIGHT: every endpoint has a weight (order POST/DELETE 1, GET order 4, openOrders 6
  with a symbol and 80 without, allOrders/myTrades/account/exchangeInfo 20, depth 5/25/50/250 by
  limit, ping/time 1, ...). The weights of an IP are summed over a minute (6000 on spot) and every
  response reports the sum in `X-MBX-USED-WEIGHT-1M` (lower-case `x-mbx-used-weight-1m` over
  HTTP/2). The limit is per IP: every client on the same address spends from the same budget.
- ORDERS: new orders per account over 10 s (100) and per day (200 000), reported in
  `X-MBX-ORDER-COUNT-10S` / `-1D` on order responses.
- Over a limit the venue answers 429 with `Retry-After` (seconds). "Repeatedly violating rate
  limits and/or failing to back off after receiving 429s will result in an automated IP ban"
  (HTTP 418, with `Retry-After`), from 2 minutes to 3 days for repeat offenders.

Our policy:

- Stay under `max_usage` (70%) of the weight limit, sustained and in bursts, with a token bucket
  (see `VenueGovernor` for how capacity and refill are derived). 30% stays free for the unknown:
  another process on the same IP, a retry storm, a restart that finds the last minute spent.
- Believe the venue over ourselves: when a response reports more weight (or more orders) in the
  window than we granted, the excess is booked in our ledger of the venue's window at the time we
  learn of it, so it counts against our budget until it has surely left the venue's window.
- A 429 or a 418 stops the WHOLE venue (every operation, orders and cancels alike) until
  now + Retry-After: Binance counts every request sent inside a Retry-After window against us
  and bans the IP for it, and a ban stops everything for minutes at least. Without Retry-After
  we wait a whole weight window after a 429 (the window has surely rolled over) and
  `default_ban_s` (Binance's shortest ban, 2 minutes) after a 418. After a pause the bucket starts
  empty at the pause's end, so we come back at the sustained rate, not with a burst; and until
  one request has been answered without a 429/418, only one request is out at a time (a probe):
  if the venue still refuses, only that one request was sent inside its new Retry-After window.
- New orders (`order_ops`) also take a token from an order-count bucket (our own budget,
  `orders_per_10s`, already below the venue's 100) and a place among `max_orders_in_flight`.
  Cancels are never held back by the order caps (they reduce risk); they pay request weight only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

NS_PER_S: Final = 1_000_000_000
_UNITS_PER_TOKEN: Final = 10**12
"""The bucket counts in integer pico-tokens: exact arithmetic, no float drift over days."""

WAIT_PAUSED: Final = "paused_429"
WAIT_BANNED: Final = "banned_418"
WAIT_IN_FLIGHT: Final = "in_flight"
WAIT_ORDERS: Final = "order_rate"
WAIT_WEIGHT: Final = "weight"
WAIT_VENUE_USAGE: Final = "venue_usage"
WAIT_VENUE_ORDERS: Final = "venue_orders"
WAIT_PROBING: Final = "probing_after_pause"

BINANCE_SPOT_WEIGHTS: Final[Mapping[str, int]] = {
    # operation (the ccxt method that makes the request): Binance spot request weight
    "ping": 1,  # GET /api/v3/ping
    "fetch_time": 1,  # GET /api/v3/time
    "load_markets": 20,  # GET /api/v3/exchangeInfo (spot only: one request)
    "fetch_markets": 20,  # GET /api/v3/exchangeInfo
    "fetch_order_book": 5,  # GET /api/v3/depth, limit <= 100 (default 100): see depth_weight
    "fetch_trades": 25,  # GET /api/v3/trades
    "fetch_ticker": 2,  # GET /api/v3/ticker/24hr with a symbol
    "create_order": 1,  # POST /api/v3/order
    "cancel_order": 1,  # DELETE /api/v3/order
    "cancel_all_orders": 1,  # DELETE /api/v3/openOrders
    "fetch_order": 4,  # GET /api/v3/order
    "fetch_open_orders": 6,  # GET /api/v3/openOrders with a symbol
    "fetch_open_orders_all_symbols": 80,  # GET /api/v3/openOrders without a symbol
    "fetch_orders": 20,  # GET /api/v3/allOrders
    "fetch_my_trades": 20,  # GET /api/v3/myTrades
    "fetch_order_trades": 20,  # GET /api/v3/myTrades (charged as without orderId: the upper bound)
    "fetch_balance": 20,  # GET /api/v3/account
    "listen_key": 2,  # POST/PUT/DELETE /api/v3/userDataStream
}
"""Binance spot REST request weights (the documented ones; the simulator charges the same)."""

BINANCE_FUTURES_WEIGHTS: Final[Mapping[str, int]] = {
    # operation: Binance USD-M / COIN-M request weight (IP limit)
    "ping": 1,
    "fetch_time": 1,
    "load_markets": 1,  # GET /fapi/v1/exchangeInfo (one market type)
    "fetch_markets": 1,
    "fetch_order_book": 5,  # GET depth, limit 100
    "fetch_trades": 5,
    "fetch_ticker": 1,
    "create_order": 1,  # 0 on the IP limit; charged 1 so that every order is counted
    "cancel_order": 1,
    "cancel_all_orders": 1,
    "fetch_order": 1,
    "fetch_open_orders": 1,
    "fetch_open_orders_all_symbols": 40,
    "fetch_orders": 5,
    "fetch_my_trades": 5,
    "fetch_order_trades": 5,
    "fetch_balance": 5,  # GET account
    "fetch_positions": 6,  # GET positionRisk (5) and, once, GET leverageBracket (1)
    "set_leverage": 1,
    "listen_key": 1,
    "fetch_funding_history": 30,  # GET income
}
"""Binance futures REST request weights of the operations the engine makes."""

BINANCE_ORDER_OPS: Final[frozenset[str]] = frozenset({"create_order"})
"""Operations that count as new orders (ORDERS limit, in-flight cap)."""


def depth_weight(limit: int | None) -> int:
    """Weight of GET /api/v3/depth for a `limit` (None: Binance's default of 100)."""
    limit = 100 if limit is None else limit
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class TokenBucket:
    """`capacity` tokens, refilled continuously at `refill_per_s`; starts full.

    `take(amount, now_ns)` returns 0 when the tokens were taken, else the ns to wait until they
    will be there (nothing is taken). The refill rate is rounded down to 0.001 token/s, never up.
    """

    def __init__(self, capacity: int, refill_per_s: float) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        rate = math.floor(refill_per_s * _UNITS_PER_TOKEN / NS_PER_S)
        if rate <= 0:
            raise ValueError("refill_per_s must be at least 0.001 token/s")
        self.capacity = capacity
        self._rate = rate  # units per ns
        self._cap_units = capacity * _UNITS_PER_TOKEN
        self._units = self._cap_units
        self._last_ns: int | None = None

    @property
    def refill_per_s(self) -> float:
        return self._rate * NS_PER_S / _UNITS_PER_TOKEN

    def _refill(self, now_ns: int) -> None:
        if self._last_ns is None:
            self._last_ns = now_ns
            return
        if now_ns <= self._last_ns:
            return  # no time passed (or the refill is scheduled to start later: see empty_at)
        self._units = min(self._cap_units, self._units + (now_ns - self._last_ns) * self._rate)
        self._last_ns = now_ns

    def tokens(self, now_ns: int) -> float:
        self._refill(now_ns)
        return self._units / _UNITS_PER_TOKEN

    def wait_ns(self, amount: int, now_ns: int) -> int:
        """ns until `amount` tokens are there (0: now); takes nothing."""
        if amount > self.capacity:
            raise ValueError(f"{amount} tokens can never be taken from a bucket of {self.capacity}")
        self._refill(now_ns)
        missing = amount * _UNITS_PER_TOKEN - self._units
        if missing <= 0:
            return 0
        start = now_ns if self._last_ns is None else max(now_ns, self._last_ns)
        return start - now_ns + -(-missing // self._rate)

    def take(self, amount: int, now_ns: int) -> int:
        wait = self.wait_ns(amount, now_ns)
        if wait == 0:
            self._units -= amount * _UNITS_PER_TOKEN
        return wait

    def empty_at(self, at_ns: int) -> None:
        """No tokens at `at_ns`, refilling only from then on (after a pause ending at at_ns)."""
        self._units = min(self._units, 0)
        self._last_ns = at_ns if self._last_ns is None else max(at_ns, self._last_ns)


class _WindowLedger:
    """What the venue's rolling window holds, as far as we know: (time, amount) entries."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._entries: deque[tuple[int, int]] = deque()
        self._total = 0

    def total(self, now_ns: int) -> int:
        horizon = now_ns - self.window_ns
        while self._entries and self._entries[0][0] <= horizon:
            self._total -= self._entries.popleft()[1]
        return self._total

    def add(self, now_ns: int, amount: int) -> None:
        if amount > 0:
            self._entries.append((now_ns, amount))
            self._total += amount

    def wait_ns(self, amount: int, budget: int, now_ns: int) -> int:
        """ns until `amount` more fits under `budget` (0: now), as entries leave the window."""
        excess = self.total(now_ns) + amount - budget
        if excess <= 0:
            return 0
        freed = 0
        for ts, entry in self._entries:
            freed += entry
            if freed >= excess:
                return ts + self.window_ns - now_ns  # it has left the window at ts + W
        return self.window_ns  # unreachable: amount <= capacity < budget


@dataclass(frozen=True, slots=True)
class Permit:
    """A request may go out. Release it when its response (or failure) is back."""

    op: str
    weight: int
    order: bool
    granted_ns: int
    serial: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now: ask again in `ns` (0 with WAIT_IN_FLIGHT: when a permit is released)."""

    ns: int
    reason: str


def _header_int(headers: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return int(str(raw).split(",")[-1].strip())  # repeated headers arrive joined
        except ValueError:
            continue
    return None


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(str(raw).strip())
    except ValueError:
        return None  # an HTTP-date: Binance sends seconds; treat as absent (the default is long)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class VenueGovernor:
    """Decides when each request to one venue may go out.

    Derivation of the weight bucket. The venue counts weight over a rolling window W (60 s) with
    limit L; our budget is B = floor(max_usage * L) (4200 of 6000). A token bucket of capacity C
    refilled at r per second can grant, in ANY interval of length W, at most C + r*W: it may be
    full at the interval's start (C) and refills r*W during it (tokens(b) <= tokens(a) + r(b-a) -
    granted(a, b], with tokens >= 0 and <= C). So C + r*W <= B bounds burst AND sustained usage
    at once. We give the burst a share `burst_fraction` (beta, 0.25) of the budget:
        C = max(floor(beta * B), heaviest operation)      (every operation must fit)
        r = (B - C) / W                                   (rounded down)
    Binance: B = 4200, C = 1050, r = 52.5 weight/s (3150/min sustained, 1050 at once; any minute
    <= 4200 = 70% of 6000). Starting full is safe even when a restart finds the last minute spent
    by our previous incarnation (<= B): B + C <= L as long as beta <= (1 - max_usage) / max_usage
    (0.43 at 70%), so even that first burst stays under the limit before any header is seen.

    The order bucket is derived the same way from our order budget N = orders_per_10s over 10 s:
    C_o = max(1, floor(beta * N)), r_o = (N - C_o) / 10 s.

    Venue truth: a ledger holds what we granted (and what the venue reported beyond that) over
    the last W. When a response reports U > ledger, the excess U - ledger (weight spent by
    another client on our IP, or before a restart) is booked at the time we learn of it. A
    request is granted only if the bucket has its tokens AND ledger + weight <= B; the excess
    can only have been spent before we learnt of it, so it has left the venue's window when it
    leaves ours: we never overestimate what is free. The same holds for X-MBX-ORDER-COUNT-10S.
    """

    def __init__(
        self,
        *,
        weight_per_minute: int,
        max_usage: float = 0.7,
        orders_per_10s: int,
        max_orders_in_flight: int,
        weights: Mapping[str, int] = BINANCE_SPOT_WEIGHTS,
        order_ops: Collection[str] = BINANCE_ORDER_OPS,
        burst_fraction: float = 0.25,
        weight_window_s: float = 60.0,
        default_ban_s: float = 120.0,
    ) -> None:
        """`weight_per_minute` is the venue's weight limit per `weight_window_s` (a minute on
        Binance; the simulator can shorten the window for tests)."""
        if weight_per_minute <= 0 or not 0 < max_usage <= 1:
            raise ValueError("need weight_per_minute > 0 and 0 < max_usage <= 1")
        if not 0 < burst_fraction < 1:
            raise ValueError("burst_fraction must be in (0, 1)")
        if orders_per_10s < 2 or max_orders_in_flight < 1:
            raise ValueError("need orders_per_10s >= 2 and max_orders_in_flight >= 1")
        if weight_window_s <= 0 or default_ban_s <= 0:
            raise ValueError("need weight_window_s > 0 and default_ban_s > 0")
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights cannot be negative")
        self.weight_limit = weight_per_minute
        self.max_usage = max_usage
        self.weights = dict(weights)
        self.order_ops = frozenset(order_ops)
        self.window_ns = round(weight_window_s * NS_PER_S)
        self.weight_budget = math.floor(weight_per_minute * max_usage + 1e-9)
        heaviest = max(self.weights.values(), default=1)
        capacity = max(math.floor(burst_fraction * self.weight_budget), heaviest, 1)
        if capacity >= self.weight_budget:
            raise ValueError(
                f"a budget of {self.weight_budget} weight leaves no room to refill after a burst"
                f" of {capacity} (the heaviest operation weighs {heaviest})"
            )
        self.weight_bucket = TokenBucket(
            capacity, (self.weight_budget - capacity) / weight_window_s
        )
        self.orders_budget = orders_per_10s
        order_capacity = max(1, math.floor(burst_fraction * orders_per_10s))
        self.order_bucket = TokenBucket(order_capacity, (orders_per_10s - order_capacity) / 10.0)
        self.max_orders_in_flight = max_orders_in_flight
        self.default_retry_after_s = weight_window_s
        self.default_ban_s = default_ban_s
        self._weight_ledger = _WindowLedger(self.window_ns)
        self._order_ledger = _WindowLedger(10 * NS_PER_S)
        self._in_flight: set[int] = set()
        self._serial = 0
        self._paused_until_ns = 0
        self._pause_reason = ""
        self._probing = False
        self._outstanding: set[int] = set()
        """Serials of every permit not yet released (probing allows one)."""
        self.pauses = 0
        self.reported_weight: int | None = None
        self.reported_orders_10s: int | None = None
        self.reported_at_ns: int | None = None
        self.excess_weight = 0
        """Weight the venue reported beyond what we granted, in total (another client, a
        restart)."""
        self.granted_weight = 0
        self.last_now_ns = 0

    # --- decisions ----------------------------------------------------------------------------

    def weight_of(self, op: str) -> int:
        try:
            return self.weights[op]
        except KeyError:
            raise ValueError(
                f"no request weight known for operation {op!r}: add it to the weight table"
            ) from None

    def request(self, op: str, now_ns: int, *, weight: int | None = None) -> Permit | Wait:
        """A permit for one request of `op` (weight from the table unless given), or how long
        to wait. Nothing is charged unless a permit is returned."""
        self.last_now_ns = max(self.last_now_ns, now_ns)
        cost = self.weight_of(op) if weight is None else weight
        if cost < 0 or cost > self.weight_bucket.capacity:
            raise ValueError(
                f"weight {cost} of {op!r} does not fit a bucket of {self.weight_bucket.capacity}"
            )
        if now_ns < self._paused_until_ns:
            return Wait(self._paused_until_ns - now_ns, self._pause_reason)
        if self._probing and self._outstanding:
            return Wait(0, WAIT_PROBING)
        is_order = op in self.order_ops
        waits: list[tuple[int, str]] = []
        if is_order:
            if len(self._in_flight) >= self.max_orders_in_flight:
                return Wait(0, WAIT_IN_FLIGHT)
            waits.append((self.order_bucket.wait_ns(1, now_ns), WAIT_ORDERS))
            waits.append(
                (self._order_ledger.wait_ns(1, self.orders_budget, now_ns), WAIT_VENUE_ORDERS)
            )
        waits.append((self.weight_bucket.wait_ns(cost, now_ns), WAIT_WEIGHT))
        waits.append(
            (self._weight_ledger.wait_ns(cost, self.weight_budget, now_ns), WAIT_VENUE_USAGE)
        )
        longest = max(waits)
        if longest[0] > 0:
            return Wait(*longest)
        self.weight_bucket.take(cost, now_ns)
        self._weight_ledger.add(now_ns, cost)
        self.granted_weight += cost
        self._serial += 1
        if is_order:
            self.order_bucket.take(1, now_ns)
            self._order_ledger.add(now_ns, 1)
            self._in_flight.add(self._serial)
        self._outstanding.add(self._serial)
        return Permit(op, cost, is_order, now_ns, self._serial)

    def release(self, permit: Permit) -> None:
        """The request is over (answered, failed or abandoned). Releasing twice is harmless."""
        self._in_flight.discard(permit.serial)
        self._outstanding.discard(permit.serial)

    @property
    def probing(self) -> bool:
        """After a 429/418 pause, until a request is answered without one."""
        return self._probing

    @property
    def orders_in_flight(self) -> int:
        return len(self._in_flight)

    # --- what the venue tells us --------------------------------------------------------------

    def on_response(self, *, status: int, headers: Mapping[str, str], now_ns: int) -> None:
        """Learn from one HTTP response: usage headers, and a 429/418 pause."""
        self.last_now_ns = max(self.last_now_ns, now_ns)
        lower = {str(k).lower(): str(v) for k, v in headers.items()}
        used = _header_int(lower, "x-mbx-used-weight-1m", "x-mbx-used-weight")
        if used is not None:
            self.reported_weight = used
            self.reported_at_ns = now_ns
            excess = used - self._weight_ledger.total(now_ns)
            if excess > 0:
                self._weight_ledger.add(now_ns, excess)
                self.excess_weight += excess
        orders = _header_int(lower, "x-mbx-order-count-10s")
        if orders is not None:
            self.reported_orders_10s = orders
            excess = orders - self._order_ledger.total(now_ns)
            if excess > 0:
                self._order_ledger.add(now_ns, excess)
        if status not in (429, 418):
            self._probing = False
        if status in (429, 418):
            self._probing = True
            retry = _retry_after_s(lower)
            if retry is None:
                retry = self.default_retry_after_s if status == 429 else self.default_ban_s
            until = now_ns + max(1, math.ceil(retry * NS_PER_S))
            if status == 418 or until > self._paused_until_ns:
                self._pause_reason = WAIT_BANNED if status == 418 else WAIT_PAUSED
            if until > self._paused_until_ns:
                self._paused_until_ns = until
                self.weight_bucket.empty_at(until)
                self.order_bucket.empty_at(until)
            self.pauses += 1

    # --- reporting ----------------------------------------------------------------------------

    @property
    def paused_until_ns(self) -> int:
        return self._paused_until_ns

    def paused(self, now_ns: int) -> bool:
        return now_ns < self._paused_until_ns

    @property
    def usage_fraction(self) -> float:
        """The venue-reported weight used, as a share of the venue's limit (0 before any
        report): the metric."""
        return (self.reported_weight or 0) / self.weight_limit

    @property
    def order_usage_fraction(self) -> float:
        """Venue-reported orders in 10 s as a share of OUR order budget."""
        return (self.reported_orders_10s or 0) / self.orders_budget

    def state(self) -> dict[str, Any]:
        now = self.last_now_ns
        return {
            "weight_limit": self.weight_limit,
            "weight_budget": self.weight_budget,
            "window_s": self.window_ns / NS_PER_S,
            "bucket_capacity": self.weight_bucket.capacity,
            "bucket_refill_per_s": self.weight_bucket.refill_per_s,
            "bucket_tokens": round(self.weight_bucket.tokens(now), 3),
            "ledger_weight": self._weight_ledger.total(now),
            "reported_weight": self.reported_weight,
            "usage_fraction": round(self.usage_fraction, 4),
            "excess_weight_total": self.excess_weight,
            "granted_weight_total": self.granted_weight,
            "orders_budget_10s": self.orders_budget,
            "order_tokens": round(self.order_bucket.tokens(now), 3),
            "reported_orders_10s": self.reported_orders_10s,
            "orders_in_flight": len(self._in_flight),
            "max_orders_in_flight": self.max_orders_in_flight,
            "paused": self.paused(now),
            "probing": self._probing,
            "paused_until_ns": self._paused_until_ns,
            "pause_reason": self._pause_reason if self.paused(now) else None,
            "pauses_total": self.pauses,
        }
