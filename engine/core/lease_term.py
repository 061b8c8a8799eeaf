"""The leadership term of an active/standby pair, decided from local monotonic time only.

A lease backend (Redis, a Kubernetes Lease) grants leadership for `ttl`. Its clock is not ours,
so we never ask it "am I still leader?": we compute the answer locally, conservatively.

    t0        local monotonic time when the acquire/renew request was *sent*
    server    applies it at some real time ts >= t0; the lease lasts until ts + ttl >= t0 + ttl
    we lead   until t0 + ttl - safety_margin, by our own monotonic clock

Using the request start (not the response time) makes network and scheduling delay on the way
there and back shorten our term instead of lengthening it: whatever the delays, the lease at the
server outlives our belief in it.

The safety margin covers clock *rate* drift: if our monotonic clock runs slower than the
server's by a ratio rho, our `ttl - margin` lasts `(ttl - margin) * (1 + rho)` of real time, which
stays below `ttl` when `margin >= ttl * rho`. The default follows Redlock's drift allowance,
`ttl * 1% + 2 ms`: quartz clocks drift by tens of ppm and NTP slews by at most 500 ppm, so 1% is
twenty times the worst legitimate rate error. For a Kubernetes Lease, expiry is judged by the
other candidates against `renewTime` (wall clocks): there the margin must also cover the wall
clock *offset* between nodes, which NTP keeps to milliseconds.

What no margin covers: a process paused between checking `is_leader` and acting on it (GC,
SIGSTOP, a VM pause), and a host suspend (CLOCK_MONOTONIC stops counting during suspend). That is
what the fencing epoch is for: every acquisition yields a strictly larger epoch, the journal
refuses writes from an older one, and an order is journaled before it is sent.

States and transitions:

    FOLLOWER ──acquired──► LEADER ──renewed──► LEADER
                             │
                             └──lost | term expired | stepped down──► DEPOSED ──rejoin──► FOLLOWER

This class only decides; the elector (engine.execution.lease.elector) performs the calls.
"""

from __future__ import annotations

import math
from enum import StrEnum

from engine.core.errors import StormproofError

DRIFT_FACTOR = 0.01
"""Clock rate drift allowed between us and the lease server (Redlock's default)."""
DRIFT_FIXED_MS = 2
"""Fixed part of the safety margin (Redlock's default)."""

_NS_PER_MS = 1_000_000


class LeaderState(StrEnum):
    FOLLOWER = "FOLLOWER"
    LEADER = "LEADER"
    DEPOSED = "DEPOSED"


class LeaseStateError(StormproofError):
    """An illegal leadership transition, or an epoch that does not increase."""


class DeposeReason(StrEnum):
    LOST = "lost: the lease backend refused the renewal"
    EXPIRED = "expired: the local term ended before a renewal succeeded"
    STOPPED = "stopped: released on shutdown"
    RESIGNED = "resigned"
    ABANDONED = "abandoned: the elector was cancelled"


def default_safety_margin_ms(ttl_ms: int) -> int:
    """Redlock's drift allowance: 1% of the TTL plus 2 ms."""
    return math.ceil(ttl_ms * DRIFT_FACTOR) + DRIFT_FIXED_MS


