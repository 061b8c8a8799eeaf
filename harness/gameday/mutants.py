"""Mutants: proof that the gate catches broken engines.

A catalogue (`gamedays/mutants.yaml`) lists engine mutants. Each is a small patch, applied to a
throwaway copy of the engine (the product carries no mutant switches), with the scenario that
must catch it and the SLO that must fail:

    gameday: gamedays/full.yaml          # where the scenarios (experiment, SLOs, stack) live
    fast:                                # the subset `make test` runs, on its own game day
      gameday: gamedays/smoke.yaml
      windows_s: {baseline_s: 5, settle_s: 10}   # shorter windows than the file's (optional)
      mutants: [mutant, ...]
    mutants:
      - name: resend-under-new-id
        description: what the bug is, as a reviewer would miss it
        patch: gamedays/mutants/resend-under-new-id.patch   # unified diff, paths a/engine/...
        scenario: execution-sigkill
        caught_by: orders_duplicated

`stormproof gameday mutants FILE --out DIR` plays every scenario the mutants name once on the
unmutated engine (it must pass: gate pass or warn, and each named SLO pass), then each mutant's
scenario on its mutated copy. A mutant is caught when its named SLO fails; anything else
(another SLO failing, inconclusive) is a survivor: the gate must catch each class of bug where
it claims to. Mutation score = caught / mutants. Exit 1 when any mutant survives or the
unmutated engine fails a scenario, 2 when the catalogue or a patch is unusable.

Outputs in DIR: `mutants.json` (the table and every run's report path), `mutants.md` (the table),
and one game-day report folder per run (`unmutated-<scenario>/`, `mutant-<name>/`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import GameDayConfigError, HarnessError
from harness.gameday.slo import load_gameday

Progress = Callable[[str], None]
RunGameday = Callable[..., dict[str, Any]]
"""`harness.gameday.runner.run_gameday` (injected: tests may hand in a stand-in)."""

ENGINE_TREES = ("engine", "plumbing")
"""What a mutant's copy holds: the engine and the base layer it imports."""


class MutantError(HarnessError):
    """A catalogue or a patch that cannot be used."""


@dataclass(frozen=True, kw_only=True)
class Mutant:
    name: str
    description: str
    patch: Path
    scenario: str
    caught_by: str


@dataclass(frozen=True, kw_only=True)
class Catalogue:
    gameday: Path
    mutants: tuple[Mutant, ...]
    fast: tuple[str, ...]
    fast_gameday: Path
    windows_s: dict[str, float] | None = None
    """Every scenario's baseline_s / settle_s for these runs (None: the game day's own)."""
    fast_windows_s: dict[str, float] | None = None

    def only_fast(self) -> Catalogue:
        """The fast subset, played on its own game day with its own windows."""
        return Catalogue(
            gameday=self.fast_gameday,
            mutants=tuple(m for m in self.mutants if m.name in self.fast),
            fast=self.fast,
            fast_gameday=self.fast_gameday,
            windows_s=self.fast_windows_s,
        )


@dataclass(frozen=True, kw_only=True)
class Outcome:
    mutant: Mutant
    verdict: str
    """"caught", "survived" or "error"."""
    slo_verdict: str | None
    value: float | None
    gate: str | None
    report: str | None
    why: str


