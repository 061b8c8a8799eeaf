"""The local cluster's plan, read without starting anything: addresses stay on the cluster's own
bridge and loopback, pods get no route out, the guard chain closes the pod range, and DNS never
forwards."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from harness.cluster import configs, objects
from harness.cluster.components import components
from harness.cluster.host import guard_rules
from harness.cluster.layout import ClusterLayout

pytestmark = pytest.mark.unit


@pytest.fixture
def layout(tmp_path: Path) -> ClusterLayout:
    return ClusterLayout(state_dir=tmp_path / "cluster")


def _flag(argv: tuple[str, ...], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {argv}"
    return values[0]


def test_every_listener_is_loopback_or_the_node_address_on_the_clusters_bridge(layout):
    allowed = {"127.0.0.1", layout.node_ip}
    by_name = {c.name: c for c in components(layout, etcd_binary="etcd")}
    addresses = {
        "kube-apiserver": _flag(by_name["kube-apiserver"].argv, "bind-address"),
        "kube-controller-manager": _flag(by_name["kube-controller-manager"].argv, "bind-address"),
        "kube-scheduler": _flag(by_name["kube-scheduler"].argv, "bind-address"),
        "etcd": _flag(by_name["etcd"].argv, "listen-client-urls").split("//")[1].split(":")[0],
        "proxy healthz": _flag(by_name["kube-proxy"].argv, "healthz-bind-address").split(":")[0],
        "proxy metrics": _flag(by_name["kube-proxy"].argv, "metrics-bind-address").split(":")[0],
    }
    assert set(addresses.values()) <= allowed, addresses
    assert ipaddress.ip_address(layout.node_ip) in ipaddress.ip_network(layout.pod_cidr)
    assert f"address: {layout.node_ip}" in configs.kubelet_yaml(layout)
    assert "healthzBindAddress: 127.0.0.1" in configs.kubelet_yaml(layout)
    assert f"bind {layout.node_ip}" in configs.corefile(layout)


def test_components_start_in_dependency_order(layout):
    names = [c.name for c in components(layout, etcd_binary="etcd")]
    assert names.index("etcd") < names.index("kube-apiserver")
    assert names.index("containerd") < names.index("kubelet")
    assert names.index("kube-apiserver") < names.index("kube-controller-manager")
    assert names.index("kubelet") < names.index("kube-proxy")
    assert names.index("kube-apiserver") < names.index("coredns")


def test_pods_are_routed_to_the_pod_and_service_ranges_only(layout):
    network = json.loads(configs.cni_conflist(layout))
    bridge = network["plugins"][0]
    assert bridge["bridge"] == layout.bridge
    assert bridge["isDefaultGateway"] is False and bridge["ipMasq"] is False
    assert bridge["ipam"]["routes"] == [{"dst": layout.service_cidr}]
    assert bridge["ipam"]["dataDir"].startswith(str(layout.state_dir))


def test_coredns_serves_cluster_zones_and_never_forwards(layout):
    corefile = configs.corefile(layout)
    assert "forward" not in corefile and "proxy" not in corefile
    assert corefile.startswith("cluster.local:53 in-addr.arpa:53 {")
    assert "nameserver" not in configs.pod_resolv_conf()


def test_guard_drops_pod_traffic_beyond_the_cluster_ranges_and_outside_traffic_to_pods(layout):
    rules = [" ".join(rule) for rule in guard_rules(layout)]
    chain, bridge = layout.guard_chain, layout.bridge
    assert rules == [
        f"-A {chain} -i {bridge} -d {layout.pod_cidr} -j RETURN",
        f"-A {chain} -i {bridge} -d {layout.service_cidr} -j RETURN",
        f"-A {chain} -i {bridge} -j DROP",
        f"-A {chain} ! -i lo -d {layout.pod_cidr} -j DROP",
    ]


def test_containerd_restricts_oom_score_adj_and_keeps_its_state_private(layout):
    toml = configs.containerd_toml(layout)
    assert "restrict_oom_score_adj = true" in toml  # root here lacks CAP_SYS_RESOURCE
    assert f'address = "{layout.containerd_socket}"' in toml
    assert "/run/containerd/containerd.sock" not in toml
    assert f'sandbox_image = "{layout.pause_image}"' in toml


def test_storage_offers_hostpath_volumes_in_the_state_directory(layout):
    manifest = objects.storage(layout)
    assert manifest.count("kind: PersistentVolume\n") == layout.volumes
    assert "provisioner: kubernetes.io/no-provisioner" in manifest
    assert all(
        objects.volume_path(layout, i).startswith(str(layout.state_dir))
        for i in range(layout.volumes)
    )
