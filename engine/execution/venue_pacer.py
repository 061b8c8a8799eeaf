"""The asyncio shell around `engine.core.ratelimit.VenueGovernor`: every venue request waits for
its permit here, and every HTTP response the ccxt client receives is fed back (`observe`).

    governor = from_config(config.venue, config.execution)
    limiter = VenueRateLimiter(governor, clock, metrics_callback=prometheus_callback(m, "binance"))
    exchange = make_binance(config.venue, secrets, on_response=limiter.observe)
    async with limiter.slot("fetch_order"):
        order = await exchange.fetch_order(...)

ccxt's own limiter is off for such a client: the governor is the only one, so its accounting is
the truth. Waiting is cooperative: a waiter sleeps for what the governor says (or until a permit
is released, for the in-flight cap) and asks again; there is no queue, so no fairness guarantee
between waiters of different weights (at our budgets the bucket is rarely empty).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from engine.config import ExecutionConfig, VenueConfig
from engine.core.clock import Clock
from engine.core.ratelimit import (
    BINANCE_FUTURES_WEIGHTS,
    BINANCE_ORDER_OPS,
    BINANCE_SPOT_WEIGHTS,
    WAIT_BANNED,
    WAIT_PAUSED,
    Permit,
    VenueGovernor,
    Wait,
)

if TYPE_CHECKING:
    from engine.runtime.metrics import EngineMetrics

MetricsCallback = Callable[[VenueGovernor, str | None], None]
"""Called with (governor, None) after every observed response, and (governor, reason) every
time a request has to wait."""


class LimiterStopped(Exception):
    """The stop event was set while a request waited for its permit: it was not sent."""


class LimiterDeadline(Exception):
    """The permit would come later than the caller's `max_wait_s`: the request was not sent
    (a new order should not go out minutes late, after a ban)."""


class VenueRateLimiter:
    def __init__(
        self,
        governor: VenueGovernor,
        clock: Clock,
        *,
        metrics_callback: MetricsCallback | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.governor = governor
        self.clock = clock
        self.metrics_callback = metrics_callback
        self.stop = stop
        self.waits: Counter[str] = Counter()
        self._released = asyncio.Event()

    async def acquire(
        self, op: str, *, weight: int | None = None, max_wait_s: float | None = None
    ) -> Permit:
        """Wait until the governor grants a request of `op`. Raises LimiterStopped when the stop
        event is set first, LimiterDeadline (at once, without waiting in vain) when the permit
        cannot come within `max_wait_s`."""
        deadline = None if max_wait_s is None else self.clock.monotonic_ns() + max_wait_s * 1e9
        while True:
            if self.stop is not None and self.stop.is_set():
                raise LimiterStopped(f"stopping: {op} not sent")
            now = self.clock.monotonic_ns()
            decision = self.governor.request(op, now, weight=weight)
            if isinstance(decision, Permit):
                return decision
            self.waits[decision.reason] += 1
            if self.metrics_callback is not None:
                self.metrics_callback(self.governor, decision.reason)
            if deadline is not None:
                left_ns = deadline - now
                if left_ns <= 0 or decision.ns > left_ns:
                    raise LimiterDeadline(
                        f"{op}: no permit within {max_wait_s}s ({decision.reason},"
                        f" {decision.ns / 1e9:.3f}s to wait)"
                    )
                if decision.ns <= 0:  # the in-flight cap: wait for a release, not forever
                    decision = Wait(int(left_ns), decision.reason)
            await self._wait(decision)

    def release(self, permit: Permit) -> None:
        self.governor.release(permit)
        # Wake every waiter for a release (the in-flight cap, the probe after a pause): the probe's
        # answer may just have ended probing, so "was it probing" cannot be asked after the fact.
        released, self._released = self._released, asyncio.Event()
        released.set()

    @asynccontextmanager
    async def slot(
        self, op: str, *, weight: int | None = None, max_wait_s: float | None = None
    ) -> AsyncIterator[Permit]:
        """`async with limiter.slot("create_order"): ...` sends one request under a permit."""
        permit = await self.acquire(op, weight=weight, max_wait_s=max_wait_s)
        try:
            yield permit
        finally:
            self.release(permit)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Feed one HTTP response to the governor (make_binance's `on_response`)."""
        self.governor.on_response(status=status, headers=headers, now_ns=self.clock.monotonic_ns())
        if self.metrics_callback is not None:
            self.metrics_callback(self.governor, None)

    async def _wait(self, wait: Wait) -> None:
        timeout = None if wait.ns <= 0 else wait.ns / 1e9  # 0: until a release (in-flight cap)
        waiters = [asyncio.ensure_future(self._released.wait())]
        if self.stop is not None:
            waiters.append(asyncio.ensure_future(self.stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()  # not awaited: a cancellation of our caller must stay its own


def from_config(venue: VenueConfig, execution: ExecutionConfig) -> VenueGovernor:
    """The governor for a venue as configured. Both configs carry a max_weight_usage: the
    stricter one applies."""
    return VenueGovernor(
        weight_per_minute=venue.request_weight_per_minute,
        max_usage=min(venue.max_weight_usage, execution.max_weight_usage),
        orders_per_10s=execution.max_orders_per_10s,
        max_orders_in_flight=execution.max_orders_in_flight,
        weights=BINANCE_SPOT_WEIGHTS if venue.market == "spot" else BINANCE_FUTURES_WEIGHTS,
        order_ops=BINANCE_ORDER_OPS,
    )


def prometheus_callback(metrics: EngineMetrics, venue: str) -> MetricsCallback:
    """Exports the governor to the engine's metrics: trading_rate_limit_usage_ratio{limit=
    "weight"|"orders_10s"}, trading_venue_paused and trading_rate_limit_waits_total{reason}."""

    def export(governor: VenueGovernor, wait_reason: str | None) -> None:
        if wait_reason is not None:
            metrics.rate_limit_waits.labels(venue=venue, reason=wait_reason).inc()
        else:
            metrics.rate_limit_usage.labels(venue=venue, limit="weight").set(
                governor.usage_fraction
            )
            metrics.rate_limit_usage.labels(venue=venue, limit="orders_10s").set(
                governor.order_usage_fraction
            )
        paused = wait_reason in (WAIT_PAUSED, WAIT_BANNED) or governor.paused(governor.last_now_ns)
        metrics.venue_paused.labels(venue=venue).set(1 if paused else 0)

    return export


__all__ = [
    "LimiterDeadline",
    "LimiterStopped",
    "MetricsCallback",
    "VenueRateLimiter",
    "from_config",
    "prometheus_callback",
]
