"""What a game day needs from a Kubernetes deployment of the engine (deploy/kubernetes): the
API server (workloads, pods, the execution Lease), the venue's control API and the bus, found
through the deployment's own Services and Secrets, so that one game-day file serves any cluster.

    KUBECONFIG / --kubeconfig, --context    from outside the cluster (the local test cluster's
                                            node reaches Service ClusterIPs)
    --in-cluster                            from a pod (the CronJob): its service account

From outside, the harness reads the Secrets `sim` (the venue's control token) and
`redis-users` (the read-only `harness` Redis user's password); in the cluster (the CronJob, whose
Role reads no Secret) it takes them from its environment, STORMPROOF_SIM_CONTROL_TOKEN and
STORMPROOF_REDIS_PASSWORD. It writes nothing but what its experiments do.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.redis_acl import HARNESS, password_key
from harness.truth.bus import BusObserver

DEFAULT_NAMESPACE = "stormproof"
VENUE_SERVICE = "venue"
REDIS_SERVICE = "redis"
TOXIPROXY_SERVICE = "toxiproxy"
LEASE = "stormproof-execution"
ENGINE_APPS = ("feed", "strategy", "risk", "execution")
"""Pod label app.kubernetes.io/name of the engine's services."""


class ClusterUnavailable(HarnessError):
    """The cluster, or a part of the deployment the game day needs, cannot be reached."""


@dataclass(frozen=True, kw_only=True)
class KubeTarget:
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    namespace: str = DEFAULT_NAMESPACE


