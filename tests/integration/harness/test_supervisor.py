"""The supervisor's Kubernetes-like semantics, on real processes: readiness gating between
groups, restart on exit, restart on liveness failure, and no liveness kill while a process is
still starting (the startup probe)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.ports import free_ports
from harness.supervisor import ProcessSpec, StackSpec
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

# A service that answers /livez and /readyz once it has slept the seconds written in its delay
# file, if any (like a Python service that imports and recovers before it serves).
SERVICE = """
import http.server, os, sys, time
port, delay_file = int(sys.argv[1]), sys.argv[2]
time.sleep(float(open(delay_file).read()) if os.path.exists(delay_file) else 0)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def service(name: str, port: int, *, delay_file: Path, group: int = 0) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        group=group,
        argv=[sys.executable, "-c", SERVICE, str(port), str(delay_file)],
        ready_http=f"http://127.0.0.1:{port}/readyz",
        live_http=f"http://127.0.0.1:{port}/livez",
        ready_timeout_s=30,
    )


@contextmanager
def supervised(run_dir: Path, processes: list[ProcessSpec]) -> Iterator[Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    StackSpec(processes=processes).dump(run_dir / "stack.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.supervisor", str(run_dir)],
        stdout=(run_dir / "supervisor.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: state(run_dir).get("phase") == "ready", timeout_s=60, what="ready")
        yield run_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def state(run_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((run_dir / "state.json").read_text()))
    except (OSError, json.JSONDecodeError):
        return {}


def events(run_dir: Path, process: str) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["process"] == process]


def test_groups_start_in_order_each_gated_on_the_previous_one_being_ready(tmp_path: Path) -> None:
    first, second = free_ports(2)
    (tmp_path / "db-delay").write_text("1.5")
    specs = [
        service("db", first, delay_file=tmp_path / "db-delay"),
        service("app", second, delay_file=tmp_path / "none", group=1),
    ]
    with supervised(tmp_path, specs) as run_dir:
        db_ready = next(e for e in events(run_dir, "db") if e["event"] == "ready")
        app_start = next(e for e in events(run_dir, "app") if e["event"] == "start")
        assert app_start["ts_ns"] >= db_ready["ts_ns"]


def test_an_exited_process_is_restarted_and_every_step_is_recorded(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with supervised(tmp_path, [service("svc", port, delay_file=tmp_path / "none")]) as run_dir:
        pid = state(run_dir)["processes"]["svc"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: (
                state(run_dir)["processes"]["svc"]["restarts"] == 1
                and state(run_dir)["processes"]["svc"]["ready"]
            ),
            timeout_s=30,
            what="a restart",
        )
        kinds = [e["event"] for e in events(run_dir, "svc")]
        assert kinds[:2] == ["start", "ready"]
        assert kinds[2:6] == ["exit", "restart", "start", "ready"]
        assert state(run_dir)["processes"]["svc"]["exit_codes"] == [-signal.SIGKILL]


def test_a_hung_process_is_killed_by_its_liveness_probe_and_restarted(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    with supervised(tmp_path, [service("svc", port, delay_file=tmp_path / "none")]) as run_dir:
        wait_until(
            lambda: state(run_dir)["processes"]["svc"]["started_up"],
            timeout_s=30,
            what="the first liveness answer (before it, a silent process is still starting)",
        )
        pid = state(run_dir)["processes"]["svc"]["pid"]
        os.kill(pid, signal.SIGSTOP)  # alive, answering nothing
        wait_until(
            lambda: state(run_dir)["processes"]["svc"]["restarts"] == 1,
            timeout_s=30,
            what="a liveness restart",
        )
        kill = next(e for e in events(run_dir, "svc") if e["event"] == "kill")
        assert kill["reason"] == "liveness probe failed" and kill["pid"] == pid


def test_a_slow_starter_is_not_killed_by_liveness_while_it_starts(tmp_path: Path) -> None:
    """A restart that takes longer than liveness_failures probes to serve /livez is a process
    starting, not a dead one (the crash loop a liveness probe without a startup probe makes)."""
    (port,) = free_ports(1)
    delay = tmp_path / "delay"
    with supervised(tmp_path, [service("slow", port, delay_file=delay)]) as run_dir:
        assert (
            json.loads((run_dir / "stack.json").read_text())["processes"][0]["liveness_failures"]
            == 3
        )
        delay.write_text("6")  # from now on, six probe rounds before it answers
        os.kill(state(run_dir)["processes"]["slow"]["pid"], signal.SIGKILL)
        wait_until(
            lambda: (
                state(run_dir)["processes"]["slow"]["restarts"] == 1
                and state(run_dir)["processes"]["slow"]["ready"]
            ),
            timeout_s=30,
            what="the slow restart to become ready",
        )
        assert not [e for e in events(run_dir, "slow") if e["event"] == "kill"]
        assert state(run_dir)["processes"]["slow"]["restarts"] == 1
