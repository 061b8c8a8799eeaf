"""The deployment on a real Kubernetes node, as a user gets it: `stormproof cluster up` gives a
Ready node of the pinned version; the local overlay, on the project's own images, rolls out and
trades against the staging venue; Services answer from the host and by name; a pod reaches the
API server and nothing beyond the cluster; a killed execution leader is replaced by the standby
through the real Lease, and trading resumes; a deleted Redis or feed pod is replaced and trading
resumes; the k8s smoke game day passes, and fails on a mutant whose standby never takes over;
`down` leaves the host as it found it.

Ground truth only: who leads is read from the API server's Lease, what was traded from the
simulator's own record (its control API), never from the engine. One cluster for the module
(one node per machine), in a temporary state directory. Needs root, the binaries of
`scripts/bootstrap.sh cluster` and the images of `stormproof image build` (built here when
missing or stale). `make test` runs it alone after every other test, but for the slow figures
(marker `figures`); `make test-cluster` runs all of it.
"""

from __future__ import annotations

import functools
import json
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from harness.cluster.cluster import Cluster
from harness.cluster.host import SAVED_SYSCTLS
from harness.cluster.images import DEPLOYMENT_IMAGES, NODE_IMAGES, image_archives
from harness.cluster.kubectl import kubectl
from harness.cluster.layout import ClusterLayout
from harness.deploy.apply import Target, apply
from harness.deploy.manifests import deployment_copy
from harness.errors import StackError
from harness.gameday.mutants import Mutant, make_copy
from harness.image.build import DEFAULT_OUT, build_images
from harness.image.wheels import PROJECT_FILES, SOURCE_IGNORED
from harness.runfile import read_env_file
from harness.tools import PROJECT_ROOT
from tests.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

NAMESPACE = "stormproof"
LEASE = "stormproof-execution"
LEASE_TTL_S = 5.0
"""deploy/kubernetes/base/engine.toml, lease.ttl_ms."""
MUTANT_TAG = "mutant-standby-never-takes-over"
MEASURED: dict[str, float] = {}
"""Figures of this run, printed at the end of the module (docs/kubernetes.md quotes them)."""


def _sysctls() -> dict[str, str]:
    return {
        key: subprocess.run(["sysctl", "-n", key], capture_output=True, text=True).stdout.strip()
        for key in SAVED_SYSCTLS
    }


def _iptables_rules() -> str:
    return "".join(
        subprocess.run([tool, "-S", "-t", table], capture_output=True, text=True).stdout
        for tool in ("iptables", "ip6tables")
        for table in ("raw", "nat", "filter", "mangle")
    )


@dataclass(frozen=True)
class Deployed:
    cluster: Cluster
    overlay: Path
    rollout_s: dict[str, float]
    control_token: str

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return kubectl(self.cluster.layout.admin_kubeconfig, *args, stdin=stdin).stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("-n", NAMESPACE, "get", *args, "-o", "json"))

    def service_ip(self, name: str) -> str:
        return str(self.get("service", name)["spec"]["clusterIP"])

    @functools.cached_property
    def venue_control_url(self) -> str:
        """Asked once: the Service's ClusterIP outlives every pod the tests replace."""
        return f"http://{self.service_ip('venue')}:9081"

    def venue_orders(self, since_ms: int) -> list[dict[str, Any]]:
        """The simulator's accepted orders since `since_ms` (its own clock, wall ms)."""
        url = f"{self.venue_control_url}/truth/orders?since_ms={since_ms}"
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.control_token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return list(json.load(response)["orders"])

    def first_order_after(self, since_ms: int, *, timeout_s: float) -> dict[str, Any]:
        def first() -> dict[str, Any] | None:
            orders = [o for o in self.venue_orders(since_ms) if o["time_ms"] >= since_ms]
            return min(orders, key=lambda o: o["time_ms"]) if orders else None

        found = wait_until(
            first,
            timeout_s=timeout_s,
            what=f"an order at the venue after {since_ms}",
            interval_s=0.1,
        )
        return cast(dict[str, Any], found)

    def lease_holder(self) -> str:
        return str(self.get("lease", LEASE)["spec"].get("holderIdentity", ""))

    def pods(self, app: str) -> list[dict[str, Any]]:
        """The workload's pods, those being deleted left out."""
        items = self.get("pods", "-l", f"app.kubernetes.io/name={app}")["items"]
        return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]

    def set_execution_image(self, image: str) -> None:
        self.kubectl(
            "-n", NAMESPACE, "set", "image", "deployment/execution", f"execution={image}"
        )  # fmt: skip
        self.kubectl(
            "-n", NAMESPACE, "rollout", "status", "deployment/execution", "--timeout=300s"
        )  # fmt: skip

    def leader_pod(self) -> str | None:
        holder = self.lease_holder()
        names = [p["metadata"]["name"] for p in self.pods("execution")]
        owners = [name for name in names if holder.startswith(f"execution-{name}-")]
        return owners[0] if owners else None

    def ready(self, pod: str) -> bool:
        conditions = self.get("pod", pod)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def host_before() -> dict[str, object]:
    return {"sysctls": _sysctls(), "iptables": _iptables_rules()}


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, host_before: dict[str, object]
) -> Iterator[Cluster]:
    archives = image_archives([*NODE_IMAGES, *DEPLOYMENT_IMAGES])
    cluster = Cluster(ClusterLayout(state_dir=tmp_path_factory.mktemp("cluster")))
    try:
        started = time.monotonic()
        cluster.up(images=archives)
        MEASURED["cluster_up_s"] = time.monotonic() - started
        yield cluster
    finally:
        cluster.down(purge=True)
        print(f"\nstormproof cluster e2e measurements: {json.dumps(MEASURED, sort_keys=True)}")
    # `down` undid everything `up` and the node did to the host
    assert _sysctls() == host_before["sysctls"]
    assert _iptables_rules() == host_before["iptables"]


