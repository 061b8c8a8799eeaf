"""`stormproof cluster up|down|status`: one Kubernetes node on this machine, from the pinned
binaries under .tools and Debian's containerd, runc and CNI plugins (docs/kubernetes.md).

`up` is idempotent: a finished step is skipped and a component that runs is left running, so a
second `up` on a running cluster returns in about a second. `down` stops every component, removes
the pods' containers, and undoes the host changes of the ledger (harness.cluster.host);
`down --purge` also deletes the cluster's state (etcd, images, PKI).
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.cluster import configs, objects
from harness.cluster.components import Component, components
from harness.cluster.host import HostChanges
from harness.cluster.kubectl import kubectl
from harness.cluster.layout import ClusterLayout
from harness.cluster.pki import ensure_pki
from harness.cluster.processes import Processes
from harness.errors import StackError, ToolMissingError
from harness.tools import etcd

READY_TIMEOUT_S = 180.0
"""A cold API server on a loaded 2-core machine takes tens of seconds to install its objects."""

LOCAL_TAG = "local"
"""The tag the node also gives each imported image (deploy/kubernetes/overlays/local)."""

_DEBIAN = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
}


def _log(message: str) -> None:
    print(f"stormproof cluster: {message}", flush=True)


class Cluster:
    def __init__(self, layout: ClusterLayout | None = None) -> None:
        self.layout = layout or ClusterLayout()
        self.processes = Processes(self.layout)
        self.host = HostChanges(self.layout)

    # --- up ---------------------------------------------------------------------------------

    def up(self, *, images: Sequence[Path] = ()) -> dict[str, Any]:
        """Start (or complete) the cluster and import `images` (OCI archives) into its
        containerd; return its status."""
        started = time.monotonic()
        layout = self.layout
        parts = components(layout, etcd_binary=self._etcd())
        self._check_prerequisites(parts)
        for directory in (layout.run_dir, layout.log_dir, layout.etc_dir, layout.cni_conf_dir):
            directory.mkdir(parents=True, exist_ok=True)
        layout.state_dir.chmod(0o700)
        ensure_pki(layout)
        self._write_configs()
        self.host.apply()
        for part in parts:
            self.processes.start(part.name, part.argv)
            self._wait_ready(part)
            if part.name == "containerd":
                self.import_images(images)
            if part.name == "kube-apiserver":
                self._apply_objects()
        self._free_released_volumes()
        _log(f"up in {time.monotonic() - started:.1f} s; KUBECONFIG={layout.admin_kubeconfig}")
        return self.status()

    def import_images(self, archives: Sequence[Path], *, alias: bool = True) -> None:
        """Import each archive into the node's containerd (namespace k8s.io, where the kubelet
        looks), unless an image of the same reference and digest is already there, and name it
        also `<repository>:local` (LOCAL_TAG) unless not `alias`: the local overlay runs
        whatever was built last without knowing the versions apt resolved."""
        present = self._stored_images()
        for archive in archives:
            for ref, digest in _archive_names(archive).items():
                local = f"{ref.rpartition(':')[0]}:{LOCAL_TAG}"
                if present.get(ref) != digest:
                    self._ctr("images", "import", "--no-unpack", str(archive), timeout_s=600)
                    present[ref] = digest
                if alias and present.get(local) != digest:
                    self._ctr("images", "tag", "--force", ref, local)
                    present[local] = digest

    def kill_container(self, container_id: str, *, signal: str = "SIGKILL") -> None:
        """Signal a container's init process from the host, as a crash or the OOM killer would
        (from inside, its PID 1 ignores SIGKILL). `container_id` as a pod's status gives it,
        `containerd://<id>` or the bare id."""
        self._ctr("tasks", "kill", "-s", signal, container_id.removeprefix("containerd://"))

    def _stored_images(self) -> dict[str, str]:
        out = self._ctr("images", "ls")
        return {f[0]: f[2] for f in (line.split() for line in out.splitlines()[1:]) if len(f) > 2}

    def _ctr(self, *args: str, timeout_s: float = 60, check: bool = True) -> str:
        socket = str(self.layout.containerd_socket)
        result = subprocess.run(
            ["ctr", "-a", socket, "-n", "k8s.io", *args],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise StackError(f"ctr {' '.join(args)}: {result.stderr.strip()[-300:]}")
        return result.stdout

    def _etcd(self) -> str:
        return etcd()

    def _check_prerequisites(self, parts: list[Component]) -> None:
        for name, package in _DEBIAN.items():
            if shutil.which(name) is None:
                raise ToolMissingError(
                    f"{name} not found: run scripts/bootstrap.sh cluster (Debian package {package})"
                )
        if not Path("/usr/lib/cni/bridge").is_file():
            raise ToolMissingError(
                "CNI plugins not found in /usr/lib/cni: run scripts/bootstrap.sh cluster"
                " (Debian package containernetworking-plugins)"
            )
        for part in parts:
            binary = Path(part.argv[0])
            if binary.is_absolute() and not binary.is_file():
                raise ToolMissingError(
                    f"{binary.name} not found at {binary}: run scripts/bootstrap.sh cluster"
                )

    def _write_configs(self) -> None:
        layout = self.layout
        files = {
            layout.etc_dir / "containerd.toml": configs.containerd_toml(layout),
            layout.etc_dir / "kubelet.yaml": configs.kubelet_yaml(layout),
            layout.etc_dir / "resolv.conf": configs.pod_resolv_conf(),
            layout.etc_dir / "Corefile": configs.corefile(layout),
            layout.cni_conf_dir / "10-stormproof.conflist": configs.cni_conflist(layout),
        }
        for path, text in files.items():
            if not path.exists() or path.read_text() != text:
                path.write_text(text)

    def _apply_objects(self) -> None:
        layout = self.layout
        layout.volumes_dir.mkdir(parents=True, exist_ok=True)
        for index in range(layout.volumes):
            path = Path(objects.volume_path(layout, index))
            path.mkdir(exist_ok=True)
            path.chmod(0o777)  # pods run as their own non-root users; hostPath cannot chown
        manifest = objects.coredns_rbac() + "---\n" + objects.storage(layout)
        kubectl(layout.admin_kubeconfig, "apply", "-f", "-", stdin=manifest)

    def _free_released_volumes(self) -> None:
        """A volume whose claim was deleted is Released and never bound again: wipe it and
        make it Available (what a provisioner's delete would do)."""
        layout = self.layout
        answer = kubectl(layout.admin_kubeconfig, "get", "pv", "-o", "json")
        for volume in json.loads(answer.stdout)["items"]:
            name = volume["metadata"]["name"]
            if volume.get("status", {}).get("phase") != "Released":
                continue
            if not name.startswith(f"{layout.storage_class}-"):
                continue
            path = Path(volume["spec"]["hostPath"]["path"])
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            kubectl(
                layout.admin_kubeconfig, "patch", "pv", name, "--type=json",
                '-p=[{"op": "remove", "path": "/spec/claimRef"}]',
            )  # fmt: skip

    def free_released_volumes(self) -> None:
        self._free_released_volumes()

    # --- readiness --------------------------------------------------------------------------

    def _wait_ready(self, part: Component) -> None:
        check = self._ready_check(part)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not check():
            if self.processes.exited(part.name):
                raise StackError(f"{part.name} exited at start: {self.processes.tail(part.name)}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{part.name} not ready after {READY_TIMEOUT_S:.0f} s: "
                    f"{self.processes.tail(part.name)}"
                )
            time.sleep(0.1)

    def _ready_check(self, part: Component) -> Callable[[], bool]:
        layout = self.layout
        match part.ready:
            case "containerd":
                return lambda: _ok(["ctr", "-a", str(layout.containerd_socket), "version"])
            case "etcd":
                return lambda: b'"true"' in _http_get(part.ready_target)
            case "apiserver":
                return lambda: (
                    _http_get(f"{layout.apiserver_url}/readyz", context=self._admin_tls()).strip()
                    == b"ok"
                )
            case "https":
                return lambda: _http_get(part.ready_target, context=_unverified()).strip() == b"ok"
            case "http":
                return lambda: bool(_http_get(part.ready_target))
            case "node":
                return self.node_ready
            case "tcp":
                host, port = part.ready_target.rsplit(":", 1)
                return lambda: _connects(host, int(port))
        raise AssertionError(part.ready)

    def node_ready(self) -> bool:
        try:
            raw = _http_get(
                f"{self.layout.apiserver_url}/api/v1/nodes/{self.layout.node_name}",
                context=self._admin_tls(),
            )
            conditions = json.loads(raw)["status"].get("conditions", [])
        except (ValueError, KeyError):
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _admin_tls(self) -> ssl.SSLContext:
        pki = self.layout.pki_dir
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        layout = self.layout
        parts = components(layout, etcd_binary="etcd")
        running = {part.name: self.processes.pid(part.name) for part in parts}
        api_ready = running["kube-apiserver"] is not None and self._api_ready()
        return {
            "state_dir": str(layout.state_dir),
            "kubeconfig": str(layout.admin_kubeconfig),
            "api": layout.apiserver_url,
            "api_ready": api_ready,
            "node_ready": api_ready and self.node_ready(),
            "components": {
                name: {"pid": pid, "running": pid is not None} for name, pid in running.items()
            },
            "host_changes": self.host.ledger(),
        }

    def _api_ready(self) -> bool:
        try:
            return (
                _http_get(f"{self.layout.apiserver_url}/readyz", context=self._admin_tls()).strip()
                == b"ok"
            )
        except (OSError, ssl.SSLError):
            return False

    # --- down -------------------------------------------------------------------------------

    def down(self, *, purge: bool = False) -> list[str]:
        layout, done = self.layout, []
        parts = components(layout, etcd_binary="etcd")
        by_name = {part.name: part for part in parts}
        for name in ("coredns", "kube-proxy"):
            if self.processes.stop(name):
                done.append(f"stopped {name}")
        if by_name["kube-proxy"].argv[0] and Path(by_name["kube-proxy"].argv[0]).is_file():
            subprocess.run(
                [by_name["kube-proxy"].argv[0], "--cleanup"],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        if self.processes.stop("kubelet"):
            done.append("stopped kubelet")
        done += self._remove_containers()
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if self.processes.stop(name):
                done.append(f"stopped {name}")
        if self.processes.stop("containerd"):
            done.append("stopped containerd")
        done += self._kill_stray_shims()
        done += self.host.undo()
        if purge and layout.state_dir.exists():
            shutil.rmtree(layout.state_dir)
            done.append(f"deleted {layout.state_dir}")
        return done

    def _remove_containers(self) -> list[str]:
        """Kill the pods' containers while containerd still runs (their shims exit with them)."""
        if self.processes.pid("containerd") is None:
            return []
        tasks = _lines(self._ctr("tasks", "ls", "-q", check=False))
        for task in tasks:
            self._ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        for task in tasks:
            self._ctr("tasks", "delete", "-f", task, check=False)
        containers = _lines(self._ctr("containers", "ls", "-q", check=False))
        for container in containers:
            self._ctr("containers", "delete", container, check=False)
        return [f"removed {len(containers)} containers"] if containers else []

    def _kill_stray_shims(self) -> list[str]:
        socket_path = str(self.layout.containerd_socket).encode()
        killed = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and socket_path in cmdline:
                subprocess.run(["kill", "-9", proc.name], capture_output=True, check=False)
                killed += 1
        return [f"killed {killed} stray shims"] if killed else []


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _ok(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0


def _http_get(url: str, *, context: ssl.SSLContext | None = None) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as answer:
            return bytes(answer.read())
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return b""


def _unverified() -> ssl.SSLContext:
    """Component health ports serve self-signed certificates made at their start."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _archive_names(archive: Path) -> dict[str, str]:
    """reference -> manifest digest of each image an OCI archive's index names."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("index.json")
            index = json.loads(member.read()) if member else {}
    except (OSError, tarfile.TarError, KeyError, json.JSONDecodeError) as exc:
        raise StackError(f"{archive} is not a readable OCI archive: {exc}") from exc
    names = {}
    for manifest in index.get("manifests", []):
        ref = manifest.get("annotations", {}).get("org.opencontainers.image.ref.name")
        if ref:
            names[ref] = manifest.get("digest", "")
    return names
