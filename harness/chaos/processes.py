"""Process faults on the local stack: SIGKILL, freeze (SIGSTOP), thaw, restart, stop and start.

Processes are the supervisor's: a killed one is restarted by it with backoff, like a pod. To
keep one down (Redis down for 10 s), `stop_service` leaves a hold file the supervisor honours,
and `start_service` removes it. Names are the supervisor's: redis, toxiproxy, replay,
engine-feed, engine-strategy, engine-risk, engine-execution (or engine-all), and
engine-execution-b for a standby. `execution:leader` and `execution:standby` name whichever
execution instance holds that role now (asked from each instance's /status).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.chaos.configuration import client_of, stack_of
from harness.stack import Stack
from harness.truth.venue import TruthUnavailable, orders_in_flight

__all__ = [
    "freeze_service",
    "kill_service",
    "kill_service_mid_order",
    "restart_service",
    "start_service",
    "stop_service",
    "thaw_all",
    "thaw_service",
]


def _by_role(stack: Stack, service: str) -> str:
    """`execution:leader` -> the process of the execution instance that has that role."""
    base, _, role = service.partition(":")
    if base != "execution" or role not in ("leader", "standby"):
        raise ActivityFailed(f"unknown role target {service!r} (execution:leader|standby)")
    roles = stack.client().roles()
    holder = next((instance for instance, now in roles.items() if now == role), None)
    if holder is None:
        raise ActivityFailed(f"no execution instance is {role} now: {roles}")
    return f"engine-{holder}"


def _name(stack: Stack, service: str) -> str:
    if ":" in service:
        return _by_role(stack, service)
    processes = stack.state()["processes"]
    return service if service in processes else f"engine-{service}"


def _pid(stack: Stack, name: str) -> int:
    processes = stack.state()["processes"]
    if name not in processes:
        raise ActivityFailed(f"no process {name!r}; the stack has {sorted(processes)}")
    pid = processes[name]["pid"]
    if not pid or not processes[name]["running"]:
        raise ActivityFailed(f"{name} is not running")
    return int(pid)


def _signal(
    service: str, sig: signal.Signals, configuration: dict[str, Any] | None
) -> dict[str, Any]:
    stack = stack_of(configuration)
    name = _name(stack, service)
    pid = _pid(stack, name)
    try:
        os.kill(pid, sig)
    except ProcessLookupError as exc:
        raise ActivityFailed(f"{name} (pid {pid}) is gone") from exc
    return {
        "service": name,
        "pid": pid,
        "signal": sig.name,
        "ts_ns": time.time_ns(),
    }


def kill_service(
    service: str, signal_name: str = "SIGKILL", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send SIGKILL (or another signal): the supervisor restarts the process with backoff."""
    try:
        sig = signal.Signals[signal_name]
    except KeyError as exc:
        raise ActivityFailed(f"unknown signal {signal_name!r}") from exc
    return _signal(service, sig, configuration)


def kill_service_mid_order(
    service: str = "execution",
    timeout_s: float = 30.0,
    min_in_flight: int = 1,
    signal_name: str = "SIGKILL",
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Kill the service the moment the venue holds an order request it has not answered yet
    (ask the simulator, then kill: pair it with a venue fault that delays answers, such as
    slow_answer). Its output says how many were in flight; none within timeout_s fails the
    action, and with it the scenario (inconclusive: the crash proved nothing about orders)."""
    client = client_of(configuration)

    def get(path: str) -> tuple[int, Any]:
        return client.truth(path, timeout_s=2)

    started = time.monotonic()
    while True:
        try:
            pending = orders_in_flight(get)
        except TruthUnavailable as exc:
            raise ActivityFailed(f"cannot see the venue's orders in flight: {exc}") from exc
        if len(pending) >= min_in_flight:
            killed = kill_service(service, signal_name, configuration)
            return {
                **killed,
                "in_flight": len(pending),
                "waited_s": round(time.monotonic() - started, 3),
            }
        if time.monotonic() - started > timeout_s:
            raise ActivityFailed(
                f"no order in flight at the venue within {timeout_s:g}s: nothing to kill mid-order"
            )
        time.sleep(0.01)


def freeze_service(service: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGSTOP: the process is alive but does nothing (a GC pause, a hung VM)."""
    return _signal(service, signal.SIGSTOP, configuration)


def thaw_service(service: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    return _signal(service, signal.SIGCONT, configuration)


def thaw_all(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGCONT to every running process of the stack: a rollback that is always safe."""
    stack = stack_of(configuration)
    thawed = []
    for name, proc in stack.state()["processes"].items():
        if proc["running"] and proc["pid"]:
            try:
                os.kill(int(proc["pid"]), signal.SIGCONT)
                thawed.append(name)
            except ProcessLookupError:
                continue
    return {"thawed": thawed}


def restart_service(service: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGTERM: a graceful stop, then the supervisor starts it again."""
    return _signal(service, signal.SIGTERM, configuration)


def stop_service(
    service: str, signal_name: str = "SIGKILL", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Kill the process and keep it down until `start_service` (a hold file)."""
    stack = stack_of(configuration)
    name = _name(stack, service)
    hold = stack.run_dir / "holds" / name
    hold.parent.mkdir(exist_ok=True)
    hold.write_text(str(time.time_ns()))
    return {**kill_service(name, signal_name, configuration), "held": True}


def start_service(service: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Release a hold: the supervisor starts the process at once."""
    stack = stack_of(configuration)
    name = _name(stack, service)
    hold = stack.run_dir / "holds" / name
    existed = hold.exists()
    hold.unlink(missing_ok=True)
    return {"service": name, "released": existed, "ts_ns": time.time_ns()}
