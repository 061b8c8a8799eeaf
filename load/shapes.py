"""Load shapes: how many order-flow users run, and when the market bursts, over a run.

Each shape is a list of stages over the run's duration (fractions, so one shape fits a 60 s CI
smoke and a 2 h soak). A stage with a burst multiplier asks the market-burst user to speed the
replay up that many times for the stage (a market open, a flash crash).

Locust runs the first LoadTestShape it finds in a locustfile; these classes are abstract, and
`selected_shape()` returns a concrete one for STORMPROOF_LOAD_SHAPE, so a locustfile offers
exactly one shape (or none: then --users/--spawn-rate/--run-time apply).

Environment: STORMPROOF_LOAD_SHAPE (steady, ramp, market-open, flash-crash, soak),
STORMPROOF_LOAD_DURATION_S (default 60), STORMPROOF_LOAD_USERS (peak order-flow users,
default 4), STORMPROOF_BURST_MULTIPLIER (overrides every stage's multiplier),
STORMPROOF_LOAD_STOP_FILE (the run ends as soon as this file exists).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from locust import LoadTestShape


@dataclass(frozen=True)
class Stage:
    until: float
    """End of the stage, as a fraction of the run's duration."""
    users: float
    """Order-flow users, as a fraction of the peak."""
    burst: float | None = None
    """Replay speed multiplier during the stage (None: the normal speed)."""


PROFILES: dict[str, tuple[Stage, ...]] = {
    "steady": (Stage(1.0, 1.0),),
    "ramp": tuple(Stage((i + 1) / 10, (i + 1) / 10) for i in range(10)),
    # quiet pre-open, then the open: full order flow while the market runs 10x
    "market-open": (Stage(0.3, 0.25), Stage(0.5, 1.0, burst=10), Stage(1.0, 0.6)),
    # a normal market, a 100x burst of messages with the desk piling orders in, the aftermath
    "flash-crash": (Stage(0.3, 0.5), Stage(0.45, 1.0, burst=100), Stage(1.0, 0.5)),
    # long and even: leaks, growth and drift show up over hours, not minutes
    "soak": (Stage(1.0, 0.5),),
}
FIXED_USERS = 2
"""The market-burst user and the desk operator: always one each, on top of the order flow."""


@dataclass(frozen=True)
class Plan:
    duration_s: float
    peak_users: int
    burst_override: float | None = None

    def at(self, profile: tuple[Stage, ...], elapsed_s: float) -> tuple[int, float | None] | None:
        """(order-flow users, burst multiplier) at this point of the run; None once it is over."""
        if elapsed_s >= self.duration_s:
            return None
        fraction = elapsed_s / self.duration_s
        stage = next(s for s in profile if fraction < s.until or s is profile[-1])
        users = max(1, round(stage.users * self.peak_users))
        burst = stage.burst
        if burst is not None and self.burst_override is not None:
            burst = self.burst_override
        return users, burst

    def stage_end_s(self, profile: tuple[Stage, ...], elapsed_s: float) -> float:
        fraction = elapsed_s / self.duration_s
        stage = next(s for s in profile if fraction < s.until or s is profile[-1])
        return stage.until * self.duration_s


def plan_from_env() -> Plan:
    override = os.environ.get("STORMPROOF_BURST_MULTIPLIER")
    return Plan(
        duration_s=float(os.environ.get("STORMPROOF_LOAD_DURATION_S", "60")),
        peak_users=int(os.environ.get("STORMPROOF_LOAD_USERS", "4")),
        burst_override=float(override) if override else None,
    )


class BurstBoard:
    """What the shape wants from the market-burst user now (same process: Locust's local
    runner). Written by the shape, read by the user."""

    multiplier: float | None = None
    until_s: float = 0.0
    elapsed_s: float = 0.0


class StagedShape(LoadTestShape):
    abstract = True
    profile_name = "steady"

    def __init__(self) -> None:
        super().__init__()
        self.plan = plan_from_env()
        self.profile = PROFILES[self.profile_name]

    def tick(self) -> tuple[int, float] | None:
        # the harness ends a run early by creating this file: with a shape, Locust's SIGTERM
        # handler is not installed yet (its headless start blocks on the shape), so a signal
        # would kill it before it writes its statistics
        stop_file = os.environ.get("STORMPROOF_LOAD_STOP_FILE")
        if stop_file and os.path.exists(stop_file):
            return None
        elapsed = self.get_run_time()
        now = self.plan.at(self.profile, elapsed)
        if now is None:
            return None
        users, burst = now
        BurstBoard.multiplier = burst
        BurstBoard.elapsed_s = elapsed
        BurstBoard.until_s = self.plan.stage_end_s(self.profile, elapsed)
        return users + FIXED_USERS, max(1.0, float(users))


class Steady(StagedShape):
    abstract = True
    profile_name = "steady"


class Ramp(StagedShape):
    abstract = True
    profile_name = "ramp"


class MarketOpenSpike(StagedShape):
    abstract = True
    profile_name = "market-open"


class FlashCrashBurst(StagedShape):
    abstract = True
    profile_name = "flash-crash"


class Soak(StagedShape):
    abstract = True
    profile_name = "soak"


SHAPES: dict[str, type[StagedShape]] = {
    "steady": Steady,
    "ramp": Ramp,
    "market-open": MarketOpenSpike,
    "flash-crash": FlashCrashBurst,
    "soak": Soak,
}


def selected_shape() -> type[StagedShape] | None:
    name = os.environ.get("STORMPROOF_LOAD_SHAPE", "")
    if not name:
        return None
    if name not in SHAPES:
        raise ValueError(f"unknown load shape {name!r}; one of {', '.join(SHAPES)}")
    base = SHAPES[name]
    # a concrete subclass: the only shape Locust will find in the locustfile
    return type(base.__name__, (base,), {"abstract": False})
