"""`stormproof gameday run|mutants|compare`: game days on the local stack or a Kubernetes
deployment, judged by SLOs."""

from __future__ import annotations

import dataclasses
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from harness.cli.common import console, fail, progress_printer
from harness.errors import HarnessError
from harness.recordings import recording_covering

if TYPE_CHECKING:
    from harness.gameday.k8s_link import KubeTarget

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Game days: chaos scenarios judged by SLOs, with reports and a CI gate.",
)


def run_gameday_file(
    file: Path, out: Path, speed: str, extra_engine_toml: str = "", feeds: int | None = None
) -> int:
    from harness.gameday.runner import run_gameday

    progress = progress_printer()

    def run() -> dict[str, Any]:
        from harness.gameday.runner import market_seconds_needed
        from harness.gameday.slo import load_gameday

        gameday = load_gameday(file, root=Path.cwd())
        recording = recording_covering(market_seconds_needed(gameday, speed), market=gameday.market)
        return run_gameday(
            file,
            out,
            progress=progress,
            recording=recording,
            speed=speed,
            extra_engine_toml=extra_engine_toml,
            feeds=feeds,
        )

    report = guarded(run)
    if isinstance(report, int):
        return report
    return print_report(report, out)


def print_report(report: dict[str, Any], out: Path) -> int:
    table = Table(title=f"game day {report['gameday']}", show_header=True)
    for column in ("scenario", "SLO", "value", "verdict"):
        table.add_column(column)
    for scenario in report["scenarios"]:
        if scenario["error"]:
            table.add_row(scenario["name"], "(error)", scenario["error"], "inconclusive")
        for slo in scenario["slos"]:
            value = "n/a" if slo["value"] is None else f"{slo['value']:g}"
            table.add_row(scenario["name"], slo["name"], value, slo["verdict"])
    console.print(table)
    console.print(
        f"verdict: [bold]{report['verdict']}[/bold] (score {report['score']:.2f}); reports:"
        f" {out / 'report.json'}, {out / 'junit.xml'}, {out / 'report.html'}"
    )
    return int(report["exit_code"])


@app.command("run")
def gameday_run(
    file: Annotated[Path, typer.Argument(help="game-day file, e.g. gamedays/smoke.yaml")],
    out: Annotated[Path, typer.Option(help="where the reports go")] = Path(".stormproof/gameday"),
    speed: Annotated[str, typer.Option(help="replay speed")] = "10",
    engine_toml: Annotated[
        Path | None,
        typer.Option(
            help="extra engine config (TOML) laid over the stack's: its tables merged into the"
            " stack's, its strategies added to the stack's"
        ),
    ] = None,
    feeds: Annotated[
        int | None,
        typer.Option(
            help="market-data connections: 2 (redundant) or 1 (none to fail over to);"
            " overrides the game-day file's stack: feeds"
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(help="local (a fresh stack of processes) or k8s (a deployment of the engine)"),
    ] = "local",
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="k8s: the cluster's kubeconfig (default: KUBECONFIG, ~/.kube/config)"),
    ] = None,
    context: Annotated[str | None, typer.Option(help="k8s: a context of the kubeconfig")] = None,
    in_cluster: Annotated[
        bool, typer.Option(help="k8s: from a pod, with its service account")
    ] = False,
    namespace: Annotated[str, typer.Option(help="k8s: the deployment's namespace")] = "stormproof",
    deploy: Annotated[
        Path | None,
        typer.Option(
            help="k8s: apply this kustomize overlay and await its rollout first (default: use"
            " the deployment that runs)"
        ),
    ] = None,
) -> None:
    """Run a game day on the local stack, or against a Kubernetes deployment (--target k8s).
    Exit 0 pass or warn, 1 fail or inconclusive, 2 error."""
    if target not in ("local", "k8s"):
        fail(f"--target must be local or k8s, not {target!r}")
    if target == "k8s":
        if engine_toml is not None or feeds is not None:
            fail("--engine-toml and --feeds shape the local stack; a deployment has its own")
        from harness.gameday.k8s_link import KubeTarget

        kube = KubeTarget(
            kubeconfig=kubeconfig, context=context, in_cluster=in_cluster, namespace=namespace
        )
        if deploy is not None:
            if kubeconfig is None:
                fail("--deploy needs --kubeconfig (the cluster to apply the overlay to)")
            from harness.cli.deploy import deploy_overlay

            deploy_overlay(deploy, kubeconfig, context, timeout_s=300.0)
        raise typer.Exit(run_k8s_gameday_file(file, out, kube))
    if kubeconfig is not None or context is not None or in_cluster or deploy is not None:
        fail("--kubeconfig, --context, --in-cluster and --deploy go with --target k8s")
    if feeds is not None and feeds not in (1, 2):
        fail("--feeds must be 1 or 2")
    extra = engine_toml.read_text() if engine_toml else ""
    raise typer.Exit(run_gameday_file(file, out, speed, extra, feeds))


