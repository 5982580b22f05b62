"""PNG images: PPIs of chosen fields and sweeps, and the COLMAX map; titled or transparent.

>>> render_ppi(volume, "DBZH", 0, Path("ppi.png"))                      # doctest: +SKIP
>>> render_colmax(colmax, Path("colmax.png"), transparent=True)       # doctest: +SKIP

A PPI is drawn from its sweep put on a square radar-centred grid (each pixel the sweep's
nearest gate, the mapping of :mod:`radarlib.products.grid`, cached per geometry), in the
network's colour scale (:mod:`radarlib.products.colors`). The titled variant has axes in km
from the radar, range rings every ``ring_km``, a colour bar and a title with radar, time,
field and elevation (the frame is drawn once per layout, :mod:`radarlib.products.raster`).
The transparent variant (for web maps) is the data alone, one pixel per grid cell, on a
transparent square whose edges are +-the shown range east/north of the radar (azimuthal
equidistant, as the COG): ``size_px[0]`` pixels for a PPI, the COLMAX grid's own cells for
COLMAX. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from radarlib.errors import ProductError
from radarlib.products.colmax import Colmax
from radarlib.products.files import atomic_output
from radarlib.products.grid import GridSpec, mapping_for
from radarlib.products.polar import PolarVolume
from radarlib.products.raster import colorize, frame, save_rgba

__all__ = ["render_colmax", "render_ppi"]


def _when(time: datetime | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC") if time is not None else "time unknown"


def _write(
    rgba: npt.NDArray[np.uint8],
    target: Path,
    *,
    field: str,
    label: str,
    limit_km: float,
    ring_km: float,
    size_px: tuple[int, int],
    title: str | None,
    fsync: bool,
) -> Path:
    if title is not None:
        rgba = frame(field, label, limit_km, ring_km, size_px).compose(rgba, title)
    with atomic_output(target, fsync=fsync) as tmp:
        save_rgba(rgba, tmp)
    return target


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
    cache_dir: Path | None = None,
) -> Path:
    """Draw sweep ``sweep`` of ``field`` (QC'd reflectivity for ``DBZ*`` if present) as a PNG."""
    if not 0 <= sweep < volume.nsweeps:
        raise ProductError(f"no sweep {sweep} (has {volume.nsweeps})", source=volume.source)
    data = volume.reflectivity(field) if field.startswith("DBZ") else volume.field(field)
    spacing = float(np.median(np.diff(volume.range_m))) if len(volume.range_m) > 1 else 1.0
    limit = float(np.ceil((volume.range_m[-1] + spacing / 2) / 1000.0))
    units = volume.units.get(field, "")
    label = f"{field} ({units})" if units else field
    if transparent:
        pixels = size_px[0]
    else:
        top, _, bottom, _ = frame(field, label, limit, ring_km, size_px).box
        pixels = bottom - top
    spec = GridSpec(extent_km=limit, resolution_km=2.0 * limit / pixels)
    grid = mapping_for(volume, spec, cache_dir, sweeps=(sweep,)).sweep_grid(volume, data, sweep)
    qc = " (QC)" if field.startswith("DBZ") and data is not volume.fields.get(field) else ""
    title = (
        f"{volume.radar}  {_when(volume.time)}\n"
        f"{field}{qc}, sweep {sweep}, elevation {float(volume.fixed_angle[sweep]):.2f}°"
    )
    return _write(
        colorize(grid, field), target, field=field, label=label, limit_km=limit,
        ring_km=ring_km, size_px=size_px, title=None if transparent else title, fsync=fsync,
    )  # fmt: skip


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
    title = f"{colmax.radar}  {_when(colmax.time)}\nCOLMAX of {colmax.source_field}"
    return _write(
        colorize(colmax.data, "COLMAX"), target, field="COLMAX",
        label="column maximum reflectivity (dBZ)", limit_km=colmax.spec.half_width_m / 1000.0,
        ring_km=ring_km, size_px=size_px, title=None if transparent else title, fsync=fsync,
    )  # fmt: skip
