"""The polar volume the products are made from, read from one CF/Radial NetCDF with netCDF4.

>>> volume = read_polar("RMA11_0315_01_20251020T152828Z.nc")          # doctest: +SKIP
>>> volume.reflectivity().shape     # QC'd DBZH (DBZH_QC, else DBZH masked by its QC flags)

Products run after the NetCDF is written (a separate, retryable stage), so they read the file
rather than the decoded BUFR; netCDF4 alone, no Py-ART import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from radarlib.errors import ProductError
from radarlib.quicklook import volume_time
from radarlib.vocabulary import QC_FLAGS_SUFFIX, QC_SUFFIX

__all__ = ["PolarVolume", "read_polar"]


@dataclass(frozen=True, eq=False)
class PolarVolume:
    """Geometry and (masked, float32) fields of one volume, as stored in its NetCDF."""

    source: str
    radar: str
    time: datetime | None
    latitude: float
    longitude: float
    altitude: float
    azimuth: npt.NDArray[np.float64]  # (rays,) degrees
    fixed_angle: npt.NDArray[np.float64]  # (sweeps,) degrees
    sweep_start: npt.NDArray[np.int64]  # (sweeps,) first ray of each sweep
    sweep_end: npt.NDArray[np.int64]  # (sweeps,) last ray (inclusive)
    range_m: npt.NDArray[np.float64]  # (gates,) gate centres, metres
    fields: dict[str, np.ma.MaskedArray]  # (rays, gates) float32
    units: dict[str, str]

    @property
    def nsweeps(self) -> int:
        """Number of sweeps."""
        return len(self.fixed_angle)

    def field(self, name: str) -> np.ma.MaskedArray:
        """Field ``name``; :class:`ProductError` naming the file if it lacks it."""
        if name not in self.fields:
            raise ProductError(
                f"no field {name!r} (has: {', '.join(sorted(self.fields)) or 'none'})",
                source=self.source,
            )
        return self.fields[name]

    def reflectivity(self, name: str = "DBZH") -> np.ma.MaskedArray:
        """The QC'd reflectivity: ``<name>_QC``, else ``<name>`` masked by ``<name>_QC_FLAGS``,
        else the raw ``<name>`` (a volume converted without QC)."""
        if name + QC_SUFFIX in self.fields:
            return self.fields[name + QC_SUFFIX]
        raw = self.field(name)
        flags = self.fields.get(name + QC_FLAGS_SUFFIX)
        if flags is None:
            return raw
        removed = np.ma.filled(flags, 0) != 0
        return np.ma.MaskedArray(raw.data, mask=np.ma.getmaskarray(raw) | removed)


def read_polar(path: str | os.PathLike[str], fields: tuple[str, ...] | None = None) -> PolarVolume:
    """Read geometry and ``fields`` (default: every (time, range) variable) of a CF/Radial file."""
    import netCDF4

    source = Path(path)
    try:
        ds = netCDF4.Dataset(source)
    except OSError as exc:
        raise ProductError(f"cannot open NetCDF: {exc}", source=source.name) from None
    with ds:
        try:
            names = [
                n
                for n, v in ds.variables.items()
                if v.dimensions == ("time", "range") and not n.endswith("_status")
            ]
            wanted = names if fields is None else [n for n in names if n in fields]
            data: dict[str, np.ma.MaskedArray] = {}
            units: dict[str, str] = {}
            for name in wanted:
                var = ds.variables[name]
                var.set_auto_maskandscale(True)
                values = np.ma.asarray(var[:], dtype=np.float32)
                data[name] = np.ma.MaskedArray(
                    np.ma.getdata(values), mask=np.ma.getmaskarray(values)
                )
                units[name] = str(var.units) if "units" in var.ncattrs() else ""
            radar = (
                str(ds.instrument_name)
                if "instrument_name" in ds.ncattrs()
                else source.name.split("_", 1)[0]
            )
            return PolarVolume(
                source=source.name,
                radar=radar,
                time=volume_time(ds),
                latitude=float(ds.variables["latitude"][:].ravel()[0]),
                longitude=float(ds.variables["longitude"][:].ravel()[0]),
                altitude=float(ds.variables["altitude"][:].ravel()[0]),
                azimuth=np.asarray(ds.variables["azimuth"][:], dtype=np.float64) % 360.0,
                fixed_angle=np.asarray(ds.variables["fixed_angle"][:], dtype=np.float64),
                sweep_start=np.asarray(ds.variables["sweep_start_ray_index"][:], dtype=np.int64),
                sweep_end=np.asarray(ds.variables["sweep_end_ray_index"][:], dtype=np.int64),
                range_m=np.asarray(ds.variables["range"][:], dtype=np.float64),
                fields=data,
                units=units,
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ProductError(f"not a CF/Radial volume: {exc}", source=source.name) from None
