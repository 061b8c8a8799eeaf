"""The elector: campaigns for the lease, keeps it while it can, and says so.

`LeaderElector` drives a backend (`engine.execution.lease.base.LeaseBackend`) with the pure
`engine.core.lease_term.LeaseTerm`: it acquires as a follower, renews as a leader, and steps
down when a renewal is refused or when the local term runs out before a renewal succeeded
(backend unreachable or hung). Backend errors are logged once per kind (rate limited) and never
end the loop; every backend call is bounded by a timeout shorter than the TTL. Callbacks run in
order in a notifier task of their own, so a slow `on_elected` (journal claim, reconciliation)
never delays a renewal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engine.core.clock import Clock
from engine.core.errors import LeaseError
from engine.core.lease_term import DeposeReason, LeaderState, LeaseStateError, LeaseTerm
from engine.execution.lease.base import LeaseBackend, OnDeposed, OnElected, check_holder
from plumbing.logging import get_logger
from plumbing.ratelimited_log import RateLimitedLog
from plumbing.waits import raise_if_cancelled, wait_set


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
    `safety_margin_ms` defaults to Redlock's drift allowance (see engine.core.lease_term). An
    elector runs once: `stop()` before `run()` makes `run()` return at once.
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
        check_holder(holder)
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
