"""What the adversarial tests send and how they read the answers: raw sockets, so that a test
can send what no well-behaved client library would (a half head, two Content-Lengths, bytes
that are not UTF-8), and the bounds they hold a server to."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess, replay_process, rss_bytes

SHORT_LIMITS = [
    "--http-head-timeout",
    "1",
    "--http-idle-timeout",
    "2",
    "--http-body-timeout",
    "1",
    "--max-connections",
    "64",
]
"""Deadlines short enough for a test to watch them pass (the defaults are 10 s and 20 s)."""


@contextmanager
def bounded_venue(tmp: Path, recording: Path, *extra: str) -> Iterator[ReplayProcess]:
    with replay_process(
        tmp, recording, speed="1", extra=[*SHORT_LIMITS, *extra], wait_for_market=True
    ) as sim:
        yield sim


def connect(port: int, timeout_s: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


def read_until_closed(sock: socket.socket, timeout_s: float = 5.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (True) or the deadline
    passes (False)."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def exchange(port: int, raw: bytes, timeout_s: float = 5.0) -> tuple[bytes, bool]:
    """Send raw bytes on a new connection; what comes back before the server closes it."""
    with connect(port, timeout_s) as sock:
        sock.sendall(raw)
        return read_until_closed(sock, timeout_s)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body, from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-response: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed mid-body")
        rest += chunk
    return int(lines[0].split(" ")[1]), headers, rest[:length]


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), f"not an HTTP response: {response[:120]!r}"
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def binance_error(body: bytes) -> tuple[int, str]:
    """(code, msg) of a Binance error body; fails the test when it is not one."""
    parsed = json.loads(body)
    assert isinstance(parsed, dict), body
    code, msg = parsed.get("code"), parsed.get("msg")
    assert isinstance(code, int) and isinstance(msg, str) and msg, body
    return code, msg


def json_error(body: bytes) -> str:
    """The message of a `{"error": ...}` body; fails the test when it is not one."""
    parsed = json.loads(body)
    assert isinstance(parsed, dict) and isinstance(parsed.get("error"), str), body
    return str(parsed["error"])


def signed(params: str, secret: str = SIM_SECRET) -> str:
    query = f"{params}&timestamp={time.time_ns() // 1_000_000}" if params else ""
    query = query or f"timestamp={time.time_ns() // 1_000_000}"
    return (
        f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"
    )


def request(
    method: str,
    target: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    raw_headers: bytes = b"",
    keep_alive: bool = True,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    head = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    return head + b"\r\n" + raw_headers + b"\r\n" + body


def ping_ok(port: int) -> bool:
    """The venue still serves a well-formed request."""
    response, _ = exchange(port, request("GET", "/api/v3/ping", keep_alive=False))
    return status_of(response) == 200 and body_of(response) == b"{}"


def api_key_headers() -> dict[str, str]:
    return {"X-MBX-APIKEY": SIM_KEY, "Content-Type": "application/x-www-form-urlencoded"}


def rss_mib(pid: int) -> float:
    return rss_bytes(pid) / 2**20


def settled_rss_mib(pid: int, *, above_mib: float, timeout_s: float = 10.0) -> float:
    """The process's RSS once it is no more than `above_mib` (polled up to the deadline: the
    server frees a closed connection's memory when it sees the close); the last reading when
    it never gets there."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = rss_mib(pid)
        if now <= above_mib or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def json_values(
    samples: list[str], *, key_size: int, allow_nan: bool = True
) -> st.SearchStrategy[Any]:
    """Any JSON value a hostile client sends, small, with the tokens of the API under attack
    (`samples`) among its strings."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=allow_nan)
        | st.text(max_size=8)
        | st.sampled_from(samples),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=key_size), inner, max_size=3)
        ),
        max_leaves=8,
    )
