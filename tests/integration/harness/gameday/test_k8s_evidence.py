"""The Kubernetes target's evidence watcher against a real kube-apiserver (ours: no node, so pod
status is written through the API's status subresource, as a kubelet would, and Node objects
are made through the API): each fault it must prove shows up in what it saw, and `prove`
decides from that alone. The staging Toxiproxy it also reads is a real toxiproxy-server; the
eviction action runs against the same API server as chaosk8s would find it (KUBECONFIG)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from harness.chaos import kubernetes as chaos_k8s
from harness.chaos import network
from harness.gameday.evidence import Evidence, prove
from harness.gameday.k8s_link import LEASE, KubeLink, KubeTarget
from harness.gameday.k8s_watch import KubeEvidenceWatcher
from harness.kube_apiserver import KubeApiServer, kube_apiserver
from harness.toxiproxy import ToxiproxyClient
from tests.helpers import toxiproxy, wait_until

pytestmark = pytest.mark.integration
NS = "stormproof"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    with kube_apiserver(tmp_path_factory.mktemp("kube")) as server:
        yield server


@pytest.fixture
def link(api: KubeApiServer) -> Iterator[KubeLink]:
    # this API server runs no controllers: the namespace's default ServiceAccount is made here;
    # what a test made is deleted after it (the namespace stays, with the throwaway server)
    with api.client() as api_client:
        core: Any = k8s.CoreV1Api(api_client)
        if NS not in {n.metadata.name for n in core.list_namespace().items}:
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NS)))
            core.create_namespaced_service_account(
                NS, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="default"))
            )
        yield KubeLink(
            target=KubeTarget(namespace=NS),
            api=api_client,
            control_url="http://127.0.0.1:9",  # unused by the watcher
            control_token="unused",
            redis_host="127.0.0.1",
            redis_port=9,
            redis_password="unused",
        )
        core.delete_collection_namespaced_pod(NS, grace_period_seconds=0)
        core.delete_collection_node()
        k8s.CoordinationV1Api(api_client).delete_collection_namespaced_lease(NS)
        k8s.PolicyV1Api(api_client).delete_collection_namespaced_pod_disruption_budget(NS)


def pod(
    core: Any,
    name: str,
    app: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    node: str | None = None,
) -> None:
    """A pod object and the status a kubelet would report for it."""
    body = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app.kubernetes.io/name": app}),
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name="main", image="stormproof")],
            automount_service_account_token=False,
            node_name=node,
        ),
    )
    if name not in {p.metadata.name for p in core.list_namespaced_pod(NS).items}:
        core.create_namespaced_pod(NS, body)
    status(core, name, ready=ready, restarts=restarts)


def status(core: Any, name: str, *, ready: bool, restarts: int) -> None:
    now = datetime.datetime.now(datetime.UTC)
    core.patch_namespaced_pod_status(
        name,
        NS,
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": str(ready), "lastTransitionTime": now.isoformat()}
                ],
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": "stormproof",
                        "imageID": "",
                        "ready": ready,
                        "restartCount": restarts,
                        "started": True,
                        "state": {"running": {"startedAt": now.isoformat()}},
                    }
                ],
            }
        },
    )


def hold_lease(coordination: Any, holder: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    spec = k8s.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=30, renew_time=now)
    try:
        lease = coordination.read_namespaced_lease(LEASE, NS)
    except k8s.ApiException:
        coordination.create_namespaced_lease(
            NS, k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=LEASE), spec=spec)
        )
        return
    lease.spec = spec
    coordination.replace_namespaced_lease(LEASE, NS, lease)


def test_the_watcher_sees_each_fault_in_the_api_server(link: KubeLink) -> None:
    core, coordination = link.core, link.coordination
    pod(core, "execution-a", "execution")
    pod(core, "execution-b", "execution")
    pod(core, "feed-0", "feed")
    hold_lease(coordination, "execution-execution-a-1")
    watcher = KubeEvidenceWatcher(link)
    started_s = time.time()
    watcher.start()
    try:
        wait_until(lambda: watcher.seen.ready_counts.get("feed"), timeout_s=10, what="a look")
        quiet = [
            prove(Evidence(kind=kind, params=params), watcher.seen).proven
            for kind, params in (
                ("no_ready_pods", {"app": "feed"}),
                ("container_restarted", {"app": "execution"}),
                ("leader_cut_off", {}),
                ("pod_replaced", {"app": "execution"}),
            )
        ]
        assert quiet == [False, False, False, False]  # nothing happened yet: nothing proven

        status(core, "feed-0", ready=False, restarts=0)  # the feed scaled away
        status(core, "execution-a", ready=True, restarts=1)  # its container crashed
        hold_lease(coordination, "execution-execution-b-2")  # a moves to b, a still there
        core.delete_namespaced_pod("execution-b", NS, grace_period_seconds=0)
        pod(core, "execution-c", "execution")  # b replaced
        wait_until(
            lambda: (
                len(watcher.seen.pods.get("execution", [])) == 3
                and watcher.seen.pods_gone
                and watcher.seen.leader_moves
            ),
            timeout_s=10,
            what="the watcher to see every change",
        )
    finally:
        seen = watcher.finish()
    assert prove(Evidence(kind="no_ready_pods", params={"app": "feed"}), seen).proven
    assert prove(Evidence(kind="container_restarted", params={"app": "execution"}), seen).proven
    assert prove(Evidence(kind="leader_cut_off", params={}), seen).proven
    assert prove(Evidence(kind="pod_replaced", params={"app": "execution"}), seen).proven
    assert seen.leader_moves == [("execution-a", "execution-b", True)]
    # when each term could be taken: first sight of its renewal, by the watcher's clock, + 30 s
    assert set(seen.lease_expiry_s) == {"execution-a", "execution-b"}
    assert started_s + 30 <= seen.lease_expiry_s["execution-a"] <= time.time() + 30
    assert seen.lease_expiry_s["execution-a"] <= seen.lease_expiry_s["execution-b"]
    assert not seen.errors


def as_chaosk8s_finds_it(api: KubeApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """KUBECONFIG, as the experiment's process gets it; the kubernetes client reads it once, at
    import, so this process's copy of that default is set too; chaosk8s then overwrites the
    client's process-wide default configuration, which is put back after the test."""
    from kubernetes.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(api.kubeconfig))
    monkeypatch.setattr(k8s.Configuration, "_default", k8s.Configuration._default)


