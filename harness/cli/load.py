"""`stormproof load run`: Locust against the local stack (a running one, or one of its own),
its statistics turned into SLIs and, with --slo, gated like a game day.

    stormproof load run load/trading.py --shape flash-crash --duration 60s \\
        --slo "intent_to_ack_p99_ms<=50" --slo "load_failure_ratio<=0.01"

Exit codes: 0 pass or warn (or no --slo), 1 fail or inconclusive, 2 the load could not run.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.common import console
from harness.errors import HarnessError
from harness.recordings import recording_covering

app = typer.Typer(help="Locust load on the local stack; SLIs and an optional SLO gate.")

_SLO = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


def parse_slo(text: str) -> tuple[str, str, float]:
    """'intent_to_ack_p99_ms<=50' -> ('intent_to_ack_p99_ms', 'max', 50.0)."""
    match = _SLO.match(text)
    if not match:
        raise HarnessError(f"--slo {text!r}: write NAME<=VALUE or NAME>=VALUE")
    value = float(match.group(3))
    if not math.isfinite(value):
        raise HarnessError(f"--slo {text!r}: the threshold must be a finite number")
    return match.group(1), "max" if match.group(2) == "<=" else "min", value


def parse_duration_s(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise HarnessError(f"bad duration {text!r} (e.g. 90s, 5m, 1h)")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return float(match.group(1)) * scale


@app.command("run")
def load_run(
    locustfile: Annotated[Path, typer.Argument(help="a locustfile, e.g. load/trading.py")],
    shape: Annotated[
        str, typer.Option(help="steady, ramp, market-open, flash-crash, soak, or none")
    ] = "steady",
    duration: Annotated[str, typer.Option(help="how long: 60s, 5m, 2h")] = "60s",
    users: Annotated[int, typer.Option(help="peak order-flow users")] = 4,
    rate: Annotated[float, typer.Option(help="intents per second per order-flow user")] = 2.0,
    burst_multiplier: Annotated[
        float | None, typer.Option(help="market burst speed multiplier (overrides the shape's)")
    ] = None,
    stack_dir: Annotated[
        Path | None,
        typer.Option("--stack", help="run directory of a running stack (default: start one)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="where Locust's files go")] = Path(".stormproof/load"),
    slo: Annotated[
        list[str], typer.Option(help="NAME<=VALUE or NAME>=VALUE, repeatable: gates the run")
    ] = [],  # noqa: B006
) -> None:
    """Run Locust headless against the stack; print the SLIs; gate on --slo."""
    raise typer.Exit(
        _run(locustfile, shape, duration, users, rate, burst_multiplier, stack_dir, out, slo)
    )


@app.command("gate")
def load_gate(
    slis_file: Annotated[Path, typer.Argument(help="load-slis.json of a load run")],
    slo: Annotated[list[str], typer.Option(help="NAME<=VALUE or NAME>=VALUE, repeatable")],
) -> None:
    """Gate the SLIs of a finished load run again, with other SLOs (no new run)."""
    try:
        slis = json.loads(slis_file.read_text())
        if not isinstance(slis, dict):
            raise HarnessError(f"{slis_file} is not a load-slis.json")
        code = _gate(slis, slo, slis_file, slis_file.parent / "gate.json")
    except (OSError, json.JSONDecodeError) as exc:
        print(f"stormproof: cannot read {slis_file}: {exc}", file=sys.stderr)
        code = 2
    except HarnessError as exc:
        print(f"stormproof: {exc}", file=sys.stderr)
        code = 2
    raise typer.Exit(code)


def _gate(slis: dict[str, Any], slo_texts: list[str], source: Path, out: Path) -> int:
    """Every --slo is a key SLO of one scenario; exit code of the gate (0 pass/warn, 1 not)."""
    from harness.gameday.slo import ScenarioSpec, Slo, evaluate_scenario, gate

    slos = tuple(
        Slo(name=n, objective=o, pass_threshold=v, key=True)  # type: ignore[arg-type]
        for n, o, v in map(parse_slo, slo_texts)
    )
    if not slos:
        raise HarnessError("give at least one --slo")
    result = evaluate_scenario(
        ScenarioSpec(name="load", experiment=source, baseline_s=0, settle_s=0, slos=slos),
        values=slis,
    )
    verdict = gate([result])
    for r in result.slos:
        console.print(f"  {r.verdict.value:13} {r.message}")
    console.print(f"verdict: [bold]{verdict.verdict.value}[/bold]")
    out.write_text(
        json.dumps(
            {
                "verdict": verdict.verdict.value,
                "slos": [
                    {"name": r.slo.name, "verdict": r.verdict.value, "message": r.message}
                    for r in result.slos
                ],
            },
            indent=2,
        )
    )
    return verdict.exit_code


def _run(
    locustfile: Path,
    shape: str,
    duration: str,
    users: int,
    rate: float,
    burst_multiplier: float | None,
    stack_dir: Path | None,
    out: Path,
    slo_texts: list[str],
) -> int:
    from harness.load.runner import LOAD_ORDERS_PER_10S, LoadRun, LoadSpec, extra_market_s
    from harness.stack import Stack, StackOptions

    try:
        for text in slo_texts:
            parse_slo(text)  # a typo must not cost a whole load run
        spec = LoadSpec(
            locustfile=locustfile,
            shape=None if shape == "none" else shape,
            duration_s=parse_duration_s(duration),
            users=users,
            intent_rate=rate,
            burst_multiplier=burst_multiplier,
        )
        own = stack_dir is None
        stack = Stack(stack_dir or out / "stack")
        if own:
            extra = extra_market_s(spec, spec.duration_s)
            recording = recording_covering((spec.duration_s + 120 + extra) * 10 * 1.3)
            console.print("starting the stack (redis, toxiproxy, replay, engine)")
            stack.up(StackOptions(recordings=[recording], orders_per_10s=LOAD_ORDERS_PER_10S))
        try:
            console.print(f"Locust: {locustfile} shape={shape} for {spec.duration_s:g}s")
            run = LoadRun(stack, spec, out)
            run.start()
            run.wait(timeout_s=spec.duration_s + 120)
            slis = run.slis()
        finally:
            if own:
                stack.down()
    except HarnessError as exc:
        print(f"stormproof: {exc}", file=sys.stderr)
        return 2
    table = Table(title="load SLIs")
    table.add_column("SLI")
    table.add_column("value")
    for name, value in slis.items():
        table.add_row(name, "n/a" if value is None else str(value))
    console.print(table)
    console.print(f"Locust's statistics: {out / 'locust.json'}, {out / 'locust.html'}")
    if not slo_texts:
        return 0
    return _gate(slis, slo_texts, locustfile, out / "gate.json")