def load_catalogue(path: Path, *, root: Path) -> Catalogue:
    where = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MutantError(f"{where}: unreadable: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("mutants"), list) or not doc["mutants"]:
        raise MutantError(f"{where}: needs 'gameday' and a non-empty list 'mutants'")
    unknown = sorted(set(doc) - {"name", "description", "gameday", "fast", "mutants"})
    if unknown:
        raise MutantError(f"{where}: unknown key {unknown[0]!r}")
    gameday_path = root / str(doc.get("gameday", ""))
    slos = _slos(gameday_path, root=root, where=f"{where}: gameday")
    mutants: list[Mutant] = []
    for index, raw in enumerate(doc["mutants"]):
        at = f"{where}: mutant #{index + 1}"
        if not isinstance(raw, dict):
            raise MutantError(f"{at}: a mapping is required")
        missing = [k for k in ("name", "patch", "scenario", "caught_by") if not raw.get(k)]
        if missing:
            raise MutantError(f"{at}: needs {', '.join(missing)}")
        extra = sorted(set(raw) - {"name", "description", "patch", "scenario", "caught_by"})
        if extra:
            raise MutantError(f"{at}: unknown key {extra[0]!r}")
        mutant = Mutant(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            patch=root / str(raw["patch"]),
            scenario=str(raw["scenario"]),
            caught_by=str(raw["caught_by"]),
        )
        at = f"{where}: mutant {mutant.name!r}"
        if any(m.name == mutant.name for m in mutants):
            raise MutantError(f"{at}: the name is used twice")
        if not mutant.patch.is_file():
            raise MutantError(f"{at}: no patch at {mutant.patch}")
        _catches(mutant, slos, gameday_path, at)
        mutants.append(mutant)
    raw_fast = doc.get("fast") or {}
    if not isinstance(raw_fast, dict) or set(raw_fast) - {"gameday", "windows_s", "mutants"}:
        raise MutantError(
            f"{where}: fast must be {{gameday: FILE, windows_s: {{...}}, mutants: [name, ...]}}"
        )
    fast_windows = _windows(raw_fast.get("windows_s"), f"{where}: fast: windows_s")
    fast = tuple(str(n) for n in raw_fast.get("mutants") or [])
    fast_gameday = root / str(raw_fast["gameday"]) if raw_fast.get("gameday") else gameday_path
    by_name = {m.name: m for m in mutants}
    unknown_fast = sorted(set(fast) - set(by_name))
    if unknown_fast:
        raise MutantError(f"{where}: fast names unknown mutants {unknown_fast}")
    if fast:
        fast_slos = _slos(fast_gameday, root=root, where=f"{where}: fast: gameday")
        for name in fast:
            _catches(by_name[name], fast_slos, fast_gameday, f"{where}: fast mutant {name!r}")
    return Catalogue(
        gameday=gameday_path,
        mutants=tuple(mutants),
        fast=fast,
        fast_gameday=fast_gameday,
        fast_windows_s=fast_windows,
    )


def _windows(raw: object, where: str) -> dict[str, float] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw or set(raw) - {"baseline_s", "settle_s"}:
        raise MutantError(f"{where}: a mapping of baseline_s and/or settle_s")
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
            raise MutantError(f"{where}: {key} must be a number of seconds in (0, 600]")
        out[str(key)] = float(value)
    return out


def _slos(path: Path, *, root: Path, where: str) -> dict[str, set[str]]:
    try:
        gameday = load_gameday(path, root=root)
    except GameDayConfigError as exc:
        raise MutantError(f"{where}: {exc}") from None
    return {s.name: {slo.name for slo in s.slos} for s in gameday.scenarios}


def _catches(mutant: Mutant, slos: dict[str, set[str]], gameday: Path, at: str) -> None:
    if mutant.scenario not in slos:
        raise MutantError(f"{at}: {gameday.name} has no scenario {mutant.scenario!r}")
    if mutant.caught_by not in slos[mutant.scenario]:
        raise MutantError(
            f"{at}: scenario {mutant.scenario!r} of {gameday.name} has no SLO"
            f" {mutant.caught_by!r} to catch it"
        )


def make_copy(mutant: Mutant, *, root: Path, into: Path) -> Path:
    """A throwaway copy of the engine with the mutant's patch applied; a clear error when the
    patch no longer applies (the engine moved on: the patch must be updated with it)."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    for tree in ENGINE_TREES:
        shutil.copytree(
            root / tree, into / tree, ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
    applied = subprocess.run(
        ["git", "apply", "--verbose", str(mutant.patch.resolve())],
        cwd=into,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if applied.returncode != 0:
        raise MutantError(
            f"mutant {mutant.name!r}: {mutant.patch.name} does not apply to the engine:"
            f" {applied.stderr.strip()[-500:]}"
        )
    touched = [line for line in applied.stderr.splitlines() if line.startswith("Applied patch")]
    if not touched:
        raise MutantError(f"mutant {mutant.name!r}: {mutant.patch.name} changes nothing")
    return into


def slo_entry(report: dict[str, Any], scenario: str, slo: str) -> dict[str, Any] | None:
    for entry in report.get("scenarios", []):
        if entry.get("name") == scenario:
            for item in entry.get("slos", []):
                if item.get("name") == slo:
                    found: dict[str, Any] = item
                    return found
    return None


def judge_mutant(mutant: Mutant, report: dict[str, Any], path: str) -> Outcome:
    entry = slo_entry(report, mutant.scenario, mutant.caught_by)
    verdict = None if entry is None else entry.get("verdict")
    value = None if entry is None else entry.get("value")
    caught = verdict == "fail"
    scenario: dict[str, Any] = next(
        (s for s in report["scenarios"] if s["name"] == mutant.scenario), {}
    )
    why = (
        f"{mutant.caught_by} = {value} (fail)"
        if caught
        else f"{mutant.caught_by} was {verdict or 'missing'}"
        + (f"; scenario error: {scenario['error']}" if scenario.get("error") else "")
    )
    return Outcome(
        mutant=mutant,
        verdict="caught" if caught else "survived",
        slo_verdict=verdict,
        value=value,
        gate=report.get("verdict"),
        report=path,
        why=why,
    )


def unmutated_problems(
    report: dict[str, Any], scenario: str, mutants: Sequence[Mutant]
) -> list[str]:
    """What keeps the unmutated engine's run of a scenario from proving the mutants' catches:
    the gate did not let it through, or an SLO a mutant relies on did not pass."""
    problems = []
    if report.get("verdict") not in ("pass", "warn"):
        problems.append(
            f"{scenario}: the unmutated engine's verdict is {report.get('verdict')}"
            + _why_not_passed(report, scenario)
        )
    for name in sorted({m.caught_by for m in mutants if m.scenario == scenario}):
        entry = slo_entry(report, scenario, name)
        if entry is None or entry.get("verdict") != "pass":
            got = "missing" if entry is None else f"{entry.get('verdict')} ({entry.get('value')})"
            problems.append(f"{scenario}: {name} on the unmutated engine: {got}")
    return problems


def _why_not_passed(report: dict[str, Any], scenario: str) -> str:
    entry: dict[str, Any] = next(
        (s for s in report.get("scenarios", []) if s.get("name") == scenario), {}
    )
    failed = [
        f"{item.get('name')} = {item.get('value')} ({item.get('verdict')})"
        for item in entry.get("slos", [])
        if item.get("verdict") not in ("pass", "warn")
    ]
    if entry.get("error"):
        failed.append(f"scenario error: {entry['error']}")
    return f" ({'; '.join(failed)})" if failed else ""


def run_mutants(
    catalogue: Catalogue,
    out: Path,
    *,
    root: Path,
    run_gameday: RunGameday,
    progress: Progress,
    only: Sequence[str] | None = None,
    **gameday_options: Any,
) -> dict[str, Any]:
    """Play the catalogue (or the mutants named in `only`); write and return the summary."""
    chosen = [m for m in catalogue.mutants if only is None or m.name in only]
    if only is not None and len(chosen) != len(set(only)):
        known = {m.name for m in catalogue.mutants}
        raise MutantError(f"unknown mutant(s): {sorted(set(only) - known)}")
    out.mkdir(parents=True, exist_ok=True)
    copies = {m.name: make_copy(m, root=root, into=out / "copies" / m.name) for m in chosen}
    started = time.monotonic()
    unmutated: dict[str, Any] = {}
    problems: list[str] = []
    for scenario in sorted({m.scenario for m in chosen}):
        progress(f"unmutated engine: {scenario}")
        folder = out / f"unmutated-{scenario}"
        report = run_gameday(
            catalogue.gameday,
            folder,
            only={scenario},
            windows_s=catalogue.windows_s,
            progress=_indented(progress),
            **gameday_options,
        )
        unmutated[scenario] = {"verdict": report.get("verdict"), "report": str(folder)}
        problems += unmutated_problems(report, scenario, chosen)
    outcomes: list[Outcome] = []
    for mutant in chosen:
        progress(f"mutant {mutant.name}: {mutant.scenario}, must fail {mutant.caught_by}")
        folder = out / f"mutant-{mutant.name}"
        report = run_gameday(
            catalogue.gameday,
            folder,
            only={mutant.scenario},
            windows_s=catalogue.windows_s,
            engine_root=copies[mutant.name],
            progress=_indented(progress),
            **gameday_options,
        )
        outcomes.append(judge_mutant(mutant, report, str(folder)))
    caught = sum(1 for o in outcomes if o.verdict == "caught")
    summary = {
        "mutation_score": round(caught / len(outcomes), 4) if outcomes else 0.0,
        "caught": caught,
        "mutants": len(outcomes),
        "unmutated": unmutated,
        "unmutated_problems": problems,
        "exit_code": 0 if caught == len(outcomes) and not problems else 1,
        "duration_s": round(time.monotonic() - started, 1),
        "table": [
            {
                "mutant": o.mutant.name,
                "scenario": o.mutant.scenario,
                "caught_by": o.mutant.caught_by,
                "verdict": o.verdict,
                "slo_verdict": o.slo_verdict,
                "value": o.value,
                "gate": o.gate,
                "why": o.why,
                "report": o.report,
                "description": o.mutant.description,
            }
            for o in outcomes
        ],
    }
    (out / "mutants.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "mutants.md").write_text(markdown_table(summary))
    return summary


def _indented(progress: Progress) -> Progress:
    return lambda message: progress(f"  {message}")


def markdown_table(summary: dict[str, Any]) -> str:
    lines = [
        "| mutant | scenario | caught by | verdict | why |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in summary["table"]:
        lines.append(
            f"| {row['mutant']} | {row['scenario']} | {row['caught_by']} | {row['verdict']}"
            f" | {row['why']} |"
        )
    lines.append("")
    lines.append(
        f"mutation score: {summary['caught']}/{summary['mutants']}"
        f" ({summary['mutation_score']:.0%})"
    )
    for problem in summary["unmutated_problems"]:
        lines.append(f"unmutated engine: {problem}")
    return "\n".join(lines) + "\n"
