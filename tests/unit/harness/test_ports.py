"""Ports handed to servers that bind them later: outside the kernel's ephemeral range, and
disjoint between pytest-xdist workers."""

import os
import socket

import pytest

from harness.ports import free_ports, worker_slice

pytestmark = pytest.mark.unit


def ephemeral_range() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except OSError:
        low, high = 32768, 60999
    return range(low, high + 1)


def test_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    ephemeral = ephemeral_range()
    assert not any(port in ephemeral for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


def test_a_port_already_taken_is_skipped() -> None:
    [first] = free_ports(1)
    own = worker_slice(os.environ.get("PYTEST_XDIST_WORKER", ""))
    taken = first + 1 if first + 1 in own else own.start  # the next one this process would try
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        assert taken not in free_ports(30)


def test_successive_calls_do_not_hand_out_the_same_port() -> None:
    seen = [port for _ in range(50) for port in free_ports(3)]
    assert len(seen) == len(set(seen))


def test_xdist_workers_draw_from_disjoint_slices() -> None:
    slices = [set(worker_slice(f"gw{i}")) for i in range(4)] + [set(worker_slice(""))]
    for i, a in enumerate(slices):
        for b in slices[i + 1 :]:
            assert not a & b
