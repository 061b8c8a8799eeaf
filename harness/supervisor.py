"""A process supervisor with Kubernetes-like semantics, run as its own daemon process.

- Start in groups: every process of a group must be ready before the next group starts
  (readiness gating), e.g. redis, then toxiproxy, then the replay, then the engine.
- Restart on exit with exponential backoff (like CrashLoopBackOff, with shorter delays), unless
  the policy says otherwise or the stack is stopping.
- Restart on liveness failure: `liveness_failures` consecutive failed probes kill the process,
  counted only once it has answered since it started (a startup probe: a process still
  importing is not dead); one that never answers within its ready timeout is killed too.
- Every start, exit, kill, restart, ready and not-ready is an event with a timestamp in
  events.jsonl; state.json always holds the current picture (read by `stack status` and tests).
- A process can be held down: while RUN_DIR/holds/<name> exists it is not restarted (chaos
  actions use it to keep Redis or a service down for a while).
- Children get SIGTERM if the supervisor dies (PR_SET_PDEATHSIG), so a killed supervisor
  leaves no orphans.

Usage: python -m harness.supervisor RUN_DIR   (RUN_DIR/stack.json describes the processes)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from harness.ports import port_open
from harness.runfile import EVENTS, SECRETS, STACK_SPEC, STATE, SUPERVISOR_PID, read_env_file
from harness.tools import die_with_parent
from harness.toxiproxy import ToxiproxyClient
from plumbing.backoff import Backoff

RestartPolicy = Literal["always", "on-failure", "never"]


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    group: int = 0
    ready_http: str | None = None
    ready_tcp: int | None = None
    live_http: str | None = None
    restart: RestartPolicy = "always"
    stop_timeout_s: float = 10.0
    ready_timeout_s: float = 60.0
    liveness_failures: int = 3
    user: str | None = None
    """Run as this OS user (PostgreSQL refuses to run as root)."""
    stop_signal: str = "SIGTERM"
    """How to ask for a stop: PostgreSQL's SIGTERM waits for clients, SIGINT does not."""
    secrets: list[str] | None = None
    """The keys of secrets.env this process gets in its environment (None: every one)."""
    secret_env: dict[str, str] = field(default_factory=dict)
    """Environment variable -> the secrets.env key whose value it takes (a service's own Redis
    password as STORMPROOF_REDIS_PASSWORD): names in stack.json, values only in secrets.env."""


@dataclass
class StackSpec:
    processes: list[ProcessSpec]
    toxiproxy_api: tuple[str, int] | None = None
    proxies: list[dict[str, str]] = field(default_factory=list)
    """Created once the toxiproxy group is ready: {name, listen, upstream}."""

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @staticmethod
    def load(path: Path) -> StackSpec:
        data = json.loads(path.read_text())
        return StackSpec(
            processes=[ProcessSpec(**p) for p in data["processes"]],
            toxiproxy_api=tuple(data["toxiproxy_api"]) if data.get("toxiproxy_api") else None,
            proxies=data.get("proxies", []),
        )


@dataclass
class Managed:
    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    started_ns: int = 0
    live_failures: int = 0
    live_seen: bool = False
    """The process has answered its liveness probe since it started (the startup probe)."""


