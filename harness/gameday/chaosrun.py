"""Playing one experiment with the real `chaos run`, and reading what happened from its journal
rather than its exit code (0 even when the baseline steady state failed or a method action
raised).

The scenario cannot be judged (inconclusive) when: chaos wrote no journal, the steady state was
not met *before* the method, the experiment was aborted or interrupted, or any activity of the
method failed (an action that raised did not inject its fault; a probe that raised did not
look). A steady state not met *after* the method is a measurement (`steady_state_restored`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPERIMENT_TIMEOUT_S = 300.0


@dataclass(frozen=True, kw_only=True)
class ChaosOutcome:
    exit_code: int | None
    error: str | None = None
    """Why the experiment cannot be judged (the scenario is inconclusive)."""
    deviated: bool | None = None
    """The steady state after the method was not met (None: not checked)."""
    failed_rollbacks: list[str] = field(default_factory=list)


def run_experiment(
    experiment: Path, run_dir: Path | None, out_dir: Path, env: Mapping[str, str] | None = None
) -> ChaosOutcome:
    """`chaos run` the experiment; `run_dir` names the local stack (None: another target,
    whose experiments find it through `env`)."""
    journal = out_dir / "chaos-journal.json"
    journal.unlink(missing_ok=True)
    try:
        with (out_dir / "chaos.out").open("wb") as output:
            proc = subprocess.run(
                [
                    # the module, not the `chaos` script: an image has no console scripts
                    sys.executable,
                    "-m",
                    "chaostoolkit",
                    "--no-version-check",
                    "--log-file",
                    str(out_dir / "chaostoolkit.log"),
                    "run",
                    "--rollback-strategy",
                    "always",
                    "--journal-path",
                    str(journal),
                    str(experiment),
                ],
                env={
                    **os.environ,
                    **({} if run_dir is None else {"STORMPROOF_RUN_DIR": str(run_dir)}),
                    **(env or {}),
                },
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=EXPERIMENT_TIMEOUT_S,
                check=False,
            )
    except subprocess.TimeoutExpired:
        return ChaosOutcome(
            exit_code=None, error=f"chaos run did not finish within {EXPERIMENT_TIMEOUT_S:.0f}s"
        )
    if not journal.exists():
        return ChaosOutcome(exit_code=proc.returncode, error="chaos run wrote no journal")
    outcome = judge_journal(json.loads(journal.read_text()))
    return ChaosOutcome(
        exit_code=proc.returncode,
        error=outcome.error,
        deviated=outcome.deviated,
        failed_rollbacks=outcome.failed_rollbacks,
    )


def judge_journal(journal: dict[str, Any]) -> ChaosOutcome:
    """The journal's verdict on whether the experiment can be judged; see the module docstring."""
    states = journal.get("steady_states") or {}
    before = states.get("before") or {}
    if before and not before.get("steady_state_met", False):
        failing = [
            str(p.get("activity", {}).get("name"))
            for p in before.get("probes", [])
            if not p.get("tolerance_met", True)
        ]
        return ChaosOutcome(
            exit_code=None,
            error="baseline steady state not met before the method"
            + (f" ({', '.join(failing)})" if failing else "")
            + ": inconclusive",
        )
    if journal.get("status") in ("aborted", "interrupted"):
        return ChaosOutcome(exit_code=None, error=f"experiment {journal.get('status')}")
    failed = [_failure(entry) for entry in journal.get("run") or [] if _failed(entry)]
    if failed:
        return ChaosOutcome(
            exit_code=None,
            error="method activity failed, its fault is not proven: " + "; ".join(failed),
        )
    after = states.get("after") or {}
    return ChaosOutcome(
        exit_code=None,
        deviated=(not after.get("steady_state_met", False)) if after else None,
        failed_rollbacks=[_failure(e) for e in journal.get("rollbacks") or [] if _failed(e)],
    )


def _failed(entry: dict[str, Any]) -> bool:
    return entry.get("status") != "succeeded"


def _failure(entry: dict[str, Any]) -> str:
    name = (entry.get("activity") or {}).get("name", "?")
    exception = entry.get("exception") or []
    last = exception[-1].strip() if isinstance(exception, list) and exception else ""
    return f"{name} ({entry.get('status')}{': ' + last if last else ''})"
