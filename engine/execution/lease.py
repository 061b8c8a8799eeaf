"""Leader lease for an active/standby execution pair: backends and the elector.

Two instances of the execution service run; one leads (sends orders), the other stands by. The
leader holds a lease it renews; if it dies, freezes or loses the lease backend, its lease runs
out and the standby takes over within the TTL plus one acquire interval. Every acquisition
yields a fencing epoch larger than any before it; the new leader claims it in the journal
(`Journal.claim`), which then refuses writes from older epochs, so a deposed leader that wakes
up can neither write nor send (orders are journaled before they are sent).

Backends (same contract, `LeaseBackend`):

- `RedisLease`: key `stormproof:lease:{name}` = `{holder}:{epoch}` with a PX expiry, plus a
  counter `stormproof:lease:{name}:epoch` that never expires, so epochs survive lease expiry.
  Acquire, renew and release are Lua scripts (atomic, compare-and-set on the value). Redis must
  persist the counter (AOF): if it were lost, epochs would restart low and the journal would
  refuse the new leader (safe, but no leader until the counter passes the journal's epoch).
  With asynchronous replication a failover can lose the last INCR in the same way.
- `KubernetesLease`: a coordination.k8s.io/v1 Lease, as client-go's leader election uses it
  (holderIdentity, leaseDurationSeconds, acquireTime, renewTime), with leaseTransitions as the
  fencing epoch and optimistic concurrency on metadata.resourceVersion (409 = someone else won).
  Expiry is judged against `renewTime` with wall clocks, so node clocks must be NTP-synced;
  leaseDurationSeconds is whole seconds (ceil of the TTL): use whole-second TTLs there.

A holder that finds the lease held under its *own* identity takes it again with a new epoch:
that lease belongs to an earlier term of ours (a lost reply, a restart under the same name).
Holder identities must therefore be unique per live instance (hostname + pid + random suffix).

`LeaderElector` drives a backend with the pure `engine.core.lease.LeaseTerm`: it acquires as a
follower, renews as a leader, and steps down when a renewal is refused or when the local term
runs out before a renewal succeeded (backend unreachable or hung). Backend errors are logged once
per kind (rate limited) and never end the loop; every backend call is bounded by a timeout
shorter than the TTL. Callbacks run in order in a notifier task of their own, so a slow
`on_elected` (journal claim, reconciliation) never delays a renewal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from engine.config import LeaseConfig
from engine.core.clock import Clock, LiveClock
from engine.core.errors import LeaseError
from engine.core.lease import DeposeReason, LeaderState, LeaseStateError, LeaseTerm
from plumbing.logging import get_logger
from plumbing.ratelimited_log import RateLimitedLog
from plumbing.waits import raise_if_cancelled, wait_set

OnElected = Callable[[int], Awaitable[None]]
OnDeposed = Callable[[int, str], Awaitable[None]]


class LeaseBackend(Protocol):
    """Where the lease lives. Epochs strictly increase across every acquisition ever made."""

    async def try_acquire(self, holder: str, ttl_ms: int) -> int | None:
        """Take the lease for `ttl_ms` if it is free, expired or ours from an earlier term;
        return the new fencing epoch, or None when someone else holds it."""
        ...

    async def renew(self, holder: str, epoch: int, ttl_ms: int) -> bool:
        """Extend our lease by `ttl_ms` from now; False when it is no longer ours."""
        ...

    async def release(self, holder: str, epoch: int) -> None:
        """Give the lease up if it is still ours with this epoch (no-op otherwise)."""
        ...

    async def current(self) -> tuple[str, int] | None:
        """The live holder and its epoch, or None when the lease is free."""
        ...

    async def close(self) -> None: ...


def _check_holder(holder: str) -> None:
    if not holder or holder != holder.strip():
        raise ValueError(f"invalid lease holder identity {holder!r}")


# ---- Redis ---------------------------------------------------------------------------------

# KEYS[1] lease, KEYS[2] epoch counter; ARGV[1] holder, ARGV[2] ttl ms.
# Free (absent: never taken, released or expired) or held by ourselves from an earlier term:
# take it with a new epoch. The SET runs only when the key is absent or ours: SET NX semantics.
_ACQUIRE = """
local value = redis.call('GET', KEYS[1])
if value then
  local sep = string.find(value, ':[^:]*$')
  if not sep or string.sub(value, 1, sep - 1) ~= ARGV[1] then
    return false
  end
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
return epoch
"""
# KEYS[1] lease; ARGV[1] expected value, ARGV[2] ttl ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] lease; ARGV[1] expected value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def redis_lease_key(name: str) -> str:
    return f"stormproof:lease:{name}"


class RedisLease:
    """The lease as a Redis key with a PX expiry; the fencing epoch as a persistent counter."""

    def __init__(
        self,
        redis_url: str,
        name: str,
        *,
        socket_timeout_ms: int = 1_000,
        username: str = "",
        password: str = "",
    ) -> None:
        if not name:
            raise ValueError("a lease needs a name")
        self.name = name
        self.key = redis_lease_key(name)
        self.epoch_key = f"{self.key}:epoch"
        self._url = redis_url
        self._redis = aioredis.Redis.from_url(
            redis_url,
            username=username or None,
            password=password or None,
            decode_responses=True,
            socket_connect_timeout=socket_timeout_ms / 1000,
            socket_timeout=socket_timeout_ms / 1000,
            # One immediate retry replaces a pooled connection that died with a Redis restart;
            # more would only stretch a call the elector bounds anyway.
            retry=Retry(NoBackoff(), 1),
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisLease({self._safe_url()}, {self.name!r})"

    def _safe_url(self) -> str:
        if "@" in self._url:
            scheme, rest = self._url.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self._url

    async def _call(self, op: str, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise LeaseError(f"redis lease {op} at {self._safe_url()} failed: {exc}") from exc

    async def try_acquire(self, holder: str, ttl_ms: int) -> int | None:
        _check_holder(holder)
        epoch = await self._call(
            "acquire", self._acquire(keys=[self.key, self.epoch_key], args=[holder, int(ttl_ms)])
        )
        return None if epoch is None else int(epoch)

    async def renew(self, holder: str, epoch: int, ttl_ms: int) -> bool:
        result = await self._call(
            "renew", self._renew(keys=[self.key], args=[f"{holder}:{epoch}", int(ttl_ms)])
        )
        return bool(int(result))

    async def release(self, holder: str, epoch: int) -> None:
        await self._call("release", self._release(keys=[self.key], args=[f"{holder}:{epoch}"]))

    async def current(self) -> tuple[str, int] | None:
        value = await self._call("read", self._redis.get(self.key))
        if value is None:
            return None
        holder, _, epoch = str(value).rpartition(":")
        return holder, int(epoch)

    async def close(self) -> None:
        await self._redis.aclose()


# ---- Kubernetes ----------------------------------------------------------------------------


def _micro_time(ns: int) -> dt.datetime:
    """A MicroTime for the API server, from wall-clock ns.

    The API server parses MicroTime with exactly six fractional digits, and the client
    serializes with datetime.isoformat(), which drops the fraction when microsecond == 0; such a
    timestamp moves one microsecond later rather than being rejected.
    """
    seconds, rest_ns = divmod(ns, 1_000_000_000)
    value = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).replace(microsecond=rest_ns // 1000)
    return value if value.microsecond else value.replace(microsecond=1)


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class KubernetesLease:
    """A coordination.k8s.io/v1 Lease through the official (synchronous) `kubernetes` client.

    Every API call runs in a worker thread (asyncio.to_thread) with a per-request timeout. A
    lease is takeable when absent, released (no holderIdentity), ours from an earlier term, or
    expired: renewTime + leaseDurationSeconds in the past by our wall clock. Every acquisition
    increments leaseTransitions, which is the fencing epoch (client-go increments it on every
    change of holder; a re-acquisition by the same holder is a new term and needs a new epoch
    too). A lease created here starts at 1: epoch 0 means "no leadership" to the journal.

    RBAC: the service account needs get, create and update on leases.coordination.k8s.io in
    the namespace. A caller-provided `api_client` stays the caller's to close.
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        api_client: Any = None,
        *,
        clock: Clock | None = None,
        request_timeout_s: float = 2.0,
    ) -> None:
        if not name or not namespace:
            raise ValueError("a Kubernetes lease needs a namespace and a name")
        self.namespace = namespace
        self.name = name
        self._clock = clock or LiveClock()
        self._request_timeout_s = request_timeout_s
        self._api_client = api_client
        self._owns_client = api_client is None
        self._coordination: Any = None
        # Import the (large) client now, at construction, not inside the first bounded call.
        import kubernetes.client  # noqa: F401

    def __repr__(self) -> str:
        return f"KubernetesLease({self.namespace}/{self.name})"

    def _api(self) -> Any:
        """Built on first use, in a worker thread: loading a kubeconfig reads files."""
        if self._coordination is None:
            from kubernetes import client
            from kubernetes import config as kube_config

            config: Any = kube_config  # the loaders are untyped
            if self._api_client is None:
                try:
                    configuration = client.Configuration()
                    config.load_incluster_config(client_configuration=configuration)
                    self._api_client = client.ApiClient(configuration)
                except config.ConfigException:
                    self._api_client = config.new_client_from_config()
            self._coordination = client.CoordinationV1Api(self._api_client)
        return self._coordination

    def _timeout(self, ttl_ms: int | None = None) -> float:
        if ttl_ms is None:
            return self._request_timeout_s
        return max(0.05, min(self._request_timeout_s, ttl_ms / 2000))

    async def _run(self, op: str, fn: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException, OpenApiException
        from urllib3.exceptions import HTTPError

        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            raise LeaseError(
                f"kubernetes lease {op} {self.namespace}/{self.name}: "
                f"HTTP {exc.status} {exc.reason}"
            ) from exc
        except (OpenApiException, HTTPError, OSError, ValueError) as exc:
            raise LeaseError(
                f"kubernetes lease {op} {self.namespace}/{self.name} failed: {exc}"
            ) from exc

    def _read(self, timeout_s: float) -> Any:
        """The Lease, or None when absent."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._api().read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout_s
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _replace(self, lease: Any, timeout_s: float) -> bool:
        """Write back a lease read earlier; False when its resourceVersion is stale (409)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._api().replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=timeout_s
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    @staticmethod
    def _expired(spec: Any, now_ns: int) -> bool:
        if spec.renew_time is None or not spec.lease_duration_seconds:
            return True
        renew_ns = int(_as_utc(spec.renew_time).timestamp() * 1_000_000) * 1000
        duration_ns = int(spec.lease_duration_seconds) * 1_000_000_000
        return renew_ns + duration_ns <= now_ns

    def _acquire_sync(self, holder: str, ttl_ms: int, now_ns: int) -> int | None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        timeout = self._timeout(ttl_ms)
        duration_s = max(1, math.ceil(ttl_ms / 1000))
        stamp = _micro_time(now_ns)
        lease = self._read(timeout)
        if lease is None:
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=holder,
                    lease_duration_seconds=duration_s,
                    acquire_time=stamp,
                    renew_time=stamp,
                    lease_transitions=1,
                ),
            )
            try:
                self._api().create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            except ApiException as exc:
                if exc.status == 409:  # AlreadyExists: another candidate created it first
                    return None
                raise
            return 1
        spec = lease.spec or client.V1LeaseSpec()
        current = spec.holder_identity or ""
        if current and current != holder and not self._expired(spec, now_ns):
            return None
        epoch = (spec.lease_transitions or 0) + 1
        spec.holder_identity = holder
        spec.lease_duration_seconds = duration_s
        spec.acquire_time = stamp
        spec.renew_time = stamp
        spec.lease_transitions = epoch
        lease.spec = spec
        return epoch if self._replace(lease, timeout) else None

    def _renew_sync(self, holder: str, epoch: int, ttl_ms: int, now_ns: int) -> bool:
        timeout = self._timeout(ttl_ms)
        lease = self._read(timeout)
        if lease is None or lease.spec is None:
            return False
        spec = lease.spec
        if spec.holder_identity != holder or spec.lease_transitions != epoch:
            return False
        if self._expired(spec, now_ns):  # like a Redis key past its PX: gone, even if untaken
            return False
        spec.renew_time = _micro_time(now_ns)
        spec.lease_duration_seconds = max(1, math.ceil(ttl_ms / 1000))
        return bool(self._replace(lease, timeout))

    def _release_sync(self, holder: str, epoch: int, now_ns: int) -> None:
        # As client-go releases: empty holder, keep the transitions count.
        timeout = self._timeout()
        lease = self._read(timeout)
        if lease is None or lease.spec is None:
            return
        spec = lease.spec
        if spec.holder_identity != holder or spec.lease_transitions != epoch:
            return
        spec.holder_identity = None
        spec.lease_duration_seconds = 1
        spec.renew_time = _micro_time(now_ns)
        self._replace(lease, timeout)

    def _current_sync(self, now_ns: int) -> tuple[str, int] | None:
        lease = self._read(self._timeout())
        if lease is None or lease.spec is None or not lease.spec.holder_identity:
            return None
        if self._expired(lease.spec, now_ns):
            return None
        return lease.spec.holder_identity, int(lease.spec.lease_transitions or 0)

    async def try_acquire(self, holder: str, ttl_ms: int) -> int | None:
        _check_holder(holder)
        now_ns = self._clock.time_ns()  # request start: the conservative renewTime
        result: int | None = await self._run(
            "acquire", lambda: self._acquire_sync(holder, ttl_ms, now_ns)
        )
        return result

    async def renew(self, holder: str, epoch: int, ttl_ms: int) -> bool:
        now_ns = self._clock.time_ns()
        result: bool = await self._run(
            "renew", lambda: self._renew_sync(holder, epoch, ttl_ms, now_ns)
        )
        return result

    async def release(self, holder: str, epoch: int) -> None:
        now_ns = self._clock.time_ns()
        await self._run("release", lambda: self._release_sync(holder, epoch, now_ns))

    async def current(self) -> tuple[str, int] | None:
        now_ns = self._clock.time_ns()
        result: tuple[str, int] | None = await self._run("read", lambda: self._current_sync(now_ns))
        return result

    async def close(self) -> None:
        if self._owns_client and self._api_client is not None:
            client, self._api_client = self._api_client, None
            self._coordination = None
            await asyncio.to_thread(client.close)


