"""The changes the cluster makes to the host, each recorded in a ledger before it is made, and
undone by `down` from that ledger (and only what it lists):

- sysctls: ip_forward=1 for Service routing; the kubelet itself rewrites a few kernel tunables
  (overcommit, panic) at start, so their values before `up` are saved and restored;
- the bridge that carries the node address and the pods;
- a raw-table chain that drops pod traffic to anything but the pod and Service ranges, and
  outside traffic to the pods: pods have no egress, and nothing beyond this machine reaches them;
- what the kubelet and kube-proxy leave behind: iptables chains, cgroups, mounts under the
  state directory, and the empty directories containerd 1.6 hard-codes under /run/containerd.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

from harness.cluster.layout import ClusterLayout
from harness.errors import StackError

SAVED_SYSCTLS = (
    "net.ipv4.ip_forward",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
NODE_LOCK = Path("/run/stormproof-cluster.node")
"""Names the state directory of the cluster that owns this machine's node: kube-proxy's chains,
the kubelet's cgroups and firewall chains are machine-wide, so one node runs per machine."""
CONTAINERD_RUN_DIR = Path("/run/containerd")
"""containerd 1.6 puts shim sockets and fifos here whatever its config says."""
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise StackError(f"{argv[0]} not found: run scripts/bootstrap.sh cluster") from None
    if check and result.returncode != 0:
        raise StackError(f"{' '.join(argv)} failed: {result.stderr.strip()[-300:]}")
    return result


def _succeeds(*argv: str) -> bool:
    return run(*argv, check=False).returncode == 0


def _foreign_node() -> bool:
    return any(Path("/sys/fs/cgroup").glob("*/kubepods")) or _succeeds(
        "iptables", "-t", "nat", "-S", "KUBE-SERVICES"
    )


def guard_rules(layout: ClusterLayout) -> list[list[str]]:
    """The guard chain's rules, in order (pure)."""
    chain, bridge = layout.guard_chain, layout.bridge
    return [
        ["-A", chain, "-i", bridge, "-d", layout.pod_cidr, "-j", "RETURN"],
        ["-A", chain, "-i", bridge, "-d", layout.service_cidr, "-j", "RETURN"],
        ["-A", chain, "-i", bridge, "-j", "DROP"],
        ["-A", chain, "!", "-i", "lo", "-d", layout.pod_cidr, "-j", "DROP"],
    ]


