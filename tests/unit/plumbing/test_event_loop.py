"""The event loop a server runs on is chosen by name, once, and the choice is the loop it gets."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from plumbing.event_loop import EVENT_LOOPS, loop_factory, run

pytestmark = pytest.mark.unit


async def loop_type() -> type[asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_uvloop_runs_the_coroutine_on_libuv() -> None:
    assert run(loop_type(), loop="uvloop") is uvloop.Loop


def test_asyncio_runs_the_coroutine_on_the_standard_loop() -> None:
    kind = run(loop_type(), loop="asyncio")
    assert issubclass(kind, asyncio.BaseEventLoop) and not issubclass(kind, uvloop.Loop)


def test_an_unknown_loop_is_refused_by_name_and_the_coroutine_is_not_left_unawaited() -> None:
    main = loop_type()
    with pytest.raises(ValueError, match="unknown event loop 'trio'; choose one of uvloop"):
        run(main, loop="trio")  # type: ignore[arg-type]
    assert main.cr_frame is None, "closed, not left to warn at exit"


def test_every_name_offered_makes_a_loop() -> None:
    for name in EVENT_LOOPS:
        loop = loop_factory(name)()
        loop.close()
