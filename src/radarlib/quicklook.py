"""A quicklook PNG of one CF/Radial NetCDF volume: a PPI of one field on its lowest sweep.

>>> from radarlib.quicklook import quicklook
>>> quicklook("RMA1_0315_01_20251118T123000Z.nc", "rma1.png")          # doctest: +SKIP
PosixPath('rma1.png')

Reads the file with netCDF4 (no Py-ART import), draws with matplotlib's Agg backend (no
display needed): gates in kilometres east/north of the radar, masked gates left blank, a
colour bar with the field's units and a title with radar, time and elevation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from radarlib.errors import VolumeError

__all__ = ["FIELD_STYLES", "PPI", "cell_edges", "quicklook", "read_ppi", "volume_time"]

#: Display limits per field family (vmin, vmax, colormap); others use the data's 2-98 %.
FIELD_STYLES: dict[str, tuple[float, float, str]] = {
    "DBZ": (-10.0, 70.0, "turbo"),
    "ZDR": (-2.0, 6.0, "viridis"),
    "RHOHV": (0.5, 1.05, "magma"),
    "KDP": (-1.0, 5.0, "viridis"),
    "PHIDP": (0.0, 360.0, "twilight"),
    "WRAD": (0.0, 10.0, "cividis"),
    "VRAD": (-30.0, 30.0, "RdBu_r"),
}


@dataclass(frozen=True)
class PPI:
    """One sweep of one field, ready to draw: rays sorted by azimuth, gates in metres."""

    radar: str
    time: datetime | None
    field: str
    units: str
    elevation: float
    azimuth: np.ndarray  # (nrays,) degrees, increasing
    range_m: np.ndarray  # (ngates,) metres, gate centres
    data: np.ma.MaskedArray  # (nrays, ngates)


def _text_attr(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None) if name in obj.ncattrs() else None
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _chars(var: Any) -> str:
    import netCDF4

    raw = var[:]
    if getattr(raw, "dtype", None) is not None and raw.dtype.kind == "S":
        return str(netCDF4.chartostring(np.ma.filled(raw, b""))).strip()
    return str(np.ravel(raw)[0] if np.ndim(raw) else raw).strip()


def volume_time(ds: Any) -> datetime | None:
    """The volume start time of an open CF/Radial dataset (None if absent or unreadable)."""
    text = None
    if "time_coverage_start" in ds.variables:
        text = _chars(ds.variables["time_coverage_start"])
    text = text or _text_attr(ds, "time_coverage_start")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _lowest_sweep(ds: Any) -> int:
    angles = np.ma.filled(ds.variables["fixed_angle"][:].astype(float), np.nan)
    if angles.size == 0 or np.all(np.isnan(angles)):
        return 0
    return int(np.nanargmin(angles))


def read_ppi(path: str | os.PathLike[str], field: str = "DBZH", sweep: int | None = None) -> PPI:
    """Read one sweep of ``field`` (the lowest-elevation sweep by default) from a CF/Radial file."""
    import netCDF4

    source = Path(path)
    try:
        ds = netCDF4.Dataset(source)
    except OSError as exc:
        raise VolumeError(f"cannot open NetCDF: {exc}", source=source.name) from None
    with ds:
        if field not in ds.variables:
            fields = [n for n, v in ds.variables.items() if v.dimensions == ("time", "range")]
            raise VolumeError(
                f"no field {field!r} (has: {', '.join(fields) or 'none'})", source=source.name
            )
        nsweeps = len(ds.variables["sweep_start_ray_index"])
        index = _lowest_sweep(ds) if sweep is None else sweep
        if not 0 <= index < nsweeps:
            raise VolumeError(f"no sweep {index} (has {nsweeps})", source=source.name)
        start = int(ds.variables["sweep_start_ray_index"][index])
        stop = int(ds.variables["sweep_end_ray_index"][index]) + 1
        var = ds.variables[field]
        var.set_auto_maskandscale(True)
        data: np.ma.MaskedArray = np.ma.masked_invalid(
            np.ma.asarray(var[start:stop, :], dtype=float)
        )
        azimuth = np.asarray(ds.variables["azimuth"][start:stop], dtype=float) % 360.0
        range_m = np.asarray(ds.variables["range"][:], dtype=float)
        elevation = float(ds.variables["fixed_angle"][index])
        order = np.argsort(azimuth, kind="stable")
        radar = _text_attr(ds, "instrument_name") or source.name.split("_", 1)[0]
        units = var.units if "units" in var.ncattrs() else ""
        return PPI(
            radar=radar,
            time=volume_time(ds),
            field=field,
            units=str(units),
            elevation=elevation,
            azimuth=azimuth[order],
            range_m=range_m,
            data=data[order],
        )


def cell_edges(centres: np.ndarray, *, circular: bool = False) -> np.ndarray:
    """Cell edges around sorted cell centres (wrapping at 360 degrees when ``circular``)."""
    if centres.size == 1:
        step = 1.0
        return np.array([centres[0] - step / 2, centres[0] + step / 2])
    if circular:
        gaps = np.diff(np.concatenate([centres, [centres[0] + 360.0]]))
        inner = centres + gaps / 2
        return np.concatenate([[inner[-1] - 360.0], inner])
    mids = (centres[:-1] + centres[1:]) / 2
    return np.concatenate(
        [[centres[0] - (mids[0] - centres[0])], mids, [centres[-1] + (centres[-1] - mids[-1])]]
    )


def quicklook(
    netcdf_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    *,
    field: str = "DBZH",
    sweep: int | None = None,
    size_px: tuple[int, int] = (800, 700),
) -> Path:
    """Draw ``field`` on the lowest sweep (or ``sweep``) as a PPI PNG of ``size_px`` pixels."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    ppi = read_ppi(netcdf_path, field, sweep)
    az_edges = np.deg2rad(cell_edges(ppi.azimuth, circular=True))
    r_edges = np.clip(cell_edges(ppi.range_m), 0.0, None) / 1000.0
    x = np.sin(az_edges)[:, None] * r_edges[None, :]
    y = np.cos(az_edges)[:, None] * r_edges[None, :]

    family = next((k for k in FIELD_STYLES if ppi.field.startswith(k)), None)
    if family is not None:
        vmin, vmax, cmap = FIELD_STYLES[family]
    else:
        valid = ppi.data.compressed()
        vmin, vmax = np.percentile(valid, [2, 98]) if valid.size else (0.0, 1.0)
        cmap = "viridis"

    dpi = 100
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(x, y, ppi.data, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat")
    limit = float(r_edges[-1])
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("east of radar (km)")
    ax.set_ylabel("north of radar (km)")
    ax.grid(True, color="0.8", linewidth=0.5)
    when = ppi.time.strftime("%Y-%m-%d %H:%M:%S UTC") if ppi.time else "time unknown"
    ax.set_title(f"{ppi.radar}  {when}\n{ppi.field}, elevation {ppi.elevation:.2f}°")
    bar = fig.colorbar(mesh, ax=ax, shrink=0.85)
    bar.set_label(f"{ppi.field} ({ppi.units})" if ppi.units else ppi.field)
    out = Path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out
