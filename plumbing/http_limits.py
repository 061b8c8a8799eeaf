"""Bounds for our aiohttp servers (the engine's ops port with the order intake, the replay's
control API), and a bearer-token check that no header value can break.

aiohttp leaves a server open to a slow or hostile client unless told otherwise. `serve_bounded`
starts an app with:

- **idle_timeout_s**: aiohttp's keep-alive timer. aiohttp arms it when a connection opens and
  after each answer, and bytes of a request still incomplete do not re-arm it, so it is also the
  deadline for a request head (a client that trickles a head is closed when it expires).
- **body_timeout_s**: a request body must arrive whole within this (408 otherwise); the
  `bounded_requests` middleware reads it, so a handler never waits on a trickling client.
- **max_body_bytes**: aiohttp's `client_max_size` (413 past it).
- **max_connections**: connections beyond it are answered 503 and closed at once.
- **max_line_size / max_field_size / max_headers**: aiohttp's parser limits (400 past them).

Errors are answered as JSON (`{"error": ...}`) whatever raised them: aiohttp's own 404, 405,
413, a request aiohttp cannot parse (400, and the connection is closed), and a handler bug (500,
logged with its traceback). aiohttp logs each request it cannot parse with a traceback; here at
most one line per `log_interval_s`, with the count of those held back (a flood of garbage
writes one line, not one per request).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "HttpLimits",
    "bearer_matches",
    "bounded_requests",
    "serve_bounded",
]

log = logging.getLogger("stormproof.http")


@dataclass(frozen=True, kw_only=True)
class HttpLimits:
    idle_timeout_s: float = 20.0
    """Idle keep-alive connections close after this; also the deadline of a request head. Above
    the 15 s for which aiohttp's client keeps an idle connection, so a client reusing one never
    races our close."""
    body_timeout_s: float = 10.0
    max_body_bytes: int = 1024 * 1024
    max_connections: int = 256
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64
    log_interval_s: float = 10.0


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer <token>`. Any header value is safe: a
    value aiohttp decoded with surrogates (bytes that are not UTF-8) is compared as its bytes,
    and digests of equal length are compared, so the time taken says nothing of the token."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    supplied = header[7:].encode("utf-8", "surrogateescape")
    expected = token.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(hashlib.sha256(supplied).digest(), hashlib.sha256(expected).digest())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps({"error": message}),
        status=status,
        content_type="application/json",
        headers=headers,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bounded_requests(limits: HttpLimits) -> Any:
    """Middleware: the body is read within body_timeout_s before the handler runs, and every
    error answer is JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.can_read_body:
                try:
                    await asyncio.wait_for(request.read(), limits.body_timeout_s)
                except TimeoutError:
                    late = _error(
                        408, f"request body not received within {limits.body_timeout_s:g} s"
                    )
                    late.force_close()
                    return late
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            text = exc.text or ""
            reason = text if text and not text.startswith(f"{exc.status}:") else exc.reason
            kept = {
                name: value
                for name, value in exc.headers.items()
                if name.lower() not in ("content-type", "content-length")
            }
            return _error(exc.status, reason or "request refused", kept or None)
        except ConnectionResetError:
            raise
        except Exception:  # a bug: logged with its stack, answered as JSON
            log.exception("http handler failed", extra={"path": request.path[:200]})
            return _error(500, "internal error")

    return middleware


class _OncePerInterval(logging.Filter):
    """Lets one record of each message through per interval, with the count held back."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        record.suppressed_since_last = self._held.pop(key, 0)
        return True


class _JsonErrors(RequestHandler):
    """aiohttp's connection handler, whose own error answers (a request it cannot parse) are
    JSON like every other error of our servers."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        if isinstance(response, web.Response):
            text = message or (exc and str(exc)) or "bad request"
            response.content_type = "application/json"
            response.text = json.dumps({"error": str(text)[:300]})
        return response


class _Refused(asyncio.Protocol):
    """A connection over the cap: a 503 and the door closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; uvloop's is not a subclass of asyncio.Transport
        transport = cast(asyncio.Transport, transport)
        body = b'{"error": "too many connections"}'
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        transport.close()


class _CappedSite(web.TCPSite):
    """A TCP site that serves at most `max_connections` at once.

    The count is aiohttp's connections plus those accepted but not yet made: asyncio calls the
    protocol factory of every socket of an accept batch before it calls any of their
    connection_made (each one the next turn of the loop, by call_soon), so counting made
    connections alone would let a burst through whole. A connection counts as opening from the
    factory call until the turn of the loop in which its connection_made runs."""

    def __init__(self, runner: web.BaseRunner, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(runner, **kwargs)
        self._max_connections = max_connections
        self._opening = 0
        self.refused = 0

    def _opened(self) -> None:
        self._opening -= 1

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) + self._opening >= self._max_connections:
                self.refused += 1
                return _Refused()
            self._opening += 1
            loop.call_soon(self._opened)  # runs in the turn where connection_made runs
            # what web.Server.__call__ builds, with JSON error answers
            return _JsonErrors(server, loop=loop, **server._kwargs)

        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]


async def serve_bounded(
    app: web.Application,
    *,
    host: str,
    port: int,
    limits: HttpLimits,
    shutdown_timeout: float = 60.0,
) -> tuple[web.AppRunner, int]:
    """Start `app` on host:port within `limits`; returns its runner and the bound port. The app
    must have been built with `bounded_app_options(limits)` and the `bounded_requests`
    middleware (see `bounded_app`)."""
    server_log = logging.getLogger("stormproof.http.server")
    if not any(isinstance(f, _OncePerInterval) for f in server_log.filters):
        server_log.addFilter(_OncePerInterval(limits.log_interval_s))
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=limits.idle_timeout_s,
        max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size,
        max_headers=limits.max_headers,
        logger=server_log,
    )
    await runner.setup()
    site = _CappedSite(runner, host=host, port=port, max_connections=limits.max_connections)
    await site.start()
    return runner, site.port


def bounded_app(limits: HttpLimits, *, middlewares: tuple[Any, ...] = ()) -> web.Application:
    """An Application whose body size and error answers follow `limits`; `middlewares` run
    inside the bounding one."""
    return web.Application(
        client_max_size=limits.max_body_bytes,
        middlewares=[bounded_requests(limits), *middlewares],
    )
