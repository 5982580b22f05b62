"""The ``rmabufr`` xarray backend: xarray's backend conventions, laziness, the real RMA11 volume."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from radarlib.bufr import read_bufr
from radarlib.bufr.model import GateStatus, classify
from radarlib.xarray_backend import RmaBufrBackendEntrypoint, open_rmabufr_datatree

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DBZH = "RMA11_0315_01_DBZH_20251020T152828Z.BUFR"


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def test_open_dataset_is_lazy_and_gate_exact(rma11_dir: Path) -> None:
    path = rma11_dir / DBZH
    ds = xr.open_dataset(path, engine=RmaBufrBackendEntrypoint, group="sweep_3")
    var = ds["DBZH"].variable
    assert type(var._data).__name__ == "MemoryCachedArray"  # not loaded by opening
    cache = ds["DBZH"].variable._data.array.array.array.cache
    assert cache.decoded == 0  # metadata only
    assert ds.sizes == {"azimuth": 360, "range": 653}
    values = ds["DBZH"].values  # inflate sweep 3 now
    assert cache.decoded == 1
    status = ds["DBZH_status"].values  # same block, no second inflate
    assert cache.decoded == 1
    sweep = read_bufr(path).sweeps[3]
    rows = np.floor(ds["azimuth"].values * sweep.nrays / 360).astype(int)
    want = sweep.data[rows]
    kind = classify(want)
    valid = kind == GateStatus.VALID
    assert np.array_equal(values[valid].astype(np.float64), want[valid])
    assert np.isnan(values[~valid]).all()
    assert np.array_equal(status, kind)
    assert ds["sweep_fixed_angle"].item() == np.float32(sweep.elevation)
    assert ds.indexes["azimuth"].is_monotonic_increasing  # azimuth order, as xradar's ODIM
    assert int(np.argmin(ds["time"].values)) == sweep.a1gate  # the first ray acquired is row a1gate
    ds.close()
    assert cache.blocks == {}


def test_backend_conventions(rma11_dir: Path) -> None:
    entry = RmaBufrBackendEntrypoint()
    assert entry.guess_can_open(rma11_dir / DBZH) and not entry.guess_can_open("x.nc")
    with xr.open_dataset(rma11_dir / DBZH, engine=RmaBufrBackendEntrypoint) as ds:  # sweep_0
        assert int(ds["sweep_number"]) == 0
        sub = ds["DBZH"].isel(azimuth=slice(10, 20), range=[0, 5, 7])  # lazy indexing
        assert sub.shape == (10, 3)
        np.testing.assert_array_equal(sub.values, ds["DBZH"].values[10:20][:, [0, 5, 7]])
    root = xr.open_dataset(rma11_dir / DBZH, engine=RmaBufrBackendEntrypoint, group="/")
    assert root.sizes["sweep"] == 15 and root.attrs["instrument_name"] == "RMA11"
    dropped = xr.open_dataset(
        rma11_dir / DBZH, engine=RmaBufrBackendEntrypoint, drop_variables=["DBZH_status"]
    )
    assert "DBZH_status" not in dropped and "DBZH" in dropped
    chunked = xr.open_dataset(
        rma11_dir / DBZH, engine=RmaBufrBackendEntrypoint, group="sweep_2", chunks={}
    )
    assert chunked["DBZH"].chunks is not None
    np.testing.assert_array_equal(
        chunked["DBZH"].values,
        xr.open_dataset(rma11_dir / DBZH, engine=RmaBufrBackendEntrypoint, group="sweep_2")[
            "DBZH"
        ].values,
    )
    tree = xr.open_datatree(rma11_dir / DBZH, engine=RmaBufrBackendEntrypoint)
    assert "sweep_14" in tree.children and "DBZH" in tree["sweep_14"].ds
    assert tree["sweep_0"]["DBZH"].shape == (360, 653)
    with pytest.raises(ValueError, match=r"sweeps 0\.\.14"):
        xr.open_dataset(rma11_dir / DBZH, engine=RmaBufrBackendEntrypoint, group="sweep_15")


def test_datatree_of_the_real_volume_with_xradar_and_a_plot(
    rma11_dir: Path, tmp_path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xradar  # noqa: F401  (registers the .xradar accessors)

    paths = sorted(rma11_dir.glob("RMA11_0315_01_*.BUFR"))
    tree = open_rmabufr_datatree(paths)
    assert [n for n in tree.children if n.startswith("sweep_")] == [f"sweep_{i}" for i in range(15)]
    sweep = tree["sweep_0"].to_dataset().xradar.georeference()
    assert {"x", "y", "z"} <= set(sweep.coords)
    fig, ax = plt.subplots()
    sweep["DBZH"].plot(x="x", y="y", ax=ax)
    ax2 = fig.add_axes((0.7, 0.7, 0.2, 0.2))
    tree["sweep_0"]["DBZH"].plot(ax=ax2)  # the README's plain .plot(): needs sorted azimuths
    out = tmp_path / "sweep0.png"
    fig.savefig(out)
    plt.close(fig)
    assert out.stat().st_size > 10_000
    ds = tree["sweep_1"].ds
    for path in paths:
        f = read_bufr(path)
        s = f.sweeps[1]
        rows = np.floor(ds["azimuth"].values * s.nrays / 360).astype(int)
        col = round(
            (s.range_offset + s.range_bin_size / 2 - float(ds["range"][0])) / s.range_bin_size
        )
        got = ds[f.field].values[:, col : col + s.ngates]
        valid = classify(s.data[rows]) == GateStatus.VALID
        assert np.array_equal(got[valid].astype(np.float64), s.data[rows][valid])


def _entry_point() -> importlib.metadata.EntryPoint | None:
    found = [
        e for e in importlib.metadata.entry_points(group="xarray.backends") if e.name == "rmabufr"
    ]
    return found[0] if found else None


def test_entry_point_opens_without_importing_radarlib(rma11_dir: Path) -> None:
    """Run in an environment where this tree is pip-installed (the installed metadata must
    declare the entry point; an older install of radarlib does not)."""
    entry = _entry_point()
    if entry is None or entry.value != "radarlib.xarray_backend:RmaBufrBackendEntrypoint":
        pytest.skip("the installed radarlib metadata has no rmabufr entry point: pip install -e .")
    import radarlib

    installed = Path(radarlib.__file__).resolve().parents[1]
    code = (
        "import sys, xarray as xr\n"
        f"ds = xr.open_dataset({str(rma11_dir / DBZH)!r}, engine='rmabufr', group='sweep_0')\n"
        "assert 'radarlib.xarray_backend' in sys.modules\n"
        "print(ds.sizes['azimuth'], float(ds['DBZH'].max()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    nrays, peak = done.stdout.split()
    assert nrays == "360" and float(peak) > 0
    assert installed.is_dir()
