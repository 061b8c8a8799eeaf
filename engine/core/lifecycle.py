"""Service lifecycle state machine; probes report it.

INITIALIZED ─► STARTING ─► RUNNING ◄─► DEGRADED
                  │           │            │
                  └───────────┴─► STOPPING ─► STOPPED
any state except STOPPED ─► FAILED
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from engine.core.clock import Clock
from engine.core.errors import StormproofError


class LifecycleState(StrEnum):
    INITIALIZED = "INITIALIZED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    DEGRADED = "DEGRADED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


_TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    LifecycleState.INITIALIZED: frozenset({LifecycleState.STARTING, LifecycleState.STOPPING}),
    LifecycleState.STARTING: frozenset({LifecycleState.RUNNING, LifecycleState.STOPPING}),
    LifecycleState.RUNNING: frozenset({LifecycleState.DEGRADED, LifecycleState.STOPPING}),
    LifecycleState.DEGRADED: frozenset({LifecycleState.RUNNING, LifecycleState.STOPPING}),
    LifecycleState.STOPPING: frozenset({LifecycleState.STOPPED}),
    LifecycleState.STOPPED: frozenset(),
    LifecycleState.FAILED: frozenset(),
}


class LifecycleError(StormproofError):
    pass


class Transition(msgspec.Struct, frozen=True):
    ts_ns: int
    source: LifecycleState
    target: LifecycleState
    reason: str


class Lifecycle:
    def __init__(self, clock: Clock, *, history_limit: int = 64) -> None:
        self._clock = clock
        self.state = LifecycleState.INITIALIZED
        self.history: list[Transition] = []
        self._history_limit = history_limit

    def can(self, target: LifecycleState) -> bool:
        if target is LifecycleState.FAILED:
            return self.state is not LifecycleState.STOPPED
        return target in _TRANSITIONS[self.state]

    def to(self, target: LifecycleState, reason: str = "") -> None:
        if target == self.state:
            return
        if not self.can(target):
            raise LifecycleError(f"illegal lifecycle transition {self.state} -> {target}")
        self.history.append(Transition(self._clock.time_ns(), self.state, target, reason))
        del self.history[: -self._history_limit]
        self.state = target

    @property
    def is_up(self) -> bool:
        return self.state in (LifecycleState.RUNNING, LifecycleState.DEGRADED)
