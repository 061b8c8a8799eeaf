"""Faults proven injected: what each experiment declares as evidence, and whether what the
harness's watcher observed proves it. Pure: the watcher (`harness.gameday.watch`) does the I/O.

An experiment declares its evidence in Chaos Toolkit's `extensions` block, and, when its
method prepares before it strikes, which activity is the fault (the engine's reaction times run
from that activity's start; by default from the method's):

    "extensions": [{"name": "stormproof",
        "fault_starts_at": "kill-execution-mid-order",
        "evidence": [
            {"kind": "process_restarted", "process": "engine-execution"},
            {"kind": "orders_in_flight", "activity": "kill-execution-mid-order", "min": 1}]}]

Every item must be proven by a source other than the engine and other than the action that
injected the fault saying so itself:

    link_down          {link}            Toxiproxy's API showed the proxy disabled
    toxic              {link, type}      Toxiproxy's API showed a toxic of that type on the proxy
    process_restarted  {process}         a PID of the process vanished from /proc and another
                                         PID took its name (the supervisor's state, checked
                                         against /proc)
    process_down       {process}         a PID of the process vanished from /proc
    process_frozen     {process}         /proc showed the process stopped (state T)
    venue_fault        {fault, min}      the simulator's fault log: a fault of that kind started
                                         in the window and was applied to >= min requests
                                         (min 0: started, whether or not a request met it)
    feed_fault         {fault, min}      the replay's fault log, likewise
    venue_refused      {status, min}     the simulator's own counters of 429 or 418 answers grew
                                         by >= min during the window
    orders_in_flight   {activity, min}   at the kill, the simulator held >= min order requests
                                         it had not answered yet (read from the simulator by the
                                         kill action, just before it killed)
    market_drop        {min_drop_pct}    the replay's own mid fell by >= min_drop_pct within the
                                         window
    mark_moved         {min_pct}         futures: the simulator's own mark price (its ledger's,
                                         what liquidates) stood >= min_pct away from the
                                         replay's mid at some look of the watcher
    venue_order        {client_order_id_prefix, min}
                                         the simulator filled >= min orders placed in the window
                                         whose clientOrderId starts with the prefix (someone at
                                         the exchange beside the engine: a close by hand)
    funding_spiked     {min_rate, min}   futures: the simulator applied funding at a rate of
                                         at least min_rate (absolute, per interval) at >= min
                                         funding times of the window (its schedule)

On Kubernetes (the game day's k8s target; its watcher reads the API server, not the engine):

    pod_replaced       {app}             a pod of the app (label app.kubernetes.io/name) seen
                                         live went away and a pod of another uid took its place
    no_ready_pods      {app}             at some moment no pod of the app was Ready
    container_restarted {app}            a pod of the app showed a higher restartCount than
                                         when the watch began (its container died, the kubelet
                                         started it again)
    leader_cut_off     {}                the execution Lease moved away from a holder whose pod
                                         was still there: the leader stopped renewing while
                                         alive (cut off, not killed)
    node_cordoned      {}                a node of the cluster showed spec.unschedulable
    toxic, link_down                     as above, from the staging Toxiproxy's API

`process` may end with `*` (engine-execution* is either execution instance). No evidence, or
evidence not proven, makes the scenario inconclusive: a fault that did not happen proves
nothing about the engine.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import GameDayConfigError

KINDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required keys, optional keys)
    "link_down": (("link",), ()),
    "toxic": (("link", "type"), ()),
    "process_restarted": (("process",), ()),
    "process_down": (("process",), ()),
    "process_frozen": (("process",), ()),
    "venue_fault": (("fault",), ("min",)),
    "feed_fault": (("fault",), ("min",)),
    "venue_refused": (("status",), ("min",)),
    "orders_in_flight": (("activity",), ("min",)),
    "market_drop": (("min_drop_pct",), ()),
    "mark_moved": (("min_pct",), ()),
    "venue_order": (("client_order_id_prefix",), ("min",)),
    "funding_spiked": (("min_rate",), ("min",)),
    "pod_replaced": (("app",), ()),
    "no_ready_pods": (("app",), ()),
    "container_restarted": (("app",), ()),
    "leader_cut_off": ((), ()),
    "node_cordoned": ((), ()),
}
EXTENSION = "stormproof"
STARTED_IS_ENOUGH = ("venue_fault", "feed_fault")
"""Kinds whose `min` may be 0: a venue policy in force (refusing reduce-only orders) is the
fault even when the engine under test never sends what it refuses."""


@dataclass(frozen=True, kw_only=True)
class Evidence:
    kind: str
    params: Mapping[str, Any]

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind}({args})"


def _blocks(experiment: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        e
        for e in experiment.get("extensions") or []
        if isinstance(e, dict) and e.get("name") == EXTENSION
    ]


def fault_activity(experiment: Mapping[str, Any], *, where: str) -> str | None:
    """The name of the method activity that is the fault, if the experiment says; it must be
    one of its method's activities."""
    names = [b["fault_starts_at"] for b in _blocks(experiment) if "fault_starts_at" in b]
    if not names:
        return None
    name = names[-1]
    method = {str(a.get("name")) for a in experiment.get("method") or [] if isinstance(a, dict)}
    if not isinstance(name, str) or name not in method:
        raise GameDayConfigError(f"{where}: fault_starts_at {name!r} is no activity of the method")
    return name


