"""A throwaway PostgreSQL server for tests: its own cluster, on a free loopback port, trust auth."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from harness.errors import StackError
from harness.ports import free_ports
from harness.postgres_server import dsn, init_cluster, server_user
from tests.helpers import process


def _accepts(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """Run a fresh cluster (harness.postgres_server, as the stack does); yield the DSN of database
    `stormproof`, owned by the cluster's superuser `stormproof`."""
    log = tmp / "postgres.log"
    try:
        cluster = init_cluster(log)
    except StackError as exc:
        pytest.fail(str(exc))
    user = server_user()
    as_user = ["runuser", "-u", user, "--"] if user else []
    try:
        port = free_ports(1)[0]
        admin = dsn(port)
        # track_commit_timestamp lets tests order commits (pg_xact_commit_timestamp), e.g.
        # writes against a claim
        argv = [*as_user, *cluster.server_argv(port=port), "-c", "track_commit_timestamp=on"]
        with process(argv, log=log, ready=lambda: _accepts(admin), timeout_s=60):
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE stormproof")
                yield f"postgresql://stormproof@127.0.0.1:{port}/stormproof"
            finally:
                _stop(as_user, cluster.bindir, cluster.data, log)
    finally:
        cluster.remove()


def _stop(as_user: list[str], bindir: Path, data: Path, log: Path) -> None:
    with log.open("ab") as out:
        stopped = subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-t", "30"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    pid_file = data / "postmaster.pid"
    if stopped.returncode != 0 and pid_file.exists():
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
