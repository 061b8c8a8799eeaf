"""Acceptance: an active/standby pair under a leader lease with a fencing epoch.

Every contract test runs on both backends: a real redis-server, and the real `kubernetes` client
against a real kube-apiserver v1.34.4 with its etcd (harness/kube_apiserver.py), stopped,
restarted and frozen (SIGSTOP) as the faults require. The frozen-leader test runs the leader in
a real subprocess and SIGSTOPs it.

This file is also the subprocess: `python -m <this module> --backend ...` runs one elector and
writes what it sees (elections, deposals, every change of `is_leader`) as JSON lines to
--events."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest
import redis as sync_redis
import structlog
from kubernetes.client import CoordinationV1Api, CoreV1Api, V1Namespace, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from engine.core.clock import LiveClock
from engine.core.lease_term import DeposeReason
from engine.execution.lease.base import LeaseBackend
from engine.execution.lease.elector import LeaderElector
from engine.execution.lease.kubernetes import KubernetesLease, _micro_time
from engine.execution.lease.redis import RedisLease
from harness.kube_apiserver import KubeApiServer, kube_apiserver
from harness.ports import free_ports
from harness.tools import PROJECT_ROOT
from tests.helpers import process, redis

pytestmark = pytest.mark.integration

NAME = "execution-test"
NAMESPACE = "stormproof"
TTL_MS = 1_000  # whole seconds: a Kubernetes Lease counts leaseDurationSeconds
RENEW_MS = 250
SLACK_MS = 300  # scheduling and loopback round trips on a busy CI machine


async def eventually(
    condition: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.005
) -> Any:
    """Poll a condition on the event loop until it is truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


# ---- the two backends, with their faults ---------------------------------------------------


