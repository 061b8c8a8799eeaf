"""The evidence watcher: while an experiment runs, it looks at the sources that can prove its
fault happened, none of them the engine: Toxiproxy's API (proxies and toxics), /proc (which
PIDs live, which are stopped), and at the end the simulator's and the replay's own logs and
counters and the activities' outputs. What it saw becomes `evidence.Observed`.

Toxiproxy is read with a plain GET of /proxies (a deadline on every call; the client library
has none) every `interval_ms`: a toxic or a disabled proxy that lasts less than that can be
missed, and then the scenario says so (inconclusive), never that it happened.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.client import StackClient
from harness.gameday.evidence import Observed
from harness.runfile import HOST
from harness.stack import Stack

REFUSAL_COUNTERS = {429: "too_many_429", 418: "banned_418"}
MAX_MARKS = 20_000


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, T, Z...), None when the PID is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[-1].split()[0] if ")" in raw else None


def look_at_toxiproxy(proxies_url: str, seen: Observed) -> None:
    """One GET of Toxiproxy's /proxies (a deadline of 1 s): the disabled proxies and the toxic
    types on each go into `seen`; an unreadable API is recorded once in a row."""
    try:
        with urllib.request.urlopen(proxies_url, timeout=1) as response:
            proxies = json.loads(response.read())
        for name, proxy in proxies.items():
            if not proxy.get("enabled", True):
                seen.disabled_links.add(name)
            types = {t.get("type") for t in proxy.get("toxics", [])}
            if types:
                seen.toxics.setdefault(name, set()).update(types)
    except (OSError, ValueError, AttributeError) as exc:
        if not seen.errors or "toxiproxy" not in seen.errors[-1]:
            seen.errors.append(f"toxiproxy: {exc}")


def venue_refusals(client: StackClient) -> dict[int, int]:
    """The simulator's own counters of 429 and 418 answers, summed over client addresses."""
    code, status = client.control("GET", "/status")
    if code != 200 or not isinstance(status, dict):
        raise OSError(f"replay /status answered {code}")
    totals = dict.fromkeys(REFUSAL_COUNTERS, 0)
    for counters in (status.get("rate_limits") or {}).values():
        for http_status, key in REFUSAL_COUNTERS.items():
            totals[http_status] += int(counters.get(key, 0))
    return totals


def venue_marks(client: StackClient) -> dict[str, float] | bool:
    """Futures: the simulator's mark price per symbol (its ledger's); False for a spot venue
    (404), True for no answer (it may be futures: ask again)."""
    code, body = client.truth("/truth/positions", timeout_s=1)
    if code == 404:
        return False
    if code != 200 or not isinstance(body, dict):
        return True
    return {symbol: float(mark) for symbol, mark in (body.get("marks") or {}).items()}


class EvidenceWatcher(threading.Thread):
    def __init__(self, stack: Stack, *, interval_ms: int = 100) -> None:
        super().__init__(name="evidence-watcher", daemon=True)
        self.stack = stack
        self.client = stack.client()
        self.interval_s = interval_ms / 1000
        self.seen = Observed()
        self._halt = threading.Event()
        self._toxiproxy = f"http://{HOST}:{stack.ports['toxiproxy']}/proxies"
        self.started_ns = 0
        self._futures: bool | None = None

    def start(self) -> None:
        self.started_ns = time.time_ns()
        try:
            self.seen.refused_before = venue_refusals(self.client)
        except OSError as exc:
            self.seen.errors.append(f"simulator counters before the fault: {exc}")
        self._look()
        super().start()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self._look()

    def finish(self, activities: list[dict[str, Any]]) -> Observed:
        """Stop watching and read what the logs and counters say about the window."""
        self._halt.set()
        self.join(timeout=5)
        self._look()
        seen = self.seen
        try:
            seen.refused_after = venue_refusals(self.client)
        except OSError as exc:
            seen.errors.append(f"simulator counters after the fault: {exc}")
        code, body = self.client.control("GET", "/faults")
        if code == 200 and isinstance(body, dict):
            seen.faults = [f for f in body["faults"] if f.get("start_ns", 0) >= self.started_ns]
        else:
            seen.errors.append(f"replay fault log: {code}")
        since_ms = self.started_ns // 1_000_000
        code, body = self.client.truth(f"/truth/mids?since_ms={since_ms}")
        if code == 200 and isinstance(body, dict):
            seen.mids = [(p["ts_ms"], p["mid"]) for p in body.get("mids", [])]
        code, body = self.client.truth(f"/truth/orders?since_ms={since_ms}")
        if code == 200 and isinstance(body, dict):
            seen.venue_orders = list(body.get("orders", []))
        else:
            seen.errors.append(f"simulator orders: {code}")
        code, body = self.client.truth(f"/truth/funding?since_ms={since_ms}")
        if code == 200 and isinstance(body, dict):
            seen.funding_rates = [(int(t["time_ms"]), float(t["rate"])) for t in body["times"]]
        elif code != 404:  # a spot venue has no funding
            seen.errors.append(f"simulator funding: {code}")
        for record in activities:
            if record.get("phase") == "activity" and record.get("event") == "end":
                seen.activity_outputs[str(record.get("name"))] = record.get("output")
        return seen

    def _look(self) -> None:
        look_at_toxiproxy(self._toxiproxy, self.seen)
        self._look_at_marks()
        with contextlib.suppress(Exception):
            for name, process in self.stack.state()["processes"].items():
                pid = process.get("pid")
                if pid and process.get("running"):
                    known = self.seen.pids.setdefault(name, [])
                    if pid not in known:
                        known.append(int(pid))
        self._look_pids()

    def _look_at_marks(self) -> None:
        if self._futures is False:
            return
        with contextlib.suppress(Exception):
            marks = venue_marks(self.client)
            if marks is False:
                self._futures = False
            if isinstance(marks, dict) and len(self.seen.marks) < MAX_MARKS:  # bounded
                for mark in marks.values():
                    self.seen.marks.append((time.time_ns() // 1_000_000, mark))

    def _look_pids(self) -> None:
        for name, pids in self.seen.pids.items():
            for pid in pids:
                state = proc_state(pid)
                if state is None or state == "Z":
                    self.seen.vanished.add(pid)
                elif state in ("T", "t"):
                    self.seen.frozen.add(name)