@dataclass(kw_only=True)
class KubeLink:
    target: KubeTarget
    api: Any
    """kubernetes.client.ApiClient"""
    control_url: str
    control_token: str = field(repr=False)
    redis_host: str
    redis_port: int
    redis_password: str = field(repr=False)
    toxiproxy: str | None = None
    """`ip:port` of the staging Toxiproxy's API (None: the deployment has none, and the
    experiments on its links cannot run)."""

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    @property
    def coordination(self) -> Any:
        from kubernetes import client

        return client.CoordinationV1Api(self.api)

    def get(self, path: str) -> tuple[int, Any]:
        """GET on the venue's control API: (status, parsed JSON); (0, None) if unreachable."""
        request = urllib.request.Request(
            f"{self.control_url}{path}", headers={"Authorization": f"Bearer {self.control_token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def redis_address(self) -> tuple[str, int]:
        """Where Redis is now: a replaced pod of a headless Service has a new address."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            spec = self.core.read_namespaced_service(REDIS_SERVICE, self.target.namespace).spec
            self.redis_host = _address(self.core, REDIS_SERVICE, spec, self.target.namespace)
        except (ApiException, ClusterUnavailable, HTTPError, OSError):
            pass  # the last known address: the observer keeps trying
        return self.redis_host, self.redis_port

    def observer(self, *, venue: str, symbols: list[str]) -> BusObserver:
        return BusObserver(
            locate=self.redis_address,
            host=self.redis_host,
            port=self.redis_port,
            venue=venue,
            symbols=symbols,
            username=HARNESS,
            password=self.redis_password,
        )

    def chaos_env(self) -> dict[str, str]:
        """What the experiments of experiments/k8s read (chaosk8s and harness.chaos.kubernetes
        find the cluster the same way)."""
        env = {
            "STORMPROOF_NAMESPACE": self.target.namespace,
            "STORMPROOF_SIM_CONTROL_TOKEN": self.control_token,
        }
        if self.toxiproxy is not None:
            env["STORMPROOF_TOXIPROXY"] = self.toxiproxy
        if self.target.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.target.kubeconfig)
        if self.target.context:
            env["KUBERNETES_CONTEXT"] = self.target.context
        if self.target.in_cluster:
            env["CHAOSTOOLKIT_IN_POD"] = "true"  # chaosk8s: the pod's service account
        return env

    def workloads_ready(self) -> list[str]:
        """The Deployments and StatefulSets of the namespace not fully rolled out and Ready
        (empty: all are)."""
        namespace = self.target.namespace
        waiting = []
        for kind, items in (
            ("deployment", self.apps.list_namespaced_deployment(namespace).items),
            ("statefulset", self.apps.list_namespaced_stateful_set(namespace).items),
        ):
            for item in items:
                wanted = item.spec.replicas if item.spec.replicas is not None else 1
                status = item.status
                if (status.ready_replicas or 0) < wanted or (status.updated_replicas or 0) < wanted:
                    waiting.append(f"{kind}/{item.metadata.name}")
        return waiting

    def venue_and_symbols(self) -> tuple[str, list[str]]:
        """The venue and symbols the deployment trades, from its rendered engine config."""
        import tomllib

        namespace = self.target.namespace
        # kustomize suffixes the ConfigMap's name with a hash: the one execution mounts
        template = self.apps.read_namespaced_deployment("execution", namespace).spec.template
        names = [
            v.config_map.name
            for v in template.spec.volumes or []
            if v.config_map is not None and v.config_map.name.startswith("engine-config")
        ]
        if not names:
            raise ClusterUnavailable("Deployment execution mounts no engine-config ConfigMap")
        config = self.core.read_namespaced_config_map(names[0], namespace)
        data = (config.data or {}).get("engine.toml")
        if not data:
            raise ClusterUnavailable(f"ConfigMap {names[0]} has no engine.toml")
        venue = tomllib.loads(data).get("venue", {})
        symbols = [str(s) for s in venue.get("symbols", [])]
        if not symbols:
            raise ClusterUnavailable(f"ConfigMap {names[0]}: the venue trades no symbol")
        return str(venue.get("name", "binance")), symbols


def api_client(target: KubeTarget) -> Any:
    from kubernetes import client, config

    try:
        if target.in_cluster:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=None if target.kubeconfig is None else str(target.kubeconfig),
            context=target.context,
            client_configuration=configuration,
        )
        return client.ApiClient(configuration)
    except (config.ConfigException, OSError) as exc:
        raise ClusterUnavailable(f"no cluster to talk to: {exc}") from exc


def connect(target: KubeTarget) -> KubeLink:
    """Find the deployment's venue and bus; a clear error for whatever is missing."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = api_client(target)
    from kubernetes import client

    core: Any = client.CoreV1Api(api)  # Any: the objects it returns are read defensively
    namespace = target.namespace
    try:
        venue = core.read_namespaced_service(VENUE_SERVICE, namespace).spec
        redis = core.read_namespaced_service(REDIS_SERVICE, namespace).spec
        token, password = _credentials(core, target)
    except ApiException as exc:
        raise ClusterUnavailable(
            f"namespace {namespace}: the deployment is not there or not readable"
            f" ({exc.status} {exc.reason}); deploy it first (stormproof deploy apply)"
        ) from exc
    except HTTPError as exc:
        raise ClusterUnavailable(f"the API server did not answer: {exc}") from exc
    if not token or not password:
        where = (
            "the environment (STORMPROOF_SIM_CONTROL_TOKEN, STORMPROOF_REDIS_PASSWORD)"
            if target.in_cluster
            else "Secrets sim / redis-users"
        )
        raise ClusterUnavailable(
            f"{where}: no control token or no password of the harness's Redis user"
        )
    link = KubeLink(
        target=target,
        api=api,
        control_url=f"http://{_address(core, VENUE_SERVICE, venue, namespace)}:"
        f"{_port(venue, 'control')}",
        control_token=token,
        redis_host=_address(core, REDIS_SERVICE, redis, namespace),
        redis_port=_port(redis, "redis"),
        redis_password=password,
        toxiproxy=_toxiproxy(core, namespace),
    )
    return link


def _credentials(core: Any, target: KubeTarget) -> tuple[str | None, str | None]:
    """(the simulator's control token, the `harness` Redis user's password)."""
    if target.in_cluster:
        return (
            os.environ.get("STORMPROOF_SIM_CONTROL_TOKEN"),
            os.environ.get("STORMPROOF_REDIS_PASSWORD"),
        )
    sim = _secret(core, "sim", target.namespace)
    users = _secret(core, "redis-users", target.namespace)
    return sim.get("STORMPROOF_SIM_CONTROL_TOKEN"), users.get(password_key(HARNESS))


def _toxiproxy(core: Any, namespace: str) -> str | None:
    """The staging Toxiproxy's API, if the deployment has one (a production overlay has not)."""
    from kubernetes.client.exceptions import ApiException

    try:
        spec = core.read_namespaced_service(TOXIPROXY_SERVICE, namespace).spec
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return f"{_address(core, TOXIPROXY_SERVICE, spec, namespace)}:{_port(spec, 'api')}"


def _address(core: Any, name: str, spec: Any, namespace: str) -> str:
    """The Service's ClusterIP, or for a headless one (Redis: a StatefulSet) the address of
    its Ready endpoint; never a name (nothing is resolved through the host's DNS)."""
    if spec.cluster_ip and spec.cluster_ip != "None":
        return str(spec.cluster_ip)
    for subset in core.read_namespaced_endpoints(name, namespace).subsets or []:
        for address in subset.addresses or []:
            return str(address.ip)
    raise ClusterUnavailable(f"Service {name} has no Ready endpoint")


def _port(spec: Any, name: str) -> int:
    for port in spec.ports or []:
        if port.name == name:
            return int(port.port)
    raise ClusterUnavailable(f"Service has no port named {name!r}")


def _secret(core: Any, name: str, namespace: str) -> dict[str, str]:
    import base64

    data = core.read_namespaced_secret(name, namespace).data or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}
