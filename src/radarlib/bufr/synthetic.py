"""Realistic synthetic RMA radar volumes, so tests, benchmarks and the demo can make any number.

A volume is one :class:`~radarlib.bufr.model.BufrFile` per field, built from one small
weather scene per radar: a few convective cells (45-60 dBZ cores) and a stratiform rain
band (20-35 dBZ) that drift with time, a melting layer with a bright band, clear-air echoes
near the radar and a wind profile. Gates below a range-dependent detection threshold are
``undetect`` (-DBL_MAX); a few rays of one sweep are ``nodata`` (+DBL_MAX). Geometry follows
the real RMA files (360 rays, 360 m bins, 1770 m offset, gates falling with elevation; KDP
with a 4770 m offset on most sweeps). Same arguments -> identical arrays and bytes.

>>> files = synthetic_volume("RMA1", "0315", "02", nsweeps=2)
>>> sorted(files), files["VRAD"].sweeps[0].data.shape
(['VRAD', 'WRAD'], (360, 320))
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from radarlib.bufr.model import (
    NODATA,
    UNDETECT,
    BufrFile,
    Quantity,
    Section1,
    Station,
    StationId,
    Sweep,
)
from radarlib.bufr.writer import write_bufr_file
from radarlib.filename import BufrFileName
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

__all__ = [
    "DEFAULT_TIME",
    "FIELD_RANGES",
    "NYQUIST",
    "QUANTITY_CODES",
    "STATIONS",
    "station_for",
    "synthetic_volume",
    "write_synthetic_volume",
]

#: Volume time used when none is given (synthetic volumes are deterministic).
DEFAULT_TIME = datetime(2025, 11, 18, 12, 30, 0, tzinfo=timezone.utc)

#: 0 30 196 quantity codes. DBZH..WRAD as observed in the real files; RHOHV and PHIDP
#: are not documented anywhere we know of, so these two codes are our assumption.
QUANTITY_CODES: dict[str, int] = {
    "DBZH": 0,
    "DBZV": 233,
    "ZDR": 80,
    "KDP": 240,
    "VRAD": 40,
    "WRAD": 60,
    "RHOHV": 234,
    "PHIDP": 235,
}

#: Nyquist velocity of the synthetic Doppler fields, m/s (VRAD is folded into ±NYQUIST).
NYQUIST = 33.0

#: Closed range of the valid values of each field (units: dBZ, dB, 1, deg, deg/km, m/s).
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "DBZH": (-30.0, 70.0),
    "DBZV": (-30.0, 70.0),
    "ZDR": (-2.0, 6.0),
    "RHOHV": (0.7, 1.0),
    "PHIDP": (0.0, 180.0),
    "KDP": (0.0, 5.0),
    "VRAD": (-NYQUIST, NYQUIST),
    "WRAD": (0.0, 8.0),
}

#: Plausible sites (latitude, longitude, height m) of the network; others get a hashed site.
STATIONS: dict[str, tuple[float, float, float]] = {
    "RMA1": (-31.4413, -64.1919, 476.0),  # Córdoba
    "RMA2": (-34.801, -58.5156, 30.0),  # Ezeiza
    "RMA3": (-24.7306, -60.5508, 150.0),  # Las Lomitas
    "RMA4": (-27.4517, -59.0509, 60.0),  # Resistencia
    "RMA5": (-26.2781, -53.6711, 836.0),  # Bernardo de Irigoyen
    "RMA6": (-37.9125, -57.5278, 40.0),  # Mar del Plata
    "RMA7": (-38.8744, -68.1455, 280.0),  # Neuquén
    "RMA8": (-29.2007, -58.0445, 100.0),  # Mercedes
    "RMA9": (-53.7889, -67.7514, 20.0),  # Río Grande
    "RMA10": (-38.7317, -62.1627, 80.0),  # Bahía Blanca
    "RMA11": (-27.5026, -64.90575, 313.0),  # Termas de Río Hondo
    "RMA12": (-41.1396, -71.15, 840.0),  # Bariloche
    "AR5": (-33.94612, -60.5626, 0.0),  # Pergamino
}

_REAL_ELEVATIONS = (0.5, 0.9, 1.3, 1.9, 2.3, 3.1, 4.0, 5.1, 6.4, 8.0, 9.9, 12.3, 15.4, 19.8, 29.7)
_REAL_NGATES = (653, 653, 653, 653, 653, 653, 653, 487, 465, 367, 298, 242, 187, 134, 107)
_DOPPLER_ELEVATIONS = (0.5, 0.9, 1.3, 1.8, 19.9)
_BIN_SIZE = 360.0
_OFFSET = 1770.0
_KDP_OFFSET = 4770.0
_KDP_FEWER_GATES = 17
_EARTH_RADIUS_KM = 6371.0 * 4.0 / 3.0  # effective radius, standard refraction
_MELTING_KM = 4.0
#: A float32 NaN (0x7FFFFFFF) widened to float64: the artefact the real VRAD files carry.
_NAN_ARTEFACT = float(np.array([0x7FFFFFFF], dtype=np.uint32).view(np.float32)[0])


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from the given parts (stable across runs, unlike ``hash()``)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def station_for(radar: str) -> tuple[float, float, float]:
    """(latitude, longitude, height m) of a radar: :data:`STATIONS`, else hashed from the code."""
    if radar in STATIONS:
        return STATIONS[radar]
    rng = _rng("station", radar)
    lat = round(float(rng.uniform(-52.0, -23.0)), 4)
    lon = round(float(rng.uniform(-71.0, -55.0)), 4)
    return lat, lon, float(rng.integers(0, 1500))


def _station_ids(radar: str) -> tuple[StationId, ...]:
    letters = radar.rstrip("0123456789")
    digits = radar[len(letters) :]
    kind = "RMA" if letters == "RMA" else letters.lower()[:3]
    return (StationId(kind, digits),)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Geometry:
    """Where one sweep's gates are: shared by every field except KDP's own offsets."""

    elevation: float
    nrays: int
    ngates: int
    bin_size: float
    offset: float


@dataclass(frozen=True)
class _SweepPlan:
    index: int
    geometry: _Geometry
    kdp_geometry: _Geometry
    start: datetime
    end: datetime
    a1gate: int
    nodata_rows: tuple[int, ...]


def _elevations(profile: Sequence[float], nsweeps: int) -> list[float]:
    if nsweeps == len(profile):
        return list(profile)
    if nsweeps == 1:
        return [profile[0]]
    positions = np.linspace(0.0, len(profile) - 1, nsweeps)
    values = np.interp(positions, np.arange(len(profile)), np.asarray(profile))
    return [round(float(v), 2) for v in values]


def _plan(
    key: tuple[object, ...],
    volume_number: str,
    time: datetime,
    nsweeps: int | None,
    nrays: int,
    ngates: int | None,
) -> list[_SweepPlan]:
    doppler = volume_number.lstrip("0") == "2"
    profile = _DOPPLER_ELEVATIONS if doppler else _REAL_ELEVATIONS
    n = len(profile) if nsweeps is None else nsweeps
    if not 1 <= n <= 254:
        raise ValueError(f"nsweeps must be 1..254, got {n}")
    if not 1 <= nrays <= 2046:
        raise ValueError(f"nrays must be 1..2046, got {nrays}")
    if ngates is not None and not 1 <= ngates <= 4094:
        raise ValueError(f"ngates must be 1..4094, got {ngates}")
    rng = _rng("plan", *key)
    elevations = _elevations(profile, n)
    nodata_sweep = 1 if n > 1 else 0
    plans: list[_SweepPlan] = []
    moment = time
    for i, elevation in enumerate(elevations):
        if ngates is not None:
            gates = ngates
        elif doppler:
            gates = 320
        else:
            gates = round(float(np.interp(elevation, _REAL_ELEVATIONS, _REAL_NGATES)))
        geometry = _Geometry(elevation, nrays, gates, _BIN_SIZE, _OFFSET)
        # Like the real KDP files: sweeps 1, 2 and the top two keep 1770 m, the others 4770 m.
        kdp_shifted = i not in (1, 2) and i < n - 2
        kdp_geometry = (
            _Geometry(
                elevation,
                nrays,
                gates if ngates is not None else max(1, gates - _KDP_FEWER_GATES),
                _BIN_SIZE,
                _KDP_OFFSET,
            )
            if kdp_shifted
            else geometry
        )
        seconds = 35 if doppler else 9 + round(16 * min(1.0, gates / 653))
        start = moment
        end = start + timedelta(seconds=seconds + int(rng.integers(0, 4)))
        a1gate = int(rng.integers(0, nrays))
        nodata_rows: tuple[int, ...] = ()
        if i == nodata_sweep:
            count = min(nrays, int(rng.integers(3, 6)))
            nodata_rows = tuple(sorted({(a1gate + 1 + k) % nrays for k in range(count)}))
        plans.append(_SweepPlan(i, geometry, kdp_geometry, start, end, a1gate, nodata_rows))
        moment = end + timedelta(seconds=int(rng.integers(0, 4)))
    return plans


# --------------------------------------------------------------------------- weather


@dataclass(frozen=True)
class _Scene:
    """One radar's weather: cells, a stratiform band and a wind profile, moving with time."""

    cells: npt.NDArray[np.float64]  # rows: x0, y0 (km), sigma (km), peak dBZ, top (km), phase
    band: tuple[float, float, float, float, float]  # x0, y0, angle, semi-axis a, semi-axis b
    motion: tuple[float, float]  # km/h
    wind_dir: float  # deg, direction the wind blows to
    phidp_offset: float


