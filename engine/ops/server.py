"""One aiohttp server per service.

    GET  /startupz   200 once state is loaded and reconciliation is done
    GET  /livez      200 while the event loop is responsive (loop-lag watchdog)
    GET  /readyz     200 when dependencies are reachable and data is fresh
    GET  /metrics    Prometheus exposition
    GET  /status     JSON: lifecycle, trading state, positions, feed ages (never secrets)
    POST /ops/{pause,resume,flatten,halt}   bearer token required
    ...  routes a service adds (`Service.http_routes`), e.g. the strategy service's
         POST /intents (engine.strategy.intake_api); each guards itself

Ops commands are disabled (403) when no token is configured: an open kill switch is worse than
none. The server binds to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.config import Secret
from engine.core.errors import BusPermissionError, BusUnavailableError
from engine.runtime.metrics import EngineMetrics
from engine.runtime.service import Service
from engine.runtime.watchdog import LoopWatchdog
from plumbing.clock import SystemClock
from plumbing.http_limits import HttpLimits, bearer_matches, bounded_app, serve_bounded
from plumbing.logging import get_logger
from plumbing.ratelimited_log import RateLimitedLog

log = get_logger("engine.ops")

OPS_COMMANDS = ("pause", "resume", "flatten", "halt")
HTTP_LIMITS = HttpLimits()
"""Bounds of every service's ops server (and the intake on the strategy's): docs/limits.md."""
ControlSink = Callable[[str, str], Awaitable[None]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str, sort_keys=True),
        status=status,
        content_type="application/json",
    )


def build_ops_app(
    *,
    service: Service,
    watchdog: LoopWatchdog,
    metrics: EngineMetrics,
    token: Secret,
    send_control: ControlSink,
    extra_status: Callable[[], dict[str, Any]] | None = None,
    routes: Iterable[web.AbstractRouteDef] = (),
) -> web.Application:
    """The service's HTTP app; `routes` are added beside the standard ones (a route that
    clashes with one of them is a programming error and fails here, at startup)."""
    app = bounded_app(HTTP_LIMITS)
    unauthorized = RateLimitedLog(log, SystemClock(), interval_ms=10_000)

    async def startupz(_: web.Request) -> web.Response:
        ok = service.started
        return _json({"started": ok, "lifecycle": service.lifecycle.state}, 200 if ok else 503)

    async def livez(_: web.Request) -> web.Response:
        alive, detail = watchdog.alive()
        return _json({"alive": alive, "detail": detail}, 200 if alive else 503)

    async def readyz(_: web.Request) -> web.Response:
        if not service.lifecycle.is_up:
            return _json({"ready": False, "reasons": [f"lifecycle {service.lifecycle.state}"]}, 503)
        readiness = service.readiness()
        return _json(
            {"ready": readiness.ready, "reasons": list(readiness.reasons)},
            200 if readiness.ready else 503,
        )

    async def metrics_handler(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(_: web.Request) -> web.Response:
        data = service.base_status()
        if extra_status is not None:
            data.update(extra_status())
        data["loop_lag_ms"] = round(watchdog.lag_ms, 3)
        return _json(data)

    async def ops(request: web.Request) -> web.Response:
        command = request.match_info["command"]
        if command not in OPS_COMMANDS:
            return _json({"error": f"unknown command {command!r}", "commands": OPS_COMMANDS}, 404)
        if not token:
            return _json({"error": "ops commands are disabled: no ops token is configured"}, 403)
        if not bearer_matches(request.headers.get("Authorization"), token.reveal()):
            # a flood of these writes one line per interval, with the count held back
            unauthorized.warning(
                "ops_unauthorized", "ops_unauthorized", command=command, remote=request.remote
            )
            return _json({"error": "missing or invalid bearer token"}, 401)
        reason = ""
        if request.can_read_body:
            try:
                body = await request.json()
                reason = str(body.get("reason", ""))[:200] if isinstance(body, dict) else ""
            except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
                return _json({"error": 'body must be JSON like {"reason": "..."}'}, 400)
        try:
            await send_control(command, reason)
        except BusPermissionError:
            # the bus's ACL lets only risk and execution write the control stream
            return _json(
                {"error": f"{service.name} may not issue ops commands: send them to risk"},
                403,
            )
        except BusUnavailableError:
            return web.json_response(
                {"error": "the bus is unavailable: the command was not issued, retry"},
                status=503,
                headers={"Retry-After": "1"},
            )
        log.info("ops_command_accepted", command=command, reason=reason)
        return _json({"accepted": command, "reason": reason}, 202)

    app.router.add_get("/startupz", startupz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/status", status)
    app.router.add_post("/ops/{command}", ops)
    app.router.add_routes(list(routes))
    return app


async def start_ops_server(app: web.Application, *, host: str, port: int) -> web.AppRunner:
    # a request still open at shutdown gets a second, not aiohttp's default minute: a stopping
    # service must exit within its supervisor's stop timeout
    runner, _ = await serve_bounded(
        app, host=host, port=port, limits=HTTP_LIMITS, shutdown_timeout=1.0
    )
    return runner
