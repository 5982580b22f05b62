"""Value checks shared by every configuration: each raises :class:`ConfigError` naming the key.

The daemon config dataclasses and the TOML loader validate with these, so a bad value
reads the same wherever it was set: ``download.poll_interval: must be > 0, got -1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from radarlib.errors import ConfigError

__all__ = [
    "check_aware",
    "check_bool",
    "check_integer",
    "check_number",
    "radar_table",
    "type_name",
]


def type_name(value: object) -> str:
    """How a value's type is called in messages (TOML vocabulary for TOML types)."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def check_number(
    key: str, value: object, *, minimum: float | None = 0.0, strict: bool = True
) -> float:
    """A real number (not bool, not NaN) above ``minimum`` (or equal, when not ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be a number, not {type_name(value)} ({value!r})")
    if math.isnan(value):
        raise ConfigError(key, "must be a number, not nan")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ConfigError(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def check_integer(key: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """An integer (not bool) within ``[low, high]`` (either bound optional)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, not {type_name(value)} ({value!r})")
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            span = f">= {low}"
        elif low is None:
            span = f"<= {high}"
        else:
            span = f"between {low} and {high}"
        raise ConfigError(key, f"must be {span}, got {value!r}")
    return value


def check_bool(key: str, value: object) -> bool:
    """``True`` or ``False`` exactly (no truthy strings or numbers)."""
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, not {type_name(value)} ({value!r})")
    return value


def check_aware(key: str, value: object) -> datetime | None:
    """``None`` or a timezone-aware datetime (radarlib times are UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ConfigError(key, f"must be a datetime, not {type_name(value)} ({value!r})")
    if value.tzinfo is None:
        raise ConfigError(
            key, "must be timezone-aware (UTC), e.g. datetime(..., tzinfo=timezone.utc)"
        )
    return value


def radar_table(
    data: Mapping[str, Any] | None, section: str, radar: str | None, known: Iterable[str]
) -> dict[str, Any]:
    """The keys of table ``section`` with ``[<section>.radars.<radar>]`` applied over them.

    Unknown keys are a :class:`ConfigError` naming ``<section>.<key>``.
    """
    values = dict(data or {})
    per_radar = values.pop("radars", {}) or {}
    if not isinstance(per_radar, Mapping):
        raise ConfigError(f"{section}.radars", "must be a table of radar codes")
    if radar is not None and radar in per_radar:
        if not isinstance(per_radar[radar], Mapping):
            raise ConfigError(f"{section}.radars.{radar}", "must be a table")
        values.update(per_radar[radar])
    allowed = set(known)
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"{section}.{key}", f"unknown key (known: {', '.join(sorted(allowed))})"
            )
    return values
