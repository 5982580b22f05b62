"""Build the Py-ART ``Radar`` of a :class:`~radarlib.volume.Volume`, faithful to Py-ART's model.

Fields are dicts with ``data`` (float32 masked arrays, FILL_VALUE under the mask) and
their CF/Radial attributes from :mod:`radarlib.vocabulary`; next to each field ``X`` the
``X_status`` field (uint8 CF flags, :class:`~radarlib.bufr.model.GateStatus`) says why a
gate is masked, and ``X['range_shift']`` records the per-sweep range placement shift::

    radar = volume_to_radar(assemble_volume(files))
    radar.fields["DBZH"]["data"]          # masked float32 (rays, gates)
    radar.fields["DBZH_status"]["data"]   # uint8: 0 valid, 1 undetect, 2 nodata, 3 nan, 4 outside
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from radarlib import __version__
from radarlib.filename import format_iso
from radarlib.vocabulary import (
    SWEEP_MODE,
    coordinate_attrs,
    field_attrs,
    global_attrs,
    status_attrs,
    status_name,
    time_units,
)

if TYPE_CHECKING:
    from pyart.core import Radar

    from radarlib.volume import Volume

__all__ = ["history_line", "import_pyart", "volume_to_radar"]


def import_pyart() -> Any:
    """Import Py-ART quietly (no banner) and return the module."""
    os.environ.setdefault("PYART_QUIET", "1")
    import pyart

    return pyart


def history_line(sources: tuple[str, ...] | list[str], now: datetime | None = None) -> str:
    """The ``history`` attribute: when and by which radarlib version the file was made."""
    moment = now or datetime.now(timezone.utc)
    return f"{format_iso(moment)}: converted by radarlib {__version__} from {', '.join(sources)}"


def _var(name: str, data: Any) -> dict[str, Any]:
    dic = coordinate_attrs(name)
    dic["data"] = data
    return dic


def _strings(value: str, n: int) -> np.ndarray:
    return np.array([value.encode()] * n, dtype="S")


def volume_to_radar(volume: Volume, *, history: str | None = None) -> Radar:
    """The ``pyart.core.Radar`` of a volume: real times, ODIM azimuths, masks, status flags."""
    pyart = import_pyart()
    key = volume.key
    start_iso = format_iso(volume.start_time)
    times = volume.ray_times()
    nsweeps = len(volume.sweeps)

    time = _var("time", times)
    time["units"] = time_units(start_iso)
    axis = volume.range_axis
    rng = _var("range", axis.ranges.astype(np.float32))
    rng["meters_to_center_of_first_gate"] = np.float32(axis.first)
    rng["meters_between_gates"] = np.float32(axis.spacing)

    fields: dict[str, dict[str, Any]] = {}
    for name, fd in volume.fields.items():
        dic = field_attrs(name)
        dic["data"] = fd.masked()
        dic["range_shift"] = fd.range_shift.astype(np.float32)
        if fd.missing_sweeps:
            dic["missing_sweeps"] = np.array(fd.missing_sweeps, dtype=np.int32)
        fields[name] = dic
        status = status_attrs(name)
        status["data"] = fd.status
        fields[status_name(name)] = status

    metadata = global_attrs(
        instrument_name=key.radar,
        scan_name=key.strategy,
        volume_number=key.volume_number,
        sources=list(volume.sources),
        history=history or history_line(volume.sources),
        time_coverage_start=start_iso,
        time_coverage_end=format_iso(volume.end_time),
        missing_fields=list(volume.missing_fields),
        warnings=list(volume.warnings),
        ray_times_increase=bool(np.all(np.diff(times) >= 0)),
    )
    metadata["volume_number"] = int(key.volume_number)
    station = volume.station

    return pyart.core.Radar(
        time=time,
        _range=rng,
        fields=fields,
        metadata=metadata,
        scan_type="ppi",
        latitude=_var("latitude", np.array([station.latitude], dtype=np.float64)),
        longitude=_var("longitude", np.array([station.longitude], dtype=np.float64)),
        altitude=_var("altitude", np.array([station.height], dtype=np.float64)),
        sweep_number=_var("sweep_number", np.arange(nsweeps, dtype=np.int32)),
        sweep_mode=_var("sweep_mode", _strings(SWEEP_MODE, nsweeps)),
        fixed_angle=_var(
            "fixed_angle", np.array([s.elevation for s in volume.sweeps], dtype=np.float32)
        ),
        sweep_start_ray_index=_var(
            "sweep_start_ray_index", np.array([s.ray_start for s in volume.sweeps], dtype=np.int32)
        ),
        sweep_end_ray_index=_var(
            "sweep_end_ray_index", np.array([s.ray_end for s in volume.sweeps], dtype=np.int32)
        ),
        azimuth=_var("azimuth", volume.azimuths().astype(np.float32)),
        elevation=_var("elevation", volume.elevations().astype(np.float32)),
        rays_are_indexed=_var("rays_are_indexed", _strings("true", nsweeps)),
        ray_angle_res=_var(
            "ray_angle_res", np.array([360.0 / s.nrays for s in volume.sweeps], dtype=np.float32)
        ),
    )
