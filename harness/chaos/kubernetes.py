"""Actions and probes against the Kubernetes deployment (deploy/kubernetes), for what
chaostoolkit-kubernetes (chaosk8s) cannot say: which pod leads execution, terminating, crashing,
cutting off or evicting that one, and whether the engine trades, read from the simulator's own
record. (chaosk8s's `drain_nodes` evicts every pod of the node at once, in every namespace: on
a one-node cluster that is the whole cluster, so the eviction here is of one pod, as `kubectl
drain` does it for each: through the Eviction API, which its PodDisruptionBudget may refuse.)

The cluster is found the way chaosk8s finds it (its `create_k8s_api_client`: KUBECONFIG and
KUBERNETES_CONTEXT, or in-cluster), so one experiment serves any cluster. Configuration keys:

    stormproof_namespace       the deployment's namespace (default `stormproof`)
    stormproof_control_token   the simulator's control token (or STORMPROOF_SIM_CONTROL_TOKEN)

The venue is reached at its Service's ClusterIP: from a pod, or from the node of the local
cluster (docs/cluster.md).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.errors import HarnessError

__all__ = [
    "crash_execution_leader",
    "evict_execution_leader",
    "execution_leader_pod",
    "heal_partitions",
    "partition_execution_leader_from_api_server",
    "ready_pods",
    "terminate_execution_leader",
    "uncordon_nodes_cordoned_by_game_day",
    "venue_trading",
]

DEFAULT_NAMESPACE = "stormproof"
LEASE = "stormproof-execution"
VENUE_SERVICE = "venue"
VENUE_CONTROL_PORT = "control"
CORDONED_BY = "stormproof.dev/cordoned-by"
"""Annotation on a node the game day cordoned: the rollback uncordons those and no other (a
node an operator cordoned stays cordoned)."""


def _namespace(configuration: dict[str, Any] | None) -> str:
    return str((configuration or {}).get("stormproof_namespace") or DEFAULT_NAMESPACE)


def _core() -> Any:
    """CoreV1Api, untyped: the objects it returns are read defensively here anyway."""
    from chaosk8s import create_k8s_api_client
    from kubernetes import client

    return client.CoreV1Api(create_k8s_api_client())


def _coordination() -> Any:
    from chaosk8s import create_k8s_api_client
    from kubernetes import client

    return client.CoordinationV1Api(create_k8s_api_client())


def execution_leader_pod(
    lease: str = LEASE, configuration: dict[str, Any] | None = None
) -> str | None:
    """The execution pod whose instance holds the Lease (holder `execution-<pod>-<ms>`), None
    when nobody leads or the holder is no live pod."""
    namespace = _namespace(configuration)
    spec = _coordination().read_namespaced_lease(lease, namespace).spec
    holder = (spec.holder_identity if spec else None) or ""
    pods = _core().list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=execution")
    for pod in pods.items:
        if pod.metadata.deletion_timestamp is None and holder.startswith(
            f"execution-{pod.metadata.name}-"
        ):
            return str(pod.metadata.name)
    return None


def terminate_execution_leader(
    grace_period_s: int = 0, lease: str = LEASE, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Delete the leading execution pod (grace 0: the kubelet stops it at once). Returns the
    pod and the Lease holder before, so the journal shows what was hit."""
    pod = execution_leader_pod(lease=lease, configuration=configuration)
    if pod is None:
        raise ActivityFailed("no execution pod holds the Lease: nothing to terminate")
    namespace = _namespace(configuration)
    _core().delete_namespaced_pod(pod, namespace, grace_period_seconds=grace_period_s)
    return {"pod": pod, "namespace": namespace, "grace_period_s": grace_period_s}


