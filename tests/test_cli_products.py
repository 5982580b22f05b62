"""`radarlib convert --qc --products` and `radarlib products` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import matplotlib.image
import netCDF4

from radarlib.filename import VolumeKey
from radarlib.state.products import ProductStore
from radarlib.state.sqlite import SQLiteStateTracker

ROOT = Path(__file__).resolve().parents[1]


def _radarlib(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADARLIB_")}
    env.update(PYART_QUIET="1", PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "radarlib", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_convert_qc_products_by_hand(rma11_dir: Path, tmp_path: Path) -> None:
    result = _radarlib(
        "convert", str(rma11_dir), "-o", str(tmp_path / "nc"), "--qc", "--products",
        "--products-dir", str(tmp_path / "png"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stem = "RMA11_0315_01_20251020T152828Z"
    for product in ("colmax.png", "colmax_transparent.png", "colmax.tif", "ppi_DBZH_0.png"):
        assert (tmp_path / "png" / f"{stem}_{product}").is_file(), product
        assert f"product {product} -> " in result.stdout
    assert "products: none apply" in result.stdout  # volume 02: VRAD/WRAD only
    assert matplotlib.image.imread(tmp_path / "png" / f"{stem}_colmax.png").shape[:2] == (700, 800)
    with netCDF4.Dataset(tmp_path / "nc" / f"{stem}.nc") as ds:
        assert "DBZH_QC" in ds.variables and "speckle applied" in ds.qc_steps


def test_products_command_remakes_a_period(rma11_dir: Path, tmp_path: Path) -> None:
    conv = _radarlib("convert", str(rma11_dir), "-o", str(tmp_path / "src"), "--qc", cwd=tmp_path)
    assert conv.returncode == 0, conv.stderr
    config = tmp_path / "radarlib.toml"
    config.write_text(
        textwrap.dedent(
            """
            [paths]
            root = "data"
            [sources.main]
            host = "127.0.0.1"
            username = "u"
            password_env = "RADARLIB_TEST_UNSET"
            [[radars]]
            code = "RMA11"
            start_date = 2025-10-20T00:00:00Z
            [products]
            enabled = true
            transparent = false
            ppi_sweeps = [0, 1]
            """
        )
    )
    db = tmp_path / "data" / "state.db"
    netcdf = tmp_path / "src" / "RMA11_0315_01_20251020T152828Z.nc"
    key = VolumeKey.from_volume_id("RMA11_0315_01_2025-10-20T15:28:28Z")
    outside = VolumeKey("RMA11", "0315", "01", key.time + timedelta(days=2))
    vol02 = VolumeKey.from_volume_id("RMA11_0315_02_2025-10-20T15:24:29Z")
    with SQLiteStateTracker(db) as tracker:
        for k, fields in ((key, ["DBZH", "DBZV"]), (outside, ["DBZH"]), (vol02, ["VRAD"])):
            tracker.register_volume(k.volume_id, "RMA11", "0315", k.volume_number, k.time, fields)
            tracker.mark_volume_processing(k.volume_id, "completed", netcdf_path=str(netcdf))
    args = ("products", "--config", str(config), "--start", "2025-10-20T00:00:00Z",
            "--end", "2025-10-21T00:00:00Z")  # fmt: skip
    first = _radarlib(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "RMA11: 4 products queued" in first.stdout and "RMA11: products done 4" in first.stdout
    out = tmp_path / "data" / "RMA11" / "products"
    made = sorted(p.name for p in out.glob("RMA11_*"))
    assert made == [
        f"RMA11_0315_01_20251020T152828Z_{n}"
        for n in ("colmax.png", "colmax.tif", "ppi_DBZH_0.png", "ppi_DBZH_1.png")
    ]
    before = {p: p.stat().st_mtime_ns for p in out.glob("RMA11_*")}
    again = _radarlib(*args, "--product", "colmax.tif", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "RMA11: 1 products queued" in again.stdout
    changed = [p.name for p, t in before.items() if p.stat().st_mtime_ns != t]
    assert changed == ["RMA11_0315_01_20251020T152828Z_colmax.tif"]  # remade; the rest kept
    with SQLiteStateTracker(db) as tracker:
        rows = ProductStore(tracker).rows()
    assert {r["volume_id"] for r in rows} == {key.volume_id}  # not outside, not volume 02
    bad = _radarlib(*args, "--product", "nope.png", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown product(s) nope.png" in bad.stderr
