"""A WebSocket client that only counts frames: raw sockets and a selector, no decoding.

Run in its own process so that the server under test, not the client, is what is measured.
    python -m benchmarks.ws_counter --url ws://127.0.0.1:PORT/stream?streams=... --clients 10 \
        --count 200000 --ready-file PATH
Prints one JSON line: per-client frame counts, first and last frame times, aggregate rate.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit


def handshake(host: str, port: int, path: str) -> tuple[socket.socket, bytes]:
    """Open a connection; returns it with the bytes that followed the 101 response."""
    sock = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during handshake")
        response += chunk
    if b" 101 " not in response.split(b"\r\n")[0]:
        raise ConnectionError(response.split(b"\r\n")[0].decode())
    sock.setblocking(False)
    return sock, response.split(b"\r\n\r\n", 1)[1]


class Counter:
    def __init__(self) -> None:
        self.buffer = b""
        self.frames = 0
        self.first = 0.0
        self.last = 0.0

    def feed(self, data: bytes, now: float) -> None:
        buffer = self.buffer + data
        position, size = 0, len(buffer)
        frames = 0
        while size - position >= 2:
            length = buffer[position + 1] & 0x7F
            header = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                header = 10
            if size - position < header + length:
                break
            if buffer[position] & 0x0F in (1, 2):  # text or binary data frames
                frames += 1
            position += header + length
        self.buffer = buffer[position:]
        if frames:
            if not self.frames:
                self.first = now
            self.frames += frames
            self.last = now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--count", type=int, required=True, help="frames expected per client")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    url = urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    selector = selectors.DefaultSelector()
    counters = []
    for _ in range(args.clients):
        sock, leftover = handshake(url.hostname or "127.0.0.1", url.port or 80, path)
        counter = Counter()
        counter.feed(leftover, time.perf_counter())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        selector.register(sock, selectors.EVENT_READ, counter)
        counters.append(counter)
    args.ready_file.write_text("ready")
    deadline = time.perf_counter() + args.timeout
    open_sockets = args.clients
    while open_sockets and time.perf_counter() < deadline:
        if all(c.frames >= args.count for c in counters):
            break
        for key, _ in selector.select(timeout=1.0):
            try:
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(key.fileobj)
                open_sockets -= 1
                continue
            key.data.feed(data, time.perf_counter())
    first = min(c.first for c in counters if c.frames)
    last = max(c.last for c in counters)
    total = sum(c.frames for c in counters)
    print(
        json.dumps(
            {
                "clients": args.clients,
                "frames": [c.frames for c in counters],
                "total": total,
                "seconds": last - first,
                "aggregate_per_s": total / (last - first),
                "per_client_per_s": [
                    c.frames / (c.last - c.first) for c in counters if c.frames > 1
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
