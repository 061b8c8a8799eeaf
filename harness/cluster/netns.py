"""A pod's network partition on the local cluster's node: iptables rules inside the pod's own
network namespace (the kernel here has no `tc netem`, and the bridge CNI enforces no
NetworkPolicy). Needs root on the node; touches nothing outside the pod's namespace.

Every rule carries the comment PARTITION_COMMENT, so `heal` removes exactly what `partition`
added, in any namespace, even after a crash of the caller.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.errors import StackError

PARTITION_COMMENT = "stormproof-partition"


def _run(*argv: str, check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise StackError(f"{' '.join(argv[:6])}: {result.stderr.strip()[-300:]}")
    return result.stdout


def _namespaces() -> dict[str, int]:
    """One process per network namespace other than the host's: namespace id -> a pid in it.
    (containerd keeps the pods' namespaces unnamed, so they are found through /proc.)"""
    host = os.readlink("/proc/self/ns/net")
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            namespace = os.readlink(proc / "ns" / "net")
        except OSError:  # gone, or a kernel thread
            continue
        if namespace != host:
            found.setdefault(namespace, int(proc.name))
    return found


def _in(pid: int, *argv: str, check: bool = True) -> str:
    return _run("nsenter", "-t", str(pid), "-n", *argv, check=check)


def pod_pid(pod_ip: str) -> int:
    """A process in the network namespace that holds `pod_ip`."""
    for pid in _namespaces().values():
        if f" {pod_ip}/" in _in(pid, "ip", "-4", "-o", "addr", "show", check=False):
            return pid
    raise StackError(f"no network namespace on this node holds {pod_ip}")


def partition(pod_ip: str, destinations: list[tuple[str, int]]) -> list[str]:
    """Drop every TCP packet the pod sends to each (address, port); the rules added."""
    pid = pod_pid(pod_ip)
    added = []
    for address, port in destinations:
        rule = [
            "OUTPUT", "-d", address, "-p", "tcp", "--dport", str(port),
            "-m", "comment", "--comment", PARTITION_COMMENT, "-j", "DROP",
        ]  # fmt: skip
        _in(pid, "iptables", "-I", *rule)
        added.append(f"{pod_ip}: {' '.join(rule)}")
    return added


def heal() -> list[str]:
    """Remove every partition rule from every pod namespace of the node; the rules removed."""
    removed = []
    for pid in _namespaces().values():
        for line in _in(pid, "iptables", "-S", "OUTPUT", check=False).splitlines():
            if PARTITION_COMMENT in line and line.startswith("-A "):
                _in(pid, "iptables", "-D", *line.split()[1:], check=False)
                removed.append(line)
    return removed