def lease_backend(
    config: LeaseConfig, *, default_redis_url: str, username: str = "", password: str = ""
) -> LeaseBackend | None:
    """The backend a LeaseConfig asks for; None for a single instance (backend "none"). A Redis
    lease on the bus's own Redis uses the process's bus credentials."""
    if config.backend == "redis":
        return RedisLease(
            config.redis_url or default_redis_url, config.name, username=username, password=password
        )
    if config.backend == "kubernetes":
        return KubernetesLease(config.namespace, config.name)
    return None


# ---- the elector ---------------------------------------------------------------------------


async def _noop_elected(epoch: int) -> None:
    return None


async def _noop_deposed(epoch: int, reason: str) -> None:
    return None


def _error_kind(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, LeaseError) and exc.__cause__ else exc
    return type(cause).__name__


class LeaderElector:
    """Campaigns for the lease, keeps it while it can, and says so.

    `run()` loops until `stop()`: as a follower it tries to acquire every acquire interval; as a
    leader it renews every renew interval (sooner after a failed attempt) and steps down when a
    renewal is refused or the local term runs out first. `on_elected(epoch)` and
    `on_deposed(epoch, reason)` are awaited in order, in a notifier task of their own. If
    `on_elected` raises, the elector resigns that term. `stop()` releases the lease (the standby
    takes over at once) and reports the deposal with reason STOPPED. Cancelling `run()` abandons
    the lease without a release or a callback: it then expires after the TTL.

    `is_leader` is computed from the clock at each call, so it turns False the moment the local
    term ends, whether or not the loop has run since (an event loop stalled past the term never
    reads True).

    Timing: a follower tries every `acquire_interval_ms` (default a tenth of the TTL, 50 ms to
    the renew interval), so a dead leader is replaced within ttl + that interval + one round
    trip. Each backend call is bounded by `call_timeout_ms` (default half the TTL), and a
    renewal also by what is left of the term, so a hung backend cannot keep a leader past it.
    `safety_margin_ms` defaults to Redlock's drift allowance (see engine.core.lease). An elector
    runs once: `stop()` before `run()` makes `run()` return at once.
    """

    def __init__(
        self,
        backend: LeaseBackend,
        *,
        holder: str,
        ttl_ms: int,
        renew_interval_ms: int,
        clock: Clock,
        on_elected: OnElected | None = None,
        on_deposed: OnDeposed | None = None,
        acquire_interval_ms: int | None = None,
        safety_margin_ms: int | None = None,
        call_timeout_ms: int | None = None,
        error_log_interval_ms: int = 60_000,
        logger: Any = None,
    ) -> None:
        _check_holder(holder)
        self.backend = backend
        self.holder = holder
        self.ttl_ms = ttl_ms
        self._clock = clock
        self._term = LeaseTerm(
            ttl_ms=ttl_ms,
            renew_interval_ms=renew_interval_ms,
            safety_margin_ms=safety_margin_ms,
            acquire_interval_ms=acquire_interval_ms,
        )
        # Shorter than the TTL, and a renewal is further capped by what is left of the term.
        timeout_ms = (
            max(renew_interval_ms, ttl_ms // 2) if call_timeout_ms is None else call_timeout_ms
        )
        if not 0 < timeout_ms < ttl_ms:
            raise ValueError("call_timeout_ms must be positive and shorter than ttl_ms")
        self._call_timeout_s = timeout_ms / 1000
        self._on_elected = on_elected or _noop_elected
        self._on_deposed = on_deposed or _noop_deposed
        self._log = (logger or get_logger("engine.execution.lease")).bind(
            holder=holder, lease=repr(backend)
        )
        self._errors = RateLimitedLog(self._log, clock, interval_ms=error_log_interval_ms)
        self._failing: set[str] = set()
        self._last_error: str | None = None
        self._notices: asyncio.Queue[tuple[str, int, str] | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._resign: tuple[str, int | None] | None = None

    # ---- what the service asks ---------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._term.is_leader(self._clock.monotonic_ns())

    @property
    def epoch(self) -> int | None:
        """The fencing epoch of the term we hold now; None when not leader."""
        return self._term.epoch if self.is_leader else None

    @property
    def term(self) -> LeaseTerm:
        return self._term

    def state(self) -> dict[str, object]:
        """JSON-able, for /status."""
        snapshot = self._term.snapshot(self._clock.monotonic_ns())
        return {
            "holder": self.holder,
            "backend": repr(self.backend),
            "ttl_ms": self.ttl_ms,
            **snapshot,
            "backend_error": self._last_error,
        }

    def stop(self) -> None:
        """Make `run()` release the lease (if held), report it, and return."""
        self._stopping = True
        self._wake.set()

    def resign(self, reason: str, *, epoch: int | None = None) -> None:
        """Step down (release, report) and let the standby win: no campaign for one TTL.

        With `epoch`, only that term is resigned (a late request about an older term is ignored).
        """
        self._resign = (reason, epoch)
        self._wake.set()

    # ---- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        if self._running:
            raise RuntimeError("LeaderElector.run() is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._notify_loop(), name=f"lease-notify-{self.holder}")
                try:
                    await self._campaign()
                finally:
                    self._notices.put_nowait(None)
        finally:
            self._running = False

    def _now(self) -> int:
        return self._clock.monotonic_ns()

    async def _campaign(self) -> None:
        term = self._term
        try:
            while not self._stopping:
                raise_if_cancelled()
                now = self._now()
                if term.state is LeaderState.DEPOSED:
                    term.rejoin()
                    continue
                if term.state is LeaderState.LEADER:
                    if term.check(now):
                        await self._deposed()
                        continue
                    if self._resign is not None:
                        await self._resign_now()
                        continue
                    if term.should_renew(now):
                        await self._renew(now)
                        continue
                else:
                    self._resign = None  # nothing to resign as a follower
                    if term.should_acquire(now):
                        await self._acquire(now)
                        continue
                await self._sleep_until(term.next_action_ns(now))
        except asyncio.CancelledError:
            if term.state is LeaderState.LEADER:
                term.step_down(DeposeReason.ABANDONED.value)
                self._log.warning("lease abandoned", epoch=term.epoch)
            raise
        if term.state is LeaderState.LEADER:
            epoch = term.epoch
            term.step_down(DeposeReason.STOPPED.value)
            self._log.info("lease released on stop", epoch=epoch)
            self._notify("deposed", term)
            await self._release(epoch)

    async def _sleep_until(self, deadline_ns: int) -> None:
        delay_s = (deadline_ns - self._now()) / 1e9
        if delay_s > 0 and not self._wake.is_set():
            await wait_set(self._wake, delay_s)
        self._wake.clear()

    async def _acquire(self, started: int) -> None:
        term = self._term
        term.acquire_attempted(started)
        try:
            async with asyncio.timeout(self._call_timeout_s):
                epoch = await self.backend.try_acquire(self.holder, self.ttl_ms)
        except Exception as exc:
            self._failed("acquire", exc)
            return
        self._succeeded("acquire")
        if epoch is None:
            return
        now = self._now()
        try:
            elected = term.acquired(epoch, started, now)
        except LeaseStateError as exc:
            self._log.error("lease acquisition refused", epoch=epoch, error=str(exc))
            await self._release(epoch)
            return
        if not elected:
            self._log.warning(
                "lease granted too late to use; releasing",
                epoch=epoch,
                call_ms=(now - started) // 1_000_000,
            )
            await self._release(epoch)
            return
        self._log.info(
            "lease acquired: leader", epoch=epoch, term_ms=term.remaining_ns(now) // 1_000_000
        )
        self._notify("elected", term)

    async def _renew(self, started: int) -> None:
        term = self._term
        epoch = term.epoch
        assert epoch is not None
        timeout_s = min(self._call_timeout_s, term.remaining_ns(started) / 1e9)
        try:
            async with asyncio.timeout(timeout_s):
                ok = await self.backend.renew(self.holder, epoch, self.ttl_ms)
        except Exception as exc:
            self._failed("renew", exc)
            term.renew_failed(self._now())
            return
        self._succeeded("renew")
        if not ok:
            term.lost()
            await self._deposed()
            return
        if not term.renewed(started, self._now()):
            await self._deposed()

    async def _deposed(self) -> None:
        """Report a deposal (the term already says DEPOSED), then release what may be ours."""
        term = self._term
        epoch = term.epoch
        assert epoch is not None
        self._log.warning("lease lost: deposed", epoch=epoch, reason=term.deposed_reason)
        self._notify("deposed", term)
        # The lease may still be ours at the server (a renewal whose answer came too late, or a
        # backend we could not reach): give it up so the standby need not wait for the TTL.
        await self._release(epoch)

    async def _resign_now(self) -> None:
        term = self._term
        assert self._resign is not None
        reason, only_epoch = self._resign
        self._resign = None
        epoch = term.epoch
        assert epoch is not None
        if only_epoch is not None and only_epoch != epoch:
            return
        term.step_down(f"{DeposeReason.RESIGNED.value}: {reason}")
        term.hold_off(self._now() + self.ttl_ms * 1_000_000)
        self._log.warning("lease resigned", epoch=epoch, reason=reason)
        self._notify("deposed", term)
        await self._release(epoch)

    async def _release(self, epoch: int | None) -> None:
        if epoch is None:
            return
        try:
            async with asyncio.timeout(self._call_timeout_s):
                await self.backend.release(self.holder, epoch)
        except Exception as exc:
            self._failed("release", exc)
        else:
            self._succeeded("release")

    def _failed(self, op: str, exc: Exception) -> None:
        kind = _error_kind(exc)
        self._failing.add(op)
        self._last_error = f"{op}: {kind}: {exc}"
        self._errors.warning(
            f"{op}:{kind}",
            "lease backend call failed",
            op=op,
            error=str(exc) or kind,
            leader=self.is_leader,
            term_left_ms=self._term.remaining_ns(self._now()) // 1_000_000,
        )

    def _succeeded(self, op: str) -> None:
        # any answer means the backend is back, whichever call failed before: a call that was
        # in flight (hanging) when the outage ended succeeds without its kind ever failing
        if self._failing:
            self._log.info(
                "lease backend call succeeded again", op=op, failed=sorted(self._failing)
            )
            self._failing.clear()
        self._last_error = None

    # ---- callbacks ---------------------------------------------------------------------------

    def _notify(self, kind: str, term: LeaseTerm) -> None:
        assert term.epoch is not None
        self._notices.put_nowait((kind, term.epoch, term.deposed_reason))

    async def _notify_loop(self) -> None:
        while True:
            notice = await self._notices.get()
            if notice is None:
                return
            kind, epoch, reason = notice
            try:
                if kind == "elected":
                    await self._on_elected(epoch)
                else:
                    await self._on_deposed(epoch, reason)
            except Exception as exc:
                self._log.exception(f"lease on_{kind} callback failed", epoch=epoch)
                if kind == "elected":
                    self.resign(f"on_elected failed: {exc}", epoch=epoch)
