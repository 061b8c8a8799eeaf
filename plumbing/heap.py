"""Garbage collection settled for latency once a process has started.

CPython's cyclic collector walks every tracked container in the generation it collects, and a
full collection walks them all. By the time a service is ready, the heap holds what its imports
(ccxt, aiohttp, redis-py, Prometheus...) and its startup built: hundreds of thousands of objects
that live as long as the process and that each full collection would walk again, on the event
loop, in the middle of handling a message. `gc.freeze()` moves them to the permanent
generation, which collections skip; what the process allocates afterwards is collected as
before. Thresholds are left at CPython's defaults: a larger young generation means fewer but
longer pauses, the wrong trade for tail latency.
"""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap() -> dict[str, int]:
    """Collect what startup left behind, then freeze the survivors; returns counts for the log."""
    collected = gc.collect()
    gc.freeze()
    return {"collected": collected, "frozen": gc.get_freeze_count()}
