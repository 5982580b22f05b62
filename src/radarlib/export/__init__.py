"""Output formats of a converted volume: CF/Radial 1.4, ODIM_H5, CfRadial 2.1 and Zarr.

Which formats a volume is written in is chosen per radar (config ``output.formats`` and
``[[radars]] output_formats``, ``radarlib convert --format``); each is written atomically
(temporary name, fsync, rename) next to the others in the radar's output folder, named
after the volume (:func:`output_name`):

========== =================================== ==========================================
format     file                                writer
========== =================================== ==========================================
cfradial   ``RMA1_0315_01_<TIME>.nc``          :func:`radarlib.cfradial.write_cfradial`
odim       ``RMA1_0315_01_<TIME>.h5``          :func:`radarlib.export.odim.write_odim`
cfradial2  ``RMA1_0315_01_<TIME>.cfradial2.nc`` :func:`radarlib.export.cfradial2.write_cfradial2`
zarr       ``RMA1_0315_01_<TIME>.zarr/``       :func:`radarlib.export.zarrstore.write_zarr`
========== =================================== ==========================================
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from radarlib.errors import ConfigError
from radarlib.filename import VolumeKey

__all__ = ["DEFAULT_FORMATS", "FORMATS", "SUFFIXES", "output_name", "parse_formats"]

#: Every output format, in the order they are written.
FORMATS: tuple[str, ...] = ("cfradial", "odim", "cfradial2", "zarr")
#: What a volume is written as unless the config says otherwise.
DEFAULT_FORMATS: tuple[str, ...] = ("cfradial",)
#: File-name suffix of each format (after the volume's stem).
SUFFIXES: dict[str, str] = {
    "cfradial": ".nc",
    "odim": ".h5",
    "cfradial2": ".cfradial2.nc",
    "zarr": ".zarr",
}


def parse_formats(value: str | Iterable[str], key: str = "output_formats") -> tuple[str, ...]:
    """Validate formats given as ``"odim,cfradial2"`` or a list; canonical order, no repeats.

    :class:`ConfigError` under ``key`` for an empty list or an unknown name.
    """
    if not isinstance(value, (str, list, tuple)):  # a TOML value may be anything
        raise ConfigError(
            key, f'must be a list of formats such as ["cfradial", "odim"], got {value!r}'
        )
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(key, f"formats are strings, got {item!r}")
        name = item.strip().lower()
        if name not in FORMATS:
            choices = ", ".join(FORMATS)
            raise ConfigError(key, f"unknown output format {item!r}; choose from {choices}")
        names.append(name)
    if not names:
        raise ConfigError(key, f"give at least one output format ({', '.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in names)


def output_name(key: VolumeKey, fmt: str) -> str:
    """File (or store) name of volume ``key`` in format ``fmt``."""
    stem = Path(key.netcdf_name).stem
    return stem + SUFFIXES[fmt]