def declared(experiment: Mapping[str, Any], *, where: str) -> list[Evidence]:
    """The evidence an experiment declares; a clear error for anything malformed."""
    blocks = _blocks(experiment)
    for block in blocks:
        unknown = sorted(set(block) - {"name", "evidence", "fault_starts_at"})
        if unknown:
            raise GameDayConfigError(f"{where}: extension stormproof: unknown key {unknown[0]!r}")
    items: list[Any] = [item for block in blocks for item in block.get("evidence") or []]
    out = []
    for index, item in enumerate(items):
        at = f"{where}: evidence[{index}]"
        if not isinstance(item, dict) or "kind" not in item:
            raise GameDayConfigError(f"{at}: an object with a 'kind' is required")
        kind = item["kind"]
        if kind not in KINDS:
            raise GameDayConfigError(f"{at}: unknown kind {kind!r}; one of {', '.join(KINDS)}")
        required, optional = KINDS[kind]
        params = {k: v for k, v in item.items() if k != "kind"}
        missing = [k for k in required if k not in params]
        unknown = sorted(set(params) - set(required) - set(optional))
        if missing:
            raise GameDayConfigError(f"{at}: {kind} needs {', '.join(missing)}")
        if unknown:
            raise GameDayConfigError(f"{at}: {kind} does not take {', '.join(unknown)}")
        minimum = params.get("min", 1)
        floor = 0 if kind in STARTED_IS_ENOUGH else 1
        if isinstance(minimum, bool) or not isinstance(minimum, int | float) or minimum < floor:
            raise GameDayConfigError(f"{at}: min must be a number >= {floor}")
        out.append(Evidence(kind=kind, params=params))
    return out


@dataclass(kw_only=True)
class Observed:
    """What the watcher saw between the method's start and the experiment's end."""

    disabled_links: set[str] = field(default_factory=set)
    toxics: dict[str, set[str]] = field(default_factory=dict)
    """link -> toxic types seen on it."""
    pids: dict[str, list[int]] = field(default_factory=dict)
    """process name -> every PID seen under it, in order."""
    vanished: set[int] = field(default_factory=set)
    """PIDs seen alive, later absent from /proc."""
    frozen: set[str] = field(default_factory=set)
    """Process names seen in state T."""
    faults: list[dict[str, Any]] = field(default_factory=list)
    """The replay's fault log entries that started in the window."""
    refused_before: dict[int, int] = field(default_factory=dict)
    refused_after: dict[int, int] = field(default_factory=dict)
    """The simulator's counters: HTTP status (429, 418) -> answers so far."""
    activity_outputs: dict[str, Any] = field(default_factory=dict)
    mids: Sequence[tuple[int, float]] = ()
    marks: list[tuple[int, float]] = field(default_factory=list)
    """Futures: (ms, the simulator's mark price) at each look of the watcher."""
    venue_orders: list[dict[str, Any]] = field(default_factory=list)
    """The simulator's orders placed in the window (/truth/orders)."""
    funding_rates: list[tuple[int, float]] = field(default_factory=list)
    """Futures: (ms, rate) of each funding time the simulator applied in the window."""
    """The replay's mid during the window: (ts_ms, mid)."""
    errors: list[str] = field(default_factory=list)
    """Sources the watcher could not read."""
    pods: dict[str, list[str]] = field(default_factory=dict)
    """app -> the uid of every live pod seen, in order of first sighting."""
    pods_gone: set[str] = field(default_factory=set)
    """Pod uids seen live, later absent or terminating."""
    ready_counts: dict[str, list[int]] = field(default_factory=dict)
    """app -> Ready pods at each look."""
    restarted: set[str] = field(default_factory=set)
    """Apps a pod of which showed a higher restartCount than at its first sighting."""
    leader_moves: list[tuple[str, str, bool]] = field(default_factory=list)
    """(pod that held the Lease, pod that holds it next, the first still live then)."""
    cordoned_nodes: set[str] = field(default_factory=set)
    """Nodes seen unschedulable."""
    lease_expiry_s: dict[str, float] = field(default_factory=dict)
    """Lease holder pod -> when its Lease could be taken at the earliest (wall s): the watcher's
    time of first seeing its latest renewal, plus the Lease's duration."""


