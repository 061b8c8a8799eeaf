"""Where the local cluster lives and which addresses it owns.

Everything the cluster writes is under one state directory (default `.stormproof/cluster`).
Every network address it uses belongs to a bridge and network namespaces it creates itself: the
node is 10.244.0.1 on the bridge `stormproofbr0` (the kubelet refuses a loopback node IP), pods
get 10.244.0.10 and up, Services 10.96.0.0/16. Control-plane processes other than the API server
listen on 127.0.0.1; the API server, the kubelet and CoreDNS listen on the bridge address, which
a raw-table guard chain closes to anything but the host itself and the pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.tools import KUBERNETES_BIN, KUBERNETES_VERSION, PROJECT_ROOT

COREDNS_VERSION = "v1.12.4"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".stormproof" / "cluster"
COREDNS_BIN = PROJECT_ROOT / ".tools" / "coredns" / COREDNS_VERSION / "coredns"


@dataclass(frozen=True, kw_only=True)
class ClusterLayout:
    state_dir: Path = DEFAULT_STATE_DIR
    bridge: str = "stormproofbr0"
    node_name: str = "stormproof-node"
    node_ip: str = "10.244.0.1"
    pod_cidr: str = "10.244.0.0/24"
    pod_range_start: str = "10.244.0.10"
    service_cidr: str = "10.96.0.0/16"
    api_service_ip: str = "10.96.0.1"
    guard_chain: str = "STORMPROOF-POD-GUARD"
    apiserver_port: int = 6443
    etcd_client_port: int = 12379
    etcd_peer_port: int = 12380
    controller_manager_port: int = 10257
    scheduler_port: int = 10259
    kubelet_port: int = 10250
    kubelet_healthz_port: int = 10248
    proxy_healthz_port: int = 10256
    proxy_metrics_port: int = 10249
    pause_image: str = "stormproof.local/pause:3.10"
    storage_class: str = "stormproof-local"
    volumes: int = 6
    """hostPath PersistentVolumes made at `up` for claims of storage_class (no provisioner)."""

    # --- paths ----------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def etc_dir(self) -> Path:
        return self.state_dir / "etc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state_dir / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.state_dir / "cni" / "ipam"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.state_dir / "kubelet"

    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.pki_dir / "admin.kubeconfig"

    @property
    def host_changes_file(self) -> Path:
        """The ledger of host changes `up` made, which `down` undoes and nothing else."""
        return self.state_dir / "host-changes.json"

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.node_ip}:{self.apiserver_port}"

    @staticmethod
    def kubernetes_binary(name: str) -> Path:
        return KUBERNETES_BIN / name

    @property
    def kubernetes_version(self) -> str:
        return KUBERNETES_VERSION