def default_acquire_interval_ms(ttl_ms: int, renew_interval_ms: int) -> int:
    """How often a follower tries to acquire: a tenth of the TTL, within [50 ms, renew interval].

    A takeover after the leader dies then takes at most ttl + this interval + one round trip,
    well inside the "TTL plus one second" objective, at a cost of a few cheap calls per second.
    """
    return max(1, min(renew_interval_ms, max(50, ttl_ms // 10)))


class LeaseTerm:
    """Whether we hold leadership, and when to renew or try to acquire, from local time.

    All times are local monotonic nanoseconds; all methods are pure functions of their arguments
    and the term's own state.
    """

    def __init__(
        self,
        *,
        ttl_ms: int,
        renew_interval_ms: int,
        safety_margin_ms: int | None = None,
        acquire_interval_ms: int | None = None,
        retry_interval_ms: int | None = None,
    ) -> None:
        margin_ms = (
            default_safety_margin_ms(ttl_ms) if safety_margin_ms is None else safety_margin_ms
        )
        acquire_ms = (
            default_acquire_interval_ms(ttl_ms, renew_interval_ms)
            if acquire_interval_ms is None
            else acquire_interval_ms
        )
        retry_ms = (
            max(1, renew_interval_ms // 2) if retry_interval_ms is None else retry_interval_ms
        )
        if ttl_ms <= 0 or renew_interval_ms <= 0 or acquire_ms <= 0 or retry_ms <= 0:
            raise ValueError("ttl, renew, acquire and retry intervals must be positive")
        if margin_ms < 0:
            raise ValueError("the safety margin cannot be negative")
        if renew_interval_ms >= ttl_ms - margin_ms:
            raise ValueError(
                f"renew_interval_ms ({renew_interval_ms}) must be shorter than the local term "
                f"ttl_ms - safety_margin_ms ({ttl_ms} - {margin_ms})"
            )
        self.ttl_ms = ttl_ms
        self.renew_interval_ms = renew_interval_ms
        self.safety_margin_ms = margin_ms
        self.acquire_interval_ms = acquire_ms
        self.retry_interval_ms = retry_ms
        self._term_ns = (ttl_ms - margin_ms) * _NS_PER_MS
        self._renew_ns = renew_interval_ms * _NS_PER_MS
        self._acquire_ns = acquire_ms * _NS_PER_MS
        self._retry_ns = retry_ms * _NS_PER_MS

        self.state = LeaderState.FOLLOWER
        self.epoch: int | None = None
        """Epoch of the term we hold (LEADER) or just lost (DEPOSED); None as a follower."""
        self.last_epoch = 0
        """Highest epoch ever held by this term object."""
        self.expires_ns: int | None = None
        self.deposed_reason = ""
        self.terms = 0
        self._next_renew_ns = 0
        self._next_acquire_ns = 0

    # ---- queries ---------------------------------------------------------------------------

    @property
    def term_ns(self) -> int:
        """Length of a term from its request start: ttl - safety margin."""
        return self._term_ns

    def is_leader(self, now_ns: int) -> bool:
        """True only while a term is held and has not run out at `now_ns`."""
        return (
            self.state is LeaderState.LEADER
            and self.expires_ns is not None
            and now_ns < self.expires_ns
        )

    def expired(self, now_ns: int) -> bool:
        """True when no term is valid at `now_ns` (never held, lost, or run out)."""
        return not self.is_leader(now_ns)

    def should_renew(self, now_ns: int) -> bool:
        return self.is_leader(now_ns) and now_ns >= self._next_renew_ns

    def should_acquire(self, now_ns: int) -> bool:
        return self.state is LeaderState.FOLLOWER and now_ns >= self._next_acquire_ns

    def remaining_ns(self, now_ns: int) -> int:
        if not self.is_leader(now_ns) or self.expires_ns is None:
            return 0
        return self.expires_ns - now_ns

    def next_action_ns(self, now_ns: int) -> int:
        """When the elector next has something to do (renew, notice expiry, try to acquire)."""
        if self.state is LeaderState.LEADER and self.expires_ns is not None:
            return min(self._next_renew_ns, self.expires_ns)
        if self.state is LeaderState.FOLLOWER:
            return self._next_acquire_ns
        return now_ns

    def snapshot(self, now_ns: int) -> dict[str, object]:
        """JSON-able view for /status."""
        leader = self.is_leader(now_ns)
        return {
            "state": self.state.value,
            "leader": leader,
            "epoch": self.epoch if leader else None,
            "last_epoch": self.last_epoch or None,
            "term_expires_in_ms": self.remaining_ns(now_ns) // _NS_PER_MS if leader else None,
            "terms": self.terms,
            "deposed_reason": self.deposed_reason or None,
        }

    # ---- transitions -----------------------------------------------------------------------

    def acquire_attempted(self, started_ns: int) -> None:
        """A follower sent an acquire request; the next one is due an acquire interval later."""
        self._next_acquire_ns = started_ns + self._acquire_ns

    def hold_off(self, until_ns: int) -> None:
        """Do not try to acquire before `until_ns` (after resigning: let the standby win)."""
        self._next_acquire_ns = max(self._next_acquire_ns, until_ns)

    def acquired(self, epoch: int, started_ns: int, now_ns: int) -> bool:
        """The backend granted the lease with `epoch` to a request sent at `started_ns`.

        Returns True when we are now LEADER. Returns False, staying FOLLOWER, when the answer
        came too late to leave any term (the caller should release the lease). Raises
        LeaseStateError when not a follower, or when the epoch does not exceed every epoch held
        before (the backend lost its epoch counter: fencing would be unsound).
        """
        if self.state is not LeaderState.FOLLOWER:
            raise LeaseStateError(f"acquired while {self.state}")
        if epoch <= self.last_epoch:
            raise LeaseStateError(
                f"epoch {epoch} does not exceed epoch {self.last_epoch} held before: "
                "the lease backend lost its epoch counter"
            )
        expires_ns = started_ns + self._term_ns
        if now_ns >= expires_ns:
            return False
        self.state = LeaderState.LEADER
        self.epoch = epoch
        self.last_epoch = epoch
        self.expires_ns = expires_ns
        self.deposed_reason = ""
        self.terms += 1
        self._next_renew_ns = started_ns + self._renew_ns
        return True

    def renewed(self, started_ns: int, now_ns: int) -> bool:
        """The backend extended our lease for a request sent at `started_ns`.

        Extends the term to started + ttl - margin and returns True; but if the term had already
        run out at `now_ns`, the leader has stepped down (DEPOSED, EXPIRED) and False is returned:
        leadership never resumes after the local term ended.
        """
        self._require_leader("renewed")
        assert self.expires_ns is not None
        if now_ns >= self.expires_ns:
            self._depose(DeposeReason.EXPIRED.value)
            return False
        self.expires_ns = max(self.expires_ns, started_ns + self._term_ns)
        self._next_renew_ns = started_ns + self._renew_ns
        return True

    def renew_failed(self, now_ns: int) -> None:
        """A renewal could not reach the backend: stay leader until the term ends, retry soon."""
        self._require_leader("renew_failed")
        self._next_renew_ns = now_ns + self._retry_ns

    def check(self, now_ns: int) -> bool:
        """Depose a leader whose term ran out; True when this call made the transition."""
        if self.state is LeaderState.LEADER and not self.is_leader(now_ns):
            self._depose(DeposeReason.EXPIRED.value)
            return True
        return False

    def lost(self) -> None:
        """The backend refused a renewal: someone else holds the lease, or it is gone."""
        self._require_leader("lost")
        self._depose(DeposeReason.LOST.value)

    def step_down(self, reason: str) -> None:
        """Give up leadership on our own initiative (stop, resign, cancellation)."""
        self._require_leader("step_down")
        self._depose(reason)

    def rejoin(self) -> None:
        """After a deposal has been handled, campaign again as a follower."""
        if self.state is not LeaderState.DEPOSED:
            raise LeaseStateError(f"rejoin while {self.state}")
        self.state = LeaderState.FOLLOWER
        self.epoch = None
        self.expires_ns = None

    def _require_leader(self, what: str) -> None:
        if self.state is not LeaderState.LEADER:
            raise LeaseStateError(f"{what} while {self.state}")

    def _depose(self, reason: str) -> None:
        self.state = LeaderState.DEPOSED
        self.deposed_reason = reason
