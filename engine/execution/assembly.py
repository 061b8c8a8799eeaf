"""Who builds what of the execution service, from its configuration: the one place that does.

    build_execution(ctx) ─► ExecutionParts (declared by the service) ─► ExecutionService(ctx, parts)
        journal        make_journal(config.execution, secrets)
        limiter        VenueRateLimiter over the venue's governor, exported to the metrics
        push           PushHealth of the user data stream
        elect          a LeaderElector over the configured lease backend (None: single instance)
        consume        StreamConsumers of the "execution" group
        connect_venue  the venue-bound parts (engine.execution.venue_session), built by the
                       service once, at start

What needs the service's own answers (its request handlers, its leadership callbacks, its
"may send now") is built from factories the service calls with them; everything else is built
here, before the service exists. The composition root (the engine's runner) only calls
`build_execution`.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from engine.bus.consumer import StreamConsumer
from engine.core.pushhealth import PushHealth
from engine.execution.journal import make_journal
from engine.execution.lease.base import OnDeposed, OnElected
from engine.execution.lease.elector import LeaderElector
from engine.execution.lease.factory import lease_backend
from engine.execution.service import (
    ConsumerFactory,
    ElectorFactory,
    ExecutionParts,
    ExecutionService,
    VenueConnector,
)
from engine.execution.venue_pacer import VenueRateLimiter, from_config, prometheus_callback
from engine.execution.venue_session import connect_venue
from engine.runtime.service import ServiceContext


def build_execution(ctx: ServiceContext) -> ExecutionService:
    """The execution service of this process, from `ctx.settings`."""
    return ExecutionService(ctx, execution_parts(ctx))


def execution_parts(ctx: ServiceContext) -> ExecutionParts:
    settings = ctx.settings
    config = settings.config
    secrets = settings.secrets
    exec_config = config.execution
    venue = config.venue.name
    stopping = asyncio.Event()
    limiter = VenueRateLimiter(
        from_config(config.venue, exec_config),
        ctx.clock,
        metrics_callback=prometheus_callback(ctx.metrics, venue),
        stop=stopping,
    )
    journal = make_journal(exec_config, secrets)
    push = PushHealth(stale_after_ns=exec_config.user_stream_stale_ms * 1_000_000)
    identity = f"execution-{ctx.instance}"
    backend = lease_backend(
        config.lease,
        default_redis_url=config.bus.redis_url,
        username=secrets.redis_username,
        password=secrets.redis_password.reveal(),
    )
    elect: ElectorFactory | None = None
    if backend is not None:
        elect = functools.partial(
            _elector,
            backend=backend,
            holder=identity,
            ttl_ms=config.lease.ttl_ms,
            renew_interval_ms=config.lease.renew_interval_ms,
            clock=ctx.clock,
        )
    bus_cfg = config.bus
    consume: ConsumerFactory = functools.partial(
        StreamConsumer,
        ctx.bus,
        group="execution",
        consumer=identity,
        count=bus_cfg.read_count,
        block_ms=bus_cfg.read_block_ms,
        claim_min_idle_ms=bus_cfg.claim_min_idle_ms,
        # the leader is the group's only consumer: what others left pending is its own
        first_claim_min_idle_ms=0,
    )
    connect: VenueConnector = functools.partial(
        connect_venue,
        venue_config=config.venue,
        exec_config=exec_config,
        secrets=secrets,
        journal=journal,
        limiter=limiter,
        push=push,
        bus=ctx.bus,
        clock=ctx.clock,
        metrics=ctx.metrics,
    )
    return ExecutionParts(
        journal=journal,
        limiter=limiter,
        push=push,
        stopping=stopping,
        elect=elect,
        consume=consume,
        connect_venue=connect,
    )


def _elector(on_elected: OnElected, on_deposed: OnDeposed, **options: Any) -> LeaderElector:
    backend = options.pop("backend")
    return LeaderElector(backend, on_elected=on_elected, on_deposed=on_deposed, **options)
