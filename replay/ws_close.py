"""How the replay's WebSocket servers (the public feed, `replay.feed_server`, and the private
streams, `replay.exchange.wsapi`) take down a connection they refuse to serve."""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection

from plumbing.waits import within


async def hang_up(ws: ServerConnection, code: int, reason: str, timeout_s: float = 1.0) -> None:
    """Close a connection we refuse to serve on: the close frame, then, if the client has not
    answered it within `timeout_s`, the socket. A client that flooded us has frames queued
    ahead of its close frame, and we stopped reading them: waiting out websockets' close timeout
    (10 s) would only hold the connection longer."""
    await within(ws.close(code, reason), timeout_s)
    if ws.transport is not None and not ws.transport.is_closing():
        ws.transport.abort()
