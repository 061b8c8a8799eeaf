"""A Chaos Toolkit control that timestamps every activity of an experiment, and restores the
stack when the experiment ends.

Each start and end of an activity (and of the experiment, its steady-state hypotheses, method
and rollbacks) is one JSON line in RUN_DIR/activities.jsonl: the measurements use these to
know when a fault began and ended, whatever `chaos run` says about the outcome.

When the experiment ends, whether or not its rollbacks were played (Chaos Toolkit's default
strategy skips them after a deviation; `--rollback-strategy always` plays them), the control
undoes every fault (`harness.chaos.restore`) and records what it did as phase "restore".

    "controls": [{"name": "stormproof-timeline",
                  "provider": {"type": "python", "module": "harness.chaos.control"}}]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from harness.chaos.configuration import RUN_DIR_KEY
from harness.runfile import RUN_DIR_ENV

__all__ = [
    "after_activity_control",
    "after_experiment_control",
    "after_method_control",
    "after_rollback_control",
    "before_activity_control",
    "before_experiment_control",
    "before_method_control",
    "before_rollback_control",
]


def _record(configuration: dict[str, Any] | None, **fields: Any) -> None:
    run_dir = (configuration or {}).get(RUN_DIR_KEY) or os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        return
    record = {"ts_ns": time.time_ns(), **fields}
    with (Path(run_dir) / "activities.jsonl").open("a") as out:
        out.write(json.dumps(record, default=str) + "\n")


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    _record(configuration, phase="experiment", event="start", title=context.get("title"))


def after_experiment_control(
    context: dict[str, Any],
    state: dict[str, Any],
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    _record(
        configuration,
        phase="experiment",
        event="end",
        title=context.get("title"),
        status=(state or {}).get("status"),
        deviated=(state or {}).get("deviated"),
    )
    _restore(configuration)


def _restore(configuration: dict[str, Any] | None) -> None:
    """The experiment's `finally`. A control must never break the run: errors are recorded."""
    try:
        from harness.chaos.restore import restore_everything

        done: Any = restore_everything(configuration=configuration)
    except Exception as exc:
        done = {"error": f"{type(exc).__name__}: {exc}"}
    _record(configuration, phase="restore", event="end", result=done)


def before_method_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    _record(configuration, phase="method", event="start")


def after_method_control(
    context: dict[str, Any],
    state: Any = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    _record(configuration, phase="method", event="end")


def before_rollback_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    _record(configuration, phase="rollbacks", event="start")


def after_rollback_control(
    context: dict[str, Any],
    state: Any = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    _record(configuration, phase="rollbacks", event="end")


def before_activity_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    _record(
        configuration,
        phase="activity",
        event="start",
        name=context.get("name"),
        type=context.get("type"),
    )


def after_activity_control(
    context: dict[str, Any],
    state: dict[str, Any],
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    _record(
        configuration,
        phase="activity",
        event="end",
        name=context.get("name"),
        type=context.get("type"),
        status=(state or {}).get("status"),
        output=(state or {}).get("output"),
    )
