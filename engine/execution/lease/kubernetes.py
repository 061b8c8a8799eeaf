"""The lease as a coordination.k8s.io/v1 Lease, as client-go's leader election uses it
(holderIdentity, leaseDurationSeconds, acquireTime, renewTime), with leaseTransitions as the
fencing epoch and optimistic concurrency on metadata.resourceVersion (409 = someone else won).

Expiry is judged against `renewTime` with wall clocks, so node clocks must be NTP-synced;
leaseDurationSeconds is whole seconds (ceil of the TTL): use whole-second TTLs there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from engine.core.clock import Clock, LiveClock
from engine.core.errors import LeaseError
from engine.execution.lease.base import check_holder


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
        check_holder(holder)
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
