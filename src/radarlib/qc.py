"""Quality control of one volume: hard checks, then gate filters; pure functions, no I/O.

>>> result = run_qc(volume, QCConfig())                       # doctest: +SKIP
>>> result.volume.fields["DBZH_QC"]       # filtered copy; DBZH itself is untouched
>>> result.attrs()["qc_steps"]            # what each named step did, for the NetCDF

Steps, in order (each named and recorded in :attr:`QCResult.steps`):

* ``geometry`` (hard): every field lies on the volume's grid (rays, gates, sweeps agree:
  array shapes, per-sweep gate extents, contiguous sweeps, finite elevations in -2..90 deg).
* ``times`` (hard): sweep starts within ``[file time - tolerance, file time + max_volume_seconds]``
  and no sweep longer than ``max_sweep_seconds``. A sweep ending before it starts is only noted
  (RMA11 sweeps 13-14 do that, see docs).
* ``identity`` (hard): the file name's radar and time match the content: the station ids
  (``RMA`` + ``11`` = RMA11, ``ar`` + ``5`` = AR5), the first sweep's start (= section-1 time in
  RMA files) and the station block's hour:minute, within ``time_tolerance_seconds`` (AR5's
  name is 46 s after its content). :func:`check_files` does the same per decoded file with
  its section-1 time, before the files are assembled.
* ``clutter``: a reflectivity gate is non-meteorological where RHOHV < ``clutter_rhohv_below``
  and DBZH < ``clutter_dbzh_below`` (the network operators' rule, 0.87 and 30 dBZ); skipped
  (and recorded as skipped) when the volume has no RHOHV.
* ``speckle``: a valid gate with fewer than ``speckle_min_neighbours`` valid gates among its
  8 neighbours in the same sweep (azimuth wraps around) is removed.
* ``velocity`` (optional, off by default): VRAD gates with WRAD above ``velocity_max_width``
  or with ``|VRAD|`` below ``velocity_min_abs`` (zero-velocity ground clutter) are removed.

A failed hard check raises :class:`~radarlib.errors.QCError` naming the check and the reason,
so the volume is recorded failed instead of written. Results go into the volume as filtered
copies ``<FIELD>_QC`` (removed gates masked, their status ``undetect``) or, with
``output = "flags"``, as ``<FIELD>_QC_FLAGS`` bit masks (:data:`FLAG_BITS`); the raw fields
are never changed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from radarlib.bufr.model import BufrFile, GateStatus, Station
from radarlib.checks import check_bool, check_integer, check_number, radar_table
from radarlib.errors import ConfigError, QCError
from radarlib.vocabulary import FILL_VALUE, QC_FLAG_MEANINGS, QC_FLAGS_SUFFIX, QC_SUFFIX
from radarlib.volume import FieldData, Volume

__all__ = [
    "FLAG_BITS",
    "QCConfig",
    "QCResult",
    "QCStep",
    "check_files",
    "qc_config_from_mapping",
    "radar_from_station",
    "run_qc",
]

#: Bit of each gate filter in ``<FIELD>_QC_FLAGS``.
FLAG_BITS: dict[str, int] = QC_FLAG_MEANINGS


@dataclass(frozen=True)
class QCConfig:
    """Quality-control settings of one radar (``[qc]`` in the TOML, overridable per radar)."""

    enabled: bool = True
    #: "copies": add ``<FIELD>_QC`` filtered copies; "flags": add ``<FIELD>_QC_FLAGS`` bit masks
    output: Literal["copies", "flags"] = "copies"
    #: reflectivity fields the clutter and speckle filters apply to
    fields: tuple[str, ...] = ("DBZH",)
    check_geometry: bool = True
    check_times: bool = True
    check_identity: bool = True
    #: file name time vs content time (AR5 names are 46 s late)
    time_tolerance_seconds: float = 120.0
    max_sweep_seconds: float = 600.0
    max_volume_seconds: float = 1800.0
    clutter: bool = True
    clutter_rhohv_below: float = 0.87
    clutter_dbzh_below: float = 30.0
    speckle: bool = True
    speckle_min_neighbours: int = 2
    velocity: bool = False
    velocity_max_width: float = 8.0
    velocity_min_abs: float = 0.0

    def __post_init__(self) -> None:
        for key in (
            "enabled",
            "check_geometry",
            "check_times",
            "check_identity",
            "clutter",
            "speckle",
            "velocity",
        ):
            check_bool(key, getattr(self, key))
        if self.output not in ("copies", "flags"):
            raise ConfigError("output", f"must be 'copies' or 'flags', got {self.output!r}")
        if isinstance(self.fields, str) or not all(isinstance(f, str) for f in self.fields):
            raise ConfigError("fields", f"must be a list of field names, got {self.fields!r}")
        object.__setattr__(self, "fields", tuple(self.fields))
        for key in ("time_tolerance_seconds", "velocity_min_abs"):
            check_number(key, getattr(self, key), minimum=0.0, strict=False)
        for key in ("max_sweep_seconds", "max_volume_seconds", "velocity_max_width"):
            check_number(key, getattr(self, key))
        check_number("clutter_rhohv_below", self.clutter_rhohv_below, minimum=None)
        check_number("clutter_dbzh_below", self.clutter_dbzh_below, minimum=None)
        check_integer("speckle_min_neighbours", self.speckle_min_neighbours, 0, 8)

    def to_mapping(self) -> dict[str, Any]:
        """Plain values (crosses process boundaries, recorded in the NetCDF)."""
        data = dataclasses.asdict(self)
        data["fields"] = list(self.fields)
        return data


def qc_config_from_mapping(data: Mapping[str, Any] | None, radar: str | None = None) -> QCConfig:
    """A :class:`QCConfig` from the ``[qc]`` table; ``[qc.radars.<CODE>]`` overrides per radar."""
    known = [f.name for f in dataclasses.fields(QCConfig)]
    values = radar_table(data, "qc", radar, known)
    if "fields" in values and isinstance(values["fields"], list):
        values["fields"] = tuple(values["fields"])
    try:
        return QCConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"qc.{exc.key}", exc.problem) from None


@dataclass(frozen=True)
class QCStep:
    """One named QC step and what it did."""

    name: str
    status: Literal["passed", "applied", "skipped"]
    detail: str
    #: gates removed per field by this step
    removed: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """``clutter applied (RHOHV < 0.87 and DBZH < 30): DBZH 1234 gates``."""
        counts = ", ".join(f"{k} {v} gates" for k, v in self.removed.items())
        return f"{self.name} {self.status} ({self.detail})" + (f": {counts}" if counts else "")


@dataclass(frozen=True, eq=False)
class QCResult:
    """The volume with its QC fields added, the steps run, and the per-field flag arrays."""

    volume: Volume
    steps: tuple[QCStep, ...]
    flags: dict[str, npt.NDArray[np.uint8]]
    config: QCConfig

    def attrs(self) -> dict[str, str]:
        """Global attributes recording the QC (``qc_steps``, ``qc_output``, ``qc_flag_bits``)."""
        return {
            "qc_steps": "\n".join(step.describe() for step in self.steps),
            "qc_output": self.config.output,
            "qc_flag_bits": ", ".join(f"{k}={v}" for k, v in FLAG_BITS.items()),
        }


# --------------------------------------------------------------------------- hard checks


def radar_from_station(station: Station) -> str | None:
    """Radar code from the ODIM station ids (``RMA``/``11`` -> RMA11, ``ar``/``5`` -> AR5)."""
    for sid in station.ids:
        kind, value = sid.kind.strip("\x00 ").upper(), sid.value.strip("\x00 ")
        if kind and value:
            return f"{kind}{value}"
    return None


def _check_geometry(volume: Volume) -> QCStep:
    source = volume.key.volume_id
    shape = (volume.nrays, volume.range_axis.ngates)
    nsweeps = len(volume.sweeps)
    ray = 0
    for sweep in volume.sweeps:
        if sweep.ray_start != ray or sweep.nrays <= 0:
            raise QCError("geometry", f"sweep {sweep.number} rays are not contiguous", source)
        if not (math.isfinite(sweep.elevation) and -2.0 <= sweep.elevation <= 90.0):
            raise QCError(
                "geometry", f"sweep {sweep.number} elevation {sweep.elevation} deg", source
            )
        ray += sweep.nrays
    for name, fd in volume.fields.items():
        if fd.values.shape != shape or fd.status.shape != shape:
            raise QCError(
                "geometry",
                f"field {name} has shape {fd.values.shape}, the volume's rays x gates are {shape}",
                fd.source,
            )
        if len(fd.gate_index) != nsweeps or len(fd.ngates) != nsweeps:
            raise QCError(
                "geometry",
                f"field {name} describes {len(fd.gate_index)} sweeps, the volume has {nsweeps}",
                fd.source,
            )
        for i in range(nsweeps):
            if i in fd.missing_sweeps:
                continue
            end = int(fd.gate_index[i]) + int(fd.ngates[i])
            if fd.gate_index[i] < 0 or end > shape[1]:
                raise QCError(
                    "geometry",
                    f"field {name} sweep {i} gates {fd.gate_index[i]}..{end} exceed the "
                    f"{shape[1]} gates of the range axis",
                    fd.source,
                )
    return QCStep(
        "geometry", "passed", f"{len(volume.fields)} fields, {nsweeps} sweeps, {shape[0]} rays"
    )


def _check_times(volume: Volume, config: QCConfig) -> QCStep:
    when = volume.key.time
    low = when - timedelta(seconds=config.time_tolerance_seconds)
    high = when + timedelta(seconds=config.max_volume_seconds)
    notes = []
    for sweep in volume.sweeps:
        if not low <= sweep.start_time <= high:
            raise QCError(
                "times",
                f"sweep {sweep.number} starts at {sweep.start_time:%Y-%m-%dT%H:%M:%SZ}, outside "
                f"{low:%H:%M:%S}..{high:%H:%M:%S} around the file time {when:%Y-%m-%dT%H:%M:%SZ}",
                volume.key.volume_id,
            )
        if sweep.duration > config.max_sweep_seconds:
            raise QCError(
                "times",
                f"sweep {sweep.number} lasts {sweep.duration:.0f} s (max "
                f"{config.max_sweep_seconds:g} s)",
                volume.key.volume_id,
            )
        if sweep.end_time < sweep.start_time:
            notes.append(str(sweep.number))
    detail = f"{len(volume.sweeps)} sweeps within the volume time"
    if notes:
        detail += f"; sweep(s) {', '.join(notes)} end before they start (rays at their start)"
    return QCStep("times", "passed", detail)


def _identity_problems(
    name_radar: str, name_time: datetime, station: Station, content_time: datetime, tol: float
) -> list[str]:
    problems = []
    content_radar = radar_from_station(station)
    if content_radar is not None and content_radar != name_radar:
        problems.append(f"file name says radar {name_radar}, station ids say {content_radar}")
    gap = abs((content_time - name_time).total_seconds())
    if gap > tol:
        problems.append(
            f"file name time {name_time:%Y-%m-%dT%H:%M:%SZ} differs from the content's "
            f"{content_time:%Y-%m-%dT%H:%M:%SZ} by {gap:.0f} s (tolerance {tol:g} s)"
        )
    if station.time is not None:
        # the station block has no seconds: compare with the name time truncated to minutes
        minute = name_time.replace(second=0)
        gap = abs((station.time - minute).total_seconds())
        if gap > tol:
            problems.append(
                f"file name time {name_time:%H:%M} differs from the station block's "
                f"{station.time:%Y-%m-%dT%H:%M}Z by {gap:.0f} s"
            )
    return problems


def _check_identity(volume: Volume, config: QCConfig) -> QCStep:
    key = volume.key
    first = min(volume.sweeps, key=lambda s: s.number)
    problems = _identity_problems(
        key.radar, key.time, volume.station, first.start_time, config.time_tolerance_seconds
    )
    if problems:
        raise QCError("identity", "; ".join(problems), key.volume_id)
    who = radar_from_station(volume.station) or "no station id"
    return QCStep("identity", "passed", f"{who}, first sweep at {first.start_time:%H:%M:%S}")


def check_files(files: Sequence[BufrFile], config: QCConfig | None = None) -> QCStep:
    """The ``identity`` check per decoded file: its name vs its section 1 and station block.

    Raises :class:`QCError` naming the first file whose name and content disagree.
    """
    cfg = config or QCConfig()
    for f in files:
        if f.filename is None:
            continue
        problems = _identity_problems(
            f.filename.radar,
            f.filename.time,
            f.station,
            f.section1.time,
            cfg.time_tolerance_seconds,
        )
        if problems:
            source = f.filename.name
            raise QCError("identity", "; ".join(problems), source)
    return QCStep("file identity", "passed", f"{len(files)} files")


# --------------------------------------------------------------------------- gate filters


def _valid(fd: FieldData) -> npt.NDArray[np.bool_]:
    return np.asarray(fd.status == GateStatus.VALID)


def _neighbour_count(valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.int16]:
    """Valid gates among the 8 neighbours of each gate of one sweep (rays wrap, gates do not)."""
    v = valid.astype(np.int16)
    padded = np.pad(v, ((0, 0), (1, 1)))
    rows = padded + np.roll(padded, 1, axis=0) + np.roll(padded, -1, axis=0)
    count = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    return np.asarray(count - v, dtype=np.int16)


def _speckle(volume: Volume, valid: npt.NDArray[np.bool_], minimum: int) -> npt.NDArray[np.bool_]:
    removed = np.zeros_like(valid)
    for sweep in volume.sweeps:
        rays = slice(sweep.ray_start, sweep.ray_start + sweep.nrays)
        block = valid[rays]
        removed[rays] = block & (_neighbour_count(block) < minimum)
    return removed


def _clutter(
    volume: Volume, name: str, valid: npt.NDArray[np.bool_], config: QCConfig
) -> npt.NDArray[np.bool_]:
    rho = volume.fields["RHOHV"]
    low_rho = _valid(rho) & (rho.values < config.clutter_rhohv_below)
    weak = volume.fields[name].values < config.clutter_dbzh_below
    return np.asarray(valid & low_rho & weak)


def _velocity(volume: Volume, config: QCConfig) -> dict[str, npt.NDArray[np.uint8]]:
    vrad = volume.fields["VRAD"]
    valid = _valid(vrad)
    flags = np.zeros(vrad.values.shape, dtype=np.uint8)
    if "WRAD" in volume.fields:
        wrad = volume.fields["WRAD"]
        wide = valid & _valid(wrad) & (wrad.values > config.velocity_max_width)
        flags[wide] |= FLAG_BITS["velocity_width"]
    if config.velocity_min_abs > 0:
        still = valid & (np.abs(vrad.values) < config.velocity_min_abs)
        flags[still] |= FLAG_BITS["velocity_zero"]
    return {"VRAD": flags}


def _filtered_copy(fd: FieldData, flags: npt.NDArray[np.uint8]) -> FieldData:
    removed = flags != 0
    values = fd.values.copy()
    status = fd.status.copy()
    values[removed] = FILL_VALUE
    status[removed] = GateStatus.UNDETECT
    return dataclasses.replace(fd, name=fd.name + QC_SUFFIX, values=values, status=status)


def _flag_field(fd: FieldData, flags: npt.NDArray[np.uint8]) -> FieldData:
    valid = _valid(fd)
    values = np.where(valid, flags.astype(np.float32), FILL_VALUE).astype(np.float32)
    return dataclasses.replace(fd, name=fd.name + QC_FLAGS_SUFFIX, values=values)


def _gate_filters(volume: Volume, config: QCConfig, steps: list[QCStep]) -> dict[str, Any]:
    flags: dict[str, npt.NDArray[np.uint8]] = {}
    targets = [f for f in config.fields if f in volume.fields]
    for name in targets:
        flags[name] = np.zeros(volume.fields[name].values.shape, dtype=np.uint8)
    rule = f"RHOHV < {config.clutter_rhohv_below:g} and {{f}} < {config.clutter_dbzh_below:g}"
    if not config.clutter:
        steps.append(QCStep("clutter", "skipped", "disabled"))
    elif "RHOHV" not in volume.fields or not targets:
        steps.append(QCStep("clutter", "skipped", "no RHOHV field" if targets else "no field"))
    else:
        removed: dict[str, int] = {}
        for name in targets:
            hit = _clutter(volume, name, _valid(volume.fields[name]), config)
            flags[name][hit] |= FLAG_BITS["clutter"]
            removed[name] = int(hit.sum())
        steps.append(QCStep("clutter", "applied", rule.format(f="/".join(targets)), removed))
    if config.velocity and "VRAD" in volume.fields:
        vflags = _velocity(volume, config)
        flags["VRAD"] = flags.get("VRAD", np.zeros_like(vflags["VRAD"])) | vflags["VRAD"]
        detail = f"WRAD > {config.velocity_max_width:g} m/s, |VRAD| < {config.velocity_min_abs:g}"
        steps.append(
            QCStep("velocity", "applied", detail, {"VRAD": int(np.count_nonzero(vflags["VRAD"]))})
        )
    elif config.velocity:
        steps.append(QCStep("velocity", "skipped", "no VRAD field"))
    if config.speckle and flags:
        removed = {}
        for name, fl in flags.items():
            kept = _valid(volume.fields[name]) & (fl == 0)
            hit = _speckle(volume, kept, config.speckle_min_neighbours)
            fl[hit] |= FLAG_BITS["speckle"]
            removed[name] = int(hit.sum())
        detail = f"fewer than {config.speckle_min_neighbours} valid neighbours of 8"
        steps.append(QCStep("speckle", "applied", detail, removed))
    elif config.speckle:
        steps.append(QCStep("speckle", "skipped", "no field to filter"))
    return flags


def run_qc(volume: Volume, config: QCConfig | None = None) -> QCResult:
    """Run the hard checks and gate filters of ``config`` on ``volume`` (see module doc).

    Returns a new :class:`Volume` holding the raw fields plus the QC fields. Raises
    :class:`QCError` when a hard check fails.
    """
    cfg = config or QCConfig()
    steps: list[QCStep] = []
    if not cfg.enabled:
        return QCResult(volume, (QCStep("qc", "skipped", "disabled"),), {}, cfg)
    if cfg.check_geometry:
        steps.append(_check_geometry(volume))
    if cfg.check_times:
        steps.append(_check_times(volume, cfg))
    if cfg.check_identity:
        steps.append(_check_identity(volume, cfg))
    flags = _gate_filters(volume, cfg, steps)
    fields = dict(volume.fields)
    for name, fl in flags.items():
        fd = volume.fields[name]
        added = _filtered_copy(fd, fl) if cfg.output == "copies" else _flag_field(fd, fl)
        fields[added.name] = added
    out = dataclasses.replace(volume, fields=fields)
    return QCResult(out, tuple(steps), flags, cfg)
