"""The lease backend a configuration asks for."""

from __future__ import annotations

from engine.config import LeaseConfig
from engine.execution.lease.base import LeaseBackend
from engine.execution.lease.kubernetes import KubernetesLease
from engine.execution.lease.redis import RedisLease


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
