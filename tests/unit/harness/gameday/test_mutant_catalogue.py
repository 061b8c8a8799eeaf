"""The mutant catalogue and its verdicts: a catalogue that names what does not exist is refused,
a patch applies to a throwaway copy only (or is an error naming it), and a mutant counts as
caught only when the SLO it names failed. Real game days play the catalogue in
tests/e2e/harness/test_mutants.py; here a stand-in for the game-day runner returns canned
reports."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.gameday.mutants import (
    MutantError,
    load_catalogue,
    make_copy,
    run_mutants,
)
from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the real engine, experiments and game days (patches are copied in)."""
    root = tmp_path / "repo"
    for tree in ("engine", "plumbing", "experiments", "gamedays"):
        shutil.copytree(
            PROJECT_ROOT / tree, root / tree, ignore=shutil.ignore_patterns("__pycache__")
        )
    return root


def catalogue_file(repo: Path, body: str) -> Path:
    path = repo / "gamedays" / "test-mutants.yaml"
    path.write_text(body)
    return path


ONE = """
gameday: gamedays/smoke.yaml
mutants:
  - {name: sleepy, patch: gamedays/mutants/recovery-sleeps-15s.patch,
     scenario: execution-sigkill, caught_by: rto_s}
"""


def test_the_real_catalogue_is_coherent_with_its_game_days() -> None:
    catalogue = load_catalogue(PROJECT_ROOT / "gamedays" / "mutants.yaml", root=PROJECT_ROOT)
    assert len(catalogue.mutants) >= 8 and len(catalogue.fast) >= 3
    assert catalogue.only_fast().gameday.name == "smoke.yaml"


@pytest.mark.parametrize("name", ["mutants.yaml", "futures-mutants.yaml"])
def test_every_mutant_of_the_catalogue_still_applies_to_the_engine(
    tmp_path: Path, name: str
) -> None:
    # a refactor that moves the code a mutant patches must move the mutant with it
    catalogue = load_catalogue(PROJECT_ROOT / "gamedays" / name, root=PROJECT_ROOT)
    for mutant in catalogue.mutants:
        copy = make_copy(mutant, root=PROJECT_ROOT, into=tmp_path / mutant.name)
        assert (copy / "engine" / "__main__.py").is_file()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (ONE.replace("rto_s", "vibes"), "has no SLO 'vibes' to catch it"),
        (ONE.replace("execution-sigkill", "nothing-like-it"), "has no scenario 'nothing-like-it'"),
        (ONE.replace("recovery-sleeps-15s.patch", "missing.patch"), "no patch at"),
        (ONE + "fast: {mutants: [nobody]}\n", "fast names unknown mutants ['nobody']"),
        (ONE.replace("caught_by", "cought_by"), "needs caught_by"),
        ("gameday: gamedays/smoke.yaml\n", "non-empty list 'mutants'"),
    ],
)
def test_a_catalogue_naming_what_does_not_exist_is_refused(
    repo: Path, body: str, words: str
) -> None:
    with pytest.raises(MutantError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_catalogue(catalogue_file(repo, body), root=repo)


def test_a_patch_changes_only_its_throwaway_copy(repo: Path, tmp_path: Path) -> None:
    catalogue = load_catalogue(catalogue_file(repo, ONE), root=repo)
    copy = make_copy(catalogue.mutants[0], root=repo, into=tmp_path / "copy")
    assert "asyncio.sleep(15)" in (copy / "engine/execution/recovery.py").read_text()
    assert "asyncio.sleep(10)" not in (repo / "engine/execution/recovery.py").read_text()
    assert (copy / "plumbing" / "logging.py").is_file(), "the engine's base layer comes along"


def test_a_patch_that_no_longer_applies_is_an_error_naming_it(repo: Path, tmp_path: Path) -> None:
    recovery = repo / "engine/execution/recovery.py"
    recovery.write_text(recovery.read_text().replace("report = RecoveryReport()", "r = None"))
    catalogue = load_catalogue(catalogue_file(repo, ONE), root=repo)
    with pytest.raises(MutantError, match=r"recovery-sleeps-15s\.patch does not apply"):
        make_copy(catalogue.mutants[0], root=repo, into=tmp_path / "copy")


def report(*, verdict: str, slo: str, slo_verdict: str, value: float | None) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "scenarios": [
            {
                "name": "execution-sigkill",
                "error": None,
                "slos": [{"name": slo, "verdict": slo_verdict, "value": value}],
            }
        ],
    }


def play(repo: Path, tmp_path: Path, reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """run_mutants with a stand-in runner: the unmutated engine's report, then the mutant's."""
    catalogue = load_catalogue(catalogue_file(repo, ONE), root=repo)

    def stand_in(_: Path, out: Path, **options: Any) -> dict[str, Any]:
        return reports["mutant" if options.get("engine_root") else "unmutated"]

    return run_mutants(
        catalogue, tmp_path / "out", root=repo, run_gameday=stand_in, progress=lambda _: None
    )


def test_a_mutant_is_caught_only_when_its_named_slo_fails(repo: Path, tmp_path: Path) -> None:
    clean = report(verdict="pass", slo="rto_s", slo_verdict="pass", value=4.0)
    caught = play(
        repo,
        tmp_path,
        {
            "unmutated": clean,
            "mutant": report(verdict="fail", slo="rto_s", slo_verdict="fail", value=15.0),
        },
    )
    assert caught["exit_code"] == 0 and caught["mutation_score"] == 1.0
    assert caught["table"][0]["why"] == "rto_s = 15.0 (fail)"
    # another SLO failing (or an inconclusive rto_s) is not a catch: the gate must catch it
    # where it claims to
    survived = play(
        repo,
        tmp_path,
        {
            "unmutated": clean,
            "mutant": report(
                verdict="inconclusive", slo="rto_s", slo_verdict="inconclusive", value=None
            ),
        },
    )
    assert survived["exit_code"] == 1 and survived["mutation_score"] == 0.0
    assert survived["table"][0]["verdict"] == "survived"
    assert "mutation score: 0/1 (0%)" in (tmp_path / "out" / "mutants.md").read_text()


def test_an_unmutated_engine_that_fails_the_scenario_proves_nothing(
    repo: Path, tmp_path: Path
) -> None:
    summary = play(
        repo,
        tmp_path,
        {
            "unmutated": report(verdict="fail", slo="rto_s", slo_verdict="fail", value=15.0),
            "mutant": report(verdict="fail", slo="rto_s", slo_verdict="fail", value=15.0),
        },
    )
    assert summary["exit_code"] == 1
    assert summary["unmutated_problems"] == [
        "execution-sigkill: the unmutated engine's verdict is fail (rto_s = 15.0 (fail))",
        "execution-sigkill: rto_s on the unmutated engine: fail (15.0)",
    ]
