"""What every lease backend promises, and the types the elector and the service share.

A backend holds the lease of an active/standby pair somewhere both instances can reach (a Redis
key, a Kubernetes Lease). Every acquisition yields a fencing epoch larger than any before it:
the new leader claims it in the journal (`Journal.claim`), which then refuses writes from older
epochs, so a deposed leader that wakes up can neither write nor send (orders are journaled
before they are sent).

A holder that finds the lease held under its *own* identity takes it again with a new epoch:
that lease belongs to an earlier term of ours (a lost reply, a restart under the same name).
Holder identities must therefore be unique per live instance (hostname + pid + random suffix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

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


def check_holder(holder: str) -> None:
    """A holder identity is non-empty and has no surrounding blanks (it is compared verbatim)."""
    if not holder or holder != holder.strip():
        raise ValueError(f"invalid lease holder identity {holder!r}")
