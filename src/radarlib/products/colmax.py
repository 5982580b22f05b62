"""COLMAX: the column-maximum reflectivity of one volume on the radar-centred Cartesian grid.

>>> product = make_colmax(read_polar(nc_path), GridSpec(240, 1.0), cache_dir)   # doctest: +SKIP
>>> product.data.shape, product.source_field     # (480, 480), 'DBZH_QC'

The value of a grid column is the largest valid QC'd reflectivity among the nearest gates of
that column in every sweep (:mod:`radarlib.products.grid`); NaN where no sweep has a valid
gate there. The mapping is cached per radar geometry, so a new volume costs only the gather.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from radarlib.products.grid import GridSpec, mapping_for
from radarlib.products.polar import PolarVolume
from radarlib.vocabulary import QC_FLAGS_SUFFIX, QC_SUFFIX

__all__ = ["Colmax", "make_colmax"]


@dataclass(frozen=True, eq=False)
class Colmax:
    """A COLMAX grid: float32 dBZ, row 0 = north, NaN = no echo; with where and when."""

    data: npt.NDArray[np.float32]
    spec: GridSpec
    radar: str
    time: datetime | None
    latitude: float
    longitude: float
    source_field: str

    @property
    def bounds_m(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in metres from the radar (azimuthal equidistant)."""
        half = self.spec.half_width_m
        return (-half, -half, half, half)


def make_colmax(
    volume: PolarVolume,
    spec: GridSpec,
    cache_dir: str | os.PathLike[str] | None = None,
    field: str = "DBZH",
) -> Colmax:
    """COLMAX of ``volume``'s QC'd ``field`` (see :meth:`PolarVolume.reflectivity`)."""
    values = volume.reflectivity(field)
    used = field
    if field + QC_SUFFIX in volume.fields:
        used = field + QC_SUFFIX
    elif field + QC_FLAGS_SUFFIX in volume.fields:
        used = f"{field} masked by {field + QC_FLAGS_SUFFIX}"
    mapping = mapping_for(volume, spec, cache_dir)
    return Colmax(
        data=mapping.column_max(volume, values),
        spec=spec,
        radar=volume.radar,
        time=volume.time,
        latitude=volume.latitude,
        longitude=volume.longitude,
        source_field=used,
    )
