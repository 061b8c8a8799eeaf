"""Undo everything an experiment can leave behind, whatever happened to its rollbacks.

Chaos Toolkit's default rollback strategy skips rollbacks when the run deviated or failed, so a
plain `chaos run` of one of our experiments could leave a link down, Redis held, a process
frozen or a venue fault active. The stormproof control calls `restore_everything` when every
experiment ends (the `finally` of an experiment), and the game-day runner calls it again after
each scenario; experiments may also name it as a rollback. Each step is attempted even when an
earlier one fails, and the result says which did what.
"""

from __future__ import annotations

from typing import Any

from harness.chaos import network, processes, venue
from harness.chaos.configuration import stack_of

__all__ = ["restore_everything"]


def restore_everything(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Release every held service, reset every link, clear venue and feed faults, thaw every
    frozen process. Returns {step: result or error text}."""
    stack = stack_of(configuration)
    done: dict[str, Any] = {}
    holds = stack.run_dir / "holds"
    for hold in sorted(holds.glob("*")) if holds.exists() else []:
        done[f"start {hold.name}"] = _attempt(
            processes.start_service, hold.name, configuration=configuration
        )
    done["reset links"] = _attempt(network.reset_links, configuration=configuration)
    done["clear faults"] = _attempt(venue.clear_faults, configuration=configuration)
    done["thaw all"] = _attempt(processes.thaw_all, configuration=configuration)
    return done


def _attempt(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except Exception as exc:  # the other steps must still run
        return {"error": f"{type(exc).__name__}: {exc}"}