class Supervisor:
    def __init__(self, run_dir: Path, spec: StackSpec) -> None:
        self.run_dir = run_dir
        self.spec = spec
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.events_path = run_dir / EVENTS
        self.state_path = run_dir / STATE
        self.managed = {p.name: Managed(p) for p in spec.processes}
        self.phase = "starting"
        self.error = ""
        self.stopping = False
        self._http: aiohttp.ClientSession | None = None
        self.secrets = read_env_file(run_dir / SECRETS)

    # --- records ------------------------------------------------------------------------------

    def event(self, process: str, event: str, **fields: Any) -> None:
        record = {"ts_ns": time.time_ns(), "process": process, "event": event, **fields}
        with self.events_path.open("a") as out:
            out.write(json.dumps(record) + "\n")
        self.write_state()

    def write_state(self) -> None:
        state = {
            "phase": self.phase,
            "error": self.error,
            "supervisor_pid": os.getpid(),
            "updated_ns": time.time_ns(),
            "processes": {
                name: {
                    "pid": m.process.pid if m.process else None,
                    "running": m.process is not None and m.process.returncode is None,
                    "ready": m.ready,
                    "started_up": m.live_seen,
                    "restarts": m.restarts,
                    "exit_codes": m.exit_codes,
                    "group": m.spec.group,
                }
                for name, m in self.managed.items()
            },
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    # --- processes ----------------------------------------------------------------------------

    def _secrets_for(self, spec: ProcessSpec) -> dict[str, str]:
        """Least privilege: a process sees only the secrets it needs."""
        wanted = (
            self.secrets
            if spec.secrets is None
            else {k: self.secrets[k] for k in spec.secrets if k in self.secrets}
        )
        mapped = {
            env: self.secrets[key] for env, key in spec.secret_env.items() if key in self.secrets
        }
        return {**wanted, **mapped}

    async def _spawn(self, managed: Managed) -> None:
        spec = managed.spec
        log = (self.logs / f"{spec.name}.log").open("ab")
        env = {**os.environ, **self._secrets_for(spec), **spec.env}
        managed.process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            user=spec.user,
        )
        log.close()
        managed.ready = False
        managed.live_failures = 0
        managed.live_seen = False
        managed.started_ns = time.time_ns()
        self.event(spec.name, "start", pid=managed.process.pid)

    async def _watch(self, managed: Managed) -> None:
        backoff = Backoff(base_ms=500, cap_ms=10_000)
        while True:
            process = managed.process
            assert process is not None
            code = await process.wait()
            managed.exit_codes.append(code)
            managed.ready = False
            self.event(managed.spec.name, "exit", pid=process.pid, code=code)
            policy = managed.spec.restart
            if self.stopping or policy == "never" or (policy == "on-failure" and code == 0):
                return
            if (time.time_ns() - managed.started_ns) > 30e9:
                backoff.reset()
            delay = backoff.next_delay_ms()
            await asyncio.sleep(delay / 1000)
            if await self._held(managed.spec.name):
                delay = 0  # started by the release, not by the backoff
            if self.stopping:
                return
            managed.restarts += 1
            self.event(managed.spec.name, "restart", delay_ms=round(delay))
            await self._spawn(managed)

    def hold_path(self, name: str) -> Path:
        return self.run_dir / "holds" / name

    async def _held(self, name: str) -> bool:
        """A chaos action may hold a process down (a file in RUN_DIR/holds/): no restart until
        the file is removed. Returns whether the process was held."""
        path = self.hold_path(name)
        if not path.exists():
            return False
        self.event(name, "held")
        # the hold is a file another process removes: there is no event to wait on
        while path.exists() and not self.stopping:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if not self.stopping:
            self.event(name, "released")
        return True

    async def _probe(self, url: str) -> bool:
        assert self._http is not None
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _is_ready(self, spec: ProcessSpec) -> bool:
        if spec.ready_http:
            return await self._probe(spec.ready_http)
        if spec.ready_tcp:
            return await asyncio.to_thread(port_open, spec.ready_tcp)
        return True

    async def _probe_loop(self, managed: Managed) -> None:
        """Readiness transitions and liveness restarts, every second."""
        spec = managed.spec
        while True:
            await asyncio.sleep(1.0)
            process = managed.process
            if process is None or process.returncode is not None or self.stopping:
                continue
            ready = await self._is_ready(spec)
            if ready != managed.ready:
                managed.ready = ready
                self.event(spec.name, "ready" if ready else "not_ready")
            if spec.live_http:
                reason = await self._liveness(managed)
                if reason is not None and not self.stopping:
                    self.event(spec.name, "kill", reason=reason, pid=process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    managed.live_failures = 0

    async def _liveness(self, managed: Managed) -> str | None:
        """Why the process must be killed, or None. Like Kubernetes' startup probe: liveness
        failures count only once the process has answered it since it started (a Python
        service spends seconds importing and recovering first); one that never answers within
        its ready timeout is killed as well."""
        spec = managed.spec
        assert spec.live_http is not None
        if await self._probe(spec.live_http):
            if not managed.live_seen:
                managed.live_seen = True
                self.write_state()
            managed.live_failures = 0
            return None
        if not managed.live_seen:
            started_s = (time.time_ns() - managed.started_ns) / 1e9
            if started_s > spec.ready_timeout_s:
                return f"startup probe failed: no liveness answer within {spec.ready_timeout_s:g}s"
            return None
        managed.live_failures += 1
        if managed.live_failures >= spec.liveness_failures:
            return "liveness probe failed"
        return None

    async def _wait_ready(self, group: list[Managed]) -> None:
        deadline = time.monotonic() + max(m.spec.ready_timeout_s for m in group)
        pending = list(group)
        while pending:
            for managed in list(pending):
                if managed.exit_codes:
                    raise RuntimeError(
                        f"{managed.spec.name} exited with code {managed.exit_codes[-1]} while"
                        f" starting (see {self.logs / (managed.spec.name + '.log')})"
                    )
                if await self._is_ready(managed.spec):
                    if not managed.ready:
                        managed.ready = True
                        self.event(managed.spec.name, "ready")
                    pending.remove(managed)
            if pending and time.monotonic() > deadline:
                names = ", ".join(m.spec.name for m in pending)
                raise RuntimeError(f"not ready in time: {names} (see {self.logs})")
            if pending:
                await asyncio.sleep(0.1)

    async def _stop_process(self, managed: Managed) -> None:
        process = managed.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            process.send_signal(signal.Signals[managed.spec.stop_signal])
        try:
            await asyncio.wait_for(process.wait(), managed.spec.stop_timeout_s)
        except TimeoutError:
            self.event(managed.spec.name, "kill", reason="did not stop in time", pid=process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    # --- run ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        self._http = aiohttp.ClientSession()
        tasks: list[asyncio.Task[Any]] = []
        code = 0
        groups = sorted({m.spec.group for m in self.managed.values()})
        try:
            for group_id in groups:
                group = [m for m in self.managed.values() if m.spec.group == group_id]
                for managed in group:
                    await self._spawn(managed)
                    tasks.append(asyncio.create_task(self._watch(managed)))
                starting = asyncio.create_task(self._wait_ready(group))
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
                if not starting.done():
                    starting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await starting
                    stopper.cancel()
                    raise asyncio.CancelledError
                stopper.cancel()
                starting.result()
                if self.spec.toxiproxy_api and any("toxiproxy" in m.spec.name for m in group):
                    host, port = self.spec.toxiproxy_api
                    client = ToxiproxyClient(host, port)
                    await asyncio.to_thread(client.ensure_proxies, self.spec.proxies)
                    self.event(
                        "toxiproxy",
                        "proxies_created",
                        proxies=[p["name"] for p in self.spec.proxies],
                    )
            for managed in self.managed.values():
                tasks.append(asyncio.create_task(self._probe_loop(managed)))
            self.phase = "ready"
            self.event("stack", "ready")
            await stop.wait()
        except asyncio.CancelledError:
            self.error = "stopped while starting"
        except Exception as exc:
            self.phase = "failed"
            self.error = str(exc)
            self.event("stack", "failed", error=str(exc))
            code = 1
        finally:
            self.stopping = True
            if self.phase != "failed":
                self.phase = "stopping"
            self.write_state()
            for group_id in reversed(groups):
                group = [m for m in self.managed.values() if m.spec.group == group_id]
                await asyncio.gather(*(self._stop_process(m) for m in group))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._http.close()
            if self.phase != "failed":
                self.phase = "stopped"
            self.event("stack", self.phase)
        return code


async def _main(run_dir: Path) -> int:
    spec = StackSpec.load(run_dir / STACK_SPEC)
    supervisor = Supervisor(run_dir, spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    (run_dir / SUPERVISOR_PID).write_text(str(os.getpid()))
    return await supervisor.run(stop)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m harness.supervisor RUN_DIR", file=sys.stderr)
        return 2
    return asyncio.run(_main(Path(sys.argv[1])))


if __name__ == "__main__":
    sys.exit(main())
