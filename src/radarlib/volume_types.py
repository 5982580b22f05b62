"""Which fields make a volume complete: the ``volume_types`` mapping, validated once.

``volume_types`` maps scan strategy -> volume number -> the field names a complete
volume of that kind has, e.g. ``{"0315": {"01": ["DBZH", ...], "02": ["VRAD", "WRAD"]}}``.
Volume numbers match by value, so ``"1"`` and ``"01"`` are the same volume number.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from radarlib.errors import ConfigError

__all__ = [
    "DEFAULT_VOLUME_TYPES",
    "VolumeTypes",
    "expected_fields",
    "validate_volume_types",
    "volume_type_warnings",
]

#: strategy -> volume number -> expected field names
VolumeTypes = Mapping[str, Mapping[str, Sequence[str]]]

#: The network's production volume types.
DEFAULT_VOLUME_TYPES: dict[str, dict[str, list[str]]] = {
    "0315": {
        "01": ["DBZH", "DBZV", "ZDR", "RHOHV", "PHIDP", "KDP"],
        "02": ["VRAD", "WRAD"],
    },
}


def expected_fields(
    volume_types: VolumeTypes, strategy: str, volume_number: str
) -> tuple[str, ...] | None:
    """The sorted expected fields of a strategy/volume number, or ``None`` if not configured."""
    numbers = volume_types.get(strategy)
    if numbers is None:
        return None
    for number, fields in numbers.items():
        if number == volume_number or (
            number.isdigit() and volume_number.isdigit() and int(number) == int(volume_number)
        ):
            return tuple(sorted(fields))
    return None


def validate_volume_types(
    value: object, key: str = "volume_types"
) -> dict[str, dict[str, list[str]]]:
    """Check the shape of a volume-types mapping; :class:`ConfigError` naming the bad key."""
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(key, "must be a non-empty table: strategy -> volume number -> fields")
    result: dict[str, dict[str, list[str]]] = {}
    for strategy, numbers in value.items():
        where = f"{key}.{strategy}"
        if not (isinstance(strategy, str) and len(strategy) == 4 and strategy.isdigit()):
            raise ConfigError(where, "strategy must be four digits, e.g. '0315'")
        if not isinstance(numbers, Mapping) or not numbers:
            raise ConfigError(where, "must map volume numbers to lists of fields")
        result[strategy] = {}
        for number, fields in numbers.items():
            here = f"{where}.{number}"
            if not (isinstance(number, str) and number.isdigit() and 1 <= len(number) <= 2):
                raise ConfigError(here, "volume number must be one or two digits, e.g. '01'")
            if (
                isinstance(fields, (str, bytes))
                or not isinstance(fields, Sequence)
                or not fields
                or not all(isinstance(f, str) and f.isalpha() and f.isupper() for f in fields)
            ):
                raise ConfigError(here, "must be a non-empty list of upper-case field names")
            if len(set(fields)) != len(fields):
                raise ConfigError(here, "lists a field twice")
            result[strategy][number] = list(fields)
    return result


def volume_type_warnings(volume_types: VolumeTypes, key: str = "volume_types") -> list[str]:
    """One message per field name no RMA radar produces (not in the ODIM field vocabulary).

    Such a name is almost always a typo (``KPD`` for ``KDP``): its real field is never
    downloaded and the volumes wait for it until they expire. The message names the key,
    the field, the nearest known name and the known names.
    """
    from radarlib.vocabulary import FIELD_VOCABULARY

    known = sorted(FIELD_VOCABULARY)
    messages = []
    for strategy, numbers in volume_types.items():
        for number, fields in numbers.items():
            for name in fields:
                if name in FIELD_VOCABULARY:
                    continue
                near = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                hint = f" (did you mean {near[0]}?)" if near else ""
                messages.append(
                    f"{key}.{strategy}.{number}: field {name!r} is not a field the radars "
                    f"produce{hint}; known fields: {', '.join(known)}. Volumes of this type "
                    f"will wait for it and never be complete"
                )
    return messages