def crash_execution_leader(
    lease: str = LEASE, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """SIGKILL every process of the leading execution pod's container from the node (the local
    cluster only, as root: harness.cluster.crash): a crash, not a shutdown, so the Lease is
    not released and the standby must wait out its TTL. The kubelet restarts the container in
    the same pod."""
    from harness.cluster import crash

    pod = execution_leader_pod(lease=lease, configuration=configuration)
    if pod is None:
        raise ActivityFailed("no execution pod holds the Lease: nothing to crash")
    status = _core().read_namespaced_pod(pod, _namespace(configuration)).status
    statuses = status.container_statuses or []
    container_id = str(statuses[0].container_id or "") if statuses else ""
    if not container_id:
        raise ActivityFailed(f"pod {pod} has no running container to crash")
    try:
        pids = crash.kill_container(container_id)
    except HarnessError as exc:
        raise ActivityFailed(str(exc)) from exc
    return {"pod": pod, "container_id": container_id, "pids": pids}


def evict_execution_leader(
    cordon: bool = True, lease: str = LEASE, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Cordon the leading execution pod's node (unless told not to), then evict the pod through
    the Eviction API, as `kubectl drain` does: the PodDisruptionBudget decides (refused: the
    activity fails and says why), the engine stops with SIGTERM and gives the Lease up. With its
    node cordoned, the replacement waits Pending until `uncordon_nodes_cordoned_by_game_day`."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    pod = execution_leader_pod(lease=lease, configuration=configuration)
    if pod is None:
        raise ActivityFailed("no execution pod holds the Lease: nothing to evict")
    namespace = _namespace(configuration)
    core = _core()
    node = str(core.read_namespaced_pod(pod, namespace).spec.node_name)
    cordoned = False
    if cordon and not core.read_node(node).spec.unschedulable:
        patch = {"spec": {"unschedulable": True}, "metadata": {"annotations": {CORDONED_BY: pod}}}
        core.patch_node(node, patch)
        cordoned = True
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
    try:
        core.create_namespaced_pod_eviction(pod, namespace, eviction)
    except ApiException as exc:
        raise ActivityFailed(
            f"eviction of {pod} refused: {exc.status} {exc.reason}"
            " (its PodDisruptionBudget allows no disruption now?)"
        ) from exc
    return {"pod": pod, "node": node, "cordoned": cordoned}


def uncordon_nodes_cordoned_by_game_day() -> dict[str, Any]:
    """Make schedulable again every node the game day cordoned (annotated CORDONED_BY), and
    only those; idempotent."""
    core = _core()
    done = []
    for node in core.list_node().items:
        if CORDONED_BY in (node.metadata.annotations or {}):
            core.patch_node(
                node.metadata.name,
                {"spec": {"unschedulable": None}, "metadata": {"annotations": {CORDONED_BY: None}}},
            )
            done.append(str(node.metadata.name))
    return {"uncordoned": done}


def ready_pods(
    app: str,
    wait_for: int | None = None,
    wait_s: float = 0.0,
    configuration: dict[str, Any] | None = None,
) -> int:
    """How many live pods of `app` (label app.kubernetes.io/name) are Ready; with `wait_for`,
    keeps asking up to `wait_s` until that many are."""
    core = _core()
    deadline = time.monotonic() + wait_s
    while True:
        pods = core.list_namespaced_pod(
            _namespace(configuration), label_selector=f"app.kubernetes.io/name={app}"
        )
        ready = sum(
            True
            for pod in pods.items
            if pod.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        )
        if wait_for is None or ready == wait_for or time.monotonic() >= deadline:
            return ready
        time.sleep(0.5)


def partition_execution_leader_from_api_server(
    lease: str = LEASE, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Cut the leading execution pod off from the API server (the `kubernetes` Service and its
    endpoints): iptables rules in the pod's own network namespace, so only on the node of the
    local cluster, as root (harness.cluster.netns). The pod keeps every other link: it can
    still reach the venue, and must stop sending on its own once its term ends."""
    from harness.cluster import netns

    pod = execution_leader_pod(lease=lease, configuration=configuration)
    if pod is None:
        raise ActivityFailed("no execution pod holds the Lease: nothing to cut off")
    core = _core()
    pod_ip = core.read_namespaced_pod(pod, _namespace(configuration)).status.pod_ip
    service = core.read_namespaced_service("kubernetes", "default").spec
    destinations = [(service.cluster_ip, 443)]
    for subset in core.read_namespaced_endpoints("kubernetes", "default").subsets or []:
        for port in subset.ports or []:
            destinations += [(address.ip, port.port) for address in subset.addresses or []]
    try:
        rules = netns.partition(pod_ip, destinations)
    except HarnessError as exc:
        raise ActivityFailed(str(exc)) from exc
    return {"pod": pod, "pod_ip": pod_ip, "rules": rules}


def heal_partitions() -> dict[str, Any]:
    """Remove every partition rule from every pod of the node (idempotent)."""
    from harness.cluster import netns

    return {"removed": netns.heal()}


def venue_trading(
    within_s: float = 10.0, wait_s: float = 0.0, configuration: dict[str, Any] | None = None
) -> bool:
    """The simulator accepted an order in the last `within_s` seconds (its own record, never
    the engine's); with `wait_s`, keeps asking that long for one."""
    namespace = _namespace(configuration)
    token = str(
        (configuration or {}).get("stormproof_control_token")
        or os.environ.get("STORMPROOF_SIM_CONTROL_TOKEN", "")
    )
    if not token:
        raise ActivityFailed("no control token (stormproof_control_token)")
    service = _core().read_namespaced_service(VENUE_SERVICE, namespace)
    port = next(p.port for p in service.spec.ports if p.name == VENUE_CONTROL_PORT)
    deadline = time.monotonic() + wait_s
    while True:
        since_ms = time.time_ns() // 1_000_000 - int(within_s * 1000)
        request = urllib.request.Request(
            f"http://{service.spec.cluster_ip}:{port}/truth/orders?since_ms={since_ms}",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                orders = json.load(response)["orders"]
        except (OSError, ValueError, KeyError) as exc:
            raise ActivityFailed(f"the simulator's record did not answer: {exc}") from exc
        if any(order["time_ms"] >= since_ms for order in orders):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
