"""Timed waits: a loop built on them stops when its task is cancelled, even after a library (or
Python 3.11's asyncio.timeout) mislaid the CancelledError."""

from __future__ import annotations

import asyncio

import pytest

from plumbing.waits import raise_if_cancelled, wait_set, within

pytestmark = pytest.mark.unit


async def test_wait_set_reports_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    assert await wait_set(event, 0) is False
    event.set()
    assert await wait_set(event, 10) is True


async def test_wait_set_wakes_when_the_event_is_set_during_the_wait() -> None:
    event, entered = asyncio.Event(), asyncio.Event()

    async def waiting() -> bool:
        entered.set()  # nothing yields between here and the wait inside wait_set
        return await wait_set(event, 30)

    waiter = asyncio.create_task(waiting())
    await entered.wait()
    event.set()
    assert await asyncio.wait_for(waiter, 5) is True


async def _swallow_one_cancellation(started: asyncio.Event) -> None:
    """What a misbehaving library does: catch the CancelledError and carry on."""
    try:
        started.set()
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        pass


@pytest.mark.parametrize("helper", ["wait_set", "within"])
async def test_a_loop_stops_although_its_cancellation_was_swallowed(helper: str) -> None:
    started = asyncio.Event()
    rounds = 0

    async def service_loop() -> None:
        nonlocal rounds
        await _swallow_one_cancellation(started)
        while True:  # the loop a service runs: wait a little, do a unit of work, again
            rounds += 1
            if helper == "wait_set":
                await wait_set(asyncio.Event(), 0.001)
            else:
                await within(asyncio.sleep(1), 0.001)

    task = asyncio.create_task(service_loop())
    await started.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert task in done, "the loop kept running in a cancelled task"
    assert task.cancelled()
    # it went on for at most the one round that was already under way
    assert rounds <= 1


async def test_a_plain_timeout_loop_would_have_kept_running() -> None:
    """The failure the helpers prevent, shown with the pattern they replace."""
    started = asyncio.Event()
    rounds = 0

    async def naive_loop() -> None:
        nonlocal rounds
        await _swallow_one_cancellation(started)
        while rounds < 50:
            rounds += 1
            try:
                async with asyncio.timeout(0.001):
                    await asyncio.Event().wait()
            except TimeoutError:
                pass

    task = asyncio.create_task(naive_loop())
    await started.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=10)
    assert rounds == 50 and not task.cancelled()
    assert task.cancelling() == 1  # the request is still on record: what the helpers read


async def test_within_returns_the_result_or_times_out() -> None:
    assert await within(asyncio.sleep(0, result="done"), 5) == (True, "done")
    assert await within(asyncio.sleep(5), 0.001) == (False, None)


async def test_within_closes_a_coroutine_it_never_started() -> None:
    started = asyncio.Event()

    async def owner() -> None:
        raise_if_cancelled()  # nothing outstanding: a no-op
        await _swallow_one_cancellation(started)
        coroutine = asyncio.sleep(1)
        with pytest.raises(asyncio.CancelledError):
            await within(coroutine, 1)
        assert coroutine.cr_frame is None  # closed, not left unawaited

    task = asyncio.create_task(owner())
    await started.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=10)
    assert task.done() and not task.cancelled()
    assert task.exception() is None
