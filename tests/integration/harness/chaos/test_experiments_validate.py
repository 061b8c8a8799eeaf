"""Every experiment in experiments/ is valid for the real Chaos Toolkit (`chaos validate`), uses
only activities our extension exposes (`discover()`), and always ends with the safety
rollbacks."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.chaos import MODULES, discover
from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.integration
EXPERIMENTS = sorted(
    [
        *(PROJECT_ROOT / "experiments").glob("*.json"),
        *(PROJECT_ROOT / "experiments" / "futures").glob("*.json"),
    ]
)
CHAOS = str(Path(sys.executable).with_name("chaos"))


def test_the_catalogue_covers_every_scenario_of_the_issue() -> None:
    assert len(EXPERIMENTS) >= 13


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_validates_and_uses_only_discovered_activities(
    path: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            CHAOS,
            "--no-version-check",
            "--log-file",
            str(tmp_path / "chaos.log"),
            "validate",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"STORMPROOF_RUN_DIR": "/nonexistent", "PATH": str(Path(CHAOS).parent)},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    known = {(a["mod"], a["name"]) for a in discover()["activities"]}
    experiment = json.loads(path.read_text())
    activities = [
        *experiment["steady-state-hypothesis"]["probes"],
        *experiment["method"],
        *experiment["rollbacks"],
    ]
    for activity in activities:
        provider = activity["provider"]
        assert (provider["module"], provider["func"]) in known, activity["name"]
    rollback_funcs = [r["provider"]["func"] for r in experiment["rollbacks"]]
    assert {"reset_links", "clear_faults", "thaw_all"} <= set(rollback_funcs)


def test_stormproof_chaos_discover_lists_every_module_of_the_extension(tmp_path: Path) -> None:
    out = tmp_path / "discovery.json"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("stormproof")), "chaos", "discover", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    discovery = json.loads(out.read_text())
    assert discovery["extension"]["name"] == "stormproof"
    modules = {a["mod"] for a in discovery["activities"]}
    assert modules == set(MODULES)
    names = {(a["mod"], a["name"], a["type"]) for a in discovery["activities"]}
    assert ("harness.chaos.network", "link_down", "action") in names
    assert ("harness.chaos.restore", "restore_everything", "action") in names
    assert ("harness.chaos.probes", "all_ready", "probe") in names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_declares_the_evidence_its_fault_must_leave(path: Path) -> None:
    from harness.gameday.evidence import declared, fault_activity

    experiment = json.loads(path.read_text())
    evidence = declared(experiment, where=path.name)
    assert evidence, f"{path.name} declares no evidence: a game day would call it inconclusive"
    fault_activity(experiment, where=path.name)  # names a method activity, if any


K8S_EXPERIMENTS = sorted((PROJECT_ROOT / "experiments" / "k8s").glob("*.json"))


@pytest.mark.parametrize("path", K8S_EXPERIMENTS, ids=lambda p: p.stem)
def test_a_kubernetes_experiment_validates_and_uses_chaosk8s_or_our_kubernetes_module(
    path: Path, tmp_path: Path
) -> None:
    """The deployment's experiments (run on the real cluster by tests/integration/harness/
    cluster): valid for Chaos Toolkit, and each activity a function that exists in chaosk8s,
    harness.chaos.kubernetes, or harness.chaos.network (the Toxiproxy actions both targets
    share; the k8s target points them at the staging Toxiproxy)."""
    result = subprocess.run(
        [CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaos.log"), "validate",
         str(path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={
            "STORMPROOF_SIM_CONTROL_TOKEN": "unused",
            "STORMPROOF_TOXIPROXY": "127.0.0.1:9",
            "PATH": str(Path(CHAOS).parent),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    experiment = json.loads(path.read_text())
    activities = [
        *experiment["steady-state-hypothesis"]["probes"],
        *experiment["method"],
        *experiment.get("rollbacks", []),
    ]
    assert K8S_EXPERIMENTS and activities
    for activity in activities:
        provider = activity["provider"]
        module = provider["module"]
        assert module in ("harness.chaos.kubernetes", "harness.chaos.network") or module.startswith(
            "chaosk8s."
        ), module
        assert callable(getattr(importlib.import_module(module), provider["func"], None)), provider
    # and it declares the evidence its fault must leave in the API server, or a game day
    # (--target k8s) would call it inconclusive
    from harness.gameday.evidence import declared, fault_activity

    assert declared(experiment, where=path.name), f"{path.name} declares no evidence"
    assert fault_activity(experiment, where=path.name) is not None