def run_k8s_gameday_file(file: Path, out: Path, target: KubeTarget) -> int:
    from harness.gameday.k8s_run import run_k8s_gameday

    report = guarded(lambda: run_k8s_gameday(file, out, target=target, progress=progress_printer()))
    return report if isinstance(report, int) else print_report(report, out)


def guarded(run: Callable[[], dict[str, Any]]) -> dict[str, Any] | int:
    """The game day's report, or exit code 2 with a clear message: exit 1 means "the gate
    failed", and a crash must not look like one."""
    try:
        return run()
    except HarnessError as exc:
        print(f"stormproof: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"stormproof: the game day could not run: {exc!r}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return 2


@app.command("mutants")
def gameday_mutants(
    file: Annotated[Path, typer.Argument(help="mutant catalogue, e.g. gamedays/mutants.yaml")],
    out: Annotated[Path, typer.Option(help="where the runs and the table go")] = Path(
        ".stormproof/mutants"
    ),
    only: Annotated[
        str | None, typer.Option(help="comma-separated mutant names (default: every one)")
    ] = None,
    fast: Annotated[bool, typer.Option(help="only the catalogue's fast subset")] = False,
    speed: Annotated[str, typer.Option(help="replay speed")] = "10",
) -> None:
    """Play every mutant of the catalogue against the scenario that must catch it, after the
    unmutated engine passed the same scenarios. Exit 0 when every mutant is caught (mutation
    score 100%) and the unmutated engine passes, 1 otherwise, 2 on an error."""
    from harness.gameday.mutants import load_catalogue, run_mutants
    from harness.gameday.runner import market_seconds_needed, run_gameday
    from harness.gameday.slo import load_gameday

    progress = progress_printer()
    try:
        catalogue = load_catalogue(file, root=Path.cwd())
        names = [n for n in (only or "").split(",") if n] or None
        if fast:
            catalogue = catalogue.only_fast()
        # every run is a stack of its own, replaying from the start: the longest scenario sets
        # how much market the recording must hold
        gameday = load_gameday(catalogue.gameday, root=Path.cwd())
        played = {m.scenario for m in catalogue.mutants if names is None or m.name in names}
        recording = recording_covering(
            max(
                market_seconds_needed(dataclasses.replace(gameday, scenarios=(spec,)), speed)
                for spec in gameday.scenarios
                if spec.name in played
            ),
            market=gameday.market,
        )
        summary = run_mutants(
            catalogue,
            out,
            root=Path.cwd(),
            run_gameday=run_gameday,
            progress=progress,
            only=names,
            recording=recording,
            speed=speed,
        )
    except HarnessError as exc:
        fail(str(exc))
    table = Table(title=f"mutants ({file})", show_header=True)
    for column in ("mutant", "scenario", "caught by", "verdict", "why"):
        table.add_column(column)
    for row in summary["table"]:
        table.add_row(row["mutant"], row["scenario"], row["caught_by"], row["verdict"], row["why"])
    console.print(table)
    for problem in summary["unmutated_problems"]:
        console.print(f"[red]unmutated engine:[/red] {problem}")
    console.print(
        f"mutation score: [bold]{summary['caught']}/{summary['mutants']}[/bold]"
        f" ({summary['mutation_score']:.0%}); {out / 'mutants.json'}, {out / 'mutants.md'}"
    )
    raise typer.Exit(int(summary["exit_code"]))


@app.command("compare")
def gameday_compare(
    base: Annotated[Path, typer.Argument(help="baseline report.json")],
    candidate: Annotated[Path, typer.Argument(help="candidate report.json")],
    max_regression_pct: Annotated[
        float | None,
        typer.Option(
            help="also a regression: a value worse than the base's by more than this share"
            " (any worsening off a base of 0)"
        ),
    ] = None,
) -> None:
    """Baseline versus candidate, SLO by SLO. Exit 0 when nothing regressed, 1 when an SLO's
    verdict got worse (or, with --max-regression-pct, its value), 2 on an error."""
    from harness.gameday.report import compare, format_comparison, load_report, regressions

    if max_regression_pct is not None and max_regression_pct < 0:
        fail("--max-regression-pct must be >= 0")
    try:
        rows = compare(load_report(base), load_report(candidate))
    except HarnessError as exc:
        fail(str(exc))
    print(format_comparison(rows))
    worse = regressions(rows, max_regression_pct=max_regression_pct)
    if not worse:
        print("no regression")
        return
    print(f"{len(worse)} regression(s):")
    for row in worse:
        print(f"  {row['scenario']} {row['slo']}: {row['reason']}")
    raise typer.Exit(1)
