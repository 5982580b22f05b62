"""The polar -> Cartesian mapping of a radar geometry: nearest gate per grid column per sweep.

>>> spec = GridSpec(extent_km=240, resolution_km=1.0)                   # doctest: +SKIP
>>> mapping = mapping_for(volume, spec)      # computed once per geometry, then cached
>>> colmax = mapping.column_max(volume.reflectivity())   # each new volume: only the gather

Grid: ``n = 2 * extent / resolution`` columns each way, centred on the radar, cell centres
at ``-extent + (i + 0.5) * resolution`` metres east; rows run north to south (row 0 is the
northernmost), as in an image or a GeoTIFF. Beam model: Py-ART's 4/3 effective Earth radius
R': ground distance ``s = R' asin(r cos e / (R' + z))``,
``z = sqrt(r^2 + R'^2 + 2 r R' sin e) - R'``.

Nearest gate of a column in a sweep (the rule, so an independent computation can repeat it):
the ray of smallest circular azimuth distance to the column (ties: the lower index in
azimuth-sorted order), and the gate of smallest ground-distance difference (ties: the lower
gate), used only when that difference is at most half the range spacing. Rays are addressed
in azimuth-sorted order, so volumes whose first acquired ray (``a1gate``) differs share one
mapping. :func:`mapping_for` caches mappings in memory and, with ``cache_dir``, on disk
(``.npz``, written atomically), keyed by a hash of the grid spec and the sweep geometry.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from radarlib.checks import check_number
from radarlib.products.files import atomic_output
from radarlib.products.polar import PolarVolume

__all__ = [
    "EFFECTIVE_EARTH_RADIUS",
    "GridMapping",
    "GridSpec",
    "build_mapping",
    "ground_distance",
    "mapping_for",
    "nearest_ray",
]

#: Py-ART's effective Earth radius (4/3 of 6371 km) for beam propagation, metres.
EFFECTIVE_EARTH_RADIUS = 6371.0 * 1000.0 * 4.0 / 3.0


@dataclass(frozen=True)
class GridSpec:
    """A square Cartesian grid centred on the radar: half-width and cell size in km."""

    extent_km: float = 240.0
    resolution_km: float = 1.0

    def __post_init__(self) -> None:
        check_number("extent_km", self.extent_km)
        check_number("resolution_km", self.resolution_km)

    @property
    def size(self) -> int:
        """Cells along each axis."""
        return max(1, round(2 * self.extent_km / self.resolution_km))

    @property
    def half_width_m(self) -> float:
        """Distance from the radar to the grid's edge, metres (size * resolution / 2)."""
        return self.size * self.resolution_km * 500.0

    def centres(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Cell-centre x (east, increasing) and y (north, decreasing: row 0 is north), metres."""
        res = self.resolution_km * 1000.0
        offsets = -self.half_width_m + (np.arange(self.size, dtype=np.float64) + 0.5) * res
        return offsets, offsets[::-1].copy()


def ground_distance(
    range_m: npt.NDArray[np.float64], elevation_deg: float
) -> npt.NDArray[np.float64]:
    """Ground distance (metres) of gates at slant ``range_m`` on a beam of ``elevation_deg``."""
    r = np.asarray(range_m, dtype=np.float64)
    radius = EFFECTIVE_EARTH_RADIUS
    e = np.deg2rad(elevation_deg)
    z = np.sqrt(r**2 + radius**2 + 2.0 * r * radius * np.sin(e)) - radius
    return np.asarray(radius * np.arcsin(r * np.cos(e) / (radius + z)), dtype=np.float64)


def _circular(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    d = np.abs(a - b)
    return np.asarray(np.minimum(d, 360.0 - d))


def nearest_ray(
    sorted_az: npt.NDArray[np.float64], az: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Index in ``sorted_az`` of the circularly nearest azimuth (ties: the lower index)."""
    n = len(sorted_az)
    i = np.searchsorted(sorted_az, az)
    prev, nxt = (i - 1) % n, i % n
    d_prev, d_next = _circular(az, sorted_az[prev]), _circular(az, sorted_az[nxt])
    take_prev = (d_prev < d_next) | ((d_prev == d_next) & (prev < nxt))
    return np.where(take_prev, prev, nxt).astype(np.int64)


def _nearest_gate(
    ground: npt.NDArray[np.float64], s: npt.NDArray[np.float64], half: float
) -> npt.NDArray[np.int64]:
    n = len(ground)
    i = np.clip(np.searchsorted(ground, s), 1, n - 1) if n > 1 else np.zeros(s.shape, np.int64)
    lower = i - 1 if n > 1 else i
    d_low, d_up = np.abs(s - ground[lower]), np.abs(ground[i] - s)
    gate = np.where(d_low <= d_up, lower, i)
    best = np.minimum(d_low, d_up)
    return np.where(best <= half, gate, -1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class GridMapping:
    """Per sweep and grid cell (row-major, north row first): sorted-ray and gate index or -1."""

    spec: GridSpec
    key: str
    ray: npt.NDArray[np.int16]  # (sweeps, ny*nx) index into the sweep's azimuth-sorted rays
    gate: npt.NDArray[np.int16]  # (sweeps, ny*nx)
    #: the volume sweep of each row of ``ray``/``gate`` (all sweeps, or the one asked for)
    sweeps: tuple[int, ...] = ()

    def _gather(
        self, volume: PolarVolume, field: np.ma.MaskedArray, row: int
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Cells with a gate in mapping row ``row`` and their values (-inf where masked)."""
        i = self.sweeps[row] if self.sweeps else row
        start, end = int(volume.sweep_start[i]), int(volume.sweep_end[i]) + 1
        order = np.argsort(volume.azimuth[start:end], kind="stable")
        use = (self.ray[row] >= 0) & (self.gate[row] >= 0)
        rays = start + order[self.ray[row][use]]
        gates = self.gate[row][use]
        values = np.ma.getdata(field)[rays, gates]
        sample = np.where(np.ma.getmaskarray(field)[rays, gates], -np.inf, values)
        return use, sample.astype(np.float32)

    def column_max(self, volume: PolarVolume, field: np.ma.MaskedArray) -> npt.NDArray[np.float32]:
        """Maximum over sweeps of ``field`` at each column's nearest gates; NaN where none valid."""
        out = np.full(self.ray.shape[1], -np.inf, dtype=np.float32)
        for row in range(self.ray.shape[0]):
            use, sample = self._gather(volume, field, row)
            out[use] = np.maximum(out[use], sample)
        out[~np.isfinite(out)] = np.nan
        n = self.spec.size
        return out.reshape(n, n)

    def sweep_grid(
        self, volume: PolarVolume, field: np.ma.MaskedArray, sweep: int
    ) -> npt.NDArray[np.float32]:
        """``field`` on one sweep at each cell's nearest gate (a PPI on the grid); NaN = none."""
        row = self.sweeps.index(sweep) if self.sweeps else sweep
        out = np.full(self.ray.shape[1], np.nan, dtype=np.float32)
        use, sample = self._gather(volume, field, row)
        out[use] = np.where(np.isfinite(sample), sample, np.nan)
        n = self.spec.size
        return out.reshape(n, n)


def _geometry_key(volume: PolarVolume, spec: GridSpec, sweeps: tuple[int, ...] = ()) -> str:
    digest = hashlib.sha256()
    digest.update(repr(sweeps).encode())
    digest.update(np.array([spec.extent_km, spec.resolution_km], dtype=np.float64).tobytes())
    digest.update(volume.range_m.astype(np.float64).tobytes())
    digest.update(volume.fixed_angle.astype(np.float64).tobytes())
    for start, end in zip(volume.sweep_start, volume.sweep_end, strict=True):
        digest.update(np.sort(volume.azimuth[start : end + 1]).astype(np.float64).tobytes())
    return digest.hexdigest()[:24]


def build_mapping(volume: PolarVolume, spec: GridSpec, sweeps: tuple[int, ...] = ()) -> GridMapping:
    """The nearest-gate mapping of ``volume``'s geometry on ``spec`` (see module doc), for
    every sweep or only ``sweeps``."""
    x, y = spec.centres()
    xx, yy = np.meshgrid(x, y)
    s = np.hypot(xx, yy).ravel()
    az = (np.rad2deg(np.arctan2(xx, yy)).ravel()) % 360.0
    half = float(np.median(np.diff(volume.range_m))) / 2.0 if len(volume.range_m) > 1 else 0.0
    chosen = sweeps or tuple(range(volume.nsweeps))
    rays = np.full((len(chosen), s.size), -1, dtype=np.int16)
    gates = np.full((len(chosen), s.size), -1, dtype=np.int16)
    for row, i in enumerate(chosen):
        start, end = int(volume.sweep_start[i]), int(volume.sweep_end[i]) + 1
        sorted_az = np.sort(volume.azimuth[start:end])
        gate = _nearest_gate(ground_distance(volume.range_m, float(volume.fixed_angle[i])), s, half)
        rays[row] = np.where(gate >= 0, nearest_ray(sorted_az, az), -1)
        gates[row] = gate
    return GridMapping(spec, _geometry_key(volume, spec, sweeps), rays, gates, sweeps)


#: Mappings kept in memory per process (worker processes live long: one build per geometry).
_MEMORY: OrderedDict[str, GridMapping] = OrderedDict()
_MEMORY_SIZE = 8


def _load(path: Path, spec: GridSpec, key: str, sweeps: tuple[int, ...]) -> GridMapping | None:
    try:
        with np.load(path) as data:
            return GridMapping(spec, key, data["ray"], data["gate"], sweeps)
    except (OSError, KeyError, ValueError):
        return None


def _save(path: Path, mapping: GridMapping) -> None:
    with atomic_output(path, fsync=False) as tmp, tmp.open("wb") as fh:
        np.savez(fh, ray=mapping.ray, gate=mapping.gate)


def mapping_for(
    volume: PolarVolume,
    spec: GridSpec,
    cache_dir: str | os.PathLike[str] | None = None,
    sweeps: tuple[int, ...] = (),
) -> GridMapping:
    """The mapping of ``volume``'s geometry (every sweep, or ``sweeps``): from memory, else
    from ``cache_dir``, else built."""
    key = _geometry_key(volume, spec, sweeps)
    found = _MEMORY.get(key)
    path = None if cache_dir is None else Path(cache_dir) / f"grid-{key}.npz"
    if found is None and path is not None and path.is_file():
        found = _load(path, spec, key, sweeps)
    if found is None:
        found = build_mapping(volume, spec, sweeps)
        if path is not None:
            _save(path, found)
    _MEMORY[key] = found
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    return found
