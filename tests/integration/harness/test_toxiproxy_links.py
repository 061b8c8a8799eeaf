"""Toxiproxy through our client: proxies carry real traffic and can cut or poison a link."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.errors import ToxiproxyError
from harness.ports import free_ports
from harness.toxiproxy import ToxiproxyClient
from tests.helpers import redis, toxiproxy

pytestmark = pytest.mark.integration


def redis_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_proxy_carries_traffic_and_link_down_cuts_it(tmp_path: Path) -> None:
    with redis(tmp_path) as redis_port, toxiproxy(tmp_path) as api_port:
        client = ToxiproxyClient("127.0.0.1", api_port)
        listen = free_ports(1)[0]
        client.ensure_proxies(
            [
                {
                    "name": "to_redis",
                    "listen": f"127.0.0.1:{listen}",
                    "upstream": f"127.0.0.1:{redis_port}",
                }
            ]
        )
        assert redis_ping(listen) == b"+PONG\r\n"
        client.set_enabled("to_redis", False)
        with pytest.raises(ConnectionRefusedError):
            redis_ping(listen)
        client.reset()
        assert redis_ping(listen) == b"+PONG\r\n"
        client.add_toxic("to_redis", toxic_type="reset_peer", name="cut", attributes={"timeout": 0})
        with pytest.raises(ConnectionResetError):
            redis_ping(listen)
        client.remove_toxic("to_redis", "cut")
        assert redis_ping(listen) == b"+PONG\r\n"
        assert client.proxies()["to_redis"]["enabled"] is True


def test_unreachable_toxiproxy_is_a_clear_error() -> None:
    client = ToxiproxyClient("127.0.0.1", free_ports(1)[0], timeout_s=2.0)
    assert client.running() is False
    with pytest.raises(ToxiproxyError, match=r"toxiproxy at 127\.0\.0\.1"):
        client.reset()
    with pytest.raises(ToxiproxyError, match="unknown toxic type"):
        client.add_toxic("x", toxic_type="bogus", name="n")
