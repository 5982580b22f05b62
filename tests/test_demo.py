"""`radarlib demo` end to end in a subprocess: table, NetCDF files, quicklook PNG, clean exit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADARLIB_")}
    env["PYART_QUIET"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "radarlib", "demo", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> tuple[Path, str, str]:
    cwd = tmp_path_factory.mktemp("demo")
    result = demo("--output", "out", "--volumes", "1", "--samples", str(samples_dir), cwd=cwd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return cwd / "out", result.stdout, result.stderr


def table_rows(stdout: str) -> list[list[str]]:
    lines = stdout.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("radar ") and "NetCDF" in line
    )
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip() or line.startswith("seconds:"):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_table_lists_every_volume_completed(run: tuple[Path, str, str]) -> None:
    out, stdout, _ = run
    rows = table_rows(stdout)
    radars = {row[0] for row in rows}
    assert {"RMA1", "RMA2", "RMA11", "AR5"} <= radars
    assert len(rows) == 5  # 1 synthetic per radar + RMA11 vol 01, vol 02 + AR5
    for row in rows:
        assert "completed" in row, row
        netcdf = next(cell for cell in row if cell.endswith(".nc"))
        assert (out.parent / netcdf).is_file() or Path(netcdf).is_file()
        assert re.fullmatch(r"\d+\.\d", row[-1]), row  # seconds
    rma11 = next(row for row in rows if row[0] == "RMA11" and row[2] == "0315/01")
    assert any("missing PHIDP RHOHV" in cell for cell in rma11)
    assert re.search(r"files \d+/\d+ downloaded", stdout)  # progress was shown


def test_netcdf_files_are_readable_volumes(run: tuple[Path, str, str]) -> None:
    import netCDF4

    out, _, _ = run
    files = sorted((out / "data").rglob("*.nc"))
    assert len(files) == 5
    for path in files:
        with netCDF4.Dataset(path) as ds:
            assert ds.variables["sweep_start_ray_index"].size >= 1
            fields = [n for n, v in ds.variables.items() if v.dimensions == ("time", "range")]
            assert fields, path
    leftovers = [p for p in out.rglob(".*") if p.is_file() and p.name != ".radarlib-demo"]
    assert not [p for p in leftovers if not p.name.startswith(".radarlib-download-")]


def test_quicklook_png_shows_data(run: tuple[Path, str, str]) -> None:
    import matplotlib.image

    out, stdout, _ = run
    [png] = list(out.glob("quicklook_*.png"))
    assert f"quicklook: {png.relative_to(out.parent)}" in stdout or str(png) in stdout
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (700, 800)
    rgb = (image[80:620, 80:600, :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len({tuple(p) for p in rgb}) > 100
    assert np.mean(np.ptp(rgb.astype(int), axis=1) > 40) > 0.02  # coloured (data) pixels


def test_colmax_png_beside_the_quicklook(run: tuple[Path, str, str]) -> None:
    import matplotlib.image

    out, stdout, _ = run
    [quick] = list(out.glob("quicklook_*.png"))
    [png] = list(out.glob("colmax_*.png"))
    assert png.name == quick.name.replace("quicklook_", "colmax_")
    assert f"COLMAX:    {png.relative_to(out.parent)}" in stdout or str(png) in stdout
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (700, 800)
    rgb = (image[80:620, 80:600, :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len({tuple(p) for p in rgb}) > 8
    assert np.mean(np.ptp(rgb.astype(int), axis=1) > 40) > 0.01  # coloured (echo) pixels


def test_password_stays_out_of_files_and_output(run: tuple[Path, str, str]) -> None:
    out, stdout, stderr = run
    config = (out / "radarlib.toml").read_text()
    assert "password_env" in config and "password =" not in config
    assert "PASS " not in stdout + stderr


def test_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("keep me")
    result = demo("--output", "precious", "--no-samples", cwd=tmp_path)
    assert result.returncode == 2
    assert "--output" in result.stderr and "radarlib demo" in result.stderr
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "keep me"


def test_demo_writes_nothing_into_the_repository(run: tuple[Path, str, str]) -> None:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--", "demo-output", "src", "tests"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert ".BUFR" not in status.stdout and ".nc\n" not in status.stdout


def test_dashboard_url_shown_and_metrics_scrape_left(run: tuple[Path, str, str]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    out, stdout, _ = run
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/ ", stdout, re.M)
    assert "metrics (Prometheus scrape): " in stdout
    families = {
        f.name: f for f in text_string_to_metric_families((out / "metrics.txt").read_text())
    }
    completed = {
        s.labels["radar"]: s.value
        for s in families["radarlib_volumes"].samples
        if s.labels["status"] == "completed"
    }
    assert completed["RMA11"] == 2 and completed["RMA1"] == 1 and completed["AR5"] == 1
    durations = families["radarlib_conversion_duration_seconds"].samples
    assert sum(s.value for s in durations if s.name.endswith("_count")) == 5
