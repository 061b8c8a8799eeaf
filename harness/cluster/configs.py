"""The cluster's configuration files, rendered from its layout (pure: text in, text out).

containerd 1.6 (Debian) runs with a private root, state and socket, cgroupfs and
`restrict_oom_score_adj`: root on these machines lacks CAP_SYS_RESOURCE, so runc cannot lower a
container's oom_score_adj and every sandbox would fail to start without it. The CNI is the
bridge plugin on the cluster's own bridge, with routes to the pod and Service ranges only (no
default route: pods have no egress). CoreDNS serves cluster.local and in-addr.arpa and nothing
else: no forwarding, so nothing reaches the machine's resolver.
"""

from __future__ import annotations

import json

from harness.cluster.layout import ClusterLayout


def containerd_toml(layout: ClusterLayout) -> str:
    root = layout.state_dir / "containerd"
    return f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"
[grpc]
  address = "{layout.containerd_socket}"
[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{layout.pause_image}"
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "{layout.run_dir / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.cni_conf_dir}"
"""


def kubelet_yaml(layout: ClusterLayout) -> str:
    pki = layout.pki_dir
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://{layout.containerd_socket}
address: {layout.node_ip}
port: {layout.kubelet_port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {layout.kubelet_healthz_port}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki / "ca.crt"}}}
authorization: {{mode: Webhook}}
tlsCertFile: {pki / "kubelet.crt"}
tlsPrivateKeyFile: {pki / "kubelet.key"}
failSwapOn: false
resolvConf: {layout.etc_dir / "resolv.conf"}
clusterDomain: cluster.local
clusterDNS: ["{layout.node_ip}"]
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}}
nodeStatusReportFrequency: 10s
syncFrequency: 10s
"""


def pod_resolv_conf() -> str:
    """The kubelet merges this into every pod's resolv.conf: no upstream name servers, so a
    pod never asks the machine's resolver (cluster DNS comes from clusterDNS)."""
    return "# stormproof cluster: pods resolve cluster names only\n"


def corefile(layout: ClusterLayout) -> str:
    return f"""cluster.local:53 in-addr.arpa:53 {{
    bind {layout.node_ip}
    errors
    kubernetes cluster.local in-addr.arpa {{
        kubeconfig {layout.pki_dir / "coredns.kubeconfig"} stormproof
        pods insecure
    }}
    cache 30
}}
"""


def cni_conflist(layout: ClusterLayout) -> str:
    network = {
        "cniVersion": "0.4.0",
        "name": "stormproof",
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": False,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [
                        [
                            {
                                "subnet": layout.pod_cidr,
                                "rangeStart": layout.pod_range_start,
                                "gateway": layout.node_ip,
                            }
                        ]
                    ],
                    "routes": [{"dst": layout.service_cidr}],
                    "dataDir": str(layout.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(network, indent=2) + "\n"
