"""Every REST call to the venue goes through here: rate-limit slot, classification, retries.

    call(op, *args, side_effect=...)
      ├─ wait for a slot from the venue rate limiter (weights, order count, in-flight cap,
      │  a 429/418 pause of the whole venue)
      ├─ the ccxt call
      └─ on error: classify (engine.execution.errors) ─► RETRYABLE: back off with full jitter
                                                        and retry (bounded)
                                                      ─► FATAL / AMBIGUOUS: raise the matching
                                                        engine.core.errors VenueError

Only retryable errors are retried: those certainly had no effect at the venue. An ambiguous
outcome of a side effect is never retried here; the caller reconciles by clientOrderId.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.async_support as ccxt

from engine.config import ExecutionConfig
from engine.core.errors import (
    AmbiguousVenueError,
    FatalVenueError,
    RetryableVenueError,
    VenueOrderNotFound,
)
from engine.execution.errors import ErrorClass, classify
from engine.execution.venue_pacer import LimiterDeadline, LimiterStopped, VenueRateLimiter
from engine.runtime.metrics import EngineMetrics
from plumbing.backoff import Backoff
from plumbing.logging import get_logger

log = get_logger("engine.execution.gateway")


class VenueGateway:
    def __init__(
        self,
        *,
        exchange: Any,
        limiter: VenueRateLimiter,
        config: ExecutionConfig,
        metrics: EngineMetrics,
        venue: str,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.exchange = exchange
        self.limiter = limiter
        self.config = config
        self.metrics = metrics
        self.venue = venue
        self.stopping = stopping or asyncio.Event()
        self.ok = False
        """The last call reached the venue and got an answer it meant."""

    async def call(self, op: str, *args: Any, side_effect: bool) -> Any:
        """Call the ccxt method named `op` with args."""
        method = getattr(self.exchange, op)
        max_wait_s = self.config.max_order_wait_ms / 1000 if op == "create_order" else None
        backoff = Backoff(base_ms=self.config.retry_base_ms, cap_ms=self.config.retry_cap_ms)
        attempt = 0
        while True:
            try:
                async with self.limiter.slot(op, max_wait_s=max_wait_s):
                    result = await method(*args)
                self.ok = True
                return result
            except (LimiterStopped, LimiterDeadline) as exc:
                # never sent: certainly no effect at the venue
                self.metrics.venue_errors.labels(venue=self.venue, error_class="not_sent").inc()
                raise RetryableVenueError(f"not sent: {exc}") from exc
            except Exception as exc:
                verdict = classify(exc, side_effect=side_effect)
                self.metrics.venue_errors.labels(venue=self.venue, error_class=verdict.value).inc()
                text = f"{type(exc).__name__}: {exc}"[:500]
                if verdict is ErrorClass.FATAL:
                    self.ok = True  # the venue answered
                    if isinstance(exc, ccxt.OrderNotFound):
                        raise VenueOrderNotFound(text) from exc
                    raise FatalVenueError(text) from exc
                if verdict is ErrorClass.AMBIGUOUS:
                    raise AmbiguousVenueError(text) from exc
                self.ok = False
                attempt += 1
                if attempt > self.config.max_retries or self.stopping.is_set():
                    raise RetryableVenueError(text) from exc
                delay = backoff.next_delay_ms()
                log.warning(
                    "venue_call_retry", call=op, attempt=attempt, delay_ms=round(delay), error=text
                )
                await asyncio.sleep(delay / 1000)
