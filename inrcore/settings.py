"""Settings: typed, frozen, validated from their types, JSON round-trippable.

Each domain declares its settings classes in its own `settings` module (`inrcore.geometry.settings`,
`inrcore.sdf.settings`, ...) as `@settings_class` dataclasses whose field types carry the rules:
`Count` (an integer above 0), `Number` (a float; integers are taken, booleans and text are not),
`Annotated[..., Field(ge=...)]` bounds, `Literal[...]` choices, `interval(...)` ranges, and
`__post_init__` for rules that tie fields together (raising `SettingError`). Pydantic checks
them when a class is built, from a mapping or directly, so a settings object is always valid.

This module is the one mechanism around them:
- `config_from_dict` validates a mapping (from YAML, JSON, a Prefect parameter or the command
  line) and raises `ConfigError` naming the source and the offending key;
- `config_to_dict` gives the JSON-ready dict, `merge_overrides` merges nested overrides and
  `config_replace` applies them;
- `ExecutionOnly` marks a field that changes how a result is computed but not the result
  (a batch size, a device); `result_settings` drops those, and the sections that declare
  themselves off, before `fingerprint` hashes settings into the stores' "already done" records.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import typing
from typing import Annotated, Any, Mapping, Optional, TypeVar

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from inrcore.errors import ConfigError


T = TypeVar("T")
# A run capped by wall time alone still needs a step cap: this one is never reached.
NO_STEP_CAP = 10**9


def settings_class(cls: type[T]) -> type[T]:
    """Make `cls` a frozen settings dataclass validated from its field types; unknown keys are refused."""
    return pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(extra="forbid"))(cls)


class SettingError(ValueError):
    """A rule tying settings together was broken: `field` names the first setting it is about."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("number", "expected a number, got {got}", {"got": repr(value)})
    return float(value)


