"""The engine's composition root: the only module that names every service and wires them up.

`main_run` runs one service or all of them in this process (`python -m engine run
<service>|all`), until SIGTERM/SIGINT: it builds the bus, the clock, the metrics and the loop
watchdog once, builds each service from them (`build_service`), serves each service's ops HTTP
(engine.ops), starts the services once the bus answers, and stops them all, each step of the way
out bounded.

Layers (import-linter contract in pyproject.toml): this module sits on top and nothing in the
engine imports it; below it the services (engine.marketdata, engine.strategy, engine.risk,
engine.execution) and engine.ops are siblings that never import each other; they stand on
engine.runtime (the service shell), which stands on engine.bus, engine.config and engine.core,
with plumbing the shared base under all.

Exit codes: 0 clean stop, 1 a service failed, 2 bad configuration or a dependency that never
became reachable (with a one-line message on stderr, never a traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable
from typing import Any, cast

from aiohttp import web

from engine.bus.base import CONTROL, Bus
from engine.bus.consumer import StreamConsumer
from engine.bus.lag import report_lag
from engine.bus.redis_streams import RedisStreamsBus
from engine.config import SERVICES, Settings
from engine.core.clock import LiveClock
from engine.core.errors import (
    BusPermissionError,
    BusUnavailableError,
    ConfigError,
    StormproofError,
)
from engine.core.messages import Control
from engine.ops.server import build_ops_app, start_ops_server
from engine.runtime.metrics import EngineMetrics
from engine.runtime.service import Service, ServiceContext
from engine.runtime.watchdog import LoopWatchdog
from plumbing.backoff import Backoff
from plumbing.event_loop import run as run_loop
from plumbing.heap import settle_heap
from plumbing.logging import configure_logging, get_logger, register_secrets
from plumbing.waits import within

log = get_logger("engine.app")


def build_service(name: str, ctx: ServiceContext) -> Service:
    # imported here so that `run feed` does not import ccxt, and the reverse
    if name == "feed":
        from engine.marketdata.service import FeedService

        return FeedService(ctx)
    if name == "strategy":
        from engine.strategy.service import StrategyService

        return StrategyService(ctx)
    if name == "risk":
        from engine.risk.service import RiskService

        return RiskService(ctx)
    if name == "execution":
        from engine.execution.assembly import build_execution

        return build_execution(ctx)
    raise ConfigError(f"unknown service {name!r}; choose one of {', '.join(SERVICES)} or all")


async def wait_for_bus(bus: Bus, *, deadline_ms: int, url: str) -> None:
    backoff = Backoff(base_ms=100, cap_ms=1_000)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_ms / 1000
    while True:
        try:
            await bus.ping()
            return
        except BusPermissionError as exc:
            raise ConfigError(
                f"Redis at {url} refused this process's user (check its ACL user and password,"
                f" bus.username_env / bus.password_env): {exc.__cause__ or exc}"
            ) from None
        except BusUnavailableError as exc:
            if loop.time() >= end:
                cause = exc.__cause__ or exc
                raise ConfigError(f"cannot reach Redis at {url}: {cause}") from None
            await asyncio.sleep(backoff.next_delay_ms() / 1000)


async def run_services(settings: Settings, names: list[str]) -> int:
    config = settings.config
    clock = LiveClock()
    metrics = EngineMetrics()
    grace_s = config.ops.stop_grace_ms / 1000
    bus = RedisStreamsBus(
        config.bus.redis_url,
        maxlen=config.bus.stream_maxlen,
        socket_timeout_ms=config.bus.socket_timeout_ms,
        username=settings.secrets.redis_username,
        password=settings.secrets.redis_password.reveal(),
    )
    # unique per process; on Kubernetes it names the pod (the Lease holder is then traceable)
    where = os.environ.get("STORMPROOF_POD_NAME") or str(os.getpid())
    instance = f"{where}-{clock.time_ns() // 1_000_000 % 100_000_000}"
    ctx = ServiceContext(
        settings=settings, clock=clock, bus=bus, metrics=metrics, instance=instance
    )
    services = [build_service(name, ctx) for name in names]
    watchdog = LoopWatchdog(clock, fail_after_ms=config.ops.loop_lag_fail_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("event_loop", configured=config.ops.event_loop, loop_class=type(loop).__qualname__)

    async def send_control(command: str, reason: str) -> None:
        await bus.publish(
            CONTROL,
            Control(
                command=cast(Any, command),
                reason=reason,
                issued_ts_ns=clock.time_ns(),
            ),
        )

    runners: list[web.AppRunner] = []
    exit_code = 0
    try:
        for service in services:
            app = build_ops_app(
                service=service,
                watchdog=watchdog,
                metrics=metrics,
                token=settings.secrets.ops_token,
                send_control=send_control,
                routes=service.http_routes(),
            )
            port = config.ops.ports[service.name]
            try:
                runners.append(await start_ops_server(app, host=config.ops.host, port=port))
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve {service.name} ops HTTP on {config.ops.host}:{port}: "
                    f"{exc.strerror}"
                ) from None
        # Owned tasks: each is awaited below. The watchdog runs from the start so that /livez
        # tells the truth during startup too; the stop signal can interrupt startup.
        watch = asyncio.create_task(watchdog.run(metrics.loop_lag.set), name="watchdog")
        stopper = asyncio.create_task(stop.wait(), name="stop-signal")

        async def start_all() -> None:
            await wait_for_bus(
                bus, deadline_ms=config.bus.startup_timeout_ms, url=config.bus.redis_url
            )
            for service in services:
                await service.start()

        starting = asyncio.create_task(start_all(), name="startup")
        owned: list[asyncio.Task[Any]] = [watch, stopper, starting]
        try:
            await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and not starting.cancelled() and starting.exception() is None:
                log.info("heap_settled", **settle_heap())
                runs = [asyncio.create_task(s.run(), name=f"{s.name}-run") for s in services]
                consumers = [
                    c for s in services for c in s.stoppables if isinstance(c, StreamConsumer)
                ]
                owned.extend(runs)
                owned.append(
                    asyncio.create_task(
                        report_lag(bus, consumers, metrics.consumer_lag), name="consumer-lag"
                    )
                )
                done, _ = await asyncio.wait([stopper, *runs], return_when=asyncio.FIRST_COMPLETED)
                for task in runs:
                    if task in done:
                        exit_code = 1
                        service = services[runs.index(task)]
                        error = None if task.cancelled() else task.exception()
                        service.fail(f"run ended: {error!r}")
                        log.error(
                            "service_failed",
                            failed_service=service.name,
                            error=repr(error),
                            exc_info=error,
                        )
                log.info("stopping", reason="signal" if stopper in done else "service failure")
                for service in services:
                    service.request_stop()
                pending = [t for t in runs if not t.done()]
                if pending:
                    _, late = await asyncio.wait(pending, timeout=config.ops.stop_grace_ms / 1000)
                    if late:
                        log.warning("stop_grace_expired", tasks=[t.get_name() for t in late])
            elif starting.done() and not starting.cancelled():
                raise starting.exception()  # type: ignore[misc]
            else:
                log.info("stopping", reason="signal during startup")
        finally:
            for task in owned:
                task.cancel()
            await _bounded(asyncio.gather(*owned, return_exceptions=True), grace_s, "tasks")
    except ConfigError:
        raise
    except StormproofError as exc:
        log.error("startup_failed", error=str(exc))
        exit_code = 1
    finally:
        # every step of the way out is bounded: a stuck step is logged and skipped, never a
        # process that outlives its supervisor's stop timeout and gets SIGKILLed
        for service in reversed(services):
            with contextlib.suppress(Exception):
                await _bounded(service.stop(), grace_s, f"{service.name} stop")
        for runner in runners:
            await _bounded(runner.cleanup(), grace_s, "ops server cleanup")
        await _bounded(bus.close(), grace_s, "bus close")
    return exit_code


async def _bounded(work: Awaitable[Any], timeout_s: float, what: str) -> None:
    finished, _ = await within(work, timeout_s)
    if not finished:
        log.warning("shutdown_step_timed_out", step=what, timeout_s=timeout_s)


def main_run(settings: Settings, service: str) -> int:
    config = settings.config
    names: list[str] = list(SERVICES) if service == "all" else [service]
    if service != "all" and service not in SERVICES:
        raise ConfigError(
            f"unknown service {service!r}; choose one of {', '.join(SERVICES)} or all"
        )
    configure_logging(service=service, level=config.logging.level)
    register_secrets(*settings.secrets.values())
    try:
        return run_loop(run_services(settings, names), loop=config.ops.event_loop)
    except ConfigError as exc:
        print(f"stormproof engine: {exc}", file=sys.stderr)
        return 2
