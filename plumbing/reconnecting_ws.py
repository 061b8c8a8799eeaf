"""Reconnecting WebSocket connections, in the style of websockets' own `async for ws in connect()`.

    async for ws in connect(url, backoff=..., classify=...):
        async for message in ws: ...

Each iteration yields an open connection. The body catches ConnectionClosed and continues (as
with websockets); when the body moves on, or the connection cannot be opened, the iterator
sleeps for the backoff's next delay and yields a new connection; the backoff resets once a
connection has been healthy for `healthy_after_ms`. `classify` decides which errors are worth
retrying; anything fatal is raised.

Domain-free: the caller brings the backoff (anything with `next_delay_ms()` and `reset()`, full
jitter in both the engine's feed and the replay's recorder) and the clock that times a
connection's health.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from enum import StrEnum
from typing import Protocol

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from plumbing.clock import MonotonicClock

__all__ = ["BackoffPolicy", "ErrorKind", "classify_ws_error", "connect"]


class BackoffPolicy(Protocol):
    """The delays between attempts: the next one after a failure, from the start after a
    healthy period."""

    def next_delay_ms(self) -> float: ...

    def reset(self) -> None: ...


class ErrorKind(StrEnum):
    RETRY = "retry"
    FATAL = "fatal"


def classify_ws_error(exc: BaseException) -> ErrorKind:
    if isinstance(exc, InvalidURI):
        return ErrorKind.FATAL
    if isinstance(exc, ConnectionClosed | InvalidHandshake | OSError | TimeoutError | EOFError):
        return ErrorKind.RETRY
    if isinstance(exc, websockets.exceptions.WebSocketException):
        return ErrorKind.RETRY
    return ErrorKind.FATAL


async def connect(
    url: str,
    *,
    backoff: BackoffPolicy,
    clock: MonotonicClock,
    classify: Callable[[BaseException], ErrorKind] = classify_ws_error,
    healthy_after_ms: int = 10_000,
    open_timeout_ms: int = 5_000,
    ping_interval_ms: int = 20_000,
    on_retry: Callable[[BaseException, float], None] | None = None,
    max_message_bytes: int = 8 * 1024 * 1024,
) -> AsyncGenerator[ClientConnection, None]:
    while True:
        try:
            ws = await websockets.connect(
                url,
                open_timeout=open_timeout_ms / 1000,
                ping_interval=ping_interval_ms / 1000,
                ping_timeout=ping_interval_ms / 1000,
                max_size=max_message_bytes,
                max_queue=4096,
                compression=None,
            )
        except Exception as exc:
            if classify(exc) is ErrorKind.FATAL:
                raise
            delay = backoff.next_delay_ms()
            if on_retry:
                on_retry(exc, delay)
            await asyncio.sleep(delay / 1000)
            continue
        opened_ns = clock.monotonic_ns()
        try:
            yield ws
        finally:
            # the body returned (the connection ended) or the caller stopped iterating
            await ws.close()
        error: BaseException = ws.protocol.close_exc
        if (clock.monotonic_ns() - opened_ns) / 1e6 >= healthy_after_ms:
            backoff.reset()
        delay = backoff.next_delay_ms()
        if on_retry:
            on_retry(error, delay)
        await asyncio.sleep(delay / 1000)
