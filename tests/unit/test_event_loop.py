"""The event loop a server runs on is chosen by name, once, and the choice is the loop it gets."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from engine.config import event_loop_for, parse_config
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


@pytest.mark.parametrize(
    ("configured", "services", "expected"),
    [
        ("auto", ["feed"], "uvloop"),
        ("auto", ["execution"], "asyncio"),
        ("auto", ["feed", "strategy", "risk", "execution"], "asyncio"),
        ("uvloop", ["execution"], "uvloop"),
        ("asyncio", ["feed"], "asyncio"),
    ],
)
def test_auto_gives_uvloop_to_a_feed_only_process_and_the_standard_loop_to_any_other(
    configured: str, services: list[str], expected: str
) -> None:
    config = parse_config(
        f'[venue]\nws_urls = ["ws://127.0.0.1:1"]\nrest_url = "http://127.0.0.1:1"\n'
        f'symbols = ["BTCUSDT"]\n'
        f'[ops]\nevent_loop = "{configured}"\n'.encode()
    )
    assert event_loop_for(config, services) == expected