@dataclass(frozen=True, kw_only=True)
class Proof:
    evidence: Evidence
    proven: bool
    detail: str


def prove(evidence: Evidence, seen: Observed) -> Proof:
    p = evidence.params
    minimum = p.get("min", 1)

    def result(proven: bool, detail: str) -> Proof:
        return Proof(evidence=evidence, proven=proven, detail=detail)

    kind = evidence.kind
    if kind == "link_down":
        return result(
            p["link"] in seen.disabled_links, f"disabled links seen: {_s(seen.disabled_links)}"
        )
    if kind == "toxic":
        types = seen.toxics.get(p["link"], set())
        return result(p["type"] in types, f"toxics seen on {p['link']}: {_s(types)}")
    if kind in ("process_restarted", "process_down"):
        names = _names(seen.pids, p["process"])
        for name in names:
            pids = seen.pids[name]
            gone = [pid for pid in pids if pid in seen.vanished]
            if kind == "process_down" and gone:
                return result(True, f"{name}: pid {gone[0]} vanished")
            if (
                kind == "process_restarted"
                and gone
                and any(pid not in gone for pid in pids[pids.index(gone[0]) + 1 :])
            ):
                return result(True, f"{name}: pids {pids}, {gone} vanished")
        return result(False, f"pids seen: {({n: seen.pids[n] for n in names}) or 'none'}")
    if kind == "process_frozen":
        names = _names(seen.pids, p["process"])
        frozen = sorted(n for n in names if n in seen.frozen)
        return result(bool(frozen), f"stopped processes seen: {_s(frozen)}")
    if kind in ("venue_fault", "feed_fault"):
        scope = "venue" if kind == "venue_fault" else "feed"
        hits = [f for f in seen.faults if f.get("scope") == scope and f.get("kind") == p["fault"]]
        applied = sum(int(f.get("applied", 0) or 0) for f in hits)
        if scope == "feed":  # a feed fault's log has no count: started is applied
            applied = max(applied, len(hits))
        return result(
            bool(hits) and applied >= minimum,
            f"{len(hits)} {p['fault']} fault(s), applied {applied} time(s)",
        )
    if kind == "venue_refused":
        status = int(p["status"])
        grew = seen.refused_after.get(status, 0) - seen.refused_before.get(status, 0)
        return result(grew >= minimum, f"{grew} answer(s) {status} during the window")
    if kind == "orders_in_flight":
        output = seen.activity_outputs.get(p["activity"])
        count = output.get("in_flight") if isinstance(output, dict) else None
        if not isinstance(count, int):
            return result(False, f"activity {p['activity']!r} reported no in_flight count")
        return result(count >= minimum, f"{count} order request(s) in flight at the kill")
    if kind == "market_drop":
        drop = largest_drop_pct(seen.mids)
        return result(
            drop is not None and drop >= float(p["min_drop_pct"]),
            f"largest fall of the replay's mid: {'none' if drop is None else f'{drop:.2f}%'}",
        )
    if kind == "mark_moved":
        apart = largest_mark_divergence_pct(seen.marks, seen.mids)
        return result(
            apart is not None and apart >= float(p["min_pct"]),
            "largest distance of the venue's mark from the replay's mid:"
            f" {'none' if apart is None else f'{apart:.2f}%'}",
        )
    if kind == "venue_order":
        prefix = str(p["client_order_id_prefix"])
        filled = [
            o
            for o in seen.venue_orders
            if str(o.get("client_order_id", "")).startswith(prefix)
            and float(o.get("executed_qty") or 0) > 0
        ]
        return result(len(filled) >= minimum, f"{len(filled)} filled order(s) with ids {prefix}*")
    if kind == "funding_spiked":
        floor = float(p["min_rate"])
        spiked = [rate for _, rate in seen.funding_rates if abs(rate) >= floor]
        return result(
            len(spiked) >= minimum,
            f"{len(spiked)} of {len(seen.funding_rates)} funding time(s) at >= {floor}"
            f" (largest {max((abs(r) for _, r in seen.funding_rates), default=0):g})",
        )
    if kind == "pod_replaced":
        uids = seen.pods.get(p["app"], [])
        left = [u for u in uids if u in seen.pods_gone]
        replaced = bool(left) and any(u not in left for u in uids[uids.index(left[0]) + 1 :])
        return result(replaced, f"{p['app']}: {len(uids)} pod(s) seen, {len(left)} went away")
    if kind == "no_ready_pods":
        counts = seen.ready_counts.get(p["app"], [])
        return result(
            0 in counts,
            f"{p['app']}: Ready pods seen between {min(counts, default='-')}"
            f" and {max(counts, default='-')}",
        )
    if kind == "container_restarted":
        return result(
            p["app"] in seen.restarted, f"apps with a restarted container: {_s(seen.restarted)}"
        )
    if kind == "leader_cut_off":
        cut = [(old, new) for old, new, alive in seen.leader_moves if alive]
        return result(
            bool(cut),
            f"Lease moves: {[f'{o} -> {n} (old pod live: {a})' for o, n, a in seen.leader_moves]}",
        )
    if kind == "node_cordoned":
        return result(bool(seen.cordoned_nodes), f"nodes seen cordoned: {_s(seen.cordoned_nodes)}")
    raise AssertionError(kind)  # declared() admits no other kind


