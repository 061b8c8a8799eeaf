"""The Kubernetes target's evidence watcher: from the fault's start to the experiment's end it
asks the API server (never the engine, never the action that struck) which pods of each app
live and are Ready, which nodes are cordoned and who holds the execution Lease, and the staging
Toxiproxy's API which links are down or carry toxics, four times a second. `Observed` feeds the
same `prove` as the local stack's watcher (harness.gameday.evidence: pod_replaced,
no_ready_pods, container_restarted, leader_cut_off, node_cordoned, toxic, link_down)."""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.gameday.evidence import Observed
from harness.gameday.k8s_link import LEASE, KubeLink
from harness.gameday.watch import look_at_toxiproxy

APP_LABEL = "app.kubernetes.io/name"
INTERVAL_S = 0.25


class KubeEvidenceWatcher(threading.Thread):
    def __init__(self, link: KubeLink) -> None:
        super().__init__(name="k8s-evidence-watcher", daemon=True)
        self.link = link
        self.seen = Observed()
        self._halt = threading.Event()
        self._live: dict[str, str] = {}
        """uid -> pod name, live at the last look."""
        self._holder: str | None = None
        self._renewals: dict[str, Any] = {}
        """pod -> the Lease's renewTime last seen while it held it."""
        self._restarts: dict[str, int] = {}
        """uid -> restartCount at the first sighting."""
        self._cordoned_before: set[str] | None = None
        """Nodes already cordoned at the first look: not the game day's doing."""
        self._nodes_readable = True
        """False once the API server refused to list nodes (a namespaced Role, as the
        CronJob's): node_cordoned cannot be proven then, and is not asked again."""

    def finish(self) -> Observed:
        self._halt.set()
        self.join(timeout=10)
        return self.seen

    def start(self) -> None:
        """One look before the thread starts: what stands before the fault is the baseline
        (a node already cordoned is not the game day's doing)."""
        self._look_safely()
        super().start()

    def run(self) -> None:
        while not self._halt.wait(INTERVAL_S):
            self._look_safely()

    def _look_safely(self) -> None:
        try:
            self.look()
        except Exception as exc:  # an API hiccup is recorded, the watch goes on
            self.seen.errors.append(f"{type(exc).__name__}: {exc}"[:300])

    def look(self) -> None:
        if self.link.toxiproxy is not None:
            look_at_toxiproxy(f"http://{self.link.toxiproxy}/proxies", self.seen)
        namespace = self.link.target.namespace
        pods = self.link.core.list_namespaced_pod(namespace).items
        live: dict[str, str] = {}
        ready: dict[str, int] = {}
        for pod in pods:
            app = (pod.metadata.labels or {}).get(APP_LABEL)
            if app is None:
                continue
            ready.setdefault(app, 0)
            if pod.metadata.deletion_timestamp is not None:
                continue
            uid = str(pod.metadata.uid)
            live[uid] = str(pod.metadata.name)
            uids = self.seen.pods.setdefault(app, [])
            if uid not in uids:
                uids.append(uid)
            if _ready(pod):
                ready[app] += 1
            restarts = sum(c.restart_count or 0 for c in pod.status.container_statuses or [])
            if restarts > self._restarts.setdefault(uid, restarts):
                self.seen.restarted.add(app)
        for app in set(ready) | set(self.seen.ready_counts):
            self.seen.ready_counts.setdefault(app, []).append(ready.get(app, 0))
        self.seen.pods_gone |= set(self._live) - set(live)
        self._live = live
        self._look_at_nodes()
        holder = self._look_at_lease(namespace)
        if holder != self._holder:
            if self._holder is not None and holder is not None:
                self.seen.leader_moves.append((self._holder, holder, self._holder in live.values()))
            self._holder = holder if holder is not None else self._holder

    def _look_at_lease(self, namespace: str) -> str | None:
        """The pod that leads now (None while the Lease is unheld or expired); each holder's
        latest renewal is timed by this watcher's own clock when first seen, so the moment its
        Lease could be taken is known without the engine's clock."""
        spec = self.link.coordination.read_namespaced_lease(LEASE, namespace).spec
        pod = _pod_of((spec.holder_identity if spec else None) or "")
        if pod is None or spec is None:
            return None
        duration = float(spec.lease_duration_seconds or 0)
        renewed = spec.renew_time
        if renewed is not None and self._renewals.get(pod) != renewed:
            self._renewals[pod] = renewed
            self.seen.lease_expiry_s[pod] = time.time() + duration
        if renewed is not None and renewed.timestamp() + duration < time.time():
            return None  # expired: nobody leads until someone takes it
        return pod

    def _look_at_nodes(self) -> None:
        from kubernetes.client.exceptions import ApiException

        if not self._nodes_readable:
            return
        try:
            nodes = self.link.core.list_node().items
        except ApiException as exc:
            if exc.status != 403:
                raise
            self._nodes_readable = False
            self.seen.errors.append("nodes: not readable with these credentials (403)")
            return
        cordoned = {
            str(node.metadata.name)
            for node in nodes
            if node.spec is not None and node.spec.unschedulable
        }
        if self._cordoned_before is None:
            self._cordoned_before = cordoned
        self.seen.cordoned_nodes |= cordoned - self._cordoned_before


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _pod_of(holder: str) -> str | None:
    """The pod named by a Lease holder (`execution-<pod>-<ms>`)."""
    if not holder.startswith("execution-"):
        return None
    return holder.removeprefix("execution-").rsplit("-", 1)[0]