def _scene(seed: int, radar: str) -> _Scene:
    rng = _rng("scene", seed, radar)
    ncells = int(rng.integers(3, 6))
    dist = rng.uniform(25.0, 160.0, ncells)
    ang = rng.uniform(0.0, 2 * np.pi, ncells)
    cells = np.column_stack(
        [
            dist * np.sin(ang),
            dist * np.cos(ang),
            rng.uniform(4.0, 9.0, ncells),
            rng.uniform(50.0, 60.0, ncells),
            rng.uniform(9.0, 14.0, ncells),
            rng.uniform(0.0, 2 * np.pi, ncells),
        ]
    )
    band_dist = float(rng.uniform(70.0, 140.0))
    band_ang = float(rng.uniform(0.0, 2 * np.pi))
    band = (
        band_dist * np.sin(band_ang),
        band_dist * np.cos(band_ang),
        float(rng.uniform(0.0, np.pi)),
        float(rng.uniform(50.0, 110.0)),
        float(rng.uniform(15.0, 35.0)),
    )
    speed = float(rng.uniform(20.0, 50.0))
    heading = float(rng.uniform(0.0, 2 * np.pi))
    return _Scene(
        cells,
        band,
        (speed * np.sin(heading), speed * np.cos(heading)),
        float(rng.uniform(0.0, 360.0)),
        float(rng.uniform(20.0, 60.0)),
    )


