"""Shared value checks name the key and refuse look-alikes (bools, NaN, naive times)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from radarlib.checks import check_aware, check_bool, check_integer, check_number
from radarlib.errors import ConfigError


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: check_number("k", True), "must be a number, not a boolean"),
        (lambda: check_number("k", "1"), "must be a number, not a string"),
        (lambda: check_number("k", math.nan), "not nan"),
        (lambda: check_number("k", 0), "must be > 0"),
        (lambda: check_number("k", -1, strict=False), "must be >= 0"),
        (lambda: check_integer("k", 1.0, 0, 9), "must be an integer, not a number"),
        (lambda: check_integer("k", 10, 0, 9), "between 0 and 9"),
        (lambda: check_integer("k", 0, 1), ">= 1"),
        (lambda: check_integer("k", 5, None, 4), "<= 4"),
        (lambda: check_bool("k", 1), "must be true or false"),
        (lambda: check_aware("k", datetime(2025, 1, 1)), "timezone-aware"),
        (lambda: check_aware("k", "2025-01-01"), "must be a datetime"),
    ],
)
def test_bad_values_are_refused_naming_the_key(call: object, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert info.value.key == "k"
    assert problem in str(info.value)


def test_good_values_come_back() -> None:
    assert check_number("k", 0, strict=False) == 0.0
    assert check_number("k", 2) == 2.0
    assert check_number("k", -5, minimum=None) == -5.0
    assert check_integer("k", 9, 0, 9) == 9
    assert check_bool("k", False) is False
    moment = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert check_aware("k", moment) is moment
    assert check_aware("k", None) is None
