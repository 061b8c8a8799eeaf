"""The manifests of deploy/kubernetes: both overlays and the monitoring kustomization render,
and a real kube-apiserver v1.34.4 (harness/kube_apiserver.py) accepts every object in a
server-side dry run with strict validation and the namespace's Pod Security admission; the same
server refuses an unknown field, a wrong type and a pod below the "restricted" profile. The
execution pair's RBAC is exercised with the service account's own token by the engine's lease.
The rendered objects hold to the engine config they carry (ports, links, symbols)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from engine.core.clock import LiveClock
from engine.execution.lease.kubernetes import KubernetesLease
from harness.deploy import config
from harness.deploy.manifests import (
    OVERLAYS,
    apply,
    deployment_copy,
    documents,
    prepare_namespaces,
    render,
    server_dry_run,
    validate_rendered,
)
from harness.errors import ManifestError
from harness.kube_apiserver import KubeApiServer, kube_apiserver
from harness.tools import kubectl

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def copy() -> Iterator[Path]:
    with deployment_copy() as path:
        yield path


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, copy: Path) -> Iterator[KubeApiServer]:
    with kube_apiserver(tmp_path_factory.mktemp("kube")) as server:
        prepare_namespaces(server, copy)
        yield server


@pytest.fixture(scope="module")
def local(copy: Path) -> list[Obj]:
    return documents(render(copy / "overlays/local"))


@pytest.fixture(scope="module")
def production(copy: Path) -> list[Obj]:
    return documents(render(copy / "overlays/production"))


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_specs(objects: list[Obj]) -> dict[str, Obj]:
    """Every pod template, by workload name."""
    out = {}
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet"):
            out[o["metadata"]["name"]] = o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            out[o["metadata"]["name"]] = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return out


def containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec["containers"]]


# --- the API server's verdict -----------------------------------------------------------------


def test_every_object_passes_a_strict_server_dry_run(api: KubeApiServer, copy: Path) -> None:
    results = {r.kustomization: r for r in validate_rendered(api, copy)}
    assert set(results) == {*OVERLAYS, "monitoring"}
    for result in results.values():
        lines = result.answer.strip().splitlines()
        assert len(lines) == result.objects and all("(server dry run)" in x for x in lines)
    assert results["overlays/local"].objects > results["overlays/production"].objects > 30


def edited_local(copy: Path, tmp_path: Path, path: str, old: str, new: str) -> str:
    """The local overlay rendered from a copy of the tree where `old` became `new` in `path`."""
    broken = tmp_path / "kubernetes"
    shutil.copytree(copy, broken)
    target = broken / path
    text = target.read_text()
    assert old in text, old
    target.write_text(text.replace(old, new, 1))
    return render(broken / "overlays/local")


@pytest.mark.parametrize(
    ("path", "old", "new", "refusal"),
    [
        # a misspelt field (strict validation: unknown fields are an error, not dropped)
        (
            "base/execution.yaml",
            "          livenessProbe:",
            "          livenessProbes:",
            'unknown field "spec.template.spec.containers[0].livenessProbes"',
        ),
        # a wrong type
        (
            "base/execution.yaml",
            "  replicas: 2",
            '  replicas: "two"',
            "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type"
            " int32",
        ),
        # a pod below the namespace's Pod Security level (restricted)
        (
            "base/risk.yaml",
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
            "PodSecurity",
        ),
    ],
)
def test_the_server_refuses_a_broken_manifest(
    api: KubeApiServer, copy: Path, tmp_path: Path, path: str, old: str, new: str, refusal: str
) -> None:
    stream = edited_local(copy, tmp_path, path, old, new)
    with pytest.raises(ManifestError, match=re.escape(refusal)):
        server_dry_run(api.kubeconfig, stream)


# --- RBAC, exercised -------------------------------------------------------------------------


def service_account_client(api: KubeApiServer, name: str) -> Any:
    command = ["create", "token", name, "--duration", "10m"]
    token = subprocess.run(
        [kubectl(), "--kubeconfig", str(api.kubeconfig), "-n", config.NAMESPACE, *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    configuration = k8s.Configuration(host=api.url)
    configuration.ssl_ca_cert = str(api.pki.ca_cert)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.retries = 0
    return k8s.ApiClient(configuration)


@pytest.fixture(scope="module")
def rbac(api: KubeApiServer, local: list[Obj]) -> KubeApiServer:
    """The service accounts, roles and bindings of the local overlay, applied for real."""
    kinds = ("ServiceAccount", "Role", "RoleBinding")
    apply(api.kubeconfig, yaml.safe_dump_all([o for o in local if o["kind"] in kinds]))
    return api


def status_of(call: Any) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_execution_runs_its_lease_with_its_own_token_and_nothing_else(rbac: KubeApiServer) -> None:
    api_client = service_account_client(rbac, "execution")

    async def lead() -> tuple[int | None, bool, tuple[str, int] | None]:
        lease = KubernetesLease(config.NAMESPACE, config.LEASE_NAME, api_client, clock=LiveClock())
        epoch = await lease.try_acquire("execution-a", 5_000)
        assert epoch is not None
        renewed = await lease.renew("execution-a", epoch, 5_000)
        holder = await lease.current()
        await lease.release("execution-a", epoch)
        return epoch, renewed, holder

    with api_client:
        epoch, renewed, holder = asyncio.run(lead())
        assert (epoch, renewed, holder) == (1, True, ("execution-a", 1))
        leases = k8s.CoordinationV1Api(api_client)
        core = k8s.CoreV1Api(api_client)
        ns = config.NAMESPACE
        assert status_of(lambda: leases.read_namespaced_lease(config.LEASE_NAME, ns)) == 200
        # nothing beyond its one Lease: no other lease, no list, no delete, no pods, no secrets
        assert status_of(lambda: leases.read_namespaced_lease("another", ns)) == 403
        assert status_of(lambda: leases.list_namespaced_lease(ns)) == 403
        assert status_of(lambda: leases.delete_namespaced_lease(config.LEASE_NAME, ns)) == 403
        assert status_of(lambda: core.list_namespaced_pod(ns)) == 403
        assert status_of(lambda: core.list_namespaced_secret(ns)) == 403
        assert status_of(lambda: leases.read_namespaced_lease(config.LEASE_NAME, "default")) == 403


def test_the_game_day_reads_the_lease_and_kills_pods_but_cannot_lead(rbac: KubeApiServer) -> None:
    with service_account_client(rbac, "gameday") as api_client:
        leases = k8s.CoordinationV1Api(api_client)
        core = k8s.CoreV1Api(api_client)
        apps = k8s.AppsV1Api(api_client)
        ns = config.NAMESPACE
        assert status_of(lambda: leases.list_namespaced_lease(ns)) == 200
        assert status_of(lambda: core.list_namespaced_pod(ns)) == 200
        assert status_of(lambda: apps.list_namespaced_deployment(ns)) == 200
        assert status_of(lambda: core.delete_namespaced_pod("absent", ns)) == 404  # allowed
        lease = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name="stolen"))
        assert status_of(lambda: leases.create_namespaced_lease(ns, lease)) == 403
        assert status_of(lambda: core.list_namespaced_secret(ns)) == 403
        assert status_of(lambda: core.list_namespaced_pod("default")) == 403
        # where the venue, the bus and Toxiproxy answer, and the engine's config: readable
        assert status_of(lambda: core.list_namespaced_service(ns)) == 200
        assert status_of(lambda: core.list_namespaced_endpoints(ns)) == 200
        assert status_of(lambda: core.read_namespaced_config_map("absent", ns)) == 404
        # no node (the cordon is an operator's), no log (never the engine's word)
        assert status_of(lambda: core.list_node()) == 403
        assert status_of(lambda: core.read_namespaced_pod_log("absent", ns)) == 403


# --- the rendered objects against the engine config they carry ---------------------------------


def test_local_runs_imported_images_on_local_volumes(local: list[Obj]) -> None:
    for name, spec in pod_specs(local).items():
        for container in containers(spec):
            assert container["image"].startswith("stormproof.local/"), name
            assert container["image"].endswith(":local"), name
            assert container["imagePullPolicy"] == "Never", name
    claims = [o["spec"] for o in local if o["kind"] == "PersistentVolumeClaim"]
    for o in local:
        if o["kind"] == "StatefulSet":
            claims += [t["spec"] for t in o["spec"].get("volumeClaimTemplates", [])]
    assert len(claims) == 3
    assert all(c["storageClassName"] == "stormproof-local" for c in claims)
    assert find(local, "CronJob", "gameday")["spec"]["suspend"] is True
    secrets = {o["metadata"]["name"] for o in local if o["kind"] == "Secret"}
    referenced = set()
    for spec in pod_specs(local).values():
        for container in containers(spec):
            referenced |= {e["secretRef"]["name"] for e in container.get("envFrom", [])}
            referenced |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
        referenced |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    assert referenced == secrets


def test_every_object_of_the_local_overlay_lands_in_its_namespace(local: list[Obj]) -> None:
    """A generated Secret without a namespace would go to the applier's current one, and every
    pod that names it would wait forever."""
    misplaced = [
        (o["kind"], o["metadata"]["name"])
        for o in local
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "stormproof"
    ]
    assert misplaced == []


def test_base_holds_no_secret(copy: Path) -> None:
    assert [o for o in documents(render(copy / "base")) if o["kind"] == "Secret"] == []


def test_production_is_the_engine_without_the_staging_parts(production: list[Obj]) -> None:
    names = {o["metadata"]["name"] for o in production}
    assert not names & {"venue", "toxiproxy", "gameday", "toxiproxy-config", "gameday-reports"}
    images = {c["image"] for s in pod_specs(production).values() for c in containers(s)}
    registry = "registry.example.com/stormproof/stormproof:0.1.0"
    assert images == {registry, "redis:7.2", "postgres:16"}
    for spec in pod_specs(production).values():
        assert all(c["imagePullPolicy"] == "IfNotPresent" for c in containers(spec))
    execution = find(production, "Deployment", "execution")["spec"]["template"]["spec"]
    anti_affinity = execution["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in anti_affinity


ENGINE = ("feed", "strategy", "risk", "execution")


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_every_pod_is_probed_bounded_and_locked_down(
    overlay: str, local: list[Obj], production: list[Obj]
) -> None:
    objects = local if overlay == "local" else production
    specs = pod_specs(objects)
    for name, spec in specs.items():
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        # only the pods that talk to the API server have a token
        assert spec["automountServiceAccountToken"] is (name in ("execution", "gameday")), name
        for container in containers(spec):
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
            c_security = container["securityContext"]
            assert c_security["readOnlyRootFilesystem"] is True
            assert c_security["allowPrivilegeEscalation"] is False
            assert c_security["capabilities"]["drop"] == ["ALL"]
            if name != "gameday" and container not in spec.get("initContainers", []):
                assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container), name
    for service in ENGINE:
        (container,) = specs[service]["containers"]
        assert container["command"][-3:-1] == [service, "--config"]
        (port,) = container["ports"]
        assert port["containerPort"] == config.OPS_PORTS[service]
        kinds = ("startupProbe", "livenessProbe", "readinessProbe")
        probes = {k: container[k]["httpGet"] for k in kinds}
        assert {k: (p["path"], p["port"]) for k, p in probes.items()} == {
            "startupProbe": ("/startupz", "ops"),
            "livenessProbe": ("/livez", "ops"),
            "readinessProbe": ("/readyz", "ops"),
        }


def test_one_feed_strategy_and_risk_and_an_execution_pair(local: list[Obj]) -> None:
    for singleton in ("feed", "strategy", "risk", "redis", "postgres"):
        assert find(local, "StatefulSet", singleton)["spec"]["replicas"] == 1
    execution = find(local, "Deployment", "execution")["spec"]
    assert execution["replicas"] == 2
    assert execution["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    budget = find(local, "PodDisruptionBudget", "execution")["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == execution["selector"]["matchLabels"]
    role = find(local, "Role", "execution-lease")
    rules = [(r["verbs"], r.get("resourceNames")) for r in role["rules"]]
    assert rules == [(["get", "update"], [config.LEASE_NAME]), (["create"], None)]


def test_the_links_and_the_venue_match_the_engine_config(local: list[Obj]) -> None:
    service = find(local, "Service", "toxiproxy")["spec"]["ports"]
    assert {p["port"] for p in service} == {8474, *(link.port for link in config.LINKS)}
    deployment = find(local, "Deployment", "toxiproxy")["spec"]["template"]["spec"]
    (container,) = deployment["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert all(named[p["targetPort"]] == p["port"] for p in service)
    venue = find(local, "Deployment", "venue")["spec"]["template"]["spec"]
    synth = venue["initContainers"][0]["command"]
    symbols = [synth[i + 1] for i, arg in enumerate(synth) if arg == "--symbol"]
    assert symbols == list(config.SYMBOLS)
    serve = venue["containers"][0]["command"]
    ports = {arg: int(serve[i + 1]) for i, arg in enumerate(serve) if arg.endswith("-port")}
    assert ports == {
        "--ws-port": config.VENUE_WS_PORT,
        "--rest-port": config.VENUE_REST_PORT,
        "--control-port": config.VENUE_CONTROL_PORT,
    }


@pytest.mark.parametrize(
    ("overlay", "relative"),
    [("local", config.STAGING_CONFIG), ("production", config.PRODUCTION_CONFIG)],
)
def test_each_overlay_carries_its_rendered_engine_config(
    overlay: str, relative: Path, local: list[Obj], production: list[Obj]
) -> None:
    objects = local if overlay == "local" else production
    (configmap,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("engine-config-")
    ]
    assert configmap["data"]["engine.toml"].encode() == config.rendered()[relative]
    for spec in pod_specs(objects).values():
        for volume in spec.get("volumes", []):
            if volume.get("configMap", {}).get("name", "").startswith("engine-config"):
                assert volume["configMap"]["name"] == configmap["metadata"]["name"]
