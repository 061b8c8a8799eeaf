"""The Kubernetes API server the lease tests run against is the real one: its own validation and
conflicts, objects kept across a restart, and a freeze that answers nothing
(harness/kube_apiserver.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from kubernetes.client import CoordinationV1Api, V1Lease, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from harness.errors import ToolMissingError
from harness.kube_apiserver import KubeApiServer, kube_apiserver
from harness.tools import KUBERNETES_BIN, KUBERNETES_VERSION

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    with kube_apiserver(tmp_path_factory.mktemp("kube")) as server:
        yield server


def lease(name: str, holder: str) -> V1Lease:
    return V1Lease(
        metadata=V1ObjectMeta(name=name),
        spec=V1LeaseSpec(holder_identity=holder, lease_duration_seconds=1),
    )


def test_it_is_the_pinned_version_and_enforces_the_api(api: KubeApiServer) -> None:
    version = subprocess.run(
        [str(KUBERNETES_BIN / "kube-apiserver"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == f"Kubernetes {KUBERNETES_VERSION}"
    with api.client() as client:
        leases = CoordinationV1Api(client)
        leases.create_namespaced_lease("default", lease("a", "node-a"))
        with pytest.raises(ApiException) as refused:
            leases.create_namespaced_lease("default", lease("Not_A_Name", "node-a"))
        assert refused.value.status == 422
        stale = leases.read_namespaced_lease("a", "default")
        fresh = leases.read_namespaced_lease("a", "default")
        fresh.spec.holder_identity = "node-b"
        leases.replace_namespaced_lease("a", "default", fresh)
        stale.spec.holder_identity = "node-c"
        with pytest.raises(ApiException) as conflict:
            leases.replace_namespaced_lease("a", "default", stale)
        assert conflict.value.status == 409


def test_a_restart_keeps_the_objects_and_the_port(api: KubeApiServer) -> None:
    with api.client() as client:
        CoordinationV1Api(client).create_namespaced_lease("default", lease("kept", "node-a"))
    url = api.url
    api.stop()
    assert not api.ready()
    api.start()
    assert api.url == url and api.ready()
    with api.client() as client:
        kept = CoordinationV1Api(client).read_namespaced_lease("kept", "default")
    assert kept.spec.holder_identity == "node-a"


def test_a_frozen_server_answers_nothing_until_it_is_resumed(api: KubeApiServer) -> None:
    api.pause()
    try:
        with api.client() as client, pytest.raises(urllib3.exceptions.HTTPError):
            CoordinationV1Api(client).list_namespaced_lease("default", _request_timeout=0.5)
    finally:
        api.resume()
    with api.client() as client:
        assert CoordinationV1Api(client).list_namespaced_lease("default") is not None


def test_a_missing_build_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORMPROOF_KUBE_APISERVER", str(tmp_path / "no-such-apiserver"))
    with (
        pytest.raises(ToolMissingError, match="kube-apiserver not found"),
        kube_apiserver(tmp_path),
    ):
        pass
