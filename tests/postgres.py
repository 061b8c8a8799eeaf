"""A throwaway PostgreSQL server for tests: its own cluster, on a free loopback port, trust auth."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from harness.ports import free_ports
from harness.postgres import postgres_bindir
from tests.helpers import process


def _accepts(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """Run a fresh cluster; yield the DSN of database `stormproof` owned by role `stormproof`."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found:"
            " run `scripts/bootstrap.sh postgres`"
        )
    # initdb and postgres refuse to run as root; the Debian package creates this OS user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # Not under pytest's tmp: its parents are private to the current user, and the socket path
    # must stay short.
    cluster = Path(tempfile.mkdtemp(prefix="stormproof-pg-"))
    data, sockets = cluster / "data", cluster / "sockets"
    try:
        sockets.mkdir()
        if as_user:
            for path in (cluster, sockets):
                shutil.chown(path, "postgres", "postgres")
        log = tmp / "postgres.log"
        with log.open("ab") as out:
            initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            subprocess.run(
                [*as_user, *initdb, "--encoding=UTF8", "--no-locale", "--no-sync"],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
            )
        port = free_ports(1)[0]
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        argv = [*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
        argv += ["-k", str(sockets), "-c", "listen_addresses=127.0.0.1"]
        argv += ["-c", "fsync=on", "-c", "max_connections=50"]
        # Lets tests order commits (pg_xact_commit_timestamp), e.g. writes against a claim.
        argv += ["-c", "track_commit_timestamp=on"]
        with process(argv, log=log, ready=lambda: _accepts(admin), timeout_s=60):
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute("CREATE ROLE stormproof LOGIN CREATEDB")
                    conn.execute("CREATE DATABASE stormproof OWNER stormproof")
                yield f"postgresql://stormproof@127.0.0.1:{port}/stormproof"
            finally:
                _stop(as_user, bindir, data, log)
    finally:
        shutil.rmtree(cluster, ignore_errors=True)


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
