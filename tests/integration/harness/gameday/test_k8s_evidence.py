"""The Kubernetes target's evidence watcher against a real kube-apiserver (ours: no node, so pod
status is written through the API's status subresource, as a kubelet would): each fault it must
prove shows up in what it saw, and `prove` decides from that alone."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from harness.gameday.evidence import Evidence, prove
from harness.gameday.k8s_link import LEASE, KubeLink, KubeTarget
from harness.gameday.k8s_watch import KubeEvidenceWatcher
from harness.kube_apiserver import KubeApiServer, kube_apiserver
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
NS = "stormproof"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    with kube_apiserver(tmp_path_factory.mktemp("kube")) as server:
        yield server


@pytest.fixture
def link(api: KubeApiServer) -> Iterator[KubeLink]:
    # this API server runs no controllers: the namespace's default ServiceAccount is made here,
    # and the namespace is left behind with the throwaway server
    with api.client() as api_client:
        core = k8s.CoreV1Api(api_client)
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


def pod(core: Any, name: str, app: str, *, ready: bool = True, restarts: int = 0) -> None:
    """A pod object and the status a kubelet would report for it."""
    body = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app.kubernetes.io/name": app}),
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name="main", image="stormproof")],
            automount_service_account_token=False,
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
    assert not seen.errors
