"""What one execution instance is, as leader of an active/standby pair: one state machine.

    STANDBY ──on_elected──► ELECTED ──on_claimed──► RECOVERING ──on_recovered──► LEADING
                               │                         │                           │
                               └── on_deposed (the lease's term ended) ──────────────┴─► DEPOSED
                                   on_fenced (a newer epoch wrote to the journal)

    STANDBY     hot: journal open, venue connected, markets loaded; waits to be elected
    ELECTED     the lease is ours with an epoch: claim the journal with it
    RECOVERING  the journal is claimed (role "leader"): recover before taking requests
    LEADING     recovered: take requests
    DEPOSED     leadership ended: stop the leader work, exit

A single instance (no lease backend) is elected with epoch 0 at start. DEPOSED is final: a
deposed process stops its leader work and exits, and its supervisor restarts it as a standby.
An election the process cannot use (it already leads, or was deposed) is ignored, as is a
deposal of a term other than ours; a transition from a state that cannot make it raises
LeadershipStateError.

The machine decides; the service (engine.execution.service) performs what each transition
implies: claim the journal, recover, start or stop its leader work, exit. Whether the lease is
still held at a given instant is the elector's local term (engine.core.lease_term), which the
service passes in (`may_send(lease_held=...)`).
"""

from __future__ import annotations

from enum import StrEnum

from engine.core.errors import StormproofError


class LeadershipState(StrEnum):
    STANDBY = "standby"
    ELECTED = "elected"
    RECOVERING = "recovering"
    LEADING = "leading"
    DEPOSED = "deposed"


class LeadershipStateError(StormproofError):
    """A leadership transition its current state cannot make."""


_CLAIMED = (LeadershipState.RECOVERING, LeadershipState.LEADING)


class Leadership:
    """The leadership of one execution instance: its state, its epoch, why it ended."""

    def __init__(self) -> None:
        self.state = LeadershipState.STANDBY
        self.epoch: int | None = None
        """The fencing epoch of the term we were elected for; None while standing by."""
        self.reason = ""
        """Why leadership ended (DEPOSED); "" before."""
        self._claimed = False
        self._recovered = False

    # ---- queries ---------------------------------------------------------------------------

    @property
    def leader_epoch(self) -> int | None:
        """The epoch this instance claimed the journal with (kept after a deposal); None
        before the claim."""
        return self.epoch if self._claimed else None

    @property
    def role(self) -> str:
        """ "leader" once the journal is claimed (deposed included), else "standby"."""
        return "leader" if self._claimed else "standby"

    @property
    def recovered(self) -> bool:
        """Recovery finished in this process (kept after a deposal)."""
        return self._recovered

    @property
    def deposed(self) -> bool:
        return self.state is LeadershipState.DEPOSED

    def may_send(self, *, lease_held: bool) -> bool:
        """Orders may reach the venue: the journal is claimed, leadership has not ended, and
        the lease's local term (`lease_held`, True without a lease) still runs."""
        return self.state in _CLAIMED and lease_held

    # ---- transitions -----------------------------------------------------------------------

    def on_elected(self, epoch: int) -> bool:
        """The lease is ours with `epoch`. True: claim the journal with it and recover. False:
        ignore it (this process is elected already, leads, or was deposed and will exit)."""
        if epoch < 0:
            raise LeadershipStateError(f"negative epoch {epoch}")
        if self.state is not LeadershipState.STANDBY:
            return False
        self.state = LeadershipState.ELECTED
        self.epoch = epoch
        return True

    def on_claimed(self) -> bool:
        """The journal is claimed with our epoch. True: recover now. False: leadership ended
        meanwhile (DEPOSED): recover nothing, stop."""
        if self.state is LeadershipState.DEPOSED:
            return False
        self._require(LeadershipState.ELECTED, "on_claimed")
        self.state = LeadershipState.RECOVERING
        self._claimed = True
        return True

    def on_recovered(self) -> bool:
        """Recovery finished. True: take requests. False: leadership ended during recovery
        (DEPOSED): start the leader work only to stop it at once, then exit."""
        if self.state is LeadershipState.DEPOSED:
            self._recovered = True
            return False
        self._require(LeadershipState.RECOVERING, "on_recovered")
        self.state = LeadershipState.LEADING
        self._recovered = True
        return True

    def on_deposed(self, epoch: int, reason: str) -> bool:
        """The elector lost, ended or gave up the term of `epoch`. True when that ends our
        leadership now (stop the leader work, exit); False for another term, a standby, or a
        leadership already ended."""
        if self.state in (LeadershipState.STANDBY, LeadershipState.DEPOSED) or epoch != self.epoch:
            return False
        self._depose(reason)
        return True

    def on_fenced(self, reason: str) -> bool:
        """A newer leader has written to the journal (FencingError). True when that ends our
        leadership now; False when it had already ended."""
        if self.state is LeadershipState.DEPOSED:
            return False
        if self.state not in _CLAIMED:
            raise LeadershipStateError(f"fenced while {self.state}")
        self._depose(reason)
        return True

    def _require(self, state: LeadershipState, what: str) -> None:
        if self.state is not state:
            raise LeadershipStateError(f"{what} while {self.state}")

    def _depose(self, reason: str) -> None:
        self.state = LeadershipState.DEPOSED
        self.reason = reason
