"""Feed faults: what a client receives while a fault is active. Pure: no sockets, no clock reads.

Message faults (for a stream, a client, or both; "all" when neither is given):
    stall      nothing is sent for the target while active (the connection stays open)
    gap        the next `count` messages of the target are skipped (use a depth stream to make
               an update-id gap)
    duplicate  every message of the target is sent twice while active (or the next `count`)
    reorder    each message of the target is held back and sent after the next one
    malformed  before each of the next `count` messages, a truncated copy of it is sent
Connection faults, applied once when added (start = end):
    drop       matching connections are cut without a close handshake
    slow_consumer   matching connections are closed as too slow (1008), as the exchange does

Every fault is kept in the log with its start and end time (ns) for the harness to read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MESSAGE_FAULTS = ("stall", "gap", "duplicate", "reorder", "malformed")
CONNECTION_FAULTS = ("drop", "slow_consumer")
KINDS = MESSAGE_FAULTS + CONNECTION_FAULTS


class FaultError(ValueError):
    """A fault request that cannot be honoured; the message says why."""


@dataclass
class Fault:
    fault_id: int
    kind: str
    stream: str | None
    client: int | None
    start_ns: int
    end_ns: int | None
    """Planned end for timed faults; None while a count-based fault is still consuming."""
    count: int | None
    params: dict[str, Any] = field(default_factory=dict)
    ended_ns: int | None = None
    applied: int = 0

    def matches(self, stream: str, client: int) -> bool:
        return (self.stream is None or self.stream == stream) and (
            self.client is None or self.client == client
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.fault_id,
            "kind": self.kind,
            "stream": self.stream,
            "client": self.client,
            "start_ns": self.start_ns,
            "end_ns": self.ended_ns,
            "planned_end_ns": self.end_ns,
            "count": self.count,
            "applied": self.applied,
            "active": self.ended_ns is None,
        }


class FaultBook:
    def __init__(self) -> None:
        self._next_id = 1
        self.faults: list[Fault] = []
        self._held: dict[tuple[int, int], bytes] = {}
        """(fault id, client) -> message held back by a reorder fault."""

    def add(
        self,
        *,
        kind: str,
        now_ns: int,
        stream: str | None = None,
        client: int | None = None,
        duration_ms: float | None = None,
        count: int | None = None,
    ) -> Fault:
        if kind not in KINDS:
            raise FaultError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        if kind in ("gap", "malformed") and not count:
            raise FaultError(f"a {kind} fault needs a positive count")
        if kind in ("stall", "reorder") and not duration_ms:
            raise FaultError(f"a {kind} fault needs a positive duration_ms")
        if kind == "duplicate" and not (duration_ms or count):
            raise FaultError("a duplicate fault needs duration_ms or count")
        if (duration_ms is not None and duration_ms <= 0) or (count is not None and count <= 0):
            raise FaultError("duration_ms and count must be positive")
        end = now_ns + int(duration_ms * 1e6) if duration_ms else None
        fault = Fault(self._next_id, kind, stream, client, now_ns, end, count)
        self._next_id += 1
        if kind in CONNECTION_FAULTS:
            fault.ended_ns = now_ns
        self.faults.append(fault)
        return fault

    def end(self, fault_id: int, now_ns: int) -> Fault:
        for fault in self.faults:
            if fault.fault_id == fault_id:
                if fault.ended_ns is None:
                    fault.ended_ns = now_ns
                return fault
        raise FaultError(f"no fault with id {fault_id}")

    def end_all(self, now_ns: int) -> None:
        for fault in self.active(now_ns):
            fault.ended_ns = now_ns

    def expire(self, now_ns: int) -> None:
        for fault in self.faults:
            if fault.ended_ns is None and fault.end_ns is not None and now_ns >= fault.end_ns:
                fault.ended_ns = fault.end_ns

    def active(self, now_ns: int) -> list[Fault]:
        self.expire(now_ns)
        return [f for f in self.faults if f.ended_ns is None]

    def deliver(self, stream: str, client: int, payload: bytes, now_ns: int) -> list[bytes]:
        """The frames a client gets for one message while faults are active, in order."""
        out = [payload]
        for fault in self.active(now_ns):
            if fault.kind in CONNECTION_FAULTS or not fault.matches(stream, client):
                continue
            fault.applied += 1
            if fault.kind == "stall":
                out = []
            elif fault.kind == "gap":
                out = []
                self._consume(fault, now_ns)
            elif fault.kind == "duplicate":
                out = [frame for frame in out for _ in (0, 1)]
                self._consume(fault, now_ns)
            elif fault.kind == "malformed":
                out = [payload[: max(1, len(payload) // 2)], *out]
                self._consume(fault, now_ns)
            elif fault.kind == "reorder":
                held = self._held.pop((fault.fault_id, client), None)
                if held is None:
                    self._held[(fault.fault_id, client)] = payload
                    out = [frame for frame in out if frame is not payload]
                else:
                    out = [*out, held]
        return out

    def release_held(self, now_ns: int) -> list[tuple[int, bytes]]:
        """Messages still held by reorder faults that have ended: send them now."""
        released = []
        active = {f.fault_id for f in self.active(now_ns)}
        for (fault_id, client), payload in list(self._held.items()):
            if fault_id not in active:
                released.append((client, payload))
                del self._held[(fault_id, client)]
        return released

    def _consume(self, fault: Fault, now_ns: int) -> None:
        if fault.count is not None and fault.applied >= fault.count:
            fault.ended_ns = now_ns

    def connection_targets(self, fault: Fault, clients: dict[int, set[str]]) -> list[int]:
        """Clients a connection fault applies to (by id, or by a subscribed stream)."""
        return [
            cid
            for cid, subscriptions in clients.items()
            if (fault.client is None or fault.client == cid)
            and (fault.stream is None or fault.stream in subscriptions)
        ]
