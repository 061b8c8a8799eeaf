"""A lean HTTP/1.1 keep-alive client on an asyncio Protocol, for load generation only.

The load client shares the machine's two cores with the server under test; every microsecond
it spends per request is taken from the server. aiohttp's client costs well over 100 µs a
request in CPython. This one writes a pre-formatted request and reads the status line, the
Content-Length and the body: enough for a server that answers with Content-Length (aiohttp
does), and it refuses anything else rather than guess.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class HttpError(Exception):
    """The connection broke or the response is not one this client can read."""


class _Connection(asyncio.BufferedProtocol):
    """Reads into a buffer of its own: a plain Protocol gets a fresh 256 KiB bytes per read,
    which glibc serves with mmap, mremap and munmap (about 26 µs a read on our machines)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self._read_view = memoryview(bytearray(16 * 1024))
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection lost: {exc}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer += self._read_view[:nbytes]
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        response = self._parse()
        if response is not None:
            waiter.set_result(response)

    def _parse(self) -> tuple[int, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).lower()
        marker = head.find(b"\r\ncontent-length:")
        if marker < 0:
            raise HttpError("response without Content-Length")
        line_end = head.find(b"\r\n", marker + 2)
        length = int(head[marker + 17 : line_end if line_end > 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return None
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        return status, body


class RawHttpClient:
    """One keep-alive connection; one request at a time (no pipelining)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._host_header = f"{self.host}:{self.port}"
        self._protocol: _Connection | None = None

    async def __aenter__(self) -> RawHttpClient:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        self._protocol = protocol
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    async def request(
        self, method: str, target: str, *, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """`headers`: extra header lines, each ending in CRLF. Returns (status, body)."""
        protocol = self._protocol
        if protocol is None or protocol.closed or protocol.transport is None:
            raise HttpError("not connected")
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        protocol.waiter = waiter
        protocol.transport.write(head.encode() + body)
        return await waiter