class HostChanges:
    """The ledger (`host-changes.json` in the state directory) and the changes themselves."""

    def __init__(self, layout: ClusterLayout) -> None:
        self.layout = layout
        self.path = layout.host_changes_file

    # --- ledger -----------------------------------------------------------------------------

    def ledger(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            loaded: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise StackError(f"unreadable host-change ledger {self.path}: {exc}") from None
        return loaded

    def _record(self, key: str, value: Any) -> None:
        ledger = self.ledger()
        ledger[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(ledger, indent=2, sort_keys=True) + "\n")

    # --- up ---------------------------------------------------------------------------------

    def claim_node(self) -> None:
        """Refuse to start beside another cluster (ours under another state directory, or any
        kubelet: its /kubepods cgroups or kube-proxy's chains are there)."""
        mine = str(self.layout.state_dir.resolve())
        if NODE_LOCK.exists():
            owner = NODE_LOCK.read_text().strip()
            if owner != mine and Path(owner, "host-changes.json").exists():
                raise StackError(
                    f"another stormproof cluster runs on this machine ({owner}): stop it first"
                    f" with `stormproof cluster down --state-dir {owner}`"
                )
        elif not self.ledger() and _foreign_node():
            raise StackError(
                "a Kubernetes node already runs on this machine (/kubepods cgroups or"
                " kube-proxy chains exist): one node per machine"
            )
        NODE_LOCK.write_text(mine + "\n")

    def apply(self) -> None:
        layout = self.layout
        self.claim_node()
        if "sysctls" not in self.ledger():
            self._record("sysctls", {k: self._sysctl(k) for k in SAVED_SYSCTLS})
            self._record("run_containerd_existed", CONTAINERD_RUN_DIR.exists())
        if run("ip", "link", "show", layout.bridge, check=False).returncode != 0:
            self._record("bridge", layout.bridge)
            run("ip", "link", "add", layout.bridge, "type", "bridge")
            prefix = layout.pod_cidr.split("/")[1]
            run("ip", "addr", "add", f"{layout.node_ip}/{prefix}", "dev", layout.bridge)
            run("ip", "link", "set", layout.bridge, "up")
        if run("iptables", "-t", "raw", "-S", layout.guard_chain, check=False).returncode != 0:
            self._record("guard_chain", layout.guard_chain)
            run("iptables", "-t", "raw", "-N", layout.guard_chain)
            for rule in guard_rules(layout):
                run("iptables", "-t", "raw", *rule)
            run("iptables", "-t", "raw", "-I", "PREROUTING", "-j", layout.guard_chain)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1")

    # --- down -------------------------------------------------------------------------------

    def undo(self) -> list[str]:
        """Undo what the ledger lists, plus what the kubelet and kube-proxy leave; return what
        was done, one line each."""
        layout, ledger, done = self.layout, self.ledger(), []
        done += self._unmount_under(layout.state_dir)
        done += self._remove_cgroups()
        if (
            ledger.get("bridge")
            and run("ip", "link", "show", layout.bridge, check=False).returncode == 0
        ):
            run("ip", "link", "del", layout.bridge)
            done.append(f"deleted bridge {layout.bridge}")
        if ledger.get("guard_chain"):
            while _succeeds("iptables", "-t", "raw", "-D", "PREROUTING", "-j", layout.guard_chain):
                pass
            run("iptables", "-t", "raw", "-F", layout.guard_chain, check=False)
            if run("iptables", "-t", "raw", "-X", layout.guard_chain, check=False).returncode == 0:
                done.append(f"removed iptables chain raw/{layout.guard_chain}")
        done += self._remove_kubelet_chains()
        for key, value in ledger.get("sysctls", {}).items():
            if self._sysctl(key) != value:
                run("sysctl", "-qw", f"{key}={value}", check=False)
                done.append(f"restored {key}={value}")
        self._remove_empty_dirs(CONTAINERD_RUN_DIR)
        run_dir = CONTAINERD_RUN_DIR
        if not ledger.get("run_containerd_existed", True) and run_dir.is_dir():
            with contextlib.suppress(OSError):  # not empty: something else uses it now
                run_dir.rmdir()
        self.path.unlink(missing_ok=True)
        if NODE_LOCK.exists() and NODE_LOCK.read_text().strip() == str(layout.state_dir.resolve()):
            NODE_LOCK.unlink()
        return done

    @staticmethod
    def _sysctl(key: str) -> str:
        return run("sysctl", "-n", key).stdout.strip()

    @staticmethod
    def _unmount_under(root: Path) -> list[str]:
        prefix = str(root.resolve())
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                mounts.append(point)
        for point in sorted(mounts, reverse=True):  # deepest first
            run("umount", "-l", point, check=False)
        return [f"unmounted {len(mounts)} mounts under {prefix}"] if mounts else []

    @staticmethod
    def _remove_cgroups() -> list[str]:
        removed = 0
        for top in Path("/sys/fs/cgroup").glob("*/kubepods"):
            for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    try:
                        directory.rmdir()
                        removed += 1
                    except OSError:
                        pass
            try:
                top.rmdir()
                removed += 1
            except OSError:
                pass
        return [f"removed {removed} kubelet cgroups"] if removed else []

    @staticmethod
    def _remove_kubelet_chains() -> list[str]:
        done = []
        for tool in ("iptables", "ip6tables"):
            for hook in ("INPUT", "OUTPUT"):
                while _succeeds(tool, "-t", "filter", "-D", hook, "-j", "KUBE-FIREWALL"):
                    pass
            for table in ("mangle", "nat", "filter"):
                for chain in KUBELET_CHAINS:
                    if run(tool, "-t", table, "-F", chain, check=False).returncode == 0:
                        run(tool, "-t", table, "-X", chain, check=False)
                        done.append(f"removed {tool} chain {table}/{chain}")
        return done

    @staticmethod
    def _remove_empty_dirs(root: Path) -> None:
        if not root.is_dir():
            return
        for directory in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
