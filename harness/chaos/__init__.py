"""Chaos Toolkit extension for the stormproof local stack.

Actions and probes are plain functions with keyword arguments and JSON-able results, usable from
a plain `chaos run` (provider `type: python`, `module: harness.chaos.network`, ...). Each finds
the stack through the experiment's configuration key `stormproof_run_dir` (or the environment
variable STORMPROOF_RUN_DIR), the directory `stormproof stack up` or a game day wrote.

    harness.chaos.network    Toxiproxy toxics on any link, link down/up, reset
    harness.chaos.processes  kill (also the moment an order is in flight), freeze, thaw,
                             restart, stop and start a service or Redis
    harness.chaos.venue      venue faults (simulator) and feed faults (replay), clear them
    harness.chaos.exchange   what a human does at the exchange with the engine's key: close
                             part of a futures position by hand
    harness.chaos.ops        ops commands: pause, resume, flatten, halt
    harness.chaos.intents    intents submitted through the engine's intake, recorded as truth
    harness.chaos.probes     readiness, market-data age (the feed's own, and as the bus shows
                             it), trading state, positions vs venue, venue orders no intent
                             accounts for, a metric's value
    harness.chaos.restore    undo every fault at once (also run by the control at the end)
    harness.chaos.kubernetes the Kubernetes deployment: the execution leader's pod, terminating
                             it, ready pods, whether the simulator sees orders (beside chaosk8s)
    harness.chaos.control    a control that timestamps every activity (activities.jsonl) and
                             restores the stack when the experiment ends
"""

from __future__ import annotations

from typing import Any

__all__ = ["discover"]
__version__ = "0.1.0"

MODULES = (
    "harness.chaos.network",
    "harness.chaos.processes",
    "harness.chaos.venue",
    "harness.chaos.exchange",
    "harness.chaos.ops",
    "harness.chaos.intents",
    "harness.chaos.probes",
    "harness.chaos.restore",
    "harness.chaos.kubernetes",
)


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Every action and probe of this extension (`stormproof chaos discover`; Chaos Toolkit's
    own `chaos discover stormproof` looks for it in the distribution's first top-level package,
    engine, and cannot find it)."""
    from chaoslib.discovery.discover import (
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    discovery: dict[str, Any] = initialize_discovery_result("stormproof", __version__, "stack")
    for module in MODULES:
        if module.endswith(".probes"):
            discovery["activities"].extend(discover_probes(module))
        else:
            discovery["activities"].extend(discover_actions(module))
    return discovery
