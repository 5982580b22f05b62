"""The volume model: the decoded field files of one radar volume on one ray/range grid.

A volume is the set of field files (``DBZH``, ``KDP`` …) sharing radar, strategy,
volume number and timestamp (:func:`group_files_into_volumes` groups paths by name).
:func:`assemble_volume` puts their sweeps on one grid that :mod:`radarlib.radar` turns
into a Py-ART ``Radar``::

    volume = assemble_volume([read_bufr(p) for p in paths], expected_fields=fields)
    volume.fields["KDP"].values   # float32 (total rays, axis gates), FILL_VALUE where masked

Rules (ODIM geometry and time, as xradar's ODIM reader):

* **Sweeps** are matched across fields by index and checked by elevation
  (``elevation_tolerance``); a larger difference is a :class:`VolumeError`. A field with
  fewer sweeps than the volume gets the missing ones fully masked (status ``outside``),
  listed in :attr:`Volume.warnings` and in the field's ``missing_sweeps``. Fields whose
  sweep has a different number of rays are refused with a :class:`VolumeError` naming the
  file (rays cannot be matched without resampling). Sweeps may differ in ``nrays``
  from each other.
* **Rays** are stored in acquisition order: ray ``j`` of a sweep is BUFR row
  ``(a1gate + j) % nrays``, the azimuth bin centred at ``(row + 0.5) * 360 / nrays``.
  The geometry (elevation, nrays, a1gate, times) of a sweep is taken from the first field
  (in :data:`radarlib.vocabulary.FIELD_VOCABULARY` order) that has it; differing start/end
  times or a1gate in other fields are reported as warnings.
* **Ray times** are spread evenly over the sweep: ray ``j`` at
  ``start + (j + 0.5) * (end - start) / nrays`` (xradar's ODIM rule, rolled by a1gate).
  **Time rule for a sweep whose end is not after its start** (RMA11 vol-01 sweeps 13-14
  end before they start; AR5 has start == end): its duration is taken as zero and every
  ray is at the sweep's start time, so times never decrease within the sweep and follow
  the previous sweeps; a sweep ending *before* its start is also listed in the warnings.
  The volume starts at the earliest sweep start and ends at the latest
  ``max(start, end)`` of its sweeps.
* **Range**: one axis with the bin size as spacing, from the nearest first-gate centre
  (``offset + bin/2``) to the farthest last-gate centre over all fields and sweeps. Each
  sweep's gates go to the nearest axis gate (ties round up), so the position error is at
  most half a gate; the per-sweep shift (axis range minus true range) is kept in
  :attr:`FieldData.range_shift`. Different bin sizes are a :class:`VolumeError`.
* **Masks**: ``undetect`` (-DBL_MAX), ``nodata`` (+DBL_MAX), NaN/inf artefacts and gates
  outside a sweep's extent are masked (value :data:`~radarlib.vocabulary.FILL_VALUE`);
  :attr:`FieldData.status` keeps the :class:`~radarlib.bufr.model.GateStatus` of every
  gate so undetect and nodata stay distinguishable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radarlib.bufr.layout import decode_threads
from radarlib.bufr.model import BufrFile, GateStatus, Station, Sweep
from radarlib.errors import VolumeError
from radarlib.filename import BufrFileName, VolumeKey
from radarlib.vocabulary import FIELD_VOCABULARY, FILL_VALUE

__all__ = [
    "FieldData",
    "RangeAxis",
    "Volume",
    "VolumePlan",
    "VolumeSweep",
    "assemble_volume",
    "group_files_into_volumes",
    "order_fields",
    "plan_volume",
    "sweep_block",
]


def group_files_into_volumes(paths: Iterable[str | Path]) -> dict[VolumeKey, list[Path]]:
    """Group BUFR file paths by the volume their names belong to (sorted by volume, then field).

    Raises :class:`~radarlib.errors.FileNameError` for a name that is not a radar file name.
    """
    groups: dict[VolumeKey, list[tuple[str, Path]]] = {}
    for raw in paths:
        path = Path(raw)
        name = BufrFileName.parse(path.name)
        groups.setdefault(name.volume_key, []).append((name.field, path))
    return {
        key: [p for _, p in sorted(groups[key], key=lambda fp: (_field_rank(fp[0]), str(fp[1])))]
        for key in sorted(groups)
    }


def _field_rank(field: str) -> tuple[int, str]:
    order = list(FIELD_VOCABULARY)
    return (order.index(field), "") if field in order else (len(order), field)


def order_fields(fields: Iterable[str]) -> list[str]:
    """Fields in canonical order: the ODIM vocabulary order, then any others alphabetically."""
    return sorted(fields, key=_field_rank)


@dataclass(frozen=True)
class RangeAxis:
    """The common range axis: gate centres ``first + k * spacing`` for ``k < ngates`` (metres)."""

    first: float
    spacing: float
    ngates: int

    @property
    def ranges(self) -> npt.NDArray[np.float64]:
        """Gate-centre ranges in metres."""
        return self.first + self.spacing * np.arange(self.ngates, dtype=np.float64)

    def place(self, first_centre: float) -> tuple[int, float]:
        """Axis index of the gate nearest ``first_centre`` and the shift (axis - true, metres)."""
        index = int(np.floor((first_centre - self.first) / self.spacing + 0.5))
        return index, self.first + index * self.spacing - first_centre


@dataclass(frozen=True)
class VolumeSweep:
    """Geometry and timing of one sweep of the volume (from its reference field)."""

    number: int
    elevation: float
    nrays: int
    a1gate: int
    start_time: datetime
    end_time: datetime
    #: Index of the sweep's first ray in the volume's ray dimension.
    ray_start: int
    #: Field the geometry was taken from.
    reference_field: str

    @property
    def ray_end(self) -> int:
        """Index of the sweep's last ray (inclusive)."""
        return self.ray_start + self.nrays - 1

    @property
    def duration(self) -> float:
        """Seconds between start and end; 0 when the end is not after the start (see module doc)."""
        return max((self.end_time - self.start_time).total_seconds(), 0.0)

    @property
    def effective_end(self) -> datetime:
        """``max(start, end)``: the end of the time span the sweep's rays are placed in."""
        return self.start_time + timedelta(seconds=self.duration)

    @property
    def rows(self) -> npt.NDArray[np.int64]:
        """BUFR row of each stored ray (acquisition order: row a1gate first)."""
        return (self.a1gate + np.arange(self.nrays, dtype=np.int64)) % self.nrays

    @property
    def azimuths(self) -> npt.NDArray[np.float64]:
        """Azimuth (degrees) of each stored ray: centre of its row's azimuth bin."""
        return ((self.rows + 0.5) * (360.0 / self.nrays)).astype(np.float64)

    def ray_times(self, since: datetime) -> npt.NDArray[np.float64]:
        """Seconds since ``since`` of each stored ray (evenly spread, ray centres)."""
        offset = (self.start_time - since).total_seconds()
        step = self.duration / self.nrays
        index = np.arange(self.nrays, dtype=np.float64)
        return np.asarray(offset + (index + 0.5) * step, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class FieldData:
    """One field on the volume grid: float32 values, gate status and per-sweep range shift."""

    name: str
    #: float32 (total rays, axis gates); FILL_VALUE wherever status != VALID.
    values: npt.NDArray[np.float32]
    #: uint8 GateStatus per gate, same shape.
    status: npt.NDArray[np.uint8]
    #: Per sweep: axis index of the field's first gate (-1 where the field lacks the sweep).
    gate_index: npt.NDArray[np.int64]
    #: Per sweep: axis range minus true range of the field's gates, metres (NaN if lacking).
    range_shift: npt.NDArray[np.float64]
    #: Per sweep: number of gates the field has (0 where lacking).
    ngates: npt.NDArray[np.int64]
    missing_sweeps: tuple[int, ...]
    #: The file the field came from.
    source: str

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """True where the gate holds no valid value."""
        return self.status != GateStatus.VALID

    def masked(self) -> np.ma.MaskedArray:
        """The values as a masked array (mask = status != VALID), sharing memory."""
        return np.ma.MaskedArray(self.values, mask=self.mask, fill_value=FILL_VALUE)


@dataclass(frozen=True, eq=False)
class Volume:
    """The fields of one volume on one grid, with sweep geometry, station and provenance."""

    key: VolumeKey
    station: Station
    sweeps: tuple[VolumeSweep, ...]
    range_axis: RangeAxis
    fields: dict[str, FieldData]
    sources: tuple[str, ...]
    missing_fields: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def nrays(self) -> int:
        """Total number of rays over all sweeps."""
        return sum(s.nrays for s in self.sweeps)

    @property
    def start_time(self) -> datetime:
        """Earliest sweep start (the reference of the ``time`` variable)."""
        return min(s.start_time for s in self.sweeps)

    @property
    def end_time(self) -> datetime:
        """Latest ``max(start, end)`` over the sweeps."""
        return max(s.effective_end for s in self.sweeps)

    def ray_times(self) -> npt.NDArray[np.float64]:
        """Seconds since :attr:`start_time` of every ray, sweep after sweep."""
        return np.concatenate([s.ray_times(self.start_time) for s in self.sweeps])

    def azimuths(self) -> npt.NDArray[np.float64]:
        """Azimuth of every ray (degrees), sweep after sweep."""
        return np.concatenate([s.azimuths for s in self.sweeps])

    def elevations(self) -> npt.NDArray[np.float64]:
        """Elevation of every ray (the sweep's elevation), sweep after sweep."""
        return np.concatenate([np.full(s.nrays, s.elevation) for s in self.sweeps])

    def gate_window(self, index: int) -> tuple[int, int]:
        """``(first axis gate, number of gates)`` covering every field of sweep ``index``."""
        spans = [
            (int(fd.gate_index[index]), int(fd.ngates[index]))
            for fd in self.fields.values()
            if fd.ngates[index] > 0
        ]
        if not spans:
            return 0, 0
        lo = min(g for g, _ in spans)
        return lo, max(g + n for g, n in spans) - lo


def _source(f: BufrFile) -> str:
    if f.filename is not None:
        return f.filename.name
    return Path(f.source).name if f.source else "<bytes>"


def _identify(files: Sequence[BufrFile]) -> tuple[VolumeKey, dict[str, BufrFile]]:
    if not files:
        raise VolumeError("no field files given")
    by_field: dict[str, BufrFile] = {}
    key: VolumeKey | None = None
    for f in files:
        if f.filename is None:
            raise VolumeError(
                "not a radar file name <RADAR>_<STRATEGY>_<VOLNR>_<FIELD>_<TIME>.BUFR: "
                "the field and volume cannot be told",
                source=f.source or "<bytes>",
            )
        this = f.filename.volume_key
        if key is None:
            key = this
        elif this != key:
            raise VolumeError(
                f"belongs to volume {this.volume_id}, not {key.volume_id}", source=_source(f)
            )
        if f.filename.field in by_field:
            raise VolumeError(
                f"field {f.filename.field} given twice "
                f"(also {_source(by_field[f.filename.field])})",
                source=_source(f),
            )
        by_field[f.filename.field] = f
    if key is None:  # pragma: no cover - files is non-empty
        raise VolumeError("no field files given")
    return key, {name: by_field[name] for name in order_fields(by_field)}


def _volume_sweeps(
    by_field: dict[str, BufrFile], tolerance: float, warnings: list[str]
) -> tuple[VolumeSweep, ...]:
    nsweeps = max(len(f.sweeps) for f in by_field.values())
    if nsweeps == 0:
        raise VolumeError(
            "no field file has any sweep", source=", ".join(map(_source, by_field.values()))
        )
    sweeps: list[VolumeSweep] = []
    ray_start = 0
    for i in range(nsweeps):
        ref_name, ref = next((n, f.sweeps[i]) for n, f in by_field.items() if i < len(f.sweeps))
        ref_file = by_field[ref_name]
        if ref.nrays <= 0:
            raise VolumeError(f"sweep {i} has no rays", source=_source(ref_file))
        if not 0 <= ref.a1gate < ref.nrays:
            raise VolumeError(
                f"sweep {i}: a1gate {ref.a1gate} is not a row of its {ref.nrays} rays",
                source=_source(ref_file),
            )
        for name, f in by_field.items():
            if i >= len(f.sweeps) or name == ref_name:
                continue
            s = f.sweeps[i]
            if abs(s.elevation - ref.elevation) > tolerance:
                raise VolumeError(
                    f"sweep {i} elevation {s.elevation} deg differs from {ref_name}'s "
                    f"{ref.elevation} deg by more than {tolerance} deg",
                    source=_source(f),
                )
            if s.nrays != ref.nrays:
                raise VolumeError(
                    f"sweep {i} has {s.nrays} rays but {ref_name} has {ref.nrays}: fields with "
                    "different numbers of rays per sweep are not combined (no resampling)",
                    source=_source(f),
                )
            if (s.start_time, s.end_time, s.a1gate) != (ref.start_time, ref.end_time, ref.a1gate):
                warnings.append(
                    f"{name} sweep {i}: start/end/a1gate {s.start_time:%H:%M:%S}/"
                    f"{s.end_time:%H:%M:%S}/{s.a1gate} differ from {ref_name}'s "
                    f"{ref.start_time:%H:%M:%S}/{ref.end_time:%H:%M:%S}/{ref.a1gate}; "
                    f"{ref_name}'s are used"
                )
        if ref.end_time < ref.start_time:
            warnings.append(
                f"sweep {i}: end time {ref.end_time:%Y-%m-%dT%H:%M:%SZ} precedes start time "
                f"{ref.start_time:%Y-%m-%dT%H:%M:%SZ}; all its rays are timed at the start"
            )
        sweeps.append(
            VolumeSweep(
                number=i,
                elevation=float(ref.elevation),
                nrays=int(ref.nrays),
                a1gate=int(ref.a1gate),
                start_time=ref.start_time,
                end_time=ref.end_time,
                ray_start=ray_start,
                reference_field=ref_name,
            )
        )
        ray_start += ref.nrays
    return tuple(sweeps)


def _range_axis(by_field: dict[str, BufrFile]) -> RangeAxis:
    spacing: float | None = None
    spacing_from = ""
    extents: list[tuple[float, int]] = []  # (first-gate centre, ngates)
    for name, f in by_field.items():
        for i, s in enumerate(f.sweeps):
            if not s.range_bin_size > 0:
                raise VolumeError(
                    f"sweep {i} has range-bin size {s.range_bin_size} m", source=_source(f)
                )
            if spacing is None:
                spacing, spacing_from = float(s.range_bin_size), f"{name} sweep {i}"
            elif s.range_bin_size != spacing:
                raise VolumeError(
                    f"sweep {i} has range-bin size {s.range_bin_size} m but {spacing_from} has "
                    f"{spacing} m: one range axis needs one bin size",
                    source=_source(f),
                )
            if s.ngates > 0:
                extents.append((s.range_offset + s.range_bin_size / 2.0, s.ngates))
    if spacing is None:  # pragma: no cover - _volume_sweeps refused volumes without sweeps
        raise VolumeError("no sweeps")
    if not extents:
        return RangeAxis(first=spacing / 2.0, spacing=spacing, ngates=0)
    axis = RangeAxis(first=min(first for first, _ in extents), spacing=spacing, ngates=0)
    ngates = max(axis.place(first)[0] + n for first, n in extents)
    return RangeAxis(first=axis.first, spacing=spacing, ngates=ngates)


def _fill_sweep(
    out_values: npt.NDArray[np.float32],
    out_status: npt.NDArray[np.uint8],
    sweep: Sweep,
    geometry: VolumeSweep,
    gate0: int,
    name: str,
    source: str,
    warnings: list[str],
    scratch: _Scratch | None = None,
) -> None:
    if len(sweep.quantities) > 1:
        warnings.append(
            f"{name} sweep {geometry.number}: {len(sweep.quantities)} quantities, only the "
            "first (the file's field) is converted"
        )
    data = sweep.data
    if data.shape != (sweep.nrays, sweep.ngates):
        raise VolumeError(
            f"sweep {geometry.number} payload shape {data.shape} != (nrays, ngates) "
            f"({sweep.nrays}, {sweep.ngates})",
            source=source,
        )
    # Stored ray j is BUFR row (a1gate + j) % nrays: rows a1gate.. first, then 0..a1gate-1.
    # The two runs of rows are placed as views (no rolled copy of the payload).
    a1 = geometry.a1gate
    runs = [(data[a1:], geometry.ray_start), (data[:a1], geometry.ray_start + sweep.nrays - a1)]
    gates = slice(gate0, gate0 + sweep.ngates)
    inexact = 0
    for part, start in runs:
        if part.shape[0]:
            rows = slice(start, start + part.shape[0])
            inexact += _place(part, out_values[rows, gates], out_status[rows, gates], scratch)
    if inexact < 0:
        raise VolumeError(
            f"sweep {geometry.number}: a valid value equals the fill value {FILL_VALUE}",
            source=source,
        )
    if inexact:
        warnings.append(
            f"{name} sweep {geometry.number}: {inexact} valid values are not exact in float32 "
            "and were rounded"
        )


_DBL_MAX = np.finfo(np.float64).max
_U8 = np.uint8


class _Scratch:
    """Buffers :func:`_place` reuses from sweep to sweep, so classifying a field makes no
    large temporaries (fresh pages cost more than the arithmetic)."""

    def __init__(self) -> None:
        self._size = 0
        self._magnitude = np.empty(0)
        self._flags = np.empty((3, 0), dtype=np.bool_)
        self._twice = np.empty(0, dtype=_U8)

    def take(
        self, shape: tuple[int, ...]
    ) -> tuple[npt.NDArray[np.float64], list[npt.NDArray[np.bool_]], npt.NDArray[np.uint8]]:
        """A float64 buffer, three boolean ones and a uint8 one, all of ``shape``."""
        n = int(np.prod(shape))
        if n > self._size:
            self._size = n
            self._magnitude = np.empty(n)
            self._flags = np.empty((3, n), dtype=np.bool_)
            self._twice = np.empty(n, dtype=_U8)
        flags = [f[:n].reshape(shape) for f in self._flags]
        return self._magnitude[:n].reshape(shape), flags, self._twice[:n].reshape(shape)


def _place(
    part: npt.NDArray[np.float64],
    block: npt.NDArray[np.float32],
    status: npt.NDArray[np.uint8],
    scratch: _Scratch | None = None,
) -> int:
    """Classify ``part`` into ``status`` and copy it into ``block`` (float32, FILL_VALUE
    where not valid).

    Returns how many valid values were rounded by the float32 cast, or -1 when a valid value
    equals the fill value. Valid = finite and not a ±DBL_MAX sentinel (NaN and ±inf are
    artefacts: status NAN), computed as ``|x| < DBL_MAX``. Every pass writes into
    ``scratch`` or the outputs; the counts rest on every invalid gate holding FILL_VALUE,
    which no sentinel, NaN or inf equals.
    """
    magnitude, (valid, undetect, nodata), twice = (scratch or _Scratch()).take(part.shape)
    np.less(np.abs(part, out=magnitude), _DBL_MAX, out=valid)
    np.equal(part, -_DBL_MAX, out=undetect)
    np.equal(part, _DBL_MAX, out=nodata)
    # status = NAN - 3*valid - 2*undetect - nodata: VALID 0, UNDETECT 1, NODATA 2, NAN 3
    np.multiply(valid.view(_U8), _U8(3), out=status)
    np.subtract(_U8(GateStatus.NAN), status, out=status)
    np.subtract(status, np.left_shift(undetect.view(_U8), 1, out=twice), out=status)
    np.subtract(status, nodata.view(_U8), out=status)
    block[...] = FILL_VALUE
    np.copyto(block, part, casting="unsafe", where=valid)
    invalid = part.size - int(np.count_nonzero(valid))
    if np.count_nonzero(np.equal(block, FILL_VALUE, out=undetect)) > invalid:
        return -1
    return int(np.count_nonzero(np.not_equal(block, part, out=nodata))) - invalid


def _field_data(
    name: str,
    f: BufrFile,
    sweeps: tuple[VolumeSweep, ...],
    axis: RangeAxis,
    nrays: int,
    warnings: list[str],
) -> FieldData:
    source = _source(f)
    values = np.empty((nrays, axis.ngates), dtype=np.float32)  # every gate is written below
    status = np.empty((nrays, axis.ngates), dtype=np.uint8)
    nsweeps = len(sweeps)
    gate_index = np.full(nsweeps, -1, dtype=np.int64)
    shift = np.full(nsweeps, np.nan, dtype=np.float64)
    ngates = np.zeros(nsweeps, dtype=np.int64)
    scratch = _Scratch()
    for geometry in sweeps:
        i = geometry.number
        outside = [slice(None)]  # the gates of this sweep's rows the field does not cover
        if i < len(f.sweeps):
            sweep = f.sweeps[i]
            gate0, shift[i] = axis.place(sweep.range_offset + sweep.range_bin_size / 2.0)
            gate_index[i], ngates[i] = gate0, sweep.ngates
            if sweep.ngates:
                _fill_sweep(values, status, sweep, geometry, gate0, name, source, warnings, scratch)
                outside = [slice(0, gate0), slice(gate0 + sweep.ngates, None)]
        rows = slice(geometry.ray_start, geometry.ray_start + geometry.nrays)
        for gates in outside:
            values[rows, gates] = FILL_VALUE
            status[rows, gates] = GateStatus.OUTSIDE
    missing = tuple(range(len(f.sweeps), nsweeps))
    if missing:
        warnings.append(
            f"{name} lacks sweep(s) {', '.join(map(str, missing))} of {nsweeps}: fully masked "
            "(status outside)"
        )
    return FieldData(
        name=name,
        values=values,
        status=status,
        gate_index=gate_index,
        range_shift=shift,
        ngates=ngates,
        missing_sweeps=missing,
        source=source,
    )


@dataclass(frozen=True, eq=False)
class VolumePlan:
    """A volume's grid from its files' metadata alone (no payload read): what
    :func:`assemble_volume` and the lazy xarray backend share.

    ``files`` are :class:`BufrFile` or :class:`~radarlib.bufr.layout.BufrLayout` (anything
    with ``filename``, ``source``, ``station`` and ``sweeps`` carrying the sweep metadata).
    """

    key: VolumeKey
    station: Station
    sweeps: tuple[VolumeSweep, ...]
    range_axis: RangeAxis
    #: field name -> its file (canonical field order)
    files: dict[str, Any]
    missing_fields: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def nrays(self) -> int:
        """Total number of rays over all sweeps."""
        return sum(s.nrays for s in self.sweeps)

    def placement(self, name: str, index: int) -> tuple[int, int, float] | None:
        """``(axis gate of the first gate, ngates, shift)`` of field ``name`` in sweep ``index``."""
        f = self.files[name]
        if index >= len(f.sweeps):
            return None
        sweep = f.sweeps[index]
        gate0, shift = self.range_axis.place(sweep.range_offset + sweep.range_bin_size / 2.0)
        return gate0, int(sweep.ngates), shift

    def gate_window(self, index: int) -> tuple[int, int]:
        """``(first axis gate, number of gates)`` covering every field of sweep ``index``."""
        spans = [p for p in (self.placement(n, index) for n in self.files) if p and p[1] > 0]
        if not spans:
            return 0, 0
        lo = min(g for g, _, _ in spans)
        return lo, max(g + n for g, n, _ in spans) - lo


def plan_volume(
    files: Sequence[Any],
    *,
    elevation_tolerance: float = 0.5,
    expected_fields: Sequence[str] | None = None,
) -> VolumePlan:
    """A volume's grid from its files' metadata (rules and errors of :func:`assemble_volume`)."""
    key, by_field = _identify(files)
    warnings: list[str] = []
    sweeps = _volume_sweeps(by_field, elevation_tolerance, warnings)
    axis = _range_axis(by_field)
    reference = next(iter(by_field.values()))
    for name, f in by_field.items():
        st, ref = f.station, reference.station
        if (st.latitude, st.longitude, st.height) != (ref.latitude, ref.longitude, ref.height):
            warnings.append(
                f"{name}: station ({st.latitude}, {st.longitude}, {st.height} m) differs from "
                f"({ref.latitude}, {ref.longitude}, {ref.height} m); the latter is used"
            )
    return VolumePlan(
        key=key,
        station=reference.station,
        sweeps=sweeps,
        range_axis=axis,
        files=by_field,
        missing_fields=tuple(sorted(set(expected_fields or ()) - set(by_field))),
        warnings=tuple(warnings),
    )


def sweep_block(
    plan: VolumePlan, name: str, index: int, sweep: Sweep | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Field ``name`` of sweep ``index`` on that sweep's gate window: float32 values
    (FILL_VALUE where masked) and GateStatus, ``(nrays, window)``, rays in acquisition order.

    ``sweep`` is the inflated sweep (default: ``plan.files[name].sweeps[index]``, which
    must then be a decoded :class:`Sweep`).
    """
    geometry = plan.sweeps[index]
    lo, width = plan.gate_window(index)
    values = np.full((geometry.nrays, width), FILL_VALUE, dtype=np.float32)
    status = np.full((geometry.nrays, width), GateStatus.OUTSIDE, dtype=np.uint8)
    placed = plan.placement(name, index)
    if placed is None or placed[1] == 0:
        return values, status
    f = plan.files[name]
    data = f.sweeps[index] if sweep is None else sweep
    _fill_sweep(
        values,
        status,
        data,
        replace(geometry, ray_start=0),
        placed[0] - lo,
        name,
        _source(f),
        [],
    )
    return values, status


def assemble_volume(
    files: Sequence[BufrFile],
    *,
    elevation_tolerance: float = 0.5,
    expected_fields: Sequence[str] | None = None,
    threads: int | None = None,
) -> Volume:
    """Combine the decoded field files of one volume on one grid (rules in the module doc).

    ``threads`` places the fields in parallel (default: the usable cores, at most 4).

    Raises :class:`VolumeError` naming the offending file when the files are not one
    volume, a field is given twice, elevations or ray counts do not match, or bin sizes
    differ.
    """
    plan = plan_volume(
        files, elevation_tolerance=elevation_tolerance, expected_fields=expected_fields
    )
    warnings = list(plan.warnings)

    def field(item: tuple[str, BufrFile]) -> tuple[FieldData, list[str]]:
        notes: list[str] = []
        data = _field_data(*item, plan.sweeps, plan.range_axis, plan.nrays, notes)
        return data, notes

    # numpy releases the GIL in the per-gate passes: the fields are placed side by side
    workers = min(len(plan.files), decode_threads() if threads is None else max(1, threads))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            built = list(pool.map(field, plan.files.items()))
    else:
        built = [field(item) for item in plan.files.items()]
    fields = {}
    for data, notes in built:
        fields[data.name] = data
        warnings.extend(notes)
    return Volume(
        key=plan.key,
        station=plan.station,
        sweeps=plan.sweeps,
        range_axis=plan.range_axis,
        fields=fields,
        sources=tuple(_source(f) for f in plan.files.values()),
        missing_fields=plan.missing_fields,
        warnings=tuple(warnings),
    )
