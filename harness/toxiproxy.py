"""Toxiproxy, through toxiproxy-python, against a real toxiproxy-server.

toxiproxy-python keeps the server address in class attributes (one server per process) and its
HTTP calls have no timeout. We use it for every proxy and toxic operation, but (1) set the address
under a lock for each call, so two stacks in one process cannot cross wires, and (2) run each call
on a worker thread with a deadline, so a hung Toxiproxy fails a chaos rollback loudly instead of
hanging it. Toxic updates in place are not in the client; none of our actions need them (a toxic
is removed and added again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer

from harness.errors import ToxiproxyError

T = TypeVar("T")
_address_lock = threading.Lock()
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="toxiproxy")

TOXIC_TYPES = (
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
)


class ToxiproxyClient:
    def __init__(self, host: str, port: int, *, timeout_s: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s

    def _call(self, fn: Callable[[Toxiproxy], T]) -> T:
        def run() -> T:
            with _address_lock:
                APIConsumer.host, APIConsumer.port = self.host, self.port
                return fn(Toxiproxy())

        try:
            return _pool.submit(run).result(timeout=self.timeout_s)
        except FutureTimeout:
            raise ToxiproxyError(
                f"toxiproxy at {self.host}:{self.port} did not answer within {self.timeout_s}s"
            ) from None
        except ToxiproxyError:
            raise
        except Exception as exc:
            raise ToxiproxyError(f"toxiproxy at {self.host}:{self.port}: {exc}") from exc

    def running(self) -> bool:
        try:
            return bool(self._call(lambda t: t.running()))
        except ToxiproxyError:
            return False

    def ensure_proxies(self, proxies: list[dict[str, str]]) -> None:
        """Create (or recreate when changed) every proxy: {name, listen, upstream}."""
        self._call(lambda t: t.populate(proxies))

    def proxies(self) -> dict[str, dict[str, Any]]:
        def read(t: Toxiproxy) -> dict[str, dict[str, Any]]:
            return {
                name: {"listen": p.listen, "upstream": p.upstream, "enabled": p.enabled}
                for name, p in t.proxies().items()
            }

        return self._call(read)

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        def toggle(t: Toxiproxy) -> None:
            found = t.get_proxy(proxy)
            if found is None:
                raise ToxiproxyError(f"no proxy named {proxy!r}")
            found.enable() if enabled else found.disable()

        self._call(toggle)

    def add_toxic(
        self,
        proxy: str,
        *,
        toxic_type: str,
        name: str,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: dict[str, int] | None = None,
    ) -> None:
        if toxic_type not in TOXIC_TYPES:
            raise ToxiproxyError(f"unknown toxic type {toxic_type!r}; one of {TOXIC_TYPES}")
        if stream not in ("upstream", "downstream"):
            raise ToxiproxyError("stream must be 'upstream' or 'downstream'")

        def add(t: Toxiproxy) -> None:
            found = t.get_proxy(proxy)
            if found is None:
                raise ToxiproxyError(f"no proxy named {proxy!r}")
            found.add_toxic(
                type=toxic_type,
                name=name,
                stream=stream,
                toxicity=toxicity,
                attributes=attributes or {},
            )

        self._call(add)

    def remove_toxic(self, proxy: str, name: str) -> None:
        def remove(t: Toxiproxy) -> None:
            found = t.get_proxy(proxy)
            if found is not None and name in found.toxics():
                found.destroy_toxic(name)

        self._call(remove)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call(lambda t: t.reset())