def _tuple_from_list(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Integer = StrictInt
Flag = StrictBool
Number = Annotated[float, BeforeValidator(_number)]
Count = Annotated[StrictInt, Field(gt=0)]  # an integer above 0
CountOrZero = Annotated[StrictInt, Field(ge=0)]
PositiveNumber = Annotated[Number, Field(gt=0)]
Numbers = Annotated[tuple[Number, ...], BeforeValidator(_tuple_from_list)]
CountPair = Annotated[tuple[Count, Count], BeforeValidator(_tuple_from_list)]


class ExecutionOnly:
    """Marks a setting that changes how a result is computed, not the result (a batch size, a
    device): `Annotated[Count, ExecutionOnly]`. Fingerprints leave it out (`result_settings`).
    Marking a setting that fingerprints counted so far changes the keys of finished work."""


def interval(low: float, high: float, closed: str = "[]", unit: str = "") -> Any:
    """A number within low..high; `closed` says which ends belong ("(]": low excluded)."""

    def check(value: float) -> float:
        above = value >= low if closed[0] == "[" else value > low
        below = value <= high if closed[1] == "]" else value < high
        if not (above and below and math.isfinite(value)):
            shown = f"{closed[0]}{low:g}, {'pi' if high == math.pi else f'{high:g}'}{closed[1]}"
            raise PydanticCustomError("interval", "must be in {range}{unit}, got {got}",
                                      {"range": shown, "unit": unit, "got": value})
        return value

    return Annotated[Number, AfterValidator(check)]


def positive_or_null(meaning: Optional[str] = None) -> AfterValidator:
    """For an optional number or count: positive when given; its null means `meaning` (said in the error)."""
    text = "must be positive (or null for {meaning}), got {got}" if meaning else "must be positive or null, got {got}"

    def check(value):
        if value is not None and not value > 0:
            raise PydanticCustomError("positive_or_null", text, {"meaning": meaning, "got": value})
        return value

    return AfterValidator(check)


def _is_alias(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,254}", value) or value.lower() == "latest":
        raise PydanticCustomError(
            "alias", "{got} is not a usable registry alias (letters, digits, '_' and '-', not starting with a "
            "digit, not 'latest')", {"got": repr(value)})
    return value


def _is_device(value: str) -> str:
    if value != "auto" and not (value == "cpu" or value.startswith("cuda")):
        raise PydanticCustomError("device", "expected auto, cpu or cuda[:N], got {got}", {"got": repr(value)})
    return value


Fraction = interval(0.0, 1.0, "(]")  # above 0, at most 1
OpenFraction = interval(0.0, 1.0, "()")
RegistryAlias = Annotated[StrictStr, AfterValidator(_is_alias)]
DeviceName = Annotated[StrictStr, AfterValidator(_is_device)]


def config_to_dict(config: Any) -> dict:
    """A JSON-ready dict of a settings object (tuples become lists)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a settings object, got {type(config).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type[T], data: Optional[Mapping[str, Any]], where: str = "config") -> T:
    """Build `cls` from `data`, filling defaults; unknown keys and bad values raise ConfigError.

    `where` names the source in messages, e.g. "datasets/demo.yaml: config.training".
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    try:
        return pydantic.TypeAdapter(cls).validate_python(dict(data))
    except pydantic.ValidationError as exc:
        raise ConfigError(_first_problem(cls, exc, where)) from None


def merge_overrides(base: Mapping, top: Mapping) -> dict:
    """Nested dicts merged key by key; where both hold a value that is not a dict, `top`'s wins.
    Returns a fresh dict (neither input is changed)."""
    merged = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def config_replace(config: T, overrides: Mapping[str, Any], where: str = "overrides") -> T:
    """Return `config` with nested `overrides` applied (e.g. {"training": {"steps": 10}})."""
    return config_from_dict(type(config), merge_overrides(config_to_dict(config), overrides), where)


def execution_only_fields(cls: type) -> tuple[str, ...]:
    """The names of `cls`'s fields marked `ExecutionOnly`."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(f.name for f in dataclasses.fields(cls)
                 if ExecutionOnly in getattr(hints[f.name], "__metadata__", ()))


def result_settings(config: Any) -> dict:
    """The settings that decide a result: `config_to_dict` without the `ExecutionOnly` fields,
    and without nested sections whose `counts_in_results()` is False (a feature switched off)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in execution_only_fields(type(config)):
            continue
        if dataclasses.is_dataclass(value):
            if hasattr(value, "counts_in_results") and not value.counts_in_results():
                continue
            out[f.name] = result_settings(value)
        else:
            out[f.name] = json.loads(json.dumps(value))
    return out


def fingerprint(*parts: Any) -> str:
    """A short stable hash of settings, dicts, strings and numbers (for "already done" records)."""
    canon = [config_to_dict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def budget_progress(step: int, elapsed: float, steps: int, seconds: Optional[float]) -> float:
    """How far a run capped at `steps` and, when `seconds` is given, at that much wall time has
    come, 0 to 1: by steps, or by wall time when the time budget is nearer."""
    progress = step / steps
    if seconds is not None:
        progress = max(progress, elapsed / seconds)
    return min(progress, 1.0)


_MESSAGES = {
    "int_type": "expected an integer, got {input!r}",
    "int_from_float": "expected an integer, got {input!r}",
    "bool_type": "expected true or false, got {input!r}",
    "string_type": "expected a string, got {input!r}",
    "tuple_type": "expected a list, got {input!r}",
    "dataclass_type": "expected a mapping, got {input!r}",
    "greater_than": "must be positive, got {input!r}",
    "literal_error": "expected one of {choices}, got {input!r}",
}


def _first_problem(cls: type, exc: pydantic.ValidationError, where: str) -> str:
    """One line for the first problem pydantic found, in the project's words."""
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "unexpected_keyword_argument"]
    if unknown:
        section = unknown[0]["loc"][:-1]
        keys = [str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == section]
        fields = [f.name for f in dataclasses.fields(_class_at(cls, section))]
        return (f"{_place(where, section)}: unknown key(s) {', '.join(keys)}; "
                f"expected some of {', '.join(fields)}")
    error = errors[0]
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx") or {}
    if _is_union_member(cls, loc):  # a setting of several types (e.g. a count or "auto"): say each
        members = [e for e in errors if e["loc"][:-1] == loc[:-1]]
        expected = " or ".join(dict.fromkeys(_expected(e) for e in members))
        return f"{_place(where, loc[:-1])}: expected {expected}, got {error['input']!r}"
    if kind == "value_error" and isinstance(ctx.get("error"), SettingError):
        return f"{_place(where, loc + (ctx['error'].field,))}: {ctx['error'].problem}"
    if kind == "value_error":
        return f"{_place(where, loc)}: {ctx.get('error', error['msg'])}"
    if kind == "greater_than_equal":
        bound = ctx["ge"]
        text = "must be zero or more" if bound == 0 else f"must be at least {bound}"
        return f"{_place(where, loc)}: {text}, got {error['input']!r}"
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", ctx.get("expected", "")))
        return f"{_place(where, loc)}: {_MESSAGES[kind].format(choices=choices, input=error['input'])}"
    if kind in _MESSAGES:
        return f"{_place(where, loc)}: {_MESSAGES[kind].format(input=error['input'])}"
    return f"{_place(where, loc)}: {error['msg']}"


def _is_union_member(cls: type, loc: tuple) -> bool:
    """Whether the last part of an error's location names a member type of a union setting (pydantic
    adds it, e.g. "constrained-int" or "literal['auto']"), not a field."""
    if len(loc) < 2 or not all(isinstance(part, str) for part in loc):
        return False
    try:
        section = _class_at(cls, loc[:-2])
    except (KeyError, StopIteration, TypeError):
        return False
    if loc[-2] not in {f.name for f in dataclasses.fields(section)}:
        return False
    try:
        _class_at(section, loc[-2:-1])  # a section: the last part is one of its fields
    except StopIteration:
        return True  # a plain setting: the last part is a member of its type
    return False


def _expected(error: dict) -> str:
    """What one member of a union setting would have accepted."""
    kind = error["type"]
    if kind == "literal_error":
        return "one of " + ", ".join(re.findall(r"'([^']*)'", (error.get("ctx") or {}).get("expected", "")))
    if kind == "greater_than":
        return "a positive integer" if "int" in str(error["loc"][-1]) else "a positive number"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return "an integer"
    if kind == "bool_type":
        return "true or false"
    return error["msg"].lower()


def _place(where: str, loc: tuple) -> str:
    text = where
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _class_at(cls: type, loc: tuple) -> type:
    """The settings class of the nested section at `loc` (by following field types)."""
    for name in loc:
        hint = typing.get_type_hints(cls)[name]
        cls = next(a for a in (typing.get_args(hint) or (hint,)) if dataclasses.is_dataclass(a))
    return cls
