"""Podman's Docker-compatible service, run by the harness for testcontainers: its own
containers.conf, storage and socket under one state directory, nothing of the host's Podman
setup used or changed.

Root on these machines lacks CAP_SYS_RESOURCE: runc cannot apply Podman's default ulimits
(`error setting rlimit type 7: operation not permitted`), so the configuration sets none; no
systemd, so cgroupfs and a file event log. The service listens on a Unix socket in the state
directory; `docker_host` is what DOCKER_HOST must say.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StackError
from harness.processes import stop_process

CONTAINERS_CONF = """\
# written by harness/containers/podman.py
[containers]
# root here lacks CAP_SYS_RESOURCE: runc cannot set Podman's default ulimits
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class PodmanService:
    state_dir: Path

    @property
    def socket(self) -> Path:
        return self.state_dir / "podman.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """For podman and for the service: this state directory's configuration and storage."""
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.state_dir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.state_dir / "storage.conf"),
        }

    def podman(self, *args: str, timeout_s: float = 300.0) -> str:
        result = subprocess.run(
            [podman_binary(), *args],
            capture_output=True, text=True, timeout=timeout_s, check=False, env=self.env(),
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"podman {' '.join(args[:3])}: {result.stderr.strip()[-400:]}")
        return result.stdout

    def load(self, archive: Path, ref: str) -> str:
        """Load an OCI archive of harness/image unless the image is there; its ref."""
        present = subprocess.run(
            [podman_binary(), "image", "exists", ref],
            capture_output=True, timeout=60, check=False, env=self.env(),
        )  # fmt: skip
        if present.returncode != 0:
            self.podman("load", "-q", "-i", str(archive))
        return ref


def podman_binary() -> str:
    found = shutil.which("podman")
    if found is None:
        raise StackError("podman is not on PATH (scripts/bootstrap.sh podman installs it)")
    return found


def _write_config(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "containers.conf").write_text(CONTAINERS_CONF)
    (state_dir / "storage.conf").write_text(
        "# written by harness/containers/podman.py\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{state_dir / "storage"}"\n'
        f'runroot = "{state_dir / "run"}"\n'
    )


def _answers(path: Path) -> bool:
    """The service answers the Docker API's /_ping on its socket."""
    connection = http.client.HTTPConnection("localhost")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2)
        sock.connect(str(path))
        connection.sock = sock
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextlib.contextmanager
def podman_service(state_dir: Path) -> Iterator[PodmanService]:
    """`podman system service` on a socket of `state_dir`, stopped on exit."""
    service = PodmanService(state_dir=state_dir.resolve())
    _write_config(service.state_dir)
    service.socket.unlink(missing_ok=True)
    log = (service.state_dir / "service.log").open("ab")
    process = subprocess.Popen(
        [podman_binary(), "system", "service", "--time=0", service.docker_host],
        stdout=log, stderr=subprocess.STDOUT, env=service.env(), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(service.socket):
            if process.poll() is not None:
                raise StackError(
                    f"podman system service exited ({process.returncode}); see"
                    f" {service.state_dir / 'service.log'}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"podman system service did not answer in {START_TIMEOUT_S}s")
            time.sleep(0.1)
        yield service
    finally:
        stop_process(process)
        log.close()
        _release_storage(service.state_dir)


def _release_storage(state_dir: Path) -> None:
    """containers/storage bind-mounts its overlay directory onto itself and leaves the mount
    when the service ends: undone here, so the state directory can be removed."""
    overlay = state_dir / "storage" / "overlay"
    for _ in range(8):  # each podman process that opened the storage may have stacked one
        if not is_mount_point(overlay):
            return
        subprocess.run(["umount", str(overlay)], capture_output=True, timeout=30, check=False)


def is_mount_point(path: Path) -> bool:
    """From the kernel's mount table: a directory bind-mounted onto itself on the same file
    system is one, which os.path.ismount cannot tell."""
    wanted = str(path.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].replace("\\040", " ") == wanted:
            return True
    return False