def node(core: Any, name: str, *, cordoned: bool = False) -> None:
    core.create_node(
        k8s.V1Node(
            metadata=k8s.V1ObjectMeta(name=name), spec=k8s.V1NodeSpec(unschedulable=cordoned)
        )
    )


def cordoned(core: Any) -> dict[str, tuple[bool, bool]]:
    """node -> (unschedulable, annotated as the game day's cordon)."""
    return {
        n.metadata.name: (
            bool(n.spec.unschedulable),
            chaos_k8s.CORDONED_BY in (n.metadata.annotations or {}),
        )
        for n in core.list_node().items
    }


def test_evicting_the_leader_cordons_its_node_and_the_rollback_uncordons_only_that(
    link: KubeLink, api: KubeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As chaosk8s finds a cluster: KUBECONFIG. A node an operator cordoned stays cordoned;
    the watcher proves the game day's cordon and only that one."""
    as_chaosk8s_finds_it(api, monkeypatch)
    core = link.core
    node(core, "node-a")
    node(core, "node-b")
    node(core, "node-maintenance", cordoned=True)  # the operator's, before the game day
    pod(core, "leader", "execution", node="node-a")
    pod(core, "standby", "execution", node="node-b")
    hold_lease(link.coordination, "execution-leader-7")
    configuration = {"stormproof_namespace": NS}
    watcher = KubeEvidenceWatcher(link)
    watcher.start()
    try:
        wait_until(lambda: watcher.seen.ready_counts, timeout_s=10, what="a look")
        assert not prove(Evidence(kind="node_cordoned", params={}), watcher.seen).proven

        out = chaos_k8s.evict_execution_leader(configuration=configuration)
        assert out == {"pod": "leader", "node": "node-a", "cordoned": True}
        wait_until(lambda: watcher.seen.cordoned_nodes, timeout_s=10, what="the watcher to see it")
    finally:
        seen = watcher.finish()
    assert seen.cordoned_nodes == {"node-a"}
    assert prove(Evidence(kind="node_cordoned", params={}), seen).proven
    # evicted: the API server marked the pod for deletion (a kubelet would now stop it)
    assert core.read_namespaced_pod("leader", NS).metadata.deletion_timestamp is not None
    assert cordoned(core) == {
        "node-a": (True, True),
        "node-b": (False, False),
        "node-maintenance": (True, False),
    }

    assert chaos_k8s.uncordon_nodes_cordoned_by_game_day() == {"uncordoned": ["node-a"]}
    assert cordoned(core) == {
        "node-a": (False, False),
        "node-b": (False, False),
        "node-maintenance": (True, False),
    }
    assert chaos_k8s.uncordon_nodes_cordoned_by_game_day() == {"uncordoned": []}


def test_an_eviction_the_disruption_budget_forbids_fails_and_says_why(
    link: KubeLink, api: KubeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaoslib.exceptions import ActivityFailed

    as_chaosk8s_finds_it(api, monkeypatch)
    core = link.core
    node(core, "node-a")
    pod(core, "leader", "execution", node="node-a")
    hold_lease(link.coordination, "execution-leader-7")
    # the budget's status as the disruption controller (not running here) would write it
    policy = k8s.PolicyV1Api(link.api)
    policy.create_namespaced_pod_disruption_budget(
        NS,
        k8s.V1PodDisruptionBudget(
            metadata=k8s.V1ObjectMeta(name="execution"),
            spec=k8s.V1PodDisruptionBudgetSpec(
                min_available=1,
                selector=k8s.V1LabelSelector(match_labels={"app.kubernetes.io/name": "execution"}),
            ),
        ),
    )
    policy.patch_namespaced_pod_disruption_budget_status(
        "execution",
        NS,
        {
            "status": {
                "currentHealthy": 1,
                "desiredHealthy": 1,
                "expectedPods": 1,
                "disruptionsAllowed": 0,
                "observedGeneration": 1,
            }
        },
    )
    with pytest.raises(ActivityFailed, match="eviction of leader refused: 429"):
        chaos_k8s.evict_execution_leader(configuration={"stormproof_namespace": NS})
    assert core.read_namespaced_pod("leader", NS).metadata.deletion_timestamp is None
    assert chaos_k8s.uncordon_nodes_cordoned_by_game_day() == {"uncordoned": ["node-a"]}


def test_the_watcher_reads_the_staging_toxiproxy_the_actions_were_pointed_at(
    link: KubeLink, tmp_path: Path
) -> None:
    """One action for both targets: the Toxiproxy is configuration (`stormproof_toxiproxy`),
    and the k8s watcher proves the toxic and the cut from Toxiproxy's own API."""
    with toxiproxy(tmp_path) as port:
        ToxiproxyClient("127.0.0.1", port).ensure_proxies(
            [{"name": "engine_to_rest", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}]
        )
        link.toxiproxy = f"127.0.0.1:{port}"
        configuration = {"stormproof_toxiproxy": link.toxiproxy}
        watcher = KubeEvidenceWatcher(link)
        watcher.start()
        try:
            latency = Evidence(kind="toxic", params={"link": "engine_to_rest", "type": "latency"})
            cut = Evidence(kind="link_down", params={"link": "engine_to_rest"})
            assert not prove(latency, watcher.seen).proven
            network.add_latency(
                "engine_to_rest", latency_ms=500, name="slow", configuration=configuration
            )
            network.link_down("engine_to_rest", configuration=configuration)
            wait_until(
                lambda: watcher.seen.toxics and watcher.seen.disabled_links,
                timeout_s=10,
                what="the watcher to see the toxic and the cut",
            )
            network.reset_links(configuration=configuration)
        finally:
            seen = watcher.finish()
    assert prove(latency, seen).proven
    assert prove(cut, seen).proven


@pytest.mark.parametrize("address", ["toxiproxy", "host:port", ":8474"])
def test_a_malformed_toxiproxy_address_is_a_clear_activity_failure(address: str) -> None:
    from chaoslib.exceptions import ActivityFailed

    with pytest.raises(ActivityFailed, match="stormproof_toxiproxy: want host:port"):
        network.link_up("engine_to_rest", configuration={"stormproof_toxiproxy": address})
