"""A container's crash finds its processes by the container id in their cgroup: anything that is
not a container id is refused before /proc is searched (a short or empty id would match every
process of the node)."""

from __future__ import annotations

import pytest

from harness.cluster.crash import container_pids, kill_container
from harness.errors import StackError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("bad", ["", "containerd://", "abc", "containerd://../../x", "docker"])
def test_what_is_not_a_container_id_is_refused(bad: str) -> None:
    with pytest.raises(StackError, match="not a container id"):
        container_pids(bad)


def test_a_container_with_no_process_on_this_node_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="no process of container"):
        kill_container("containerd://" + "0" * 64)