def _wrap(value: npt.NDArray[np.float64] | float, half: float = 220.0) -> Any:
    return (np.asarray(value) + half) % (2 * half) - half


@dataclass
class _Weather:
    """Per-gate model values on one geometry (before sentinels); 2-D arrays are float32."""

    z: npt.NDArray[np.float32]  # dBZ, -inf where nothing
    height: npt.NDArray[np.floating]  # (1, ngates) km above sea level
    range_km: npt.NDArray[np.floating]  # (1, ngates)
    azimuth: npt.NDArray[np.floating]  # (nrays,) radians, row i = i * 360/nrays
    threshold: npt.NDArray[np.floating]  # (1, ngates) detectable dBZ at that range
    cellness: npt.NDArray[np.float32]  # 0..1, 1 in a convective core
    clear_air: npt.NDArray[np.bool_]
    #: standard-normal float32 noise, drawn once per sweep; fields use shifted copies of it
    noise: npt.NDArray[np.float32]

    def normal(self, k: int, mean: float, sd: float) -> npt.NDArray[np.float32]:
        """Noise stream ``k``: the sweep's noise rolled by a k-dependent shift, scaled."""
        out = np.roll(self.noise, (97 * k, 31 * k), axis=(0, 1))
        out *= np.float32(sd)
        out += np.float32(mean)
        return out


def _normal(
    rng: np.random.Generator, mean: float, sd: float, shape: tuple[int, ...]
) -> npt.NDArray[np.float32]:
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= np.float32(sd)
    out += np.float32(mean)
    return out


