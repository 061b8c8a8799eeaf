"""`stormproof deploy render-config|secrets|validate`: the Kubernetes deployment's generated
parts and its offline validation (deploy/kubernetes, docs/kubernetes.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import console, fail
from harness.errors import HarnessError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The Kubernetes deployment: generated config, local secrets, offline validation.",
)


@app.command("render-config")
def render_config(
    check: Annotated[
        bool, typer.Option("--check", help="change nothing; exit 1 if a file is out of date")
    ] = False,
) -> None:
    """Render the engine configs and Toxiproxy's links from the engine's config structs into
    deploy/kubernetes (each checked by the engine's own loader)."""
    from engine.core.errors import ConfigError
    from harness.deploy import config

    try:
        if check:
            stale = config.stale()
            for path in stale:
                console.print(f"out of date: {path} (stormproof deploy render-config)")
            if stale:
                raise typer.Exit(1)
            console.print("every generated file is up to date")
            return
        changed = config.write_rendered()
    except ConfigError as exc:
        fail(str(exc))
    for path in changed:
        console.print(f"wrote {path}")
    if not changed:
        console.print("every generated file is up to date")


@app.command("secrets")
def write_secrets(
    directory: Annotated[
        Path, typer.Option("--dir", help="where the local overlay's secretGenerator reads them")
    ] = Path("deploy/kubernetes/overlays/local/secrets"),
    rotate: Annotated[
        bool, typer.Option("--rotate", help="replace an existing set (see docs/kubernetes.md)")
    ] = False,
) -> None:
    """Write the local overlay's secrets (random, mode 0600); an existing set is kept."""
    from harness.deploy.secrets import write_local_secrets

    try:
        written = write_local_secrets(directory, rotate=rotate)
    except FileExistsError as exc:
        fail(str(exc))
    console.print(f"wrote {len(written)} files in {directory}" if written else "kept the set")


@app.command("validate")
def validate() -> None:
    """Render both overlays and the monitoring kustomization and dry-run every object against
    a kube-apiserver v1.34.4 of our own on loopback (its real schemas and admission)."""
    from harness.deploy.manifests import validate_deployment

    with tempfile.TemporaryDirectory(prefix="stormproof-validate-") as work:
        try:
            results = validate_deployment(Path(work))
        except HarnessError as exc:
            fail(str(exc))
    for result in results:
        console.print(f"{result.kustomization}: {result.objects} objects accepted (dry run)")


@app.command("apply")
def apply_overlay(
    overlay: Annotated[Path, typer.Option(help="the kustomize directory to apply")] = Path(
        "deploy/kubernetes/overlays/local"
    ),
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="the cluster's kubeconfig (default: the local cluster's admin one)"),
    ] = None,
    context: Annotated[str | None, typer.Option(help="a context of the kubeconfig")] = None,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="per rollout")] = 300.0,
) -> None:
    """Apply an overlay server-side and wait until every Deployment and StatefulSet has rolled
    out. The local overlay's secrets are written first when absent (an existing set is kept)."""
    from harness.cluster.layout import DEFAULT_STATE_DIR, ClusterLayout

    if kubeconfig is None:
        kubeconfig = ClusterLayout(state_dir=DEFAULT_STATE_DIR.resolve()).admin_kubeconfig
    deploy_overlay(overlay, kubeconfig, context, timeout_s)


def deploy_overlay(overlay: Path, kubeconfig: Path, context: str | None, timeout_s: float) -> None:
    """Apply an overlay and await its rollouts, printing each; a clear error and exit 2 if not.
    The local overlay's secrets are written first when absent."""
    from harness.deploy.apply import Target, apply
    from harness.deploy.secrets import write_local_secrets

    try:
        if overlay.resolve().name == "local":
            write_local_secrets(overlay / "secrets")
        timings = apply(overlay, Target(kubeconfig=kubeconfig, context=context),
                        rollout_timeout_s=timeout_s)  # fmt: skip
    except (HarnessError, FileExistsError) as exc:
        fail(str(exc))
    for workload, seconds in timings.items():
        console.print(f"{workload} rolled out {seconds:.1f} s after the apply")
