"""The cluster's PKI: a CA valid for a year and one client certificate per component, each
named as Kubernetes' RBAC expects (system:kube-controller-manager, system:node:<node> ...).
Made once; `down --purge` deletes it."""

from __future__ import annotations

from harness.cluster.layout import ClusterLayout
from harness.pki import issue, kubeconfig_text, make_ca, service_account_keys, write_private

DAYS = 365
COREDNS_USER = "stormproof:coredns"
CLIENT = "extendedKeyUsage=clientAuth\n"

# name -> (subject, extra extensions); kubeconfigs are written for the names in KUBECONFIGS
_CLIENTS = {
    "admin": "/O=system:masters/CN=stormproof-admin",
    "apiserver-kubelet-client": "/O=system:masters/CN=kube-apiserver-kubelet-client",
    "controller-manager": "/CN=system:kube-controller-manager",
    "scheduler": "/CN=system:kube-scheduler",
    "proxy": "/CN=system:kube-proxy",
    "coredns": f"/CN={COREDNS_USER}",
}
KUBECONFIGS = ("controller-manager", "scheduler", "kubelet", "proxy", "coredns", "admin")


def ensure_pki(layout: ClusterLayout) -> None:
    directory = layout.pki_dir
    if (directory / "ca.crt").exists() and layout.admin_kubeconfig.exists():
        return
    ca = make_ca(directory, common_name="stormproof-cluster-ca", days=DAYS)
    sans = ",".join(
        [
            "IP:127.0.0.1",
            f"IP:{layout.node_ip}",
            f"IP:{layout.api_service_ip}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    issue(
        directory,
        "apiserver",
        subject="/CN=kube-apiserver",
        extensions=f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n",
        ca=ca,
        days=DAYS,
    )
    for name, subject in _CLIENTS.items():
        issue(directory, name, subject=subject, extensions=CLIENT, ca=ca, days=DAYS)
    issue(
        directory,
        "kubelet",
        subject=f"/O=system:nodes/CN=system:node:{layout.node_name}",
        extensions=(
            f"subjectAltName=IP:{layout.node_ip},DNS:{layout.node_name}\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
        ),
        ca=ca,
        days=DAYS,
    )
    service_account_keys(directory)
    for name in KUBECONFIGS:  # admin last: its presence marks a finished PKI
        write_private(
            directory / f"{name}.kubeconfig",
            kubeconfig_text(
                server=layout.apiserver_url,
                ca_cert=directory / "ca.crt",
                client_cert=directory / f"{name}.crt",
                client_key=directory / f"{name}.key",
                name="stormproof",
            ),
        )
