"""Toxiproxy actions on the stack's links (every network link passes through a real proxy).

Links: engine_to_feed, engine_to_rest, engine_to_user_stream, services_to_redis (and
execution_to_journal when the stack runs a PostgreSQL journal); the Kubernetes deployment's
Toxiproxy has the same links (deploy/kubernetes/base/toxiproxy.json). Every toxic gets a name,
so a rollback can remove exactly what the method added; `reset_links` removes everything.

Which Toxiproxy is configuration, so one action serves both targets:

    stormproof_toxiproxy   `host:port` of its API (or $STORMPROOF_TOXIPROXY; the game day's
                           k8s target sets it to the toxiproxy Service's ClusterIP)
    stormproof_run_dir     otherwise: the local stack's run directory, whose Toxiproxy it is
"""

from __future__ import annotations

import os
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.chaos.configuration import stack_of
from harness.errors import ToxiproxyError
from harness.toxiproxy import ToxiproxyClient

__all__ = [
    "add_bandwidth",
    "add_latency",
    "add_limit_data",
    "add_reset_peer",
    "add_slicer",
    "add_timeout",
    "link_down",
    "link_up",
    "remove_toxic",
    "reset_links",
]


TOXIPROXY_KEY = "stormproof_toxiproxy"
TOXIPROXY_ENV = "STORMPROOF_TOXIPROXY"


def _client(configuration: dict[str, Any] | None) -> ToxiproxyClient:
    address = (configuration or {}).get(TOXIPROXY_KEY) or os.environ.get(TOXIPROXY_ENV)
    if address:
        host, _, port = str(address).rpartition(":")
        if not host or not port.isdigit():
            raise ActivityFailed(f"{TOXIPROXY_KEY}: want host:port, got {address!r}")
        return ToxiproxyClient(host, int(port))
    stack = stack_of(configuration)
    return ToxiproxyClient("127.0.0.1", stack.ports["toxiproxy"])


def _add(
    configuration: dict[str, Any] | None,
    *,
    link: str,
    toxic_type: str,
    name: str | None,
    direction: str,
    toxicity: float,
    attributes: dict[str, int],
) -> dict[str, Any]:
    toxic_name = name or f"{link}-{toxic_type}-{direction}"
    try:
        _client(configuration).add_toxic(
            link,
            toxic_type=toxic_type,
            name=toxic_name,
            stream=direction,
            toxicity=toxicity,
            attributes=attributes,
        )
    except ToxiproxyError as exc:
        raise ActivityFailed(str(exc)) from exc
    return {"link": link, "toxic": toxic_name, "type": toxic_type, "attributes": attributes}


def add_latency(
    link: str,
    latency_ms: int,
    jitter_ms: int = 0,
    direction: str = "downstream",
    name: str | None = None,
    toxicity: float = 1.0,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Delay every chunk by latency_ms plus or minus jitter_ms."""
    return _add(
        configuration,
        link=link,
        toxic_type="latency",
        name=name,
        direction=direction,
        toxicity=toxicity,
        attributes={"latency": int(latency_ms), "jitter": int(jitter_ms)},
    )


def add_bandwidth(
    link: str,
    rate_kbps: int,
    direction: str = "downstream",
    name: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Limit the link to rate_kbps kilobytes per second."""
    return _add(
        configuration,
        link=link,
        toxic_type="bandwidth",
        name=name,
        direction=direction,
        toxicity=1.0,
        attributes={"rate": int(rate_kbps)},
    )


def add_timeout(
    link: str,
    timeout_ms: int = 0,
    direction: str = "downstream",
    name: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop all data; close the connection after timeout_ms (0: never, a silent stall)."""
    return _add(
        configuration,
        link=link,
        toxic_type="timeout",
        name=name,
        direction=direction,
        toxicity=1.0,
        attributes={"timeout": int(timeout_ms)},
    )


def add_reset_peer(
    link: str,
    timeout_ms: int = 0,
    direction: str = "downstream",
    name: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Reset connections (TCP RST) after timeout_ms."""
    return _add(
        configuration,
        link=link,
        toxic_type="reset_peer",
        name=name,
        direction=direction,
        toxicity=1.0,
        attributes={"timeout": int(timeout_ms)},
    )


def add_slicer(
    link: str,
    average_size: int = 64,
    size_variation: int = 32,
    delay_us: int = 100,
    direction: str = "downstream",
    name: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cut the data into small chunks with a delay between them (partial frames)."""
    return _add(
        configuration,
        link=link,
        toxic_type="slicer",
        name=name,
        direction=direction,
        toxicity=1.0,
        attributes={
            "average_size": int(average_size),
            "size_variation": int(size_variation),
            "delay": int(delay_us),
        },
    )


def add_limit_data(
    link: str,
    limit_bytes: int,
    direction: str = "downstream",
    name: str | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Close each connection after limit_bytes have passed."""
    return _add(
        configuration,
        link=link,
        toxic_type="limit_data",
        name=name,
        direction=direction,
        toxicity=1.0,
        attributes={"bytes": int(limit_bytes)},
    )


def remove_toxic(
    link: str, name: str, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    try:
        _client(configuration).remove_toxic(link, name)
    except ToxiproxyError as exc:
        raise ActivityFailed(str(exc)) from exc
    return {"link": link, "removed": name}


def link_down(link: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Disable the proxy: existing connections are cut, new ones refused."""
    try:
        _client(configuration).set_enabled(link, False)
    except ToxiproxyError as exc:
        raise ActivityFailed(str(exc)) from exc
    return {"link": link, "enabled": False}


def link_up(link: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        _client(configuration).set_enabled(link, True)
    except ToxiproxyError as exc:
        raise ActivityFailed(str(exc)) from exc
    return {"link": link, "enabled": True}


def reset_links(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Enable every link and remove every toxic: the rollback every experiment ends with."""
    try:
        client = _client(configuration)
        client.reset()
        return {"links": sorted(client.proxies())}
    except ToxiproxyError as exc:
        raise ActivityFailed(str(exc)) from exc
