"""A volume as xradar's DataTree (CfRadial 2.1 / FM 301 layout): root metadata + ``sweep_<i>``.

One layout serves the xarray backend (:mod:`radarlib.xarray_backend`, lazy sweeps), the
CfRadial 2.1 NetCDF writer (:mod:`radarlib.cfradial2`) and the Zarr writer
(:mod:`radarlib.zarrstore`)::

    tree = volume_to_datatree(assemble_volume(files))
    tree["sweep_0"]["DBZH"]          # float32 (azimuth, range), NaN where masked
    tree["sweep_0"]["DBZH_status"]   # uint8 GateStatus: undetect (1) and nodata (2) kept apart

Each sweep group has dimensions ``(azimuth, range)``: rays in azimuth order (row ``r`` =
azimuth bin ``r``, centred at ``(r + 0.5) * 360 / nrays``: the BUFR rows as stored, as
xradar's ODIM reader gives them, so ``azimuth`` is a sorted index and ``.plot()`` works);
``time`` says when each ray was taken (the first ray acquired is row ``a1gate``, so times
wrap once). The range is the sweep's own gate window of the volume's range axis (``range``
differs between sweeps, FM 301 allows it). Coordinates
``time`` (datetime64 ray centres), ``azimuth``, ``elevation``, ``range``, ``latitude``,
``longitude``, ``altitude``; the FM 301 sweep variables ``sweep_number``, ``sweep_mode``,
``sweep_fixed_angle``, ``follow_mode``, ``prt_mode``. Each field carries the attributes of
:mod:`radarlib.vocabulary`, its per-sweep ``range_shift`` and an ``encoding`` of float32 with
``_FillValue`` = :data:`~radarlib.vocabulary.FILL_VALUE`, so NetCDF and Zarr files keep the
exact float32 values and the fill; ``<FIELD>_status`` says why a gate is masked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from radarlib.bufr.model import GateStatus, Station
from radarlib.filename import VolumeKey, format_iso
from radarlib.vocabulary import (
    CFRADIAL2_CONVENTIONS,
    CFRADIAL2_METADATA_GROUPS,
    CFRADIAL2_VERSION,
    FILL_VALUE,
    FOLLOW_MODE,
    PRT_MODE,
    SWEEP_GROUP,
    SWEEP_MODE,
    coordinate_attrs,
    field_attrs,
    global_attrs,
    status_attrs,
    status_name,
)

if TYPE_CHECKING:
    import xarray as xr

    from radarlib.volume import RangeAxis, Volume, VolumeSweep

__all__ = [
    "BlockSource",
    "VolumeGrid",
    "azimuth_order",
    "build_datatree",
    "root_dataset",
    "sweep_dataset",
    "volume_to_datatree",
]

#: Per (field, sweep): ``(values, status)`` arrays on the sweep's window, numpy or lazy.
BlockSource = Callable[[str, int], tuple[Any, Any]]

#: Attributes of radarlib's field vocabulary that are encoding or CF/Radial 1 only.
_NOT_ATTRS = frozenset({"_FillValue", "coordinates", "range_shift_comment"})
_TIME_ENCODING_KEYS = ("calendar",)


class VolumeGrid(Protocol):
    """What the layout needs of a volume: :class:`~radarlib.volume.Volume` or a plan."""

    @property
    def key(self) -> VolumeKey: ...

    @property
    def station(self) -> Station: ...

    @property
    def sweeps(self) -> tuple[VolumeSweep, ...]: ...

    @property
    def range_axis(self) -> RangeAxis: ...

    @property
    def missing_fields(self) -> tuple[str, ...]: ...

    @property
    def warnings(self) -> tuple[str, ...]: ...

    def gate_window(self, index: int) -> tuple[int, int]: ...


def _scalar(value: Any, attrs: Mapping[str, Any] | None = None) -> Any:
    import xarray as xr

    return xr.Variable((), value, dict(attrs or {}))


def sweep_dataset(
    grid: VolumeGrid,
    index: int,
    fields: Sequence[str],
    blocks: BlockSource,
    shifts: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """The ``sweep_<index>`` dataset; ``blocks(name, index)`` gives each field's arrays.

    ``values`` must be float32 with NaN where masked (or a lazy array of that), ``status``
    the uint8 :class:`GateStatus` array, both ``(nrays, window)`` with rows in azimuth order
    (:func:`azimuth_order`).
    """
    import xarray as xr

    geometry = grid.sweeps[index]
    lo, width = grid.gate_window(index)
    axis = grid.range_axis
    start = np.datetime64(grid_start(grid).replace(tzinfo=None), "ns")
    seconds = azimuth_order(geometry.ray_times(grid_start(grid)), geometry.a1gate)
    times = start + np.round(seconds * 1e9).astype("timedelta64[ns]")
    azimuths = (np.arange(geometry.nrays, dtype=np.float64) + 0.5) * (360.0 / geometry.nrays)
    time_attrs = coordinate_attrs("time")
    time_encoding = {k: time_attrs.pop(k) for k in _TIME_ENCODING_KEYS}
    time_encoding.update(units=f"seconds since {format_iso(grid_start(grid))}", dtype="float64")
    time = xr.Variable(("azimuth",), times, time_attrs, encoding=time_encoding)
    rng_attrs = coordinate_attrs("range")
    rng_attrs["meters_to_center_of_first_gate"] = np.float32(axis.first + lo * axis.spacing)
    rng_attrs["meters_between_gates"] = np.float32(axis.spacing)
    rng = axis.ranges[lo : lo + width].astype(np.float32)
    station = grid.station
    coords = {
        "time": time,
        "azimuth": xr.Variable(("azimuth",), azimuths, coordinate_attrs("azimuth")),
        "elevation": xr.Variable(
            ("azimuth",), np.full(geometry.nrays, geometry.elevation), coordinate_attrs("elevation")
        ),
        "range": xr.Variable(("range",), rng, rng_attrs),
        "latitude": _scalar(station.latitude, coordinate_attrs("latitude")),
        "longitude": _scalar(station.longitude, coordinate_attrs("longitude")),
        "altitude": _scalar(station.height, coordinate_attrs("altitude")),
    }
    data: dict[str, Any] = {}
    for name in fields:
        values, status = blocks(name, index)
        attrs = {k: v for k, v in field_attrs(name).items() if k not in _NOT_ATTRS}
        shift = (shifts or {}).get(name)
        if shift is not None and np.isfinite(shift):
            attrs["range_shift"] = np.float32(shift)
        data[name] = xr.Variable(
            ("azimuth", "range"),
            values,
            attrs,
            encoding={"_FillValue": FILL_VALUE, "dtype": "float32"},
        )
        flags = {k: v for k, v in status_attrs(name).items() if k not in _NOT_ATTRS}
        data[status_name(name)] = xr.Variable(("azimuth", "range"), status, flags)
    data["sweep_number"] = _scalar(np.int32(index), coordinate_attrs("sweep_number"))
    data["sweep_mode"] = _scalar(SWEEP_MODE, coordinate_attrs("sweep_mode"))
    data["sweep_fixed_angle"] = _scalar(
        np.float32(geometry.elevation), coordinate_attrs("fixed_angle")
    )
    data["follow_mode"] = _scalar(FOLLOW_MODE)
    data["prt_mode"] = _scalar(PRT_MODE)
    return xr.Dataset(data, coords=coords)


def azimuth_order(rays: Any, a1gate: int) -> Any:
    """Rows of ``rays`` (acquisition order, first = row ``a1gate``) in azimuth order."""
    return np.roll(rays, a1gate, axis=0) if a1gate else rays


def grid_start(grid: VolumeGrid) -> Any:
    """Earliest sweep start of the grid (the reference of the ray times)."""
    return min(s.start_time for s in grid.sweeps)


def root_dataset(grid: VolumeGrid, sources: Sequence[str], history: str) -> xr.Dataset:
    """The root group: volume identity, station, time coverage and the sweep index."""
    import xarray as xr

    key = grid.key
    start = grid_start(grid)
    end = max(s.effective_end for s in grid.sweeps)
    attrs = global_attrs(
        instrument_name=key.radar,
        scan_name=key.strategy,
        volume_number=key.volume_number,
        sources=list(sources),
        history=history,
        time_coverage_start=format_iso(start),
        time_coverage_end=format_iso(end),
        missing_fields=list(grid.missing_fields),
        warnings=list(grid.warnings),
        ray_times_increase=True,
    )
    attrs["Conventions"] = CFRADIAL2_CONVENTIONS
    attrs["version"] = CFRADIAL2_VERSION
    attrs["history"] = attrs.pop("history")
    station = grid.station
    nsweeps = len(grid.sweeps)
    data = {
        "volume_number": _scalar(
            np.int32(int(key.volume_number)), coordinate_attrs("volume_number")
        ),
        "platform_type": _scalar(attrs["platform_type"], coordinate_attrs("platform_type")),
        "instrument_type": _scalar(attrs["instrument_type"], coordinate_attrs("instrument_type")),
        "primary_axis": _scalar(attrs["primary_axis"], coordinate_attrs("primary_axis")),
        "time_coverage_start": _scalar(
            attrs["time_coverage_start"], coordinate_attrs("time_coverage_start")
        ),
        "time_coverage_end": _scalar(
            attrs["time_coverage_end"], coordinate_attrs("time_coverage_end")
        ),
        "latitude": _scalar(station.latitude, coordinate_attrs("latitude")),
        "longitude": _scalar(station.longitude, coordinate_attrs("longitude")),
        "altitude": _scalar(station.height, coordinate_attrs("altitude")),
        "sweep_group_name": xr.Variable(
            ("sweep",), np.array([SWEEP_GROUP.format(i) for i in range(nsweeps)], dtype=object)
        ),
        "sweep_fixed_angle": xr.Variable(
            ("sweep",),
            np.array([s.elevation for s in grid.sweeps], dtype=np.float32),
            coordinate_attrs("fixed_angle"),
        ),
    }
    return xr.Dataset(data, attrs=attrs)


def build_datatree(
    grid: VolumeGrid,
    fields: Sequence[str],
    blocks: BlockSource,
    sources: Sequence[str],
    history: str,
    shifts: Callable[[int], Mapping[str, float]] | None = None,
) -> xr.DataTree:
    """The whole tree: root, the empty FM 301 metadata groups, ``sweep_0`` … ``sweep_<n-1>``."""
    import xarray as xr

    nodes: dict[str, xr.Dataset] = {"/": root_dataset(grid, sources, history)}
    for group in CFRADIAL2_METADATA_GROUPS:
        nodes[f"/{group}"] = xr.Dataset()
    for i in range(len(grid.sweeps)):
        nodes[f"/{SWEEP_GROUP.format(i)}"] = sweep_dataset(
            grid, i, fields, blocks, None if shifts is None else shifts(i)
        )
    return xr.DataTree.from_dict(nodes)


def volume_to_datatree(volume: Volume, *, history: str | None = None) -> xr.DataTree:
    """The DataTree of an assembled volume (views of its arrays; the values are NaN-masked)."""
    from radarlib.radar import history_line

    def blocks(name: str, index: int) -> tuple[Any, Any]:
        fd = volume.fields[name]
        geometry = volume.sweeps[index]
        lo, width = volume.gate_window(index)
        rays = slice(geometry.ray_start, geometry.ray_start + geometry.nrays)
        status = fd.status[rays, lo : lo + width]
        values = np.where(status == GateStatus.VALID, fd.values[rays, lo : lo + width], np.nan)
        a1gate = geometry.a1gate
        return azimuth_order(values.astype(np.float32, copy=False), a1gate), azimuth_order(
            status, a1gate
        )

    def shifts(index: int) -> dict[str, float]:
        return {name: float(fd.range_shift[index]) for name, fd in volume.fields.items()}

    return build_datatree(
        volume,
        list(volume.fields),
        blocks,
        volume.sources,
        history or history_line(volume.sources),
        shifts,
    )
