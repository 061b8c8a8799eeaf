"""Timed waits that never swallow a cancellation.

On Python 3.11, a `task.cancel()` that lands in the same loop iteration as an `asyncio.timeout`
expiry (or as `wait_for`'s) can come out of the timeout as a plain TimeoutError, and a library
that catches CancelledError can lose it altogether. The request is still counted by
`Task.cancelling()`. A loop that waits with a timeout and goes round again would then run
forever in a task its owner believes cancelled: the owner's `await task` never returns (seen as
a hung test teardown and a process that outlived its stop timeout). These helpers consult the
count, so a loop built on them stops when asked, however the cancellation was mislaid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["raise_if_cancelled", "wait_set", "within"]

T = TypeVar("T")


def raise_if_cancelled() -> None:
    """Raise CancelledError when the current task has an outstanding cancellation request.

    Only for loops that never absorb a cancellation on purpose: cleanup code that catches
    CancelledError to finish its work and re-raise must not call this in between.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set (True) or `timeout_s` passes (False)."""
    raise_if_cancelled()
    if event.is_set():
        return True
    if timeout_s <= 0:
        return False
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        raise_if_cancelled()
        return False
    return True


async def within(awaitable: Awaitable[T], timeout_s: float) -> tuple[bool, T | None]:
    """Await with a deadline: (True, result) in time, (False, None) after `timeout_s` (the
    awaitable is cancelled then)."""
    try:
        raise_if_cancelled()
    except asyncio.CancelledError:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never started: close it rather than leave it unawaited
        raise
    try:
        async with asyncio.timeout(timeout_s):
            return True, await awaitable
    except TimeoutError:
        raise_if_cancelled()
        return False, None
