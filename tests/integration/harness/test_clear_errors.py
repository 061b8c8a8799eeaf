"""The harness's command line without its Toxiproxy server: one clear line on stderr, exit 2, no
traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import assert_one_clear_line, run_cli

pytestmark = pytest.mark.integration


def test_missing_toxiproxy_binary(tmp_path: Path, synth_recording: Path) -> None:
    result = run_cli(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "stack",
            "up",
            "-r",
            str(synth_recording),
            "--run-dir",
            str(tmp_path / "stack"),
        ],
        env={"STORMPROOF_TOXIPROXY_SERVER": str(tmp_path / "no-such-toxiproxy-server")},
    )
    assert_one_clear_line(result, "toxiproxy-server not found")


def test_a_k8s_game_day_without_a_cluster_is_one_clear_line(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "harness.cli", "gameday", "run", "gamedays/k8s-smoke.yaml",
        "--target", "k8s", "--kubeconfig", str(tmp_path / "no-such-kubeconfig"),
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    result = run_cli(argv)
    assert_one_clear_line(result, "no cluster to talk to")


def test_a_k8s_game_day_on_a_cluster_without_the_deployment_says_deploy_it_first(
    tmp_path: Path,
) -> None:
    # a real API server of our own, with no stormproof namespace in it
    from harness.kube_apiserver import kube_apiserver

    with kube_apiserver(tmp_path / "api") as api:
        argv = [
            sys.executable, "-m", "harness.cli", "gameday", "run", "gamedays/k8s-smoke.yaml",
            "--target", "k8s", "--kubeconfig", str(api.kubeconfig),
            "--out", str(tmp_path / "out"),
        ]  # fmt: skip
        result = run_cli(argv)
    assert_one_clear_line(result, "namespace stormproof: the deployment is not there")


def test_an_unknown_game_day_target_is_refused() -> None:
    argv = [sys.executable, "-m", "harness.cli", "gameday", "run", "gamedays/smoke.yaml",
            "--target", "nomad"]  # fmt: skip
    result = run_cli(argv)
    assert_one_clear_line(result, "--target must be local or k8s")