def _weather(
    scene: _Scene, geom: _Geometry, hours: float, station_height: float, rng: np.random.Generator
) -> _Weather:
    shape = (geom.nrays, geom.ngates)
    rng_km = (geom.offset + geom.bin_size * np.arange(geom.ngates)) / 1000.0
    az = np.deg2rad(np.arange(geom.nrays) * (360.0 / geom.nrays))
    el = np.deg2rad(geom.elevation)
    re = _EARTH_RADIUS_KM
    height = np.sqrt(rng_km**2 + re**2 + 2 * rng_km * re * np.sin(el)) - re
    height = height + station_height / 1000.0
    ground = rng_km * np.cos(el)
    sin_az = np.sin(az).astype(np.float32)[:, np.newaxis]
    cos_az = np.cos(az).astype(np.float32)[:, np.newaxis]
    g32 = ground.astype(np.float32)[np.newaxis, :]
    x = sin_az * g32
    y = cos_az * g32
    mx, my = scene.motion
    z = np.full(shape, -np.inf, dtype=np.float32)
    cellness = np.zeros(shape, dtype=np.float32)
    # Convective cells: Gaussian cores in dB, full strength up to 60 % of the top. Only the
    # gates within 3 sigma of the core's distance are computed.
    for x0, y0, sigma, peak, top, phase in scene.cells:
        cx = float(_wrap(x0 + mx * hours))
        cy = float(_wrap(y0 + my * hours))
        dist = float(np.hypot(cx, cy))
        g0, g1 = np.searchsorted(ground, [dist - 3 * sigma, dist + 3 * sigma])
        g1 = min(int(g1), int(np.searchsorted(height, top)))
        if g1 <= g0:
            continue
        cols = slice(int(g0), g1)
        life = 0.75 + 0.25 * np.sin(2 * np.pi * hours / 2.0 + phase)
        d2 = ((x[:, cols] - cx) ** 2 + (y[:, cols] - cy) ** 2) / np.float32(sigma**2)
        above = np.clip((height[cols] - 0.6 * top) / (0.4 * top), 0.0, None)
        base = (30.0 + (peak - 30.0) * life - 30.0 * above).astype(np.float32)
        zc = np.where(d2 < 9.0, base - 9.0 * d2, -np.inf)
        np.maximum(z[:, cols], zc, out=z[:, cols])
        np.maximum(cellness[:, cols], np.exp(-d2 / 2.0), out=cellness[:, cols])
    # Stratiform band: 20-35 dBZ with texture, bright band at the melting layer.
    bx0, by0, angle, a, b = scene.band
    bx = float(_wrap(bx0 + 0.7 * mx * hours))
    by = float(_wrap(by0 + 0.7 * my * hours))
    ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (x - bx) * ca + (y - by) * sa
    v = (y - by) * ca - (x - bx) * sa
    d = np.sqrt((u / np.float32(a)) ** 2 + (v / np.float32(b)) ** 2)
    # Echo top 4 km above the melting layer, -9 dB/km above it.
    vertical = np.where(height < _MELTING_KM, 0.0, -9.0 * (height - _MELTING_KM))
    vertical[height > _MELTING_KM + 4.0] = -np.inf
    vertical += 6.0 * np.exp(-(((height - (_MELTING_KM - 0.25)) / 0.3) ** 2))
    zs = np.sin(u / np.float32(13.0) + np.float32(hours)) * np.cos(v / np.float32(9.0))
    zs *= np.float32(7.5)
    zs += (27.5 + vertical).astype(np.float32)[np.newaxis, :]
    zs -= np.float32(40.0) * np.clip(d - np.float32(1.0), 0.0, None)
    np.maximum(z, np.where(d < 1.4, zs, -np.inf), out=z)
    # Clear-air returns (insects, refractivity) near the radar in the boundary layer.
    near = int(np.searchsorted(rng_km, 35.0))
    near = min(near, int(np.searchsorted(height, station_height / 1000.0 + 1.5)))
    clear = np.zeros(shape, dtype=bool)
    if near:
        block = (geom.nrays, near)
        clear[:, :near] = (rng.random(block, dtype=np.float32) < 0.85) & ~np.isfinite(z[:, :near])
        z[:, :near] = np.where(clear[:, :near], _normal(rng, -8.0, 6.0, block), z[:, :near])
    noise = rng.standard_normal(shape, dtype=np.float32)
    z += noise
    threshold = -37.0 + 20.0 * np.log10(np.maximum(rng_km, 1.0))
    return _Weather(
        z,
        height[np.newaxis, :],
        rng_km[np.newaxis, :],
        az,
        threshold[np.newaxis, :],
        cellness,
        clear,
        noise,
    )