@pytest.fixture(scope="module")
def deployed(cluster: Cluster) -> Iterator[Deployed]:
    with deployment_copy() as copy:
        overlay = copy / "overlays" / "local"
        rollout_s = apply(overlay, Target(kubeconfig=cluster.layout.admin_kubeconfig))
        token = read_env_file(overlay / "secrets" / "sim.env")["STORMPROOF_SIM_CONTROL_TOKEN"]
        yield Deployed(cluster=cluster, overlay=overlay, rollout_s=rollout_s, control_token=token)


def _skip_name(message: bytes, at: int) -> int:
    """The offset after a name: labels up to the root, or up to a compression pointer."""
    while message[at]:
        if message[at] & 0xC0 == 0xC0:
            return at + 2
        at += 1 + message[at]
    return at + 1


def _dns_a(server: str, name: str) -> list[str]:
    """One A query over UDP, answered by CoreDNS on the node address."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", 0x5350, 0x0100, 1, 0, 0, 0) + question + b"\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(packet, (server, 53))
        answer = udp.recv(4096)
    answers = struct.unpack(">H", answer[6:8])[0]
    at = 12 + len(question) + 4
    found = []
    for _ in range(answers):
        at = _skip_name(answer, at)
        kind, _, _, length = struct.unpack(">HHIH", answer[at : at + 10])
        at += 10
        if kind == 1:
            found.append(socket.inet_ntoa(answer[at : at + length]))
        at += length
    return found


# --- the node ------------------------------------------------------------------------------------


def test_up_gives_a_ready_node_of_the_pinned_version(cluster: Cluster) -> None:
    out = kubectl(cluster.layout.admin_kubeconfig, "get", "node", "-o", "json").stdout
    (node,) = json.loads(out)["items"]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.4"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == cluster.layout.node_ip
    status = cluster.status()
    assert status["node_ready"] and all(c["running"] for c in status["components"].values())


def test_a_second_up_keeps_every_running_component(cluster: Cluster) -> None:
    before = {n: c["pid"] for n, c in cluster.status()["components"].items()}
    cluster.up()
    after = {n: c["pid"] for n, c in cluster.status()["components"].items()}
    assert after == before


# --- the deployment ------------------------------------------------------------------------------


def test_the_local_overlay_rolls_out_and_trades(deployed: Deployed) -> None:
    assert set(deployed.rollout_s) == {
        "Deployment/execution",
        "Deployment/toxiproxy",
        "Deployment/venue",
        "StatefulSet/feed",
        "StatefulSet/postgres",
        "StatefulSet/redis",
        "StatefulSet/risk",
        "StatefulSet/strategy",
    }
    MEASURED["rollout_all_s"] = max(deployed.rollout_s.values())
    since_ms = time.time_ns() // 1_000_000
    order = deployed.first_order_after(since_ms, timeout_s=120)
    assert order["symbol"] == "BTCUSDT"
    assert deployed.leader_pod() is not None, deployed.lease_holder()


def test_services_answer_from_the_host_and_by_name(deployed: Deployed) -> None:
    venue_ip = deployed.service_ip("venue")
    name = f"venue.{NAMESPACE}.svc.cluster.local"
    assert _dns_a(deployed.cluster.layout.node_ip, name) == [venue_ip]
    with urllib.request.urlopen(f"http://{venue_ip}:9081/healthz", timeout=5) as response:
        assert response.status == 200


def test_a_pod_reaches_the_api_server_and_nothing_beyond_the_cluster(deployed: Deployed) -> None:
    pod = deployed.pods("execution")[0]["metadata"]["name"]

    def connect_from_pod(host: str, port: int) -> str:
        script = (
            "import socket\ntry:\n"
            f" socket.create_connection(('{host}', {port}), 3); print('open')\n"
            "except OSError as e:\n print(e.strerror)"
        )
        return deployed.kubectl("-n", NAMESPACE, "exec", pod, "--", "python", "-c", script)

    assert connect_from_pod(deployed.cluster.layout.api_service_ip, 443).strip() == "open"
    # TEST-NET-1 (RFC 5737): no route out of the pod, so nothing is even sent
    assert connect_from_pod("192.0.2.1", 80).strip() == "Network is unreachable"


def kill_the_leader(deployed: Deployed) -> dict[str, float]:
    """SIGKILL the execution leader's container from the host. Another instance must hold the
    Lease within the TTL and a renewal, and trade; it keeps the Lease once the killed container
    is back. The other pod usually wins; the killed pod's restarted container (a new instance,
    restarted by the kubelet at once) may win the race at expiry, which is a failover too.
    Returns the figures (seconds from the kill)."""
    leader = str(wait_until(deployed.leader_pod, timeout_s=30, what="a leader pod"))
    (standby,) = [
        p["metadata"]["name"] for p in deployed.pods("execution") if p["metadata"]["name"] != leader
    ]
    wait_until(lambda: deployed.ready(standby), timeout_s=60, what="the standby ready")
    killed_holder = deployed.lease_holder()
    container_id = deployed.get("pod", leader)["status"]["containerStatuses"][0]["containerID"]
    killed_ms = time.time_ns() // 1_000_000
    deployed.cluster.kill_container(container_id)
    new_holder = str(
        wait_until(
            lambda: (holder := deployed.lease_holder()) not in ("", killed_holder) and holder,
            timeout_s=LEASE_TTL_S + 20,
            what="another instance holding the Lease",
        )
    )
    took_over_ms = time.time_ns() // 1_000_000
    first = deployed.first_order_after(took_over_ms, timeout_s=30)
    figures = {
        "leader_kill_to_lease_s": (took_over_ms - killed_ms) / 1000,
        "leader_kill_to_first_order_s": (first["time_ms"] - killed_ms) / 1000,
        "leader_kill_won_by_the_other_pod": float(new_holder.startswith(f"execution-{standby}-")),
    }
    # the Lease can only move once it expired: the TTL, a renewal interval, a poll
    assert figures["leader_kill_to_lease_s"] <= LEASE_TTL_S + 1.0, figures
    # the killed pod's container restarts; leadership does not move again
    wait_until(
        lambda: deployed.get("pod", leader)["status"]["containerStatuses"][0]["restartCount"] >= 1,
        timeout_s=60,
        what="the killed container restarted",
    )
    assert deployed.lease_holder() == new_holder
    # never two writers: no client order id reached the venue twice
    ids = [o["client_order_id"] for o in deployed.venue_orders(killed_ms - 10_000)]
    assert len(ids) == len(set(ids))
    return figures


def test_a_killed_leader_is_replaced_and_the_new_leader_trades(deployed: Deployed) -> None:
    MEASURED.update(kill_the_leader(deployed))


@pytest.mark.figures
@pytest.mark.parametrize("workload", ["redis", "feed"])
def test_a_deleted_pod_is_replaced_and_trading_resumes(deployed: Deployed, workload: str) -> None:
    pod = f"{workload}-0"
    uid = deployed.get("pod", pod)["metadata"]["uid"]
    deleted = time.monotonic()
    deleted_ms = time.time_ns() // 1_000_000
    deployed.kubectl("-n", NAMESPACE, "delete", "pod", pod, "--wait=false")

    def replaced_and_ready() -> bool:
        try:
            status = deployed.get("pod", pod)
        except StackError:  # between the old pod's removal and the new one's creation
            return False
        return status["metadata"]["uid"] != uid and deployed.ready(pod)

    wait_until(replaced_and_ready, timeout_s=180, what=f"{pod} replaced and Ready", interval_s=0.25)
    MEASURED[f"{workload}_delete_to_ready_s"] = time.monotonic() - deleted
    ready_ms = time.time_ns() // 1_000_000
    # after a Redis restart every engine service has exited and waits out the kubelet's
    # crash-loop backoff (up to 5 min): docs/kubernetes.md, "Measured"
    first = deployed.first_order_after(ready_ms, timeout_s=300)
    MEASURED[f"{workload}_delete_to_trading_s"] = (first["time_ms"] - deleted_ms) / 1000


# --- Chaos Toolkit experiments against the deployment --------------------------------------------


def k8s_game_day(deployed: Deployed, out: Path, *, only: set[str] | None = None) -> dict[str, Any]:
    """`gamedays/k8s-smoke.yaml` against the cluster, as `stormproof gameday run --target k8s`
    runs it, once every workload has rolled out again after the tests before; the report."""
    from harness.gameday.k8s_link import KubeTarget
    from harness.gameday.k8s_run import run_k8s_gameday

    for workload in deployed.rollout_s:
        deployed.kubectl(
            "-n", NAMESPACE, "rollout", "status", workload.lower(), "--timeout=300s"
        )  # fmt: skip
    return run_k8s_gameday(
        PROJECT_ROOT / "gamedays" / "k8s-smoke.yaml",
        out,
        target=KubeTarget(kubeconfig=deployed.cluster.layout.admin_kubeconfig),
        progress=lambda line: print(line, flush=True),
        only=only,
    )


def test_the_k8s_smoke_game_day_passes_with_three_reports(
    deployed: Deployed, tmp_path: Path
) -> None:
    report = k8s_game_day(deployed, tmp_path)
    assert report["verdict"] in ("pass", "warn"), report["reasons"]
    assert {p.name for p in tmp_path.iterdir()} >= {"report.json", "junit.xml", "report.html"}
    for scenario in report["scenarios"]:
        # each fault proven by the API server, each verdict from the venue's and the bus's truth
        assert scenario["evidence"] and all(e["proven"] for e in scenario["evidence"]), scenario
        values = {slo["name"]: slo["value"] for slo in scenario["slos"]}
        assert values["orders_lost"] == 0 and values["orders_duplicated"] == 0, scenario["name"]
        if "max_trading_gap_s" in values:
            MEASURED[f"{scenario['name']}_max_trading_gap_s"] = values["max_trading_gap_s"]


def test_the_scheduled_game_day_runs_inside_the_cluster_and_passes(deployed: Deployed) -> None:
    """The CronJob as the schedule would start it (a Job from its template): the game-day image,
    its own ServiceAccount and Role, tokens from its environment, the reports on its claim; the
    Job succeeds only on a passing verdict."""
    job = "gameday-e2e"
    deployed.kubectl("-n", NAMESPACE, "create", "job", "--from=cronjob/gameday", job)

    def finished() -> str | None:
        status = deployed.get("job", job).get("status", {})
        if status.get("succeeded"):
            return "succeeded"
        return "failed" if status.get("failed") else None

    outcome = wait_until(finished, timeout_s=900, what="the game-day Job to end", interval_s=2)
    log = deployed.kubectl("-n", NAMESPACE, "logs", f"job/{job}")
    assert outcome == "succeeded", log[-4000:]
    assert "verdict: pass" in log, log[-4000:]
    for scenario in ("execution-leader-terminated", "feeds-scaled-to-zero", "venue-latency"):
        assert scenario in log


# --- the check fails on a broken engine ---------------------------------------------------------


@pytest.fixture(scope="module")
def standby_never_takes_over(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image of an engine whose standby respects a Lease held by a dead leader forever
    (gamedays/mutants/standby-never-takes-over.patch), tagged MUTANT_TAG."""
    mutant = Mutant(
        name="standby-never-takes-over",
        description="a candidate never takes a Lease another holds, even once it expired",
        patch=PROJECT_ROOT / "gamedays/mutants/standby-never-takes-over.patch",
        scenario="execution-leader-crashed (gamedays/k8s-smoke.yaml)",
        caught_by="max_trading_gap_s",
    )
    work = tmp_path_factory.mktemp("mutant")
    tree = make_copy(mutant, root=PROJECT_ROOT, into=work / "tree")
    for package in ("replay", "harness"):
        shutil.copytree(
            PROJECT_ROOT / package, tree / package, ignore=shutil.ignore_patterns(*SOURCE_IGNORED)
        )
    for name in (*PROJECT_FILES, "requirements/image.txt", "deploy/image/replay"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, tree / name)
    (built,) = build_images(
        only=["stormproof"],
        project_root=tree,
        out_dir=work / "images",
        cache_dir=DEFAULT_OUT,
        app_tag=MUTANT_TAG,
    )
    return built.archive


def test_the_failover_check_fails_when_the_standby_never_takes_over(
    deployed: Deployed, standby_never_takes_over: Path, tmp_path: Path
) -> None:
    deployed.cluster.import_images([standby_never_takes_over], alias=False)
    deployed.set_execution_image(f"stormproof.local/stormproof:{MUTANT_TAG}")
    try:
        # the game day's crash scenario fails its gate on the mutant (the steady state before
        # holds: a rollout's SIGTERM releases the Lease, and a mutant pod takes a free one)
        report = k8s_game_day(deployed, tmp_path, only={"execution-leader-crashed"})
        (scenario,) = report["scenarios"]
        assert report["verdict"] == "fail", report["reasons"]
        failed = {slo["name"] for slo in scenario["slos"] if slo["verdict"] == "fail"}
        assert "max_trading_gap_s" in failed, scenario["slos"]
    finally:
        deployed.set_execution_image("stormproof.local/stormproof:local")
