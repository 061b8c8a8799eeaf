"""The game-day file (gamedays/*.yaml) as frozen structs: what every key accepts is declared here
once, and msgspec checks it.

    name, description
    gate:      {mode: strict|score, pass_score, warn_score}
    defaults:  {baseline_s, settle_s}
    load:      the load of every scenario (`LoadSection`), unless a scenario has its own
    stack:     {feeds: 1|2, journal: sqlite|postgres, standby: bool}, each scenario's over it
    market:    spot | usdm | coinm: the market the stack replays and the engine trades (usdm:
               a synthetic USD-M ETHUSDT perpetual, coinm: a synthetic COIN-M ETHUSD_PERP one,
               docs/futures.md)
    engine:    engine config (TOML) laid over the stack's, e.g. the futures risk limits
    scenarios: [{name, experiment, baseline_s, settle_s, slos: [...], load, stack}]
    slos:      [{name, max | min, warn, relative, weight, key}]

A key set to null (`key:` with nothing after it) is the same as a key left out, and an empty
`load: {}` is `load: {off: true}` (no load here, whatever the game day's is).

`decode` turns a mistake into one `GameDayConfigError` that says where it is (the file, then the
scenario and the SLO by name, then the key), what the key must be and what it was. What relates
keys to each other or to the disk (exactly one of max and min, a warn beyond its threshold, an
experiment that exists, a standby without PostgreSQL) is checked by `harness.gameday.slo`.
"""

from __future__ import annotations

import re
import sys
import types
from typing import Annotated, Any, Final, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from harness.errors import GameDayConfigError
from harness.load.runner import Shape

T = TypeVar("T")

_FLOAT_MAX: Final = sys.float_info.max
FiniteFloat = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
"""A number that is not inf or nan (msgspec has no "finite" constraint: only they exceed it)."""
Seconds = Annotated[float, msgspec.Meta(ge=0, le=_FLOAT_MAX)]
Text = Annotated[str, msgspec.Meta(pattern=r"\S")]
"""A string that is not empty or blank."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class SloEntry(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Text
    max: FiniteFloat | None = None
    min: FiniteFloat | None = None
    warn: FiniteFloat | None = None
    relative: bool = False
    weight: FiniteFloat = 1.0
    key: bool = False


class StackSection(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The stack a scenario needs; a key left out is the game day's (then the default: two
    feeds, the SQLite journal, no standby)."""

    feeds: Literal[1, 2] | None = None
    journal: Literal["sqlite", "postgres"] | None = None
    standby: bool | None = None

    def over(self, inherited: StackSection) -> StackSection:
        """This section's keys, the inherited ones where this one has none."""
        return StackSection(
            feeds=inherited.feeds if self.feeds is None else self.feeds,
            journal=inherited.journal if self.journal is None else self.journal,
            standby=inherited.standby if self.standby is None else self.standby,
        )


