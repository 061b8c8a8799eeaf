"""Which asyncio event loop a server runs on: uvloop (libuv) or the standard library's.

Both run the same code; the choice is a process's, made once at start (the engine's
`ops.event_loop`, the simulator's `--event-loop`), by what docs/benchmarks.md ("Event loop")
measured for that process; either stays selectable, the standard loop also for a platform
without uvloop wheels or to rule the loop out when chasing a bug.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["EVENT_LOOPS", "EventLoopName", "loop_factory", "run"]

EventLoopName = Literal["uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoopName, ...] = ("uvloop", "asyncio")
T = TypeVar("T")


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-loop function for `asyncio.Runner`; ValueError for an unknown name, ImportError
    (with the fix) when uvloop is asked for and not installed."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:  # pragma: no cover - a dependency of ours (pyproject)
            raise ImportError(
                "event loop 'uvloop' asked for but uvloop is not installed; install it or "
                "choose the 'asyncio' loop"
            ) from exc
        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return new_loop
    raise ValueError(f"unknown event loop {name!r}; choose one of {', '.join(EVENT_LOOPS)}")


def run(main: Coroutine[Any, Any, T], *, loop: EventLoopName) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    try:
        factory = loop_factory(loop)
    except BaseException:
        main.close()  # never awaited: say so quietly rather than warn at exit
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
