"""The service shell every engine service runs in.

A service implements `on_start` (connect, recover; /startupz turns green when it returns),
`run` (its loops, all inside one TaskGroup so no task is ever fire-and-forget), `on_stop`, and
`readiness()`. Lifecycle transitions are driven here, not by the service, so probes always report
the truth.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.bus.base import Bus
from engine.config import Settings
from engine.core.clock import Clock
from engine.core.lifecycle import Lifecycle, LifecycleState
from engine.runtime.metrics import EngineMetrics
from plumbing.logging import get_logger
from plumbing.waits import wait_set

if TYPE_CHECKING:
    from aiohttp import web


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: tuple[str, ...] = ()

    @staticmethod
    def of(checks: dict[str, bool]) -> Readiness:
        failed = tuple(name for name, ok in checks.items() if not ok)
        return Readiness(not failed, failed)


@dataclass
class ServiceContext:
    settings: Settings
    clock: Clock
    bus: Bus
    metrics: EngineMetrics
    instance: str
    """Unique per process start: consumer names, intent id prefixes."""
    shared: dict[str, Any] = field(default_factory=dict)


class Service(ABC):
    name: str = "service"

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.config = ctx.settings.config
        self.clock = ctx.clock
        self.bus = ctx.bus
        self.metrics = ctx.metrics
        self.lifecycle = Lifecycle(ctx.clock)
        self.log = get_logger(f"engine.{self.name}")
        self.started = False
        self.stopping = asyncio.Event()
        self.stoppables: list[Any] = []
        """Loops with a stop() method (consumers, publishers) told to finish on request_stop."""

    def request_stop(self) -> None:
        """Ask every loop to finish its current unit of work and return."""
        self.stopping.set()
        for loop in self.stoppables:
            loop.stop()

    async def pause(self, seconds: float) -> bool:
        """Sleep, but wake at once when stopping; returns True when the service is stopping."""
        return await wait_set(self.stopping, seconds)

    async def start(self) -> None:
        self.lifecycle.to(LifecycleState.STARTING)
        await self.on_start()
        self.started = True
        self.lifecycle.to(LifecycleState.RUNNING)
        self.metrics.lifecycle_state.labels(service=self.name).set(1)
        self.log.info("service_started")

    async def stop(self) -> None:
        if self.lifecycle.can(LifecycleState.STOPPING):
            self.lifecycle.to(LifecycleState.STOPPING)
        try:
            await self.on_stop()
        finally:
            if self.lifecycle.can(LifecycleState.STOPPED):
                self.lifecycle.to(LifecycleState.STOPPED)
            self.log.info("service_stopped")

    def fail(self, reason: str) -> None:
        self.lifecycle.to(LifecycleState.FAILED, reason)

    def mark_degraded(self, degraded: bool, reason: str = "") -> None:
        if degraded and self.lifecycle.state is LifecycleState.RUNNING:
            self.lifecycle.to(LifecycleState.DEGRADED, reason)
            self.log.warning("service_degraded", reason=reason)
        elif not degraded and self.lifecycle.state is LifecycleState.DEGRADED:
            self.lifecycle.to(LifecycleState.RUNNING, reason)
            self.log.info("service_recovered")

    async def on_start(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    async def run(self) -> None: ...

    async def on_stop(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def readiness(self) -> Readiness: ...

    def status(self) -> dict[str, Any]:
        return {}

    def http_routes(self) -> list[web.AbstractRouteDef]:
        """Routes this service adds to its ops HTTP server (beside probes, /metrics, /status
        and /ops); each route does its own authentication."""
        return []

    def base_status(self) -> dict[str, Any]:
        ready = self.readiness() if self.lifecycle.is_up else Readiness(False, ("not running",))
        return {
            "service": self.name,
            "lifecycle": self.lifecycle.state.value,
            "started": self.started,
            "ready": ready.ready,
            "not_ready_reasons": list(ready.reasons),
            **self.status(),
        }


async def wait_first(*aws: asyncio.Future[Any] | asyncio.Task[Any]) -> set[asyncio.Future[Any]]:
    done, _ = await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)
    return done
