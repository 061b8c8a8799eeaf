"""The cluster's processes run detached from the command that started them (the cluster
outlives `stormproof cluster up`): each has a pid file and a log in the state directory, and is
stopped by pid, with the pid's start time checked so a recycled pid is never signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from harness.cluster.layout import ClusterLayout

STOP_GRACE_S = 10.0


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie
    (an exited process nobody has reaped yet is stopped, whoever its parent is)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of stat


class Processes:
    def __init__(self, layout: ClusterLayout) -> None:
        self.layout = layout

    def _pid_file(self, name: str) -> Path:
        return self.layout.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.layout.log_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of `name` when it runs (the pid file's pid, with its recorded start time)."""
        try:
            pid_text, started = self._pid_file(name).read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if _start_time(pid) == started else None

    def start(self, name: str, argv: tuple[str, ...], env: dict[str, str] | None = None) -> int:
        running = self.pid(name)
        if running is not None:
            return running
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        self.layout.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(name).open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in our process group: a Ctrl-C of `up` spares it
                env={**os.environ, **(env or {})},
                cwd=self.layout.state_dir,
            )
        self._pid_file(name).write_text(f"{process.pid} {_start_time(process.pid)}\n")
        return process.pid

    def exited(self, name: str) -> bool:
        """True when `name` was started and is gone (a crash at start)."""
        return self._pid_file(name).exists() and self.pid(name) is None

    def stop(self, name: str) -> bool:
        pid = self.pid(name)
        self._pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _start_time(pid) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)
            while _start_time(pid) is not None:
                _reap(pid)
                time.sleep(0.05)
        return True

    def tail(self, name: str, chars: int = 800) -> str:
        path = self.log_file(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _reap(pid: int) -> None:
    """A process we started in this same command stays a zombie until reaped."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