def _bright_band(height: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    return np.exp(-(((height - (_MELTING_KM - 0.25)) / 0.3) ** 2)).astype(np.float32)


def _kdp_true(w: _Weather) -> npt.NDArray[np.float32]:
    rain = (w.z > 35.0) & (w.height < _MELTING_KM - 0.5)
    excess = np.where(rain, w.z - np.float32(35.0), np.float32(-np.inf))
    return np.minimum(np.float32(0.15) * np.exp(excess / np.float32(6.5)), np.float32(5.0))


def _zdr(w: _Weather) -> npt.NDArray[np.float32]:
    rain = np.clip(np.float32(0.3) + np.float32(0.06) * (w.z - np.float32(15.0)), 0.2, 4.5)
    zdr = np.where(w.height < _MELTING_KM - 0.5, rain, np.float32(0.15)).astype(np.float32)
    zdr += _bright_band(w.height)
    zdr = np.where(w.clear_air, w.normal(1, 2.0, 1.5), zdr)
    zdr += w.normal(2, 0.0, 0.25)
    return zdr


def _clip32(values: npt.NDArray[np.floating], lo: float, hi: float) -> npt.NDArray[np.float32]:
    """Clip in float32 to bounds rounded inwards, so float64 comparisons with lo/hi hold."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if float(lo32) < lo:
        lo32 = np.nextafter(lo32, np.float32(np.inf))
    if float(hi32) > hi:
        hi32 = np.nextafter(hi32, np.float32(-np.inf))
    return np.clip(values.astype(np.float32, copy=False), lo32, hi32)


def _field(
    name: str,
    w: _Weather,
    geom: _Geometry,
    scene: _Scene,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """(values, echo mask) of one field on one geometry; values are clipped to FIELD_RANGES."""
    echo = w.z >= w.threshold  # False for -inf (nothing there)
    values: npt.NDArray[np.floating]
    if name == "DBZH":
        values = w.z
    elif name == "DBZV":
        values = w.z - _zdr(w)
        echo &= values >= w.threshold
    elif name == "ZDR":
        values = _zdr(w)
    elif name == "RHOHV":
        values = np.float32(0.99) - np.float32(0.06) * _bright_band(w.height)
        values = values + w.normal(3, 0.0, 0.006)
        values = np.where(w.clear_air, w.normal(4, 0.8, 0.07), values)
        values -= np.float32(0.05) * ((w.z - w.threshold) < 5.0)
    elif name == "KDP":
        kdp = _kdp_true(w)
        echo &= kdp > 0.0
        values = kdp + w.normal(5, 0.0, 0.1)
    elif name == "PHIDP":
        dr_km = np.float32(geom.bin_size / 1000.0)
        values = np.cumsum(_kdp_true(w), axis=1) * (2 * dr_km) + np.float32(scene.phidp_offset)
        values += w.normal(6, 0.0, 2.0)
    elif name == "VRAD":
        speed = np.minimum(8.0 + 4.0 * w.height, 45.0)
        direction = np.deg2rad(scene.wind_dir + 10.0 * w.height)
        az = w.azimuth[:, np.newaxis]
        radial = (speed * np.cos(direction - az) * np.cos(np.deg2rad(geom.elevation))).astype(
            np.float32
        )
        radial += w.normal(7, 0.0, 1.0)
        values = (radial + np.float32(NYQUIST)) % np.float32(2 * NYQUIST) - np.float32(NYQUIST)
    elif name == "WRAD":
        values = (1.0 + 0.008 * w.range_km).astype(np.float32) + np.float32(3.0) * w.cellness
        values += np.abs(w.normal(8, 0.0, 0.5))
    else:  # pragma: no cover - callers check names first
        raise ValueError(name)
    return _clip32(values, *FIELD_RANGES[name]), echo


def _payload(
    name: str,
    plan: _SweepPlan,
    geom: _Geometry,
    weather: _Weather,
    scene: _Scene,
) -> npt.NDArray[np.float64]:
    values, echo = _field(name, weather, geom, scene)
    # Valid values are float32 numbers widened to float64, like the radar's.
    data = np.where(echo, values.astype(np.float64), UNDETECT)
    if name == "VRAD":
        spots = weather.normal(9, 0.0, 1.0) > 3.54  # ~2e-4 of the gates
        data[spots & echo] = _NAN_ARTEFACT
    if plan.nodata_rows:
        data[list(plan.nodata_rows), :] = NODATA
    return data


# --------------------------------------------------------------------------- public API


def synthetic_volume(
    radar: str = "RMA1",
    strategy: str = "0315",
    volume_number: str = "01",
    time: datetime | None = None,
    fields: Sequence[str] | None = None,
    *,
    nsweeps: int | None = None,
    nrays: int = 360,
    ngates: int | None = None,
    seed: int = 0,
) -> dict[str, BufrFile]:
    """One synthetic volume: field name -> :class:`BufrFile` (with ``.filename`` set).

    ``fields`` defaults to the volume type's fields (``DEFAULT_VOLUME_TYPES``), or ``DBZH``
    for a strategy/volume number it does not list. ``nsweeps`` defaults to the real files'
    15 (volume 01) or 5 (volume 02); ``ngates`` (one value for every sweep) to the real
    gate counts falling with elevation. The weather depends on ``seed`` and ``radar`` and
    drifts with ``time``, so consecutive volumes of a radar look like a moving storm.
    """
    moment = (DEFAULT_TIME if time is None else time).replace(microsecond=0)
    if moment.tzinfo is None:
        raise ValueError(f"naive time {moment!r}: synthetic volumes need a UTC time")
    moment = moment.astimezone(timezone.utc)
    if fields is None:
        numbers = DEFAULT_VOLUME_TYPES.get(strategy, {})
        fields = next(
            (f for n, f in numbers.items() if n.lstrip("0") == volume_number.lstrip("0")),
            ["DBZH"],
        )
    unknown = [f for f in fields if f not in QUANTITY_CODES]
    if unknown:
        raise ValueError(f"unknown synthetic fields {unknown}; supported: {sorted(QUANTITY_CODES)}")
    names = {f: BufrFileName(radar, strategy, volume_number, f, moment) for f in fields}
    key: tuple[object, ...] = (seed, radar, strategy, volume_number, moment.isoformat())
    plans = _plan(key, volume_number, moment, nsweeps, nrays, ngates)
    scene = _scene(seed, radar)
    hours = (moment - DEFAULT_TIME).total_seconds() / 3600.0
    lat, lon, height = station_for(radar)
    station = Station(
        latitude=lat,
        longitude=lon,
        height=height,
        ids=_station_ids(radar),
        wmo_block=0,
        wmo_station=0,
        station_type=0,
        time=moment.replace(second=0),
    )
    section1 = Section1(
        master_table=0, centre=41, subcentre=0, update_sequence=0, has_section2=False,
        data_category=6, intl_subcategory=2, local_subcategory=0, master_version=16,
        local_version=2, year=moment.year, month=moment.month, day=moment.day,
        hour=moment.hour, minute=moment.minute, second=moment.second,
    )  # fmt: skip
    sweeps: dict[str, list[Sweep]] = {f: [] for f in fields}
    for plan in plans:
        # One weather per geometry and sweep (noise included), so the fields agree.
        weathers: dict[_Geometry, _Weather] = {}
        for field_name in fields:
            geom = plan.kdp_geometry if field_name == "KDP" else plan.geometry
            if geom not in weathers:
                wrng = _rng("weather", *key, plan.index, geom)
                weathers[geom] = _weather(scene, geom, hours, height, wrng)
            data = _payload(field_name, plan, geom, weathers[geom], scene)
            sweeps[field_name].append(
                Sweep(
                    start_time=plan.start,
                    end_time=plan.end,
                    elevation=geom.elevation,
                    nrays=geom.nrays,
                    ngates=geom.ngates,
                    range_bin_size=geom.bin_size,
                    range_offset=geom.offset,
                    a1gate=plan.a1gate,
                    quantities=(Quantity(QUANTITY_CODES[field_name], data),),
                )
            )
    return {
        f: BufrFile(section1, station, tuple(sweeps[f]), source=names[f].name, filename=names[f])
        for f in fields
    }


def write_synthetic_volume(
    directory: str | os.PathLike[str],
    *args: Any,
    layout: Literal["flat", "ftp"] = "flat",
    base: str = "L2",
    level: int = 6,
    **kwargs: Any,
) -> list[Path]:
    """Write :func:`synthetic_volume` files (atomically) and return their paths.

    ``layout="flat"`` puts them in ``directory``; ``"ftp"`` mirrors the server tree
    ``<directory>/<base>/<RADAR>/<YYYY>/<MM>/<DD>/<HH>/<MMSS>/<name>``. ``level`` is the
    zlib level of the payloads; other arguments go to :func:`synthetic_volume`.
    """
    if layout not in ("flat", "ftp"):
        raise ValueError(f"layout must be 'flat' or 'ftp', got {layout!r}")
    root = Path(directory)
    paths: list[Path] = []
    for bufr in synthetic_volume(*args, **kwargs).values():
        name = bufr.filename
        if name is None:  # pragma: no cover - synthetic files always carry their name
            raise ValueError("synthetic file without a name")
        folder = root / name.remote_dir(base).lstrip("/") if layout == "ftp" else root
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(write_bufr_file(bufr, folder / name.name, level=level))
    return paths
