"""COLMAX as a Cloud-Optimized GeoTIFF: float32, azimuthal equidistant CRS on the radar, overviews.

>>> write_cog(colmax, Path("RMA11_..._colmax.tif"))                    # doctest: +SKIP

The CRS is ``+proj=aeqd`` centred on the radar (WGS84), in which the grid is exactly regular
(distances from the radar are true), so the geotransform is
``(west, resolution, 0, north, 0, -resolution)`` with west/north = -/+ the grid half-width.
NaN is the nodata value. GDAL's COG driver (bundled with rasterio's wheels) writes the tiles,
the deflate compression and the overviews; the file is written to a temporary name and renamed.
"""

from __future__ import annotations

from pathlib import Path

from radarlib.products.colmax import Colmax
from radarlib.products.files import atomic_output

__all__ = ["aeqd_crs", "write_cog"]


def aeqd_crs(latitude: float, longitude: float) -> str:
    """PROJ string of the azimuthal equidistant projection centred on the radar."""
    return (
        f"+proj=aeqd +lat_0={latitude:.6f} +lon_0={longitude:.6f} +x_0=0 +y_0=0 "
        "+datum=WGS84 +units=m +no_defs"
    )


def write_cog(colmax: Colmax, target: Path, *, fsync: bool = True) -> Path:
    """Write ``colmax`` as a COG at ``target`` (atomically); returns ``target``."""
    import rasterio
    from affine import Affine

    res = colmax.spec.resolution_km * 1000.0
    west, _, _, north = colmax.bounds_m
    size = colmax.spec.size
    profile = {
        "driver": "COG",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": aeqd_crs(colmax.latitude, colmax.longitude),
        "transform": Affine(res, 0.0, west, 0.0, -res, north),
        "nodata": float("nan"),
        "compress": "deflate",
        "blocksize": 128,
        "overview_resampling": "nearest",
    }
    with atomic_output(target, fsync=fsync) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(colmax.data.astype("float32"), 1)
        dst.update_tags(
            radar=colmax.radar,
            time="" if colmax.time is None else colmax.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            product="COLMAX",
            source_field=colmax.source_field,
            units="dBZ",
        )
    return target
