"""Consumer lag per group, for `trading_bus_consumer_lag{stream,group}`: entries added to a stream
that the group has not been delivered yet (Redis 7's XINFO GROUPS `lag`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import Gauge

from engine.bus.base import Bus
from engine.bus.consumer import StreamConsumer
from engine.core.errors import BusUnavailableError


async def report_lag(
    bus: Bus, consumers: Sequence[StreamConsumer], gauge: Gauge, *, interval_s: float = 1.0
) -> None:
    while True:
        for consumer in consumers:
            for stream in consumer.streams:
                try:
                    lag = await bus.group_lag(stream, consumer.group)
                except BusUnavailableError:
                    continue  # the outage is reported by the consumers themselves
                if lag is not None:
                    gauge.labels(stream=stream, group=consumer.group).set(lag)
        await asyncio.sleep(interval_s)
