"""PNG images: PPIs of chosen fields and sweeps, and the COLMAX map; titled or transparent.

>>> render_ppi(volume, "DBZH", 0, Path("ppi.png"))                      # doctest: +SKIP
>>> render_colmax(colmax, Path("colmax.png"), transparent=True)       # doctest: +SKIP

Drawn with matplotlib's Agg backend (no display). The titled variant has axes in km from the
radar, range rings every ``ring_km``, a colour bar in the network's colour scale
(:mod:`radarlib.products.colors`) and a title with radar, time, field and elevation. The
transparent variant (for web maps) is the data alone on a transparent square canvas whose
edges are +-the shown range in the radar's azimuthal equidistant projection (as the COG).
Files are written to a temporary name and renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from radarlib.products.colmax import Colmax
from radarlib.products.colors import style_for
from radarlib.products.files import atomic_output
from radarlib.products.polar import PolarVolume
from radarlib.quicklook import cell_edges

__all__ = ["render_colmax", "render_ppi"]

_DPI = 100


def _figure(size_px: tuple[int, int], transparent: bool) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_px[0] / _DPI, size_px[1] / _DPI), dpi=_DPI)
    if transparent:
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        fig.patch.set_alpha(0.0)
        ax.patch.set_alpha(0.0)
    else:
        ax = fig.add_subplot()
    return fig, ax


def _decorate(ax: Any, limit_km: float, ring_km: float, title: str) -> None:
    from matplotlib.patches import Circle

    for radius in np.arange(ring_km, limit_km + 1e-9, ring_km):
        ax.add_patch(Circle((0, 0), radius, fill=False, color="0.35", linewidth=0.6))
        ax.annotate(f"{radius:g} km", (0, radius), fontsize=7, color="0.3", ha="center")
    ax.set_xlabel("east of radar (km)")
    ax.set_ylabel("north of radar (km)")
    ax.set_title(title)


def _save(fig: Any, target: Path, transparent: bool, fsync: bool) -> Path:
    with atomic_output(target, fsync=fsync) as tmp:
        fig.savefig(tmp, dpi=_DPI, format="png", transparent=transparent)
    return target


def _when(time: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC") if time is not None else "time unknown"


def render_ppi(
    volume: PolarVolume,
    field: str,
    sweep: int,
    target: Path,
    *,
    transparent: bool = False,
    ring_km: float = 50.0,
    size_px: tuple[int, int] = (800, 700),
    fsync: bool = True,
) -> Path:
    """Draw sweep ``sweep`` of ``field`` (QC'd reflectivity for ``DBZH`` if present) as a PNG."""
    from radarlib.errors import ProductError

    if not 0 <= sweep < volume.nsweeps:
        raise ProductError(f"no sweep {sweep} (has {volume.nsweeps})", source=volume.source)
    data = volume.reflectivity(field) if field.startswith("DBZ") else volume.field(field)
    start, end = int(volume.sweep_start[sweep]), int(volume.sweep_end[sweep]) + 1
    azimuth = volume.azimuth[start:end]
    order = np.argsort(azimuth, kind="stable")
    values = data[start:end][order]
    az_edges = np.deg2rad(cell_edges(azimuth[order], circular=True))
    r_edges = np.clip(cell_edges(volume.range_m), 0.0, None) / 1000.0
    x = np.sin(az_edges)[:, None] * r_edges[None, :]
    y = np.cos(az_edges)[:, None] * r_edges[None, :]
    cmap, norm = style_for(field, values)
    if transparent:
        size_px = (size_px[0], size_px[0])
    fig, ax = _figure(size_px, transparent)
    mesh = ax.pcolormesh(x, y, values, cmap=cmap, norm=norm, shading="flat")
    limit = float(r_edges[-1])
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    if not transparent:
        elevation = float(volume.fixed_angle[sweep])
        qc = " (QC)" if field.startswith("DBZ") and data is not volume.fields.get(field) else ""
        title = (
            f"{volume.radar}  {_when(volume.time)}\n"
            f"{field}{qc}, sweep {sweep}, elevation {elevation:.2f}°"
        )
        _decorate(ax, limit, ring_km, title)
        bar = fig.colorbar(mesh, ax=ax, shrink=0.85)
        units = volume.units.get(field, "")
        bar.set_label(f"{field} ({units})" if units else field)
    return _save(fig, target, transparent, fsync)


def render_colmax(
    colmax: Colmax,
    target: Path,
    *,
    transparent: bool = False,
    ring_km: float = 50.0,
    size_px: tuple[int, int] = (800, 700),
    fsync: bool = True,
) -> Path:
    """Draw a COLMAX grid as a PNG (north up, km from the radar)."""
    half = colmax.spec.half_width_m / 1000.0
    cmap, norm = style_for("COLMAX")
    if transparent:
        size_px = (size_px[0], size_px[0])
    fig, ax = _figure(size_px, transparent)
    image = ax.imshow(
        np.ma.masked_invalid(colmax.data),
        cmap=cmap,
        norm=norm,
        extent=(-half, half, -half, half),
        origin="upper",
        interpolation="nearest",
    )
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    if not transparent:
        title = f"{colmax.radar}  {_when(colmax.time)}\nCOLMAX of {colmax.source_field}"
        _decorate(ax, half, ring_km, title)
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label("column maximum reflectivity (dBZ)")
    return _save(fig, target, transparent, fsync)
