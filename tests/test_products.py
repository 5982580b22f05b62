"""Products of the real RMA11 0315/01 volume: COLMAX against a brute-force nearest-gate column
maximum, the COG read back with rasterio (CRS, bounds, values, COG validity), the PNGs checked
for size and content, the product job's per-product errors and the product state queue.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.image
import netCDF4
import numpy as np
import pytest

from radarlib.convert import ConvertOptions, convert_volume
from radarlib.products import grid as grid_module
from radarlib.products.cog import write_cog
from radarlib.products.colmax import make_colmax
from radarlib.products.grid import GridSpec, mapping_for
from radarlib.products.polar import read_polar
from radarlib.products.settings import ProductSettings
from radarlib.products.stage import ProductJob, product_path, run_product_job
from radarlib.qc import QCConfig

os.environ.setdefault("PYART_QUIET", "1")


@pytest.fixture(scope="module")
def qc_netcdf(rma11_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    out = tmp_path_factory.mktemp("nc")
    return convert_volume(files, out, options=ConvertOptions(qc=QCConfig())).path


def _brute_force_colmax(path: Path, spec: GridSpec) -> np.ndarray:
    """Independent: netCDF4 + Py-ART's beam model + argmin over every ray and every gate."""
    import pyart

    with netCDF4.Dataset(path) as ds:
        field = ds["DBZH_QC"][:]
        values = np.ma.filled(field.astype(np.float64), np.nan)
        azimuth = np.asarray(ds["azimuth"][:], dtype=np.float64)
        rng = np.asarray(ds["range"][:], dtype=np.float64)
        angles = np.asarray(ds["fixed_angle"][:], dtype=np.float64)
        starts = np.asarray(ds["sweep_start_ray_index"][:])
        ends = np.asarray(ds["sweep_end_ray_index"][:])
    n = spec.size
    res = spec.resolution_km * 1000.0
    x = -n * res / 2 + (np.arange(n) + 0.5) * res
    y = x[::-1]
    xx, yy = np.meshgrid(x, y)
    s_col = np.hypot(xx, yy).ravel()
    az_col = np.rad2deg(np.arctan2(xx, yy)).ravel() % 360.0
    half = (rng[1] - rng[0]) / 2
    best = np.full(s_col.size, -np.inf)
    for i, e in enumerate(angles):
        rays = np.arange(starts[i], ends[i] + 1)
        order = np.argsort(azimuth[rays], kind="stable")
        sorted_rays, sorted_az = rays[order], azimuth[rays][order]
        _, s_gate, _ = pyart.core.antenna_to_cartesian(rng / 1000.0, np.zeros_like(rng), e)
        for chunk in np.array_split(np.arange(s_col.size), 24):
            d = np.abs(az_col[chunk, None] - sorted_az[None, :])
            d = np.minimum(d, 360.0 - d)
            ray = sorted_rays[np.argmin(d, axis=1)]
            dg = np.abs(s_col[chunk, None] - s_gate[None, :])
            gate = np.argmin(dg, axis=1)
            ok = dg[np.arange(len(chunk)), gate] <= half
            sample = values[ray, gate]
            sample = np.where(ok & np.isfinite(sample), sample, -np.inf)
            best[chunk] = np.maximum(best[chunk], sample)
    best[~np.isfinite(best)] = np.nan
    return best.reshape(n, n).astype(np.float32)


def test_colmax_equals_brute_force_nearest_gate_maximum(qc_netcdf: Path, tmp_path: Path) -> None:
    spec = GridSpec(240.0, 1.0)
    colmax = make_colmax(read_polar(qc_netcdf), spec, tmp_path / "cache")
    expected = _brute_force_colmax(qc_netcdf, spec)
    assert colmax.data.shape == (480, 480) and colmax.data.dtype == np.float32
    np.testing.assert_array_equal(colmax.data, expected)  # NaN where both have no echo
    assert np.isfinite(expected).sum() > 10000 and colmax.source_field == "DBZH_QC"
    # coarser grid, other extent: same rule
    coarse = GridSpec(150.0, 2.5)
    np.testing.assert_array_equal(
        make_colmax(read_polar(qc_netcdf), coarse).data, _brute_force_colmax(qc_netcdf, coarse)
    )


def test_mapping_cached_per_geometry_on_disk_and_shared_across_a1gate(
    qc_netcdf: Path, tmp_path: Path
) -> None:
    volume = read_polar(qc_netcdf)
    spec = GridSpec(100.0, 2.0)
    grid_module._MEMORY.clear()
    first = mapping_for(volume, spec, tmp_path)
    files = list(tmp_path.glob("grid-*.npz"))
    assert [f.name for f in files] == [f"grid-{first.key}.npz"]
    grid_module._MEMORY.clear()
    again = mapping_for(volume, spec, tmp_path)  # from disk
    np.testing.assert_array_equal(again.ray, first.ray)
    np.testing.assert_array_equal(again.gate, first.gate)
    assert mapping_for(volume, spec, tmp_path) is again  # from memory
    # another volume of the same radar whose first ray differs (a1gate): same mapping, and
    # the gather follows its own ray order
    rolled_az = volume.azimuth.copy()
    rolled_fields = {}
    for i in range(volume.nsweeps):
        a, b = int(volume.sweep_start[i]), int(volume.sweep_end[i]) + 1
        rolled_az[a:b] = np.roll(volume.azimuth[a:b], 7)
    for name, data in volume.fields.items():
        rolled = data.copy()
        for i in range(volume.nsweeps):
            a, b = int(volume.sweep_start[i]), int(volume.sweep_end[i]) + 1
            rolled[a:b] = np.roll(data[a:b], 7, axis=0)
        rolled_fields[name] = rolled
    import dataclasses

    other = dataclasses.replace(volume, azimuth=rolled_az, fields=rolled_fields)
    assert mapping_for(other, spec, tmp_path) is again
    np.testing.assert_array_equal(
        make_colmax(other, spec, tmp_path).data, make_colmax(volume, spec, tmp_path).data
    )


