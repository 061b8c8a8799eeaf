"""A real error is logged with its whole stack. Errors logged through the standard library (the
simulator's HTTP server, aiohttp, websockets) once came out as
`"exc_info": ["<class ...>", "...", "<traceback object at 0x...>"]`, losing the stack."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from plumbing.logging import configure_logging
from replay.exchange.http11 import HttpRequest, Reply, serve

pytestmark = pytest.mark.adversarial


def broken_handler(request: HttpRequest) -> Reply:
    raise ZeroDivisionError("a handler bug")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging changes process-wide settings: put them back for the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()


@pytest.mark.usefixtures("restored_logging")
async def test_a_handler_bug_is_logged_with_its_traceback() -> None:
    out = io.StringIO()
    configure_logging(service="adversarial", stream=out)
    server = await serve(broken_handler, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 500")
        writer.close()
    finally:
        await server.close()
    (line,) = [json.loads(text) for text in out.getvalue().splitlines() if "handler" in text]
    assert line["event"] == "http handler failed" and line["path"] == "/boom"
    assert "exc_info" not in line, line
    stack = line["exception"]
    assert "Traceback (most recent call last)" in stack
    assert "broken_handler" in stack and "ZeroDivisionError: a handler bug" in stack
