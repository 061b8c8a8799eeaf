"""A container's crash on the local cluster's node: every process of the container killed from
the host, as the OOM killer or a segfault would end it (from inside, a container's PID 1 is
immune to SIGKILL). The container's processes are found by its id in their cgroup (cgroup v1
paths name it), so nothing but /proc is needed; root on the node."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from harness.errors import StackError


def container_pids(container_id: str) -> list[int]:
    """The processes whose cgroup names the container (`containerd://<id>` or the bare id)."""
    bare = container_id.removeprefix("containerd://")
    if len(bare) < 12 or not all(c in "0123456789abcdef" for c in bare):
        raise StackError(f"not a container id: {container_id!r}")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroups = (proc / "cgroup").read_text()
        except OSError:  # gone meanwhile
            continue
        if bare in cgroups:
            found.append(int(proc.name))
    return sorted(found)


def kill_container(container_id: str, sig: int = signal.SIGKILL) -> list[int]:
    """Signal every process of the container; the pids signalled (an error when none)."""
    pids = container_pids(container_id)
    if not pids:
        raise StackError(f"no process of container {container_id} on this node")
    hit = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            hit.append(pid)
        except ProcessLookupError:
            continue
    return hit
