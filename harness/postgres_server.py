"""A PostgreSQL cluster of our own for the local stack and the tests: initdb into a fresh
directory, then the server as a supervised process (trust auth, loopback TCP only, no Unix
socket). initdb and postgres refuse to run as root; as root they run as the `postgres` user
the Debian package creates.

The cluster lives under the system temp directory, not the run directory: the run directory's
parents may be private to the current user (pytest's tmp), which the `postgres` user cannot
traverse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StackError

SERVER_BINARIES = ("initdb", "postgres", "pg_ctl")
SUPERUSER = "stormproof"
DATABASE = "postgres"


def postgres_bindir() -> Path | None:
    """pg_config --bindir, else the newest /usr/lib/postgresql/*/bin, else initdb's on PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: tuple(int(x) for x in p.parent.name.split(".") if x.isdigit()),
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in SERVER_BINARIES):
            return bindir
    return None


def server_user() -> str | None:
    """The OS user the server runs as: `postgres` when we are root, else ourselves (None)."""
    return "postgres" if os.geteuid() == 0 else None


@dataclass(frozen=True, kw_only=True)
class Cluster:
    bindir: Path
    root: Path
    """The cluster's own directory (data/ inside); removed by `remove`."""

    @property
    def data(self) -> Path:
        return self.root / "data"

    def server_argv(self, *, port: int, host: str = "127.0.0.1") -> list[str]:
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={host}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=on",
            "-c",
            "max_connections=50",
        ]

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def dsn(port: int, host: str = "127.0.0.1") -> str:
    return f"postgresql://{SUPERUSER}@{host}:{port}/{DATABASE}"


def init_cluster(log: Path) -> Cluster:
    """initdb a fresh cluster whose superuser is `stormproof` (trust auth: loopback only)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise StackError(
            "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found:"
            " run `scripts/bootstrap.sh postgres`"
        )
    user = server_user()
    root = Path(tempfile.mkdtemp(prefix="stormproof-pg-"))
    if user:
        shutil.chown(root, user, user)
    cluster = Cluster(bindir=bindir, root=root)
    argv = [str(bindir / "initdb"), "-D", str(cluster.data), "-U", SUPERUSER, "--auth=trust"]
    argv += ["--encoding=UTF8", "--no-locale", "--no-sync"]
    with log.open("ab") as out:
        done = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, user=user, cwd=root, check=False
        )
    if done.returncode != 0:
        cluster.remove()
        raise StackError(f"initdb failed with code {done.returncode} (see {log})")
    return cluster
