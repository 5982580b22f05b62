"""The network's usual colour scales for radar images (reflectivity in 5 dBZ steps, NWS palette).

>>> cmap, norm = style_for("DBZH")                                     # doctest: +SKIP

Reflectivity (any ``DBZ*`` field and COLMAX) uses the discrete 5 dBZ palette of the NWS /
Py-ART ``NWSRef`` scale that the weather service's radar pages show (grey below 0 dBZ,
blues, greens, yellow-orange, reds, magenta, white above 70 dBZ). Other fields use the
continuous scales of :data:`radarlib.quicklook.FIELD_STYLES`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radarlib.quicklook import FIELD_STYLES

__all__ = ["REFLECTIVITY_BOUNDS", "REFLECTIVITY_COLOURS", "style_for"]

#: Class limits of the reflectivity palette, dBZ.
REFLECTIVITY_BOUNDS: tuple[float, ...] = tuple(float(b) for b in range(-10, 80, 5))
#: One colour per class (len(bounds) - 1).
REFLECTIVITY_COLOURS: tuple[str, ...] = (
    "#646464", "#9c9c9c", "#04e9e7", "#019ff4", "#0300f4", "#02fd02", "#01c501", "#008e00",
    "#fdf802", "#e5bc00", "#fd9500", "#fd0000", "#d40000", "#bc0000", "#f800fd", "#9854c6",
    "#fdfdfd",
)  # fmt: skip


def style_for(field: str, data: Any = None) -> tuple[Any, Any]:
    """``(colormap, norm)`` for ``field`` (``COLMAX`` and ``DBZ*`` share the reflectivity scale)."""
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize

    base = field.upper()
    if base == "COLMAX" or base.startswith("DBZ"):
        listed = ListedColormap(list(REFLECTIVITY_COLOURS), name="radarlib_reflectivity")
        cmap = listed.with_extremes(over=REFLECTIVITY_COLOURS[-1], under=(0, 0, 0, 0))
        return cmap, BoundaryNorm(list(REFLECTIVITY_BOUNDS), cmap.N)
    family = next((k for k in FIELD_STYLES if base.startswith(k)), None)
    if family is not None:
        vmin, vmax, name = FIELD_STYLES[family]
        return colormaps[name], Normalize(vmin, vmax)
    valid = np.ma.compressed(np.ma.masked_invalid(data)) if data is not None else np.array([])
    low, high = np.percentile(valid, [2, 98]) if valid.size else (0.0, 1.0)
    return colormaps["viridis"], Normalize(float(low), float(high))
