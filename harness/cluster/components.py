"""The cluster's processes, in start order, as plain data: name, argv and how to tell it is
ready. `up` starts them; tests read them without starting anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.cluster.layout import COREDNS_BIN, ClusterLayout

ReadyCheck = Literal["containerd", "etcd", "apiserver", "https", "http", "node", "tcp"]


@dataclass(frozen=True, kw_only=True)
class Component:
    name: str
    argv: tuple[str, ...]
    ready: ReadyCheck
    ready_target: str = ""
    """A URL or host:port for the http, https and tcp checks."""


def components(layout: ClusterLayout, *, etcd_binary: str) -> list[Component]:
    pki = layout.pki_dir
    etc = layout.etc_dir
    k8s = layout.kubernetes_binary
    loopback = "127.0.0.1"
    etcd_client = f"http://{loopback}:{layout.etcd_client_port}"
    etcd_peer = f"http://{loopback}:{layout.etcd_peer_port}"
    return [
        Component(
            name="containerd",
            argv=("containerd", "--config", str(etc / "containerd.toml")),
            ready="containerd",
        ),
        Component(
            name="etcd",
            argv=(
                etcd_binary,
                "--name=stormproof",
                f"--data-dir={layout.state_dir / 'etcd'}",
                f"--listen-client-urls={etcd_client}",
                f"--advertise-client-urls={etcd_client}",
                f"--listen-peer-urls={etcd_peer}",
                f"--initial-advertise-peer-urls={etcd_peer}",
                f"--initial-cluster=stormproof={etcd_peer}",
                "--logger=zap",
                "--log-level=warn",
            ),
            ready="etcd",
            ready_target=f"{etcd_client}/health",
        ),
        Component(
            name="kube-apiserver",
            argv=(
                str(k8s("kube-apiserver")),
                f"--bind-address={layout.node_ip}",
                f"--advertise-address={layout.node_ip}",
                f"--secure-port={layout.apiserver_port}",
                f"--etcd-servers={etcd_client}",
                f"--service-cluster-ip-range={layout.service_cidr}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                # the node has no resolvable name: reach kubelets by their InternalIP
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'service-account.pub'}",
                f"--service-account-signing-key-file={pki / 'service-account.key'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={layout.state_dir / 'apiserver-certs'}",
            ),
            ready="apiserver",
        ),
        Component(
            name="kube-controller-manager",
            argv=(
                str(k8s("kube-controller-manager")),
                f"--bind-address={loopback}",
                f"--secure-port={layout.controller_manager_port}",
                f"--kubeconfig={pki / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={pki / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={pki / 'controller-manager.kubeconfig'}",
                f"--service-account-private-key-file={pki / 'service-account.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={layout.service_cidr}",
                f"--cert-dir={layout.state_dir / 'controller-manager-certs'}",
                "--profiling=false",
            ),
            ready="https",
            ready_target=f"https://{loopback}:{layout.controller_manager_port}/healthz",
        ),
        Component(
            name="kube-scheduler",
            argv=(
                str(k8s("kube-scheduler")),
                f"--bind-address={loopback}",
                f"--secure-port={layout.scheduler_port}",
                f"--kubeconfig={pki / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={pki / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={pki / 'scheduler.kubeconfig'}",
                f"--cert-dir={layout.state_dir / 'scheduler-certs'}",
                "--profiling=false",
            ),
            ready="https",
            ready_target=f"https://{loopback}:{layout.scheduler_port}/healthz",
        ),
        Component(
            name="kubelet",
            argv=(
                str(k8s("kubelet")),
                f"--config={etc / 'kubelet.yaml'}",
                f"--kubeconfig={pki / 'kubelet.kubeconfig'}",
                f"--root-dir={layout.kubelet_dir}",
                f"--hostname-override={layout.node_name}",
                f"--node-ip={layout.node_ip}",
            ),
            ready="node",
        ),
        Component(
            name="kube-proxy",
            argv=(
                str(k8s("kube-proxy")),
                f"--kubeconfig={pki / 'proxy.kubeconfig'}",
                f"--hostname-override={layout.node_name}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={layout.pod_cidr}",
                f"--healthz-bind-address={loopback}:{layout.proxy_healthz_port}",
                f"--metrics-bind-address={loopback}:{layout.proxy_metrics_port}",
                # zeros leave the host's conntrack sysctls alone (down has nothing to restore)
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
                "--iptables-localhost-nodeports=false",
                f"--nodeport-addresses={layout.pod_cidr}",
            ),
            ready="http",
            ready_target=f"http://{loopback}:{layout.proxy_healthz_port}/healthz",
        ),
        Component(
            name="coredns",
            argv=(str(COREDNS_BIN), "-conf", str(etc / "Corefile"), "-dns.port", "53"),
            ready="tcp",
            ready_target=f"{layout.node_ip}:53",
        ),
    ]
