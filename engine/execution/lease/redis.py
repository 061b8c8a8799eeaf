"""The lease as a Redis key: `stormproof:lease:{name}` = `{holder}:{epoch}` with a PX expiry,
plus a counter `stormproof:lease:{name}:epoch` that never expires, so epochs survive lease expiry.

Acquire, renew and release are Lua scripts (atomic, compare-and-set on the value). Redis must
persist the counter (AOF): if it were lost, epochs would restart low and the journal would
refuse the new leader (safe, but no leader until the counter passes the journal's epoch). With
asynchronous replication a failover can lose the last INCR in the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from engine.core.errors import LeaseError
from engine.execution.lease.base import check_holder

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
        check_holder(holder)
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