class RedisSite:
    """A real redis-server (AOF on) that can be stopped, restarted on the same port and data,
    and frozen (SIGSTOP)."""

    kind = "redis"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_ports(1)[0]
        self._server: Any = None
        self.pid = 0
        self.up()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def up(self) -> None:
        self._server = redis(self.tmp, self.port)
        self._server.__enter__()
        with sync_redis.Redis(port=self.port) as client:
            self.pid = int(client.info("server")["process_id"])

    def down(self) -> None:
        server, self._server = self._server, None
        server.__exit__(None, None, None)

    def hang(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def unhang(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def close(self) -> None:
        if self._server is not None:
            self.unhang()
            self.down()

    def make(self) -> LeaseBackend:
        return RedisLease(self.url, NAME, socket_timeout_ms=500)

    def steal(self, holder: str, hold_ms: int) -> None:
        """Put the lease under another holder, as a split brain or an operator would."""
        with sync_redis.Redis(port=self.port) as client:
            epoch = client.incr(f"stormproof:lease:{NAME}:epoch")
            client.set(f"stormproof:lease:{NAME}", f"{holder}:{epoch}", px=hold_ms)

    def worker_args(self) -> list[str]:
        return ["--backend", "redis", "--url", self.url]


class KubeSite:
    """A real API server (one per test module and worker, see `kube_api`): stopped and
    restarted on the same port with its objects kept in etcd, or frozen (connections accepted,
    never answered)."""

    kind = "kubernetes"

    def __init__(self, api: KubeApiServer) -> None:
        self.api = api

    def up(self) -> None:
        self.api.start()

    def down(self) -> None:
        self.api.stop()

    def hang(self) -> None:
        self.api.pause()

    def unhang(self) -> None:
        self.api.resume()

    def make(self) -> LeaseBackend:
        return KubernetesLease(NAMESPACE, NAME, self.api.client(), request_timeout_s=0.5)

    def steal(self, holder: str, hold_ms: int) -> None:
        """Another holder takes the lease behind the elector's back, as a second client would."""
        with self.api.client() as client:
            leases = CoordinationV1Api(client)
            lease = leases.read_namespaced_lease(NAME, NAMESPACE)
            lease.spec.holder_identity = holder
            lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
            lease.spec.lease_duration_seconds = math.ceil(hold_ms / 1000)
            lease.spec.renew_time = _micro_time(time.time_ns())
            leases.replace_namespaced_lease(NAME, NAMESPACE, lease)

    def worker_args(self) -> list[str]:
        return ["--backend", "kubernetes", "--url", str(self.api.kubeconfig)]


Site = RedisSite | KubeSite


@pytest.fixture(params=["redis", "kubernetes"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    if request.param == "redis":
        redis_site = RedisSite(tmp_path)
        try:
            yield redis_site
        finally:
            redis_site.close()
    else:
        api = request.getfixturevalue("kube_api")
        fresh_lease(api)
        try:
            yield KubeSite(api)
        finally:
            api.resume()
            if not api.ready():
                api.start()


@pytest.fixture(scope="module")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    """One API server per module and worker: starting one takes seconds, and each test starts
    from no lease (`fresh_lease`) and leaves the server up and answering."""
    with kube_apiserver(tmp_path_factory.mktemp("kube")) as api:
        with api.client() as client:
            CoreV1Api(client).create_namespace(V1Namespace(metadata=V1ObjectMeta(name=NAMESPACE)))
        yield api


def fresh_lease(api: KubeApiServer) -> None:
    with api.client() as client:
        try:
            CoordinationV1Api(client).delete_namespaced_lease(NAME, NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise


# ---- in-process candidates -----------------------------------------------------------------


class Candidate:
    def __init__(self, site: Site, holder: str, **options: Any) -> None:
        self.holder = holder
        self.backend = site.make()
        self.events: list[tuple[str, int, str, float]] = []  # kind, epoch, reason, monotonic
        self._hook = options.pop("on_elected", None)
        self.elector = LeaderElector(
            self.backend,
            holder=holder,
            ttl_ms=options.pop("ttl_ms", TTL_MS),
            renew_interval_ms=RENEW_MS,
            clock=LiveClock(),
            on_elected=self._elected,
            on_deposed=self._deposed,
            **options,
        )
        self.task: asyncio.Task[None] | None = None

    async def _elected(self, epoch: int) -> None:
        self.events.append(("elected", epoch, "", time.monotonic()))
        if self._hook is not None:
            await self._hook(epoch)

    async def _deposed(self, epoch: int, reason: str) -> None:
        self.events.append(("deposed", epoch, reason, time.monotonic()))

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(), name=f"elector-{self.holder}")
        return self

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def epochs(self, kind: str = "elected") -> list[int]:
        return [epoch for k, epoch, _, _ in self.events if k == kind]

    def last(self, kind: str) -> tuple[str, int, str, float] | None:
        matching = [event for event in self.events if event[0] == kind]
        return matching[-1] if matching else None

    async def stop(self) -> None:
        """Graceful: release the lease, report the deposal."""
        assert self.task is not None
        self.elector.stop()
        await asyncio.wait_for(self.task, 5)

    async def abandon(self) -> None:
        """As if the process vanished: no release, no callback; the lease runs out by itself."""
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def candidates(site: Site) -> AsyncIterator[Callable[..., Candidate]]:
    made: list[Candidate] = []

    def make(holder: str, **options: Any) -> Candidate:
        candidate = Candidate(site, holder, **options)
        made.append(candidate)
        return candidate.start()

    yield make
    for candidate in made:
        if candidate.alive:
            assert candidate.task is not None
            candidate.task.cancel()
            await asyncio.gather(candidate.task, return_exceptions=True)
        if candidate.task is not None and not candidate.task.cancelled():
            assert candidate.task.exception() is None, "an elector crashed"
        await candidate.backend.close()


def leaders(group: list[Candidate]) -> list[Candidate]:
    return [c for c in group if c.elector.is_leader]


async def one_leader(group: list[Candidate], timeout_s: float = 3.0) -> Candidate:
    found = await eventually(
        lambda: leaders(group), timeout_s=timeout_s, what="a leader to be elected"
    )
    assert len(found) == 1
    return found[0]


# ---- contract tests, on both backends ------------------------------------------------------


async def test_two_electors_exactly_one_leader(
    site: Site, candidates: Callable[..., Candidate]
) -> None:
    group = [candidates("node-a"), candidates("node-b")]
    leader = await one_leader(group)
    epoch = leader.elector.epoch
    assert epoch is not None and epoch >= 1
    assert await leader.backend.current() == (leader.holder, epoch)

    # observe several renewals: never two leaders, never none, never a change of epoch
    deadline = time.monotonic() + 4 * RENEW_MS / 1000
    while time.monotonic() < deadline:
        assert leaders(group) == [leader]
        await asyncio.sleep(0.005)
    assert [c.epochs() for c in group if c is not leader] == [[]]
    assert leader.epochs() == [epoch] and leader.elector.epoch == epoch
    state = leader.elector.state()
    json.dumps(state)
    assert state["leader"] is True and state["epoch"] == epoch and state["holder"] == leader.holder
    assert isinstance(state["term_expires_in_ms"], int)
    assert 0 < state["term_expires_in_ms"] <= TTL_MS


async def test_release_lets_the_follower_take_over_at_once(
    site: Site, candidates: Callable[..., Candidate]
) -> None:
    group = [candidates("node-a"), candidates("node-b")]
    leader = await one_leader(group)
    follower = next(c for c in group if c is not leader)
    first = leader.elector.epoch
    assert first is not None

    released = time.monotonic()
    await leader.stop()
    assert leader.last("deposed")[:3] == ("deposed", first, DeposeReason.STOPPED.value)  # type: ignore[index]
    await eventually(lambda: follower.elector.is_leader, timeout_s=2, what="the follower to lead")
    taken_ms = (time.monotonic() - released) * 1000
    # far sooner than the TTL: one acquire interval (100 ms) plus a round trip
    assert taken_ms < TTL_MS / 2, taken_ms
    second = follower.elector.epoch
    assert second is not None and second > first


async def test_epochs_strictly_increase_across_takeovers(
    site: Site, candidates: Callable[..., Candidate]
) -> None:
    alive = [candidates("gen-0"), candidates("gen-1")]
    everyone = list(alive)
    for generation in range(2, 6):
        leader = await one_leader(alive)
        if generation % 2:
            await leader.stop()  # handover by release
        else:
            await leader.abandon()  # handover by expiry
        alive.remove(leader)
        newcomer = candidates(f"gen-{generation}")
        alive.append(newcomer)
        everyone.append(newcomer)
    await one_leader(alive)
    await eventually(  # callbacks run in the elector's notifier task, just after the fact
        lambda: sum(len(c.epochs()) for c in everyone) == 5, timeout_s=1, what="5 elections"
    )

    elections = sorted(
        (at, epoch) for c in everyone for kind, epoch, _, at in c.events if kind == "elected"
    )
    epochs = [epoch for _, epoch in elections]
    assert len(epochs) == 5
    assert all(a < b for a, b in itertools.pairwise(epochs)), epochs


async def test_a_refused_renewal_deposes_the_leader(
    site: Site, candidates: Callable[..., Candidate]
) -> None:
    group = [candidates("node-a"), candidates("node-b")]
    leader = await one_leader(group)
    epoch = leader.elector.epoch
    assert epoch is not None

    await asyncio.to_thread(site.steal, "intruder", 2_000)
    stolen = time.monotonic()
    await eventually(lambda: leader.last("deposed"), timeout_s=2, what="the leader to step down")
    deposed = leader.last("deposed")
    assert deposed is not None
    _, lost_epoch, reason, at = deposed
    assert lost_epoch == epoch and reason == DeposeReason.LOST.value
    assert (at - stolen) * 1000 < RENEW_MS + SLACK_MS  # at the next renewal, not at term end
    assert leaders(group) == []  # nobody takes a lease someone else holds

    # the intruder's lease runs out; one of ours wins it with a larger epoch
    winner = await one_leader(group, timeout_s=4)
    new_epoch = winner.elector.epoch
    assert new_epoch is not None and new_epoch > epoch + 1  # the intruder had epoch + 1


@pytest.mark.parametrize("fault", ["down", "hang"])
async def test_backend_lost_leader_steps_down_at_term_end_and_reelects_after(
    site: Site, candidates: Callable[..., Candidate], fault: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        group = [candidates("node-a"), candidates("node-b")]
        leader = await one_leader(group)
        epoch = leader.elector.epoch
        assert epoch is not None

        before = time.monotonic()
        await asyncio.to_thread(site.down if fault == "down" else site.hang)
        after = time.monotonic()
        await eventually(
            lambda: leader.last("deposed"), timeout_s=TTL_MS / 1000 + 1, what="a step-down"
        )
        deposed = leader.last("deposed")
        assert deposed is not None
        _, lost_epoch, reason, at = deposed
        assert lost_epoch == epoch and reason == DeposeReason.EXPIRED.value
        # the last renewal started before the fault: the term (ttl - 12 ms margin) ends within
        # a TTL of it, and not before the renewal preceding it could have run out
        assert (at - after) * 1000 <= TTL_MS + SLACK_MS
        assert (at - before) * 1000 >= TTL_MS - 2 * RENEW_MS
        assert not leader.elector.is_leader and leader.elector.epoch is None

        # the backend stays out a while longer: nobody leads, nothing crashes
        outage_end = time.monotonic() + 3 * RENEW_MS / 1000
        while time.monotonic() < outage_end:
            assert leaders(group) == []
            await asyncio.sleep(0.01)
        assert all(c.alive for c in group)
        assert all(c.elector.state()["backend_error"] for c in group)

        await asyncio.to_thread(site.up if fault == "down" else site.unhang)
        winner = await one_leader(group, timeout_s=5)
        new_epoch = winner.elector.epoch
        assert new_epoch is not None and new_epoch > epoch

    failures = [e for e in logs if e["event"] == "lease backend call failed"]
    assert failures, "failures are logged"
    seen: dict[tuple[str, str], int] = {}
    for entry in failures:
        seen[(entry["holder"], entry["kind"])] = seen.get((entry["holder"], entry["kind"]), 0) + 1
    # many failed calls during the outage, one log line per holder and kind of failure
    assert all(count == 1 for count in seen.values()), seen
    assert any(e["event"] == "lease backend call succeeded again" for e in logs)


async def test_a_failing_on_elected_resigns_the_term(
    site: Site, candidates: Callable[..., Candidate]
) -> None:
    async def refuse(epoch: int) -> None:
        raise RuntimeError("journal claim refused")

    # a term long enough that only the resignation can end it: with the 1 s TTL, a loaded
    # machine could let the term run out before the failed callback was acted on
    broken = candidates("node-broken", on_elected=refuse, ttl_ms=5_000)
    leader_epoch = await eventually(
        lambda: broken.elector.term.last_epoch, timeout_s=3, what="node-broken to be elected"
    )
    healthy = candidates("node-healthy")
    await eventually(lambda: healthy.elector.is_leader, timeout_s=3, what="the healthy node")
    reasons = [reason for kind, _, reason, _ in broken.events if kind == "deposed"]
    assert reasons, "the broken node was deposed"
    assert all("on_elected failed" in reason for reason in reasons), reasons
    assert not broken.elector.is_leader
    assert healthy.elector.epoch is not None and healthy.elector.epoch > leader_epoch


# ---- a real frozen process -----------------------------------------------------------------


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


async def test_a_frozen_leader_is_replaced_within_ttl_plus_one_second_and_stays_deposed(
    site: Site, candidates: Callable[..., Candidate], tmp_path: Path
) -> None:
    events = tmp_path / "frozen-events.jsonl"
    argv = [
        sys.executable,
        "-m",
        __name__,  # this module, run as the subprocess
        *site.worker_args(),
        "--holder",
        "node-frozen",
        "--events",
        str(events),
    ]
    env = {"PYTHONPATH": str(PROJECT_ROOT)}
    with process(argv, log=tmp_path / "frozen.log", env=env, ready=lambda: True) as proc:
        await eventually(
            lambda: [e for e in read_events(events) if e["event"] == "elected"],
            timeout_s=20,
            what="the subprocess to become leader",
        )
        frozen_epoch = next(e["epoch"] for e in read_events(events) if e["event"] == "elected")
        standby = candidates("node-standby")
        assert await standby.backend.current() == ("node-frozen", frozen_epoch)
        await asyncio.sleep(2 * RENEW_MS / 1000)  # the standby keeps trying and failing
        assert not standby.elector.is_leader

        freeze_wall_ns = time.time_ns()
        freeze = time.monotonic()
        proc.send_signal(signal.SIGSTOP)
        await eventually(lambda: standby.elector.is_leader, timeout_s=5, what="the takeover")
        takeover_ms = (time.monotonic() - freeze) * 1000
        elected_wall_ns = time.time_ns()
        assert takeover_ms <= TTL_MS + 1000, takeover_ms
        # and not before the frozen leader's lease could have run out
        assert takeover_ms >= TTL_MS - 2 * RENEW_MS, takeover_ms
        standby_epoch = standby.elector.epoch
        assert standby_epoch is not None and standby_epoch > frozen_epoch

        resumed_wall_ns = time.time_ns()
        proc.send_signal(signal.SIGCONT)
        await eventually(
            lambda: [e for e in read_events(events) if e["event"] == "deposed"],
            timeout_s=3,
            what="the resumed process to report its deposal",
        )
        # it keeps campaigning as a standby, and cannot take the lease back
        await asyncio.sleep(4 * RENEW_MS / 1000)
        assert standby.elector.is_leader and standby.elector.epoch == standby_epoch
        assert await standby.backend.current() == ("node-standby", standby_epoch)

    seen = read_events(events)
    deposed = [e for e in seen if e["event"] == "deposed"]
    assert [(e["epoch"], e["reason"]) for e in deposed] == [
        (frozen_epoch, DeposeReason.EXPIRED.value)
    ]
    assert [e["epoch"] for e in seen if e["event"] == "elected"] == [frozen_epoch]
    believed = [e for e in seen if e["event"] == "is_leader" and e["value"]]
    assert believed and all(e["ts_ns"] < freeze_wall_ns for e in believed), believed
    after_resume = [e for e in seen if e["event"] == "is_leader" and e["ts_ns"] > resumed_wall_ns]
    # the first thing it noticed on waking: not leader (its term ended while it was frozen)
    assert after_resume and after_resume[0]["value"] is False
    assert elected_wall_ns > max(e["ts_ns"] for e in believed)


# ---- backend specifics ---------------------------------------------------------------------


async def test_redis_layout_epoch_counter_and_compare_and_set(tmp_path: Path) -> None:
    with redis(tmp_path) as port:
        url = f"redis://127.0.0.1:{port}/0"
        lease = RedisLease(url, NAME)
        other = RedisLease(url, NAME)
        client = sync_redis.Redis(port=port, decode_responses=True)
        try:
            key, epoch_key = f"stormproof:lease:{NAME}", f"stormproof:lease:{NAME}:epoch"
            first = await lease.try_acquire("node-a", 1_500)
            assert first == 1 and client.get(key) == "node-a:1"
            assert 1_000 < client.pttl(key) <= 1_500
            assert client.ttl(epoch_key) == -1  # the counter never expires
            assert await other.try_acquire("node-b", 1_500) is None
            assert await other.renew("node-b", 1, 1_500) is False
            await other.release("node-b", 1)  # not its lease: nothing happens
            assert await lease.current() == ("node-a", 1)

            assert await lease.renew("node-a", 1, 5_000) and client.pttl(key) > 4_000
            # ours from an earlier term (a lost reply, a restart under the same name)
            assert await lease.try_acquire("node-a", 1_500) == 2
            assert await lease.renew("node-a", 1, 1_500) is False  # the old term is fenced
            await lease.release("node-a", 2)
            assert client.get(key) is None and await lease.current() is None
            assert await other.try_acquire("node-b:with:colons", 1_500) == 3
            assert await other.current() == ("node-b:with:colons", 3)
            client.delete(key)  # as if it expired
            assert await lease.try_acquire("node-a", 1_500) == 4
        finally:
            client.close()
            await lease.close()
            await other.close()


async def test_kubernetes_lease_object_and_optimistic_concurrency(
    kube_api: KubeApiServer,
) -> None:
    fresh_lease(kube_api)
    a = KubernetesLease(NAMESPACE, NAME, kube_api.client())
    b = KubernetesLease(NAMESPACE, NAME, kube_api.client())
    with kube_api.client() as client:
        leases = CoordinationV1Api(client)
        try:
            assert await a.try_acquire("node-a", 1_500) == 1
            spec = leases.read_namespaced_lease(NAME, NAMESPACE).spec
            assert spec.holder_identity == "node-a"
            assert spec.lease_duration_seconds == 2  # ceil(1.5 s)
            assert spec.lease_transitions == 1
            assert spec.acquire_time == spec.renew_time
            assert await b.try_acquire("node-b", 1_500) is None
            assert await b.current() == ("node-a", 1)

            # b read the lease, then someone else changed it: the API server answers b's
            # replace with 409 Conflict and b loses
            await a.release("node-a", 1)
            stale = await asyncio.to_thread(b._read, 1.0)
            assert await a.try_acquire("node-a", 1_500) == 2
            b._read = lambda timeout_s: stale  # type: ignore[method-assign]
            conflicts = replace_statuses(b)
            assert await b.try_acquire("node-b", 1_500) is None
            assert conflicts == [409]
            assert await a.current() == ("node-a", 2)

            # two candidates racing for a released lease: exactly one wins
            await a.release("node-a", 2)
            del b._read
            results = await asyncio.gather(
                a.try_acquire("node-a", 1_000), b.try_acquire("node-b", 1_000)
            )
            assert sorted(r is None for r in results) == [False, True]
            assert max(r or 0 for r in results) == 3
        finally:
            await a.close()
            await b.close()


def replace_statuses(lease: KubernetesLease) -> list[int]:
    """The HTTP status of every failed replace `lease` sends from now on."""
    api = lease._api()
    replace = api.replace_namespaced_lease
    statuses: list[int] = []

    def spied(*args: Any, **kwargs: Any) -> Any:
        try:
            return replace(*args, **kwargs)
        except ApiException as exc:
            statuses.append(exc.status)
            raise

    api.replace_namespaced_lease = spied
    return statuses


# ---- the subprocess ------------------------------------------------------------------------


async def _worker(args: argparse.Namespace, out: TextIO) -> int:
    from plumbing.logging import configure_logging

    configure_logging(service=f"lease-worker-{args.holder}", level="info", stream=sys.stderr)

    def emit(event: str, **fields: Any) -> None:
        out.write(json.dumps({"event": event, "ts_ns": time.time_ns(), **fields}) + "\n")
        out.flush()

    backend: LeaseBackend
    if args.backend == "redis":
        backend = RedisLease(args.url, NAME, socket_timeout_ms=500)
    else:
        backend = KubernetesLease(
            NAMESPACE, NAME, kubeconfig_client(args.url), request_timeout_s=0.5
        )

    async def elected(epoch: int) -> None:
        emit("elected", epoch=epoch)

    async def deposed(epoch: int, reason: str) -> None:
        emit("deposed", epoch=epoch, reason=reason)

    elector = LeaderElector(
        backend,
        holder=args.holder,
        ttl_ms=TTL_MS,
        renew_interval_ms=RENEW_MS,
        clock=LiveClock(),
        on_elected=elected,
        on_deposed=deposed,
    )

    async def watch() -> None:
        """Every change of belief, as the service would see it when it checks before acting."""
        believed: bool | None = None
        while True:
            now = elector.is_leader
            if now != believed:
                emit("is_leader", value=now, epoch=elector.epoch)
                believed = now
            await asyncio.sleep(0.002)

    async with asyncio.TaskGroup() as group:
        group.create_task(elector.run())
        group.create_task(watch())
    return 0


def kubeconfig_client(path: str) -> Any:
    """The `kubernetes` ApiClient of a kubeconfig file, without retries (a refused call fails
    at once, as the elector's deadline needs)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=configuration)
    configuration.retries = 0
    return client.ApiClient(configuration)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["redis", "kubernetes"], required=True)
    parser.add_argument("--url", required=True, help="Redis URL, or the kubeconfig file")
    parser.add_argument("--holder", required=True)
    parser.add_argument("--events", required=True)
    args = parser.parse_args(argv)
    with Path(args.events).open("a", buffering=1) as out:
        return asyncio.run(_worker(args, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