def test_cog_crs_bounds_values_and_validity(qc_netcdf: Path, tmp_path: Path) -> None:
    import rasterio
    from rasterio.warp import transform
    from rio_cogeo.cogeo import cog_validate

    volume = read_polar(qc_netcdf)
    colmax = make_colmax(volume, GridSpec(240.0, 1.0))
    target = write_cog(colmax, tmp_path / "colmax.tif")
    valid, errors, _warnings = cog_validate(str(target))
    assert valid, errors
    with rasterio.open(target) as ds:
        assert ds.crs.to_dict()["proj"] == "aeqd"
        assert ds.crs.to_dict()["lat_0"] == pytest.approx(volume.latitude)
        assert ds.crs.to_dict()["lon_0"] == pytest.approx(volume.longitude)
        assert tuple(ds.bounds) == (-240000.0, -240000.0, 240000.0, 240000.0)
        assert ds.res == (1000.0, 1000.0) and ds.dtypes == ("float32",)
        assert ds.overviews(1), "no overviews"
        data = ds.read(1)
        np.testing.assert_array_equal(data, colmax.data)
        # the radar's own longitude/latitude lands on the grid centre
        xs, ys = transform("EPSG:4326", ds.crs, [volume.longitude], [volume.latitude])
        assert abs(xs[0]) < 1e-3 and abs(ys[0]) < 1e-3
        # the strongest echo: its cell centre in metres east/north maps back to its pixel
        row, col = np.unravel_index(np.nanargmax(colmax.data), data.shape)
        east, north = -240000 + (col + 0.5) * 1000, 240000 - (row + 0.5) * 1000
        assert ds.index(east, north) == (row, col)
        assert data[row, col] == np.nanmax(colmax.data) > 45
        assert ds.tags()["radar"] == "RMA11" and ds.tags()["product"] == "COLMAX"
    assert not list(tmp_path.glob(".*.tmp"))


def test_product_job_makes_every_png_and_the_cog(qc_netcdf: Path, tmp_path: Path) -> None:
    settings = ProductSettings(ppi_fields=("DBZH", "ZDR"), ppi_sweeps=(0, 2))
    names = settings.product_names()
    job = ProductJob("v", str(qc_netcdf), str(tmp_path), tuple(names), settings.to_mapping())
    outcome = run_product_job(job)
    assert [r.product for r in outcome.results] == names
    assert all(r.ok and r.made for r in outcome.results), [
        (r.product, r.error) for r in outcome.results if not (r.ok and r.made)
    ]
    for name in names:
        path = product_path(tmp_path, str(qc_netcdf), name)
        assert path.is_file() and path.name.startswith("RMA11_0315_01_20251020T152828Z_")
        if not name.endswith(".png"):
            continue
        image = matplotlib.image.imread(path)
        transparent = name.endswith("_transparent.png")
        square = (480, 480) if name.startswith("colmax") else (800, 800)  # colmax: 1 px = 1 km
        assert image.shape[:2] == (square if transparent else (700, 800)), name
        rgb = (image[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
        colours = np.unique(rgb[image.reshape(-1, 4)[:, 3] > 0], axis=0)
        assert len(colours) >= 8, f"{name}: only {len(colours)} colours"
        if transparent:
            alpha = image[..., 3]
            assert alpha[0, 0] == 0 and alpha.min() == 0 and alpha.max() == 1.0
            assert 0.005 < (alpha > 0).mean() < 0.9  # echoes only, not a filled canvas
        else:
            assert image[..., 3].min() == 1.0  # opaque
    # kept, not made again; force remakes; a bad product fails alone
    inode = product_path(tmp_path, str(qc_netcdf), "colmax.tif").stat().st_ino
    again = run_product_job(job)
    assert all(r.ok and not r.made for r in again.results)
    assert product_path(tmp_path, str(qc_netcdf), "colmax.tif").stat().st_ino == inode
    mixed = ProductJob(
        "v", str(qc_netcdf), str(tmp_path), ("ppi_NOPE_0.png", "ppi_DBZH_99.png", "colmax.tif"),
        settings.to_mapping(), force=True,
    )  # fmt: skip
    results = {r.product: r for r in run_product_job(mixed).results}
    assert "no field 'NOPE'" in str(results["ppi_NOPE_0.png"].error)
    assert "no sweep 99" in str(results["ppi_DBZH_99.png"].error)
    assert results["colmax.tif"].ok and results["colmax.tif"].made
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_netcdf_fails_every_product_with_the_reason(tmp_path: Path) -> None:
    job = ProductJob("v", str(tmp_path / "gone.nc"), str(tmp_path), ("colmax.tif", "colmax.png"))
    outcome = run_product_job(job)
    assert not any(r.ok for r in outcome.results)
    assert all("gone.nc: cannot open NetCDF" in str(r.error) for r in outcome.results)
