"""Free loopback ports for a stack.

A port is chosen, checked free, released, and only later bound by the server that was handed it
(often a subprocess that is still starting). Two things can take it in between, and both
happen on a busy test machine:
- the kernel, as the local port of some outgoing connection, when the port was drawn from the
  ephemeral range (`ip_local_port_range`, 32768-60999 by default), which is where `bind(0)`
  draws from;
- another test process on the same machine (pytest-xdist workers) choosing the same port.

So ports come from below the ephemeral range, each xdist worker from its own slice of it, and
each process walks its slice from a point set by its pid.
"""

from __future__ import annotations

import itertools
import os
import socket

__all__ = ["free_ports", "port_open", "worker_slice"]

_FIRST_PORT = 20_000
_LAST_PORT = 32_000
"""Below Linux's default ephemeral range: no outgoing connection is given these ports."""
_SLICES = 8


def worker_slice(worker: str) -> range:
    """The ports of an xdist worker ("gw0", "gw1", ...); any other process gets the last slice."""
    index = int(worker[2:]) % _SLICES if worker[2:].isdigit() else _SLICES - 1
    size = (_LAST_PORT - _FIRST_PORT) // _SLICES
    start = _FIRST_PORT + index * size
    return range(start, start + size)


_slice = worker_slice(os.environ.get("PYTEST_XDIST_WORKER", ""))
_candidates = itertools.cycle(
    [*_slice[os.getpid() % len(_slice) :], *_slice[: os.getpid() % len(_slice)]]
)


def _is_free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now, none of them handed out before by this process
    (until its slice of 1,500 ports wraps around)."""
    ports: list[int] = []
    for _ in range(len(_slice)):
        port = next(_candidates)
        if _is_free(port, host):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise OSError(f"no {count} free ports in {_slice.start}-{_slice.stop - 1} on {host}")


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
