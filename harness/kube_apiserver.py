"""A Kubernetes API server of our own on loopback: etcd and the pinned kube-apiserver
(scripts/build_kubernetes.sh), with a throwaway PKI made by openssl.

It is the real API, not a stand-in: Lease validation, resourceVersion conflicts, RBAC and
admission are Kubernetes' own. The engine's `KubernetesLease` is tested against it. There is no
kubelet and no node, so nothing runs pods here.

    with kube_apiserver(work_dir) as api:
        api.kubeconfig            # a kubeconfig file (admin) for kubectl and the kubernetes client
        api.client()              # the real `kubernetes` ApiClient with the admin credentials
        api.stop(); api.start()   # unreachable, then back on the same port (etcd keeps the objects)
        api.pause(); api.resume() # hung: connections accepted, nothing answered (SIGSTOP)

Everything binds 127.0.0.1. etcd speaks plain HTTP on loopback to the API server only. The admin
credential is a client certificate in group system:masters; keys live in the work directory,
which stays the caller's (0700).
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.errors import StackError
from harness.pki import issue, kubeconfig_text, make_ca, service_account_keys, write_private
from harness.ports import free_ports
from harness.processes import stop_process
from harness.tools import die_with_parent, etcd
from harness.tools import kube_apiserver as kube_apiserver_binary

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
"""A cold API server on a loaded 2-core machine installs its default objects before /readyz."""


@dataclass(frozen=True, kw_only=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public: Path


def make_pki(directory: Path) -> Pki:
    """A CA, the API server's serving certificate (127.0.0.1, localhost), an admin client
    certificate (system:masters) and the service-account signing key pair; EC P-256 throughout,
    valid for a week."""
    ca = make_ca(directory, common_name="stormproof-kubernetes-ca", days=7)
    server_cert, server_key = issue(
        directory,
        "apiserver",
        subject="/CN=kube-apiserver",
        extensions="subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ca=ca,
        days=7,
    )
    admin_cert, admin_key = issue(
        directory,
        "admin",
        subject="/O=system:masters/CN=stormproof-admin",
        extensions="extendedKeyUsage=clientAuth\n",
        ca=ca,
        days=7,
    )
    service_account_key, service_account_public = service_account_keys(directory)
    return Pki(
        ca_cert=ca[0],
        ca_key=ca[1],
        server_cert=server_cert,
        server_key=server_key,
        admin_cert=admin_cert,
        admin_key=admin_key,
        service_account_key=service_account_key,
        service_account_public=service_account_public,
    )


class KubeApiServer:
    """etcd plus kube-apiserver in `work_dir`, on free loopback ports (see the module doc)."""

    def __init__(self, work_dir: Path) -> None:
        self._etcd_binary, self._apiserver_binary = etcd(), kube_apiserver_binary()
        self.work_dir = work_dir
        self.etcd_port, self.etcd_peer_port, self.port = free_ports(3)
        self.url = f"https://{HOST}:{self.port}"
        self.pki = make_pki(work_dir / "pki")
        self.kubeconfig = work_dir / "admin.kubeconfig"
        self._write_kubeconfig()
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []

    # --- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        self._etcd = self._spawn("etcd", self._etcd_argv())
        self._wait(self._etcd_healthy, "etcd", self._etcd)
        self.start()

    def start(self) -> None:
        """Start (or restart) the API server on its port; return once /readyz says ok."""
        if self._apiserver is not None and self._apiserver.poll() is None:
            raise StackError("the API server is already running")
        self._apiserver = self._spawn("kube-apiserver", self._apiserver_argv())
        self._wait(self.ready, "kube-apiserver", self._apiserver)

    def stop(self) -> None:
        """Stop the API server (its port refuses connections); etcd keeps every object."""
        stop_process(self._apiserver, timeout_s=10)
        self._apiserver = None

    def pause(self) -> None:
        """Freeze the API server: the kernel still accepts connections, nothing answers."""
        if self._apiserver is not None:
            self._apiserver.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._apiserver is not None:
            self._apiserver.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.resume()
        stop_process(self._apiserver, timeout_s=10)
        stop_process(self._etcd, timeout_s=10)
        self._apiserver = self._etcd = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    # --- clients ----------------------------------------------------------------------------

    def client(self, *, retries: int = 0) -> Any:
        """The real `kubernetes` ApiClient with the admin credentials; `retries` 0 makes a
        refused call fail at once instead of three times."""
        from kubernetes import client

        configuration = client.Configuration(host=self.url)
        configuration.ssl_ca_cert = str(self.pki.ca_cert)
        configuration.cert_file = str(self.pki.admin_cert)
        configuration.key_file = str(self.pki.admin_key)
        configuration.retries = retries
        return client.ApiClient(configuration)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.url}/readyz", timeout=2, context=self._ssl_context()
            ) as answer:
                return bool(answer.status == 200 and answer.read().strip() == b"ok")
        except (OSError, urllib.error.URLError):
            return False

    # --- internals --------------------------------------------------------------------------

    def _etcd_argv(self) -> list[str]:
        peer = f"http://{HOST}:{self.etcd_peer_port}"
        client_url = f"http://{HOST}:{self.etcd_port}"
        return [
            self._etcd_binary,
            "--name=stormproof",
            f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=stormproof={peer}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        pki = self.pki
        return [
            self._apiserver_binary,
            f"--etcd-servers=http://{HOST}:{self.etcd_port}",
            f"--bind-address={HOST}",
            f"--advertise-address={HOST}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_public}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--profiling=false",
            f"--cert-dir={self.work_dir / 'apiserver-certs'}",
        ]

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.work_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        # The kernel sends the death signal when the spawning *thread* ends, and a restart may
        # come from a worker thread (asyncio.to_thread) that ends long before the server should.
        on_main_thread = threading.current_thread() is threading.main_thread()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if on_main_thread else None,
        )

    def _wait(self, condition: Any, name: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not condition():
            if process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}: {self._tail(name)}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} not ready after {READY_TIMEOUT_S:.0f} s: {self._tail(name)}"
                )
            time.sleep(0.05)

    def _tail(self, name: str) -> str:
        path = self.work_dir / f"{name}.log"
        return path.read_text(errors="replace")[-800:] if path.exists() else "(no log)"

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://{HOST}:{self.etcd_port}/health", timeout=2
            ) as answer:
                return b'"true"' in answer.read()
        except (OSError, urllib.error.URLError):
            return False

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def _write_kubeconfig(self) -> None:
        pki = self.pki
        write_private(
            self.kubeconfig,
            kubeconfig_text(
                server=self.url,
                ca_cert=pki.ca_cert,
                client_cert=pki.admin_cert,
                client_key=pki.admin_key,
                name="stormproof",
            ),
        )


@contextmanager
def kube_apiserver(work_dir: Path) -> Iterator[KubeApiServer]:
    """A running KubeApiServer in `work_dir`; both processes stopped on exit."""
    api = KubeApiServer(work_dir)
    try:
        api.open()
        yield api
    finally:
        api.close()