class LoadSection(
    _Section, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Locust during a scenario (`harness.load.runner.LoadSpec`); `off: true` opts a scenario out
    of the game day's load. Without a duration the load lasts the whole scenario."""

    off: bool = False
    locustfile: Text | None = None
    """Relative to the repository root; required unless `off`."""
    shape: Shape | None = "steady"
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None
    users: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 4
    intent_rate: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 2.0
    burst_multiplier: Annotated[float, msgspec.Meta(gt=1, le=1000)] | None = None
    burst_every_s: Seconds = 0.0
    burst_s: Seconds = 5.0
    ack_timeout_s: Seconds = 10.0
    intents_log: Text | None = None


class ScenarioEntry(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Text
    experiment: Text
    """A Chaos Toolkit experiment, relative to the repository root."""
    slos: Annotated[list[SloEntry], msgspec.Meta(min_length=1)]
    baseline_s: Seconds | None = None
    settle_s: Seconds | None = None
    load: LoadSection | None = None
    stack: StackSection | None = None


class GateSection(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["strict", "score"] = "strict"
    pass_score: FiniteFloat = 0.9
    warn_score: FiniteFloat = 0.7


class DefaultsSection(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    baseline_s: Seconds = 20.0
    settle_s: Seconds = 10.0


class GameDayFile(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Text
    scenarios: Annotated[list[ScenarioEntry], msgspec.Meta(min_length=1)]
    description: str = ""
    gate: GateSection = GateSection()
    defaults: DefaultsSection = DefaultsSection()
    load: LoadSection | None = None
    stack: StackSection = StackSection()
    market: Literal["spot", "usdm", "coinm"] = "spot"
    engine: str = ""


def decode(raw: object, kind: type[T], *, where: str) -> T:
    """`raw` (parsed YAML) as `kind`, or a `GameDayConfigError` naming what is wrong where."""
    raw = _as_written(raw)
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise GameDayConfigError(explain(str(exc), raw, kind, where)) from None


def _as_written(raw: object) -> object:
    """The file's meaning before its types are checked: null keys dropped, `load: {}` as
    `load: {off: true}`."""
    if isinstance(raw, list):
        return [_as_written(item) for item in raw]
    if not isinstance(raw, dict):
        return raw
    out = {key: _as_written(value) for key, value in raw.items() if value is not None}
    if out.get("load") == {}:
        out["load"] = {"off": True}
    return out


# --- what went wrong, said plainly ---------------------------------------------------------------

_ITEM = {"scenarios": "scenario", "slos": "slo"}
"""What one element of a list is called in a message."""


def explain(message: str, raw: object, kind: Any, where: str) -> str:
    """msgspec's "Expected `float`, got `str` - at `$.scenarios[0].slos[1].max`" as
    "<where>: scenario 'kill': slo 'rto_s': 'max' must be a finite number, not 'zero'"."""
    text, _, at = message.partition(" - at `")
    steps = re.findall(r"\.([^.\[`]+)|\[(\d+)\]", at.rstrip("`").removeprefix("$"))
    about_keys = text.startswith(("Object contains unknown field", "Object missing required field"))
    places, value, key = [where], raw, None
    for number, (field, index) in enumerate(steps):
        last = number == len(steps) - 1
        if field:
            value = value.get(field) if isinstance(value, dict) else None
            kind = _field_type(kind, field)
            if last and not about_keys:
                key = field
            elif _struct_of(kind) is not None:
                places.append(field)
        else:
            items = value if isinstance(value, list) else []
            value = items[int(index)] if int(index) < len(items) else None
            list_field = steps[number - 1][0] if number else ""
            kind = _element_type(kind)
            name = value.get("name") if isinstance(value, dict) else None
            label = _ITEM.get(list_field, "item")
            shown = repr(name) if isinstance(name, str) and name.strip() else f"#{int(index) + 1}"
            places.append(f"{label} {shown}")
    where_text = ": ".join(places)
    if found := re.match(r"Object contains unknown field `(.*)`", text):
        allowed = ", ".join(sorted(_struct_fields(kind)))
        return f"{where_text}: unknown key {found[1]!r} (allowed: {allowed})"
    if found := re.match(r"Object missing required field `(.*)`", text):
        return f"{where_text}: {found[1]!r} is required"
    if key is not None:
        return f"{where_text}: {key!r} must be {describe(kind)}, not {value!r}"
    return f"{where_text}: must be {describe(kind)}, not {type(value).__name__}"


def describe(kind: Any) -> str:
    """What a value of this type is, in words: "a finite number >= 0", "1 or 2"."""
    kind, metas = _unwrap(kind)
    if kind is bool:
        return "true or false"
    if get_origin(kind) is Literal:
        return " or ".join(str(v) for v in get_args(kind))
    if _struct_of(kind) is not None:
        return "a mapping"
    if get_origin(kind) is list:
        least = next((m.min_length for m in metas if m.min_length), 0)
        element = get_args(kind)[0]
        items = "mappings" if _struct_of(element) is not None else f"({describe(element)})"
        return f"{'a non-empty' if least else 'a'} list of {items}"
    if kind is str:
        return "a non-empty string" if any(m.pattern for m in metas) else "a string"
    if kind in (int, float):
        what = "a whole number" if kind is int else "a finite number"
        return what + "".join(_bounds(m) for m in metas)
    return getattr(kind, "__name__", str(kind))


def _bounds(meta: msgspec.Meta) -> str:
    parts = [
        f"{op} {value:g}"
        for op, value in ((">=", meta.ge), (">", meta.gt), ("<=", meta.le), ("<", meta.lt))
        if value is not None and abs(value) != _FLOAT_MAX
    ]
    return (" " + " and ".join(parts)) if parts else ""


def _unwrap(kind: Any) -> tuple[Any, list[msgspec.Meta]]:
    """The type without `| None` and `Annotated`, and its msgspec constraints."""
    metas: list[msgspec.Meta] = []
    while True:
        if get_origin(kind) is Annotated:
            kind, *extra = get_args(kind)
            metas += [m for m in extra if isinstance(m, msgspec.Meta)]
        elif get_origin(kind) in (Union, types.UnionType):
            options = [a for a in get_args(kind) if a is not type(None)]
            kind = options[0] if len(options) == 1 else kind
            if len(options) != 1:
                return kind, metas
        else:
            return kind, metas


def _struct_of(kind: Any) -> type[msgspec.Struct] | None:
    bare, _ = _unwrap(kind)
    return bare if isinstance(bare, type) and issubclass(bare, msgspec.Struct) else None


def _struct_fields(kind: Any) -> list[str]:
    struct = _struct_of(kind)
    return [] if struct is None else list(struct.__struct_fields__)


def _field_type(kind: Any, field: str) -> Any:
    struct = _struct_of(kind)
    if struct is None:
        return Any
    hints = {f.name: f.type for f in msgspec.structs.fields(struct)}
    return hints.get(field, Any)


def _element_type(kind: Any) -> Any:
    bare, _ = _unwrap(kind)
    args = get_args(bare) if get_origin(bare) is list else ()
    return args[0] if args else Any
