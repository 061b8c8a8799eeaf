"""`stormproof cluster up|down|status`: the local one-node Kubernetes cluster (harness.cluster).

Needs root (a bridge, iptables chains, cgroups); every binary is built or installed by
`scripts/bootstrap.sh cluster`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import console, fail, progress_printer
from harness.cluster.layout import DEFAULT_STATE_DIR, ClusterLayout
from harness.errors import HarnessError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The local Kubernetes cluster: one node, real pods (containerd + runc).",
)

StateDir = Annotated[Path, typer.Option(help="where the cluster keeps its state")]


def _cluster(state_dir: Path):  # type: ignore[no-untyped-def]
    from harness.cluster.cluster import Cluster

    return Cluster(ClusterLayout(state_dir=state_dir.resolve()))


def _require_root() -> None:
    if os.geteuid() != 0:
        fail("the local cluster needs root (a bridge, iptables chains, cgroups): run as root")


@app.command("up")
def cluster_up(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    deployment_images: Annotated[
        bool,
        typer.Option(
            "--deployment-images",
            help="also build and import the deployment's images (stormproof image build)",
        ),
    ] = False,
    image: Annotated[
        list[Path], typer.Option(help="an OCI archive to import into the node (repeatable)")
    ] = [],  # noqa: B006
) -> None:
    """Start the cluster (or what of it is not running) and wait until the node is Ready."""
    _require_root()
    from harness.cluster.images import DEPLOYMENT_IMAGES, NODE_IMAGES, image_archives

    names = [*NODE_IMAGES, *(DEPLOYMENT_IMAGES if deployment_images else ())]
    try:
        archives = image_archives(names, progress=progress_printer())
        cluster = _cluster(state_dir)
        status = cluster.up(images=[*archives, *image])
    except HarnessError as exc:
        fail(str(exc))
    console.print(f"node {cluster.layout.node_name} Ready: {status['node_ready']}")
    console.print(f"export KUBECONFIG={status['kubeconfig']}")


@app.command("down")
def cluster_down(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    purge: Annotated[
        bool, typer.Option("--purge", help="also delete the cluster's state (etcd, images, PKI)")
    ] = False,
) -> None:
    """Stop the cluster and undo every host change it made."""
    _require_root()
    try:
        done = _cluster(state_dir).down(purge=purge)
    except HarnessError as exc:
        fail(str(exc))
    for line in done:
        console.print(line)
    console.print("down.")


@app.command("status")
def cluster_status(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Every component's pid, the API server's and the node's readiness, the host changes."""
    try:
        status = _cluster(state_dir).status()
    except HarnessError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return
    console.print(f"api {status['api']} ready: {status['api_ready']}")
    console.print(f"node ready: {status['node_ready']}")
    for name, component in status["components"].items():
        console.print(
            f"{name}: " + (f"pid {component['pid']}" if component["running"] else "not running")
        )
