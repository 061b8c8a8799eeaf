"""Looks at the running stack every `interval_ms` from a thread of its own: readiness of every
engine service, market-data age, trading state and positions as the engine reports them, the
venue's order count and balances (ground truth), and the latest tick-to-order latency. The
timeline of the report and the engine's reaction times come from it."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

from harness.client import StackClient, sample_sum
from harness.gameday.measure import Sample
from harness.truth.venue import TruthUnavailable, base_changes, venue_balances


class Sampler(threading.Thread):
    def __init__(
        self, client: StackClient, *, interval_ms: int = 200, max_samples: int = 20_000
    ) -> None:
        super().__init__(name="gameday-sampler", daemon=True)
        self.client = client
        self.interval_s = interval_ms / 1000
        self.max_samples = max_samples
        self.samples: list[Sample] = []
        self._halt = threading.Event()
        self._executions = client.executions()
        self._last_sent: int | None = None
        self._last_sum = 0.0
        self._fresh_ns: int | None = None
        self._leader = "execution"
        self._futures: bool | None = None
        """Whether the venue lists futures positions (asked once: a spot venue answers 404)."""

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            sample = self.sample()
            if len(self.samples) < self.max_samples:  # bounded: a runaway run keeps its start
                self.samples.append(sample)

    def sample(self) -> Sample:
        ts = time.time_ns()
        # first: the venue's positions belong to the moment the sample is stamped with
        distance, futures_positions = self._futures_truth()
        ready = self.client.readiness(timeout_s=1)
        feed = self._status("feed")
        age_ms = self.client.freshest_data_age_ms(feed or {}, connected_only=True)
        if age_ms is not None:
            self._fresh_ns = ts - int(age_ms * 1e6)
        age_s = (
            round(age_ms / 1000, 3)
            if age_ms is not None
            # no connected feed has data (or the feed service does not answer): the data we
            # have is as old as the last fresh data seen
            else (None if self._fresh_ns is None else round((ts - self._fresh_ns) / 1e9, 3))
        )
        risk = self._status("risk")
        roles: dict[str, str] = {}
        execution: dict[str, Any] = {}
        for service in self._executions:
            status = self._status(service)
            if status is None:
                continue
            roles[service] = str(status.get("role", ""))
            # the leader's view; a lone instance is the leader whatever it says
            if not execution or status.get("role") == "leader":
                execution = status
        code, sim = self._get("/status")
        venue: dict[str, Decimal] | None = futures_positions
        if futures_positions is None and self._futures is False:  # spot: the balances
            try:
                venue = base_changes(*venue_balances(self._get))
            except (TruthUnavailable, KeyError, ValueError, ArithmeticError):
                venue = None
        return Sample(
            ts_ns=ts,
            ready=ready,
            market_data_age_s=age_s,
            trading_state=(risk or {}).get("trading_state"),
            entries_blocked=None if risk is None else bool(risk.get("entries_blocked")),
            positions={k: float(v) for k, v in execution.get("positions", {}).items()},
            venue_orders=sim.get("orders") if code == 200 and isinstance(sim, dict) else None,
            tick_to_order_ms=self._tick_to_order(roles),
            roles=roles,
            venue_positions=venue,
            liquidation_distance_pct=distance,
        )

    def _futures_truth(self) -> tuple[float | None, dict[str, Decimal] | None]:
        """Futures ground truth from the simulator's own figures: the smallest distance, in
        percent of its mark, from the mark to the liquidation price of any of our positions,
        and each symbol's signed position (one-way and hedge legs summed). (None, None) for a
        spot venue or an answer that does not read."""
        if self._futures is False:
            return None, None
        code, body = self._get("/truth/positions")
        if self._futures is None and code in (200, 404):  # silence decides nothing
            self._futures = code == 200
        if code != 200 or not isinstance(body, dict):
            return None, None
        distances: list[float] = []
        positions: dict[str, Decimal] = {}
        try:
            for account in body.get("accounts", []):
                for p in account.get("positions", []):
                    symbol = str(p["symbol"])
                    positions[symbol] = positions.get(symbol, Decimal(0)) + Decimal(str(p["qty"]))
                    if p.get("liquidation_distance_pct") is not None:
                        distances.append(float(p["liquidation_distance_pct"]))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return None, None
        return (min(distances) if distances else None), positions

    def _get(self, path: str) -> tuple[int, Any]:
        return self.client.truth(path, timeout_s=1)

    def _status(self, service: str) -> dict[str, Any] | None:
        return self.client.status(service, timeout_s=1)

    def _tick_to_order(self, roles: dict[str, str]) -> float | None:
        """Mean tick-to-order of the orders sent since the last sample, from the leader's
        histogram (a new leader starts its own: the first sample after a switch is skipped)."""
        leader = next((s for s, r in roles.items() if r == "leader"), "execution")
        if leader != self._leader:
            self._leader, self._last_sent, self._last_sum = leader, None, 0.0
        text = self.client.metrics(leader)
        if text is None:
            return None
        total = sample_sum(text, "trading_tick_to_order_seconds_sum")
        count = sample_sum(text, "trading_tick_to_order_seconds_count")
        if total is None or count is None:
            return None
        previous, self._last_sent = self._last_sent, int(count)
        last_sum, self._last_sum = self._last_sum, total
        if previous is None or count <= previous:
            return None
        return round((total - last_sum) / (count - previous) * 1000, 3)
