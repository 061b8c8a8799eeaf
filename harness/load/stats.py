"""Locust's statistics and the engine's observations as SLIs: pure functions.

SLIs of a load run (all over the whole run):
    load_requests            every request and ack event Locust recorded
    load_failure_ratio       failed / all of them (a timed-out ack is a failure)
    intents_sent             intents the intake accepted (202)
    intents_acked            of those, how many reached the venue (ground truth)
    intent_ack_timeouts      accepted intents with no venue order in time
    intake_p95_ms, intake_p99_ms                 POST /intents response time
    intent_to_ack_p50_ms, _p95_ms, _p99_ms       intent sent -> venue accepted its order
    stream_lag_max           most entries any consumer group had not read, at any sample
    stream_lag_end           the same at the end of the run (drained: 0)
    tick_to_order_p99_ms     the execution histogram's p99 over the run
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

INTAKE = "POST /intents"
ACK = "intent_to_venue_ack"


class LoadStatsError(ValueError):
    pass


def read_stats_json(path: Path) -> list[dict[str, Any]]:
    """Locust's `--json-file` statistics: one entry per (method, name)."""
    try:
        entries = json.loads(path.read_text())
    except OSError as exc:
        raise LoadStatsError(f"no Locust statistics at {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise LoadStatsError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and "num_requests" in e and "name" in e for e in entries
    ):
        raise LoadStatsError(f"{path} is not Locust's JSON statistics")
    return entries


def percentile_ms(entry: Mapping[str, Any] | None, q: float) -> float | None:
    """The q-quantile of an entry's response times (Locust keeps them as a histogram of
    rounded milliseconds)."""
    if entry is None:
        return None
    histogram = sorted((float(k), int(v)) for k, v in entry.get("response_times", {}).items())
    total = sum(count for _, count in histogram)
    if total == 0:
        return None
    target = q * total
    seen = 0
    for value, count in histogram:
        seen += count
        if seen >= target:
            return value
    return histogram[-1][0]


def locust_slis(entries: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    named = {str(e["name"]): e for e in entries}
    requests = sum(int(e["num_requests"]) for e in entries)
    failures = sum(int(e.get("num_failures", 0)) for e in entries)
    intake, ack = named.get(INTAKE), named.get(ACK)

    def ok(entry: Mapping[str, Any] | None) -> float | None:
        if entry is None:
            return None
        return float(int(entry["num_requests"]) - int(entry.get("num_failures", 0)))

    return {
        "load_requests": float(requests),
        "load_failure_ratio": None if requests == 0 else round(failures / requests, 6),
        "intents_sent": ok(intake),
        "intents_acked": ok(ack),
        "intent_ack_timeouts": None if ack is None else float(ack.get("num_failures", 0)),
        "intake_p95_ms": percentile_ms(intake, 0.95),
        "intake_p99_ms": percentile_ms(intake, 0.99),
        "intent_to_ack_p50_ms": percentile_ms(ack, 0.50),
        "intent_to_ack_p95_ms": percentile_ms(ack, 0.95),
        "intent_to_ack_p99_ms": percentile_ms(ack, 0.99),
    }


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a Prometheus histogram, summed over label sets:
    {upper bound: count}."""
    out: dict[float, float] = {}
    prefix = f"{name}_bucket"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels, _, value = line.rpartition(" ")
        le = labels.split('le="', 1)[-1].split('"', 1)[0]
        bound = math.inf if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + float(value)
    return out


def histogram_quantile(
    before: Mapping[float, float], after: Mapping[float, float], q: float
) -> float | None:
    """The q-quantile of what was observed between two scrapes, as the upper bound of the
    bucket it falls in (conservative: never better than the truth). None without observations;
    inf when it falls in the +Inf bucket."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    target = q * counts[-1]
    for bound, count in zip(bounds, counts, strict=True):
        if count >= target:
            return bound
    return math.inf


def lag_slis(samples: Iterable[tuple[float, int | None]]) -> dict[str, float | None]:
    """(time, total lag) samples -> stream_lag_max and stream_lag_end."""
    known = [(t, lag) for t, lag in samples if lag is not None]
    if not known:
        return {"stream_lag_max": None, "stream_lag_end": None}
    return {
        "stream_lag_max": float(max(lag for _, lag in known)),
        "stream_lag_end": float(known[-1][1]),
    }