def largest_drop_pct(mids: Sequence[tuple[int, float]]) -> float | None:
    """The largest fall from a running high, in percent."""
    high: float | None = None
    worst: float | None = None
    for _, mid in mids:
        if mid <= 0:
            continue
        high = mid if high is None else max(high, mid)
        fall = (high - mid) / high * 100
        worst = fall if worst is None else max(worst, fall)
    return worst


def _names(pids: Mapping[str, list[int]], pattern: str) -> list[str]:
    return sorted(name for name in pids if fnmatch.fnmatchcase(name, pattern))


def _s(values: Any) -> str:
    return ", ".join(sorted(str(v) for v in values)) or "none"


def unproven(proofs: Sequence[Proof], declared_count: int) -> str | None:
    """The reason a scenario is inconclusive for want of evidence, or None."""
    if declared_count == 0:
        return "the experiment declares no evidence of its fault: inconclusive"
    missing = [p for p in proofs if not p.proven]
    if missing:
        return "fault not proven injected: " + "; ".join(
            f"{p.evidence.describe()}: {p.detail}" for p in missing
        )
    return None


def largest_mark_divergence_pct(
    marks: Sequence[tuple[int, float]], mids: Sequence[tuple[int, float]]
) -> float | None:
    """The largest |mark - mid| / mid, in percent, pairing each mark with the replay's latest
    mid at or before it (both sorted by time); None without a pair."""
    largest: float | None = None
    index = -1
    for ts_ms, mark in sorted(marks):
        while index + 1 < len(mids) and mids[index + 1][0] <= ts_ms:
            index += 1
        if index < 0 or mids[index][1] <= 0:
            continue
        apart = abs(mark - mids[index][1]) / mids[index][1] * 100
        largest = apart if largest is None else max(largest, apart)
    return largest
