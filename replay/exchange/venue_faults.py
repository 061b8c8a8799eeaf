"""Venue faults: what Toxiproxy cannot do. Pure: times and the random source are passed in.

Kinds (each for a target endpoint, e.g. "POST /api/v3/order", "/api/v3/order" or "*"):
    latency        every request waits latency_ms plus uniform jitter_ms before it is served
    error_5xx      a share (`rate`) of requests fail with a 5xx: before processing (a gateway's
                   plain-text 503, no effect), or with applied=true after processing (500 with
                   -1006 "Execution status unknown": the order exists)
    timeout        requests are not processed; the connection is held `hold_ms`, then cut
    no_answer      requests ARE processed (an order is placed and will fill); the connection
                   is held `hold_ms`, then cut: the ambiguous case
    slow_answer    requests ARE processed at once, and their answer waits `delay_ms`: an order
                   that exists at the venue while its sender has not heard back (in flight)
    reject         new orders are refused with -2010 (or `code`/`msg`)
    maintenance    every request gets 503 "System is under maintenance."
    ban            every request gets 418 with Retry-After until the fault ends
    rate_limit     a 429 storm: a share (`rate`, default 1) of requests is answered 429 with
                   `Retry-After: retry_after_s` (default 2) as if the IP's weight were spent;
                   the venue's own rule then applies: a client that keeps sending inside the
                   Retry-After window is banned (418), with the escalating duration
    partial_fills  no order fills beyond `fraction` of its quantity
    reject_reduce_only  futures: every new reduce-only order is refused with -2022 "ReduceOnly
                   Order is rejected." (the venue's own answer when it judges the order would
                   not reduce: a flatten must not resend it without the flag)
    user_stream_drop   user data stream subscribers are dropped and events are not delivered
    user_stream_delay  user data stream events arrive `delay_ms` late
Every fault is logged with its start and end time (ns).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "latency",
    "error_5xx",
    "timeout",
    "no_answer",
    "slow_answer",
    "reject",
    "maintenance",
    "ban",
    "rate_limit",
    "partial_fills",
    "user_stream_drop",
    "user_stream_delay",
    "reject_reduce_only",
)
GLOBAL_KINDS = ("partial_fills", "user_stream_drop", "user_stream_delay", "reject_reduce_only")


class VenueFaultError(ValueError):
    """A venue fault request that cannot be honoured."""


@dataclass
class VenueFault:
    fault_id: int
    kind: str
    endpoint: str
    start_ns: int
    end_ns: int | None
    params: dict[str, Any] = field(default_factory=dict)
    ended_ns: int | None = None
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.endpoint in ("*", ""):
            return True
        want_method, _, want_path = self.endpoint.rpartition(" ")
        return path == want_path and (not want_method or want_method == method)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.fault_id,
            "scope": "venue",
            "kind": self.kind,
            "endpoint": self.endpoint,
            "params": self.params,
            "start_ns": self.start_ns,
            "end_ns": self.ended_ns,
            "planned_end_ns": self.end_ns,
            "applied": self.applied,
            "active": self.ended_ns is None,
        }


@dataclass(frozen=True)
class Plan:
    """What to do with one request."""

    delay_s: float = 0.0
    status: int = 0
    """An HTTP status to answer instead of serving (0: serve)."""
    code: int = 0
    msg: str = ""
    retry_after_s: int = 0
    process_first: bool = False
    """Serve the request, then answer `status` (an error after the effect took place)."""
    hold_s: float = 0.0
    """Hold the connection this long, then cut it without an answer."""
    answer_delay_s: float = 0.0
    """Serve the request at once, then wait this long before answering."""


NO_FAULT = Plan()
"""The plan of a request no fault touches: shared, since a Plan is immutable."""


class VenueFaultBook:
    """Every fault ever added (`faults`, the log the harness reads back) and the ones not yet
    ended (`_live`, the only ones a request is checked against)."""

    def __init__(self, *, seed: int = 0, id_offset: int = 10_000) -> None:
        self.faults: list[VenueFault] = []
        self._live: list[VenueFault] = []
        self._next_id = id_offset
        self._random = random.Random(seed)

    def add(
        self,
        *,
        kind: str,
        now_ns: int,
        endpoint: str = "*",
        duration_ms: float | None = None,
        **params: Any,
    ) -> VenueFault:
        if kind not in KINDS:
            raise VenueFaultError(f"unknown venue fault kind {kind!r}; one of {', '.join(KINDS)}")
        if duration_ms is not None and duration_ms <= 0:
            raise VenueFaultError("duration_ms must be positive")
        required = {
            "latency": ("latency_ms",),
            "error_5xx": ("rate",),
            "partial_fills": ("fraction",),
            "user_stream_delay": ("delay_ms",),
            "slow_answer": ("delay_ms",),
        }
        for name in required.get(kind, ()):
            if name not in params:
                raise VenueFaultError(f"a {kind} fault needs {name}")
        if kind == "rate_limit" and not 0 < float(params.get("rate", 1.0)) <= 1:
            raise VenueFaultError("rate must be in (0, 1]")
        if kind == "rate_limit" and float(params.get("retry_after_s", 2)) < 1:
            raise VenueFaultError("retry_after_s must be at least 1")
        if kind == "error_5xx" and not 0 < float(params["rate"]) <= 1:
            raise VenueFaultError("rate must be in (0, 1]")
        if kind == "slow_answer" and not 0 < float(params["delay_ms"]) <= 600_000:
            raise VenueFaultError("delay_ms must be in (0, 600000]")
        if kind == "partial_fills" and not 0 <= float(params["fraction"]) < 1:
            raise VenueFaultError("fraction must be in [0, 1)")
        end = now_ns + int(duration_ms * 1e6) if duration_ms else None
        fault = VenueFault(self._next_id, kind, endpoint or "*", now_ns, end, dict(params))
        self._next_id += 1
        self.faults.append(fault)
        self._live.append(fault)
        return fault

    def end(self, fault_id: int, now_ns: int) -> VenueFault:
        for fault in self.faults:
            if fault.fault_id == fault_id:
                if fault.ended_ns is None:
                    fault.ended_ns = now_ns
                return fault
        raise VenueFaultError(f"no fault with id {fault_id}")

    def end_all(self, now_ns: int) -> None:
        for fault in self.active(now_ns):
            fault.ended_ns = now_ns

    def active(self, now_ns: int) -> list[VenueFault]:
        live = self._live
        if not live:
            return []
        for fault in live:
            if fault.ended_ns is None and fault.end_ns is not None and now_ns >= fault.end_ns:
                fault.ended_ns = fault.end_ns
        self._live = [f for f in live if f.ended_ns is None]
        return list(self._live)

    def active_of(self, kind: str, now_ns: int) -> VenueFault | None:
        return next((f for f in self.active(now_ns) if f.kind == kind), None)

    def plan(self, method: str, path: str, now_ns: int, *, is_new_order: bool) -> Plan:
        """The effect of the active faults on one request (the first that applies wins, after
        latency, which adds up)."""
        if not self._live:
            return NO_FAULT
        delay = 0.0
        for fault in self.active(now_ns):
            if fault.kind in GLOBAL_KINDS or not fault.matches(method, path):
                continue
            params = fault.params
            if fault.kind == "latency":
                fault.applied += 1
                jitter = float(params.get("jitter_ms", 0))
                delay += (float(params["latency_ms"]) + self._random.uniform(0, jitter)) / 1000
                continue
            if fault.kind == "maintenance":
                fault.applied += 1
                return Plan(delay, 503, 1, "System is under maintenance.")
            if fault.kind == "ban":
                fault.applied += 1
                left = (fault.end_ns - now_ns) / 1e9 if fault.end_ns else 120.0
                until = (fault.end_ns or now_ns + int(120e9)) // 1_000_000
                return Plan(
                    delay,
                    418,
                    -1003,
                    f"Way too much request weight used; IP banned until {until}."
                    " Please use WebSocket Streams for live updates to avoid bans.",
                    retry_after_s=max(1, int(left + 0.999)),
                )
            if fault.kind == "rate_limit" and self._random.random() < float(
                params.get("rate", 1.0)
            ):
                fault.applied += 1
                return Plan(
                    delay, 429, -1003, "", retry_after_s=int(params.get("retry_after_s", 2))
                )
            if fault.kind == "error_5xx" and self._random.random() < float(params["rate"]):
                fault.applied += 1
                if params.get("applied"):
                    return Plan(
                        delay,
                        500,
                        -1006,
                        "An unexpected response was received from"
                        " the message bus. Execution status unknown.",
                        process_first=True,
                    )
                # in front of the venue: the gateway's plain-text 503, no Binance body
                return Plan(delay, 503, 0, "Service Unavailable")
            if fault.kind in ("timeout", "no_answer"):
                fault.applied += 1
                hold = float(params.get("hold_ms", 30_000)) / 1000
                return Plan(delay, process_first=fault.kind == "no_answer", hold_s=hold)
            if fault.kind == "slow_answer":
                fault.applied += 1
                wait = float(params["delay_ms"]) / 1000
                return Plan(delay, process_first=True, answer_delay_s=wait)
            if fault.kind == "reject" and is_new_order:
                fault.applied += 1
                return Plan(
                    delay,
                    400,
                    int(params.get("code", -2010)),
                    str(params.get("msg", "New order rejected.")),
                )
        return Plan(delay) if delay else NO_FAULT
